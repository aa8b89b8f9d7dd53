"""Who is calling: an API key resolved to an agency of the registry, on every request.

``agency_guard`` reads ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``), resolves the
key through the key store (read at every request, so a revocation holds on the next one) and
the agency through the registry (kind, region and jurisdiction as recorded today), and puts a
``Caller`` on the request state. A missing, unknown or revoked key is a 401 problem; a key
whose agency is no longer in the registry is a 403. Keys never reach logs or error bodies.

The headers are parsed strictly: exactly ``Bearer`` (case-sensitive, as the contract writes it),
one space and the key; the key alone in ``X-API-Key``; one header, once. Whitespace around or
inside the key, another scheme or a second header is a 401 (servers may trim whitespace around
a header value before it reaches us; RFC 9110 allows that).

Failed authentications are counted per client address and per key id (``FailedAuthentications``);
past either limit a failure is answered 429 with ``Retry-After`` instead of 401. A valid key is
always served: neither a client sharing an agency's address (NAT, proxy) nor one who knows a key
id (it is public: ``smd keys list``) can lock an agency out. Guessing is hopeless anyway (256
random bits per key); the limit tells a misconfigured or hostile client to stop, and says so.

The guard finds its services at ``app.state.services`` (anything with ``apikeys`` and
``registry`` attributes) and the counters at ``app.state.auth_failures``: ``create_app`` puts
them there.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import limits
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Headers
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler

from core.apikeys import ApiKeys, key_id_of
from core.registry import RegistryView

HOW_TO_SEND = "send your agency's API key as 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')"
MAX_KEY_LENGTH = 200
SCHEME = "Bearer "  # case-sensitive, one space (our contract; RFC 6750 form)
#: RFC 6750 b64token: what a key may look like at all (ours: smd_<hex>_<base64url>).
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class TooManyFailedAuthentications(TooManyRequestsException):
    """Too many failed authentications from this address or for this key id: wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            detail=f"too many failed authentications from this address or for this key id; try again in "
            f"{retry_after} s with a valid key ({HOW_TO_SEND}; a revoked key stays revoked: ask the operator)",
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class FailedAuthentications:
    """Failed authentications per client address and per key id, in moving windows (the ``limits``
    library, in this process's memory; entries expire with their window)."""

    def __init__(self, per_address: str, per_key: str) -> None:
        self.per_address = limits.parse(per_address)
        self.per_key = limits.parse(per_key)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def failed(self, address: str, key_id: str | None) -> int | None:
        """Count one failure; the seconds to wait if a limit is used up (Retry-After), else None."""
        used_up = []
        if not self._limiter.hit(self.per_address, "auth-address", address):
            used_up.append((self.per_address, ("auth-address", address)))
        if key_id is not None and not self._limiter.hit(self.per_key, "auth-key", key_id):
            used_up.append((self.per_key, ("auth-key", key_id)))
        if not used_up:
            return None
        reset = max(self._limiter.get_window_stats(item, *ids).reset_time for item, ids in used_up)
        return max(1, math.ceil(reset - time.time()))


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
    """The key the request carries, read strictly; NotAuthorizedException saying how to send one."""
    authorization = headers.getall("authorization", [])
    api_key = headers.getall("x-api-key", [])
    if len(authorization) + len(api_key) > 1:
        raise NotAuthorizedException(detail=f"send the key in one header, once; {HOW_TO_SEND}")
    if authorization:
        value = authorization[0]
        if not value.startswith(SCHEME):
            raise NotAuthorizedException(detail=f"the Authorization header is not 'Bearer <key>'; {HOW_TO_SEND}")
        key = value[len(SCHEME) :]
    elif api_key:
        key = api_key[0]
    else:
        raise NotAuthorizedException(detail=f"no API key; {HOW_TO_SEND}")
    if not key or len(key) > MAX_KEY_LENGTH or not _TOKEN.fullmatch(key):
        raise NotAuthorizedException(
            detail=f"the API key is not in the form of a key (no spaces, tabs or other characters around it); "
            f"{HOW_TO_SEND}"
        )
    return key


def resolve_caller(services: AuthServices, key: str) -> Caller:
    """The agency holding ``key`` (blocking: reads the key table and the log)."""
    info = services.apikeys.lookup(key)
    if info is None:
        raise NotAuthorizedException(
            detail="the API key is unknown or revoked; ask the operator for a valid key (smd keys issue AGENCY)"
        )
    # the registry as read at most a second ago: a write is checked again on the registry as
    # recorded now (core.intake); an agency removed from the registry is refused within a second
    agency = services.registry.recent_agency(info.agency_id)
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


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The peer's address as the server reports it (uvicorn honours X-Forwarded-For only from
    the addresses in FORWARDED_ALLOW_IPS, 127.0.0.1 and ::1 by default: a local reverse proxy)."""
    client = connection.client
    return client.host if client is not None and client.host else "unknown"


async def agency_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Litestar guard: refuse requests without a valid key; record the caller on the request."""
    key: str | None = None
    try:
        key = presented_key(connection.headers)
        services: AuthServices = connection.app.state.services
        # The key table and the log are read with blocking drivers: keep them off the event loop.
        connection.state.caller = await asyncio.to_thread(resolve_caller, services, key)
    except NotAuthorizedException:
        failures: FailedAuthentications | None = getattr(connection.app.state, "auth_failures", None)
        if failures is not None:
            wait = failures.failed(client_address(connection), key_id_of(key) if key else None)
            if wait is not None:
                raise TooManyFailedAuthentications(wait) from None
        raise


async def provide_caller(request: Request[Any, Any, Any], services: NamedDependency[Any]) -> Caller:
    """Dependency: the caller the guard authenticated (use it only on guarded routes).

    It names ``services`` (unused) so that Litestar resolves the two in turn: two independent
    dependencies are resolved concurrently in an anyio task group, made anew for every request,
    which cost a page more CPU than the page's own rows."""
    caller = getattr(request.state, "caller", None)
    if caller is None:  # a route forgot the guard: fail closed
        raise NotAuthorizedException(detail=f"this route needs an API key; {HOW_TO_SEND}")
    return caller
