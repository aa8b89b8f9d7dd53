"""JSON request bodies: the media type and the byte-level checks, before any decoder runs.

Every request with a body must say it is JSON (``application/json`` or
``application/cloudevents+json``, optionally ``; charset=utf-8``), else 415. The body is read
against SMD_MAX_MESSAGE_BYTES (Litestar stops reading past it) and passes the same byte-level
checks as a NATS message or an imported ledger line (``core.contract.check_bytes``: size,
UTF-8, nesting depth; and duplicate members), else a 400 problem with the check's code.

``POST /v1/events`` does this itself (``read_json_body`` then ``core.intake.accept``) so that
its refusals are counted per door; every other route gets it from ``json_body_hook``.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from core.contract import DEFAULT_LIMITS, MessageTooLarge, WireLimits, check_json_body
from domain.errors import DomainError

#: The media types a JSON body may be sent as (CloudEvents structured mode uses the second).
JSON_MEDIA_TYPES = frozenset({"application/json", "application/cloudevents+json"})
#: Methods whose requests may carry a body.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: A route whose handler reads and checks its body itself (``opt={OPT_OWN_CHECKS: True}``).
OPT_OWN_CHECKS = "checks_its_own_body"


class UnsupportedMediaType(DomainError):
    """The request body is not declared as JSON."""

    code = "unsupported-media-type"

    def __init__(self, given: str | None) -> None:
        if given is None:
            said = "the request has a body but no Content-Type"
        else:
            shown = given[:80].encode("ascii", "replace").decode("ascii")
            said = f"the body's Content-Type is {shown!r}"
        super().__init__(
            f"{said}; send 'Content-Type: application/json' (or application/cloudevents+json), "
            "optionally with '; charset=utf-8'"
        )


def is_json_media_type(value: str) -> bool:
    """``application/json`` or ``application/cloudevents+json``, with no parameter but
    ``charset=utf-8`` (type, parameter name and charset are case-insensitive)."""
    media_type, *params = value.split(";")
    if media_type.strip().lower() not in JSON_MEDIA_TYPES:
        return False
    for param in params:
        name, eq, charset = param.partition("=")
        if not eq or name.strip().lower() != "charset":
            return False
        charset = charset.strip()
        if len(charset) >= 2 and charset[0] == charset[-1] == '"':
            charset = charset[1:-1]
        if charset.lower() != "utf-8":
            return False
    return True


def wire_limits(request: Request[Any, Any, Any]) -> WireLimits:
    """The app's limits (``create_app`` puts them in the app state)."""
    return getattr(request.app.state, "wire_limits", DEFAULT_LIMITS)


async def read_json_body(request: Request[Any, Any, Any]) -> bytes:
    """The body, read up to the size limit, once its Content-Type says JSON.

    An empty body is returned as is (no media type needed): the route's decoder says what it wants.
    Raises UnsupportedMediaType (415) or MessageTooLarge (400) before anything is decoded.
    """
    limits = wire_limits(request)
    try:
        raw = await request.body()  # Litestar stops at request_max_body_size (= limits.max_bytes)
    except RequestEntityTooLarge:
        announced = request.content_length
        size = announced if announced and announced > limits.max_bytes else None
        raise MessageTooLarge(size, limits.max_bytes) from None
    if not raw:
        return raw
    content_type = request.headers.get("content-type")
    if content_type is None or not is_json_media_type(content_type):
        raise UnsupportedMediaType(content_type)
    return raw


async def json_body_hook(request: Request[Any, Any, Any]) -> None:
    """``before_request`` of the app: media type and byte-level checks of any request body."""
    if request.method not in BODY_METHODS or request.route_handler.opt.get(OPT_OWN_CHECKS):
        return
    raw = await read_json_body(request)
    if raw:
        check_json_body(raw, wire_limits(request))
