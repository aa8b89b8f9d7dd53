"""Who is calling: an API key resolved to an agency of the registry, on every request.

``agency_guard`` reads ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``), resolves the
key through the key store (read at every request, so a revocation holds on the next one) and
the agency through the registry (kind, region and jurisdiction as recorded today), and puts a
``Caller`` on the request state. A missing, unknown or revoked key is a 401 problem; a key
whose agency is no longer in the registry is a 403. Keys never reach logs or error bodies.

The guard finds its services at ``app.state.services`` (anything with ``apikeys`` and
``registry`` attributes): ``create_app`` puts the wired Services there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Headers
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from core.apikeys import ApiKeys
from core.registry import RegistryView

HOW_TO_SEND = "send your agency's API key as 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')"
MAX_KEY_LENGTH = 200


class AuthServices(Protocol):
    """What the guard needs from the wired services."""

    apikeys: ApiKeys
    registry: RegistryView


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated agency of a request."""

    agency_id: str
    kind: str
    name: str
    region: str
    jurisdiction: tuple[str, ...]
    key_id: str


def presented_key(headers: Headers) -> str:
    """The key the request carries; NotAuthorizedException saying how to send one if none."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise NotAuthorizedException(detail=f"the Authorization header is not 'Bearer <key>'; {HOW_TO_SEND}")
        key = key.strip()
    else:
        key = (headers.get("x-api-key") or "").strip()
    if not key:
        raise NotAuthorizedException(detail=f"no API key; {HOW_TO_SEND}")
    if len(key) > MAX_KEY_LENGTH:
        raise NotAuthorizedException(detail="the API key is unknown or revoked; ask the operator for a valid key")
    return key


def resolve_caller(services: AuthServices, key: str) -> Caller:
    """The agency holding ``key`` (blocking: reads the key table and the log)."""
    info = services.apikeys.lookup(key)
    if info is None:
        raise NotAuthorizedException(
            detail="the API key is unknown or revoked; ask the operator for a valid key (smd keys issue AGENCY)"
        )
    agency = services.registry.agency(info.agency_id)
    if agency is None:
        raise PermissionDeniedException(
            detail=f"the key's agency {info.agency_id!r} is not in the registry today; "
            "ask the operator to define it in the registry file (smd registry load)"
        )
    return Caller(
        agency_id=agency.agency_id,
        kind=str(agency.kind),
        name=agency.name,
        region=agency.region,
        jurisdiction=agency.jurisdiction,
        key_id=info.key_id,
    )


async def agency_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: refuse requests without a valid key; record the caller on the request."""
    key = presented_key(connection.headers)
    services: AuthServices = connection.app.state.services
    # The key table and the log are read with blocking drivers: keep them off the event loop.
    connection.state.caller = await asyncio.to_thread(resolve_caller, services, key)


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """Dependency: the caller the guard authenticated (use it only on guarded routes)."""
    caller = getattr(request.state, "caller", None)
    if caller is None:  # a route forgot the guard: fail closed
        raise NotAuthorizedException(detail=f"this route needs an API key; {HOW_TO_SEND}")
    return caller
