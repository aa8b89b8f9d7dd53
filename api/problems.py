"""RFC 9457 problem details for every error the API returns.

One place maps exceptions to problems. ``detail`` always says what to fix; ``type`` is a stable
URI built from the error's ``code`` so agency systems can branch on it. Error bodies never echo
request content (it may carry personal data).

Errors below the API carry a code, never an HTTP status: ``STATUS_BY_CODE`` is the one table
from code to status (docs/decisions/016).
"""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
import structlog
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.auth import TooManyFailedAuthentications
from core.case_record import ConcurrentWriteConflict
from core.contract import ContractError
from domain.errors import DomainError

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://smd.example.invalid/problems/"
log = structlog.get_logger(__name__)


#: The HTTP status of each refusal code that is not 422. A code not listed is a rule the message
#: broke (422): sending the same message again will not help, sending a corrected one will.
STATUS_BY_CODE: dict[str, int] = {
    # 400: the request itself is malformed
    "invalid-search": 400,
    "invalid-proof-request": 400,  # the verifiable log (core.audit.service)
    "purpose-required": 400,
    "unknown-purpose": 400,
    "invalid-batch": 400,
    "unknown-sort": 400,  # the working lists (domain.lists)
    "invalid-cursor": 400,
    "period-invalid": 400,  # a report's period (domain.indicators)
    "not-a-health-center": 400,  # the quarterly report is a health center's (domain.periodic_reports)
    "position-beyond-head": 400,  # POST /v1/events/batch: neither a JSON array nor NDJSON
    # 403: the caller may not do this
    "not-allowed-to-record": 403,
    "not-allowed-to-search": 403,
    "not-allowed-to-upload": 403,  # a source list by another kind than its uploader (core.reconciliation)
    "not-allowed-to-run": 403,  # the reconciliation: governance center or health center
    "not-allowed-to-read-concern": 403,  # the people of concern: police, governance, health center, auditor
    "invalid-concern-rules": 422,  # a collision-rules document (domain.concern)
    "not-allowed-to-print-card": 403,  # the contact card: committee and health center
    "patient-not-at-home": 422,  # the contact card is for a patient at home
    "not-an-auditor": 403,
    "not-the-owner": 403,
    "not-your-message": 403,
    "outside-jurisdiction": 403,
    "approval-by-requesting-agency": 403,  # restriction: a second agency approves
    "approval-needs-an-auditor": 403,
    "list-not-allowed": 403,  # a working list whose basis the kind may not see (domain.lists)
    "org-unit-outside-jurisdiction": 403,
    "purpose-not-allowed": 403,
    "emergency-access-not-for-kind": 403,
    "emergency-access-list-not-allowed": 403,
    "source-mismatch": 403,
    "unknown-agency": 403,  # the authenticated agency is not in the registry (core.intake)
    "not-the-receiving-health-center": 403,  # a handover is answered by the health center it went to
    # 404: what the message refers to does not exist
    "message-not-found": 404,
    "no-checkpoint-yet": 404,
    "not-in-tree": 404,
    "obligation-not-found": 404,
    "handover-not-found": 404,
    "patient-not-found": 404,
    "restriction-request-not-found": 404,
    "unknown-list": 404,
    "unknown-list-kind": 404,  # a source list kind (domain.sources)
    "unknown-scope": 404,  # a report's org unit or agency (domain.indicators)
    "suspected-case-not-found": 404,
    "unknown-incident": 404,
    "unknown-emergency-access": 404,
    # 409: it conflicts with what is recorded
    "already-deregistered": 409,
    "concurrent-write": 409,
    "id-number-already-registered": 409,
    "idempotency-key-reused": 409,
    "identity-already-known": 409,
    "obligation-closed": 409,
    "patient-already-registered": 409,
    "task-already-assigned": 409,
    "handover-already-decided": 409,  # the first decisive fact in the origin's log won
    "handover-cancelled": 409,
    "patient-erased-here": 409,  # a move back of a patient whose data this region erased (decision 043)
    "already-recorded": 409,  # a report or task-progress id recorded before
    "suspected-case-already-reported": 409,
    "suspected-case-closed": 409,
    "wrong-obligation-kind": 409,
    "already-restricted": 409,
    "erasure-approved": 409,  # once approved, nothing more is requested or lifted
    "retention-applies": 409,  # erasure only where no retention applies
    "not-restricted": 409,
    "patient-restricted": 409,  # a restricted patient takes no new fact until lifted
    "patient-under-management": 409,  # only a patient off the register can be restricted
    "restriction-request-decided": 409,
    "emergency-access-not-needed": 409,
    # 413: more than the service takes in one request
    "batch-too-large": 413,
    # 429: a cap of the region's rule settings reached (not a rate limit: waiting a minute won't help)
    "emergency-access-cap-reached": 429,
    # 415: the body is not declared as JSON
    "unsupported-media-type": 415,
    # a message that waited and then failed for a bug (core.waiting)
    "internal-error": 500,
}


def status_for(code: str) -> int:
    """The HTTP status of a refusal code (``STATUS_BY_CODE``; 422 when not listed)."""
    return STATUS_BY_CODE.get(code, 422)


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem details object."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_response(
    status: int, code: str, title: str, detail: str, request: Request | None = None
) -> Response[Problem]:
    """A problem response with the right media type."""
    return Response(
        Problem(
            type=TYPE_BASE + code,
            title=title,
            status=status,
            detail=detail,
            instance=str(request.url.path) if request is not None else None,
        ),
        status_code=status,
        media_type=PROBLEM_JSON,
    )


def _domain_error(request: Request, exc: DomainError) -> Response[Problem]:
    return problem_response(status_for(exc.code), exc.code, type(exc).__doc__ or exc.code, exc.detail, request)


def _contract_error(request: Request, exc: ContractError) -> Response[Problem]:
    return problem_response(400, exc.code, "The message is not a valid envelope", str(exc), request)


def _conflict(request: Request, exc: ConcurrentWriteConflict) -> Response[Problem]:
    return problem_response(status_for(exc.code), exc.code, "Concurrent writes", exc.detail, request)


def _http_error(request: Request, exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if isinstance(exc, NotAuthorizedException):
        code = "unauthenticated"
    elif isinstance(exc, PermissionDeniedException):
        code = "forbidden"
    elif isinstance(exc, TooManyFailedAuthentications):
        code = "too-many-failed-authentications"
    else:
        code = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}.get(status, f"http-{status}")
    detail = exc.detail or "see title"
    extra = getattr(exc, "extra", None)
    if status == 400 and extra:
        # Litestar's validation errors name the parameter; pass the messages through.
        detail = (
            "; ".join(f"{e.get('key', '')}: {e.get('message', '')}" for e in extra if isinstance(e, dict)) or detail
        )
    title = {401: "Not authenticated", 403: "Forbidden", 404: "Not found", 429: "Too many requests"}.get(
        status, "Request failed"
    )
    response = problem_response(status, code, title, detail, request)
    if status == 429 and exc.headers and "Retry-After" in exc.headers:
        response.headers["Retry-After"] = exc.headers["Retry-After"]
    if status == 405 and exc.headers:  # RFC 9110: a 405 lists the methods the resource has
        allow = {k.lower(): v for k, v in exc.headers.items()}.get("allow")
        if allow:
            response.headers["Allow"] = allow
    return response


#: Seconds a client should wait before trying again when the store does not answer.
STORE_RETRY_AFTER = 5


def _store_unavailable(request: Request, exc: Exception) -> Response[Problem]:
    """The store (PostgreSQL, or a locked SQLite file) did not answer: 503, try again later."""
    log.warning("store unavailable", path=request.url.path, error=type(exc).__name__)
    response = problem_response(
        503,
        "store-unavailable",
        "Store unavailable",
        "the service could not reach its store; the request may not have been carried out; "
        f"try again in {STORE_RETRY_AFTER} s (recording is idempotent: send the same envelope again)",
        request,
    )
    response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
    return response


def _internal_error(request: Request, exc: Exception) -> Response[Problem]:
    log.error("unhandled error", path=request.url.path, error=type(exc).__name__, exc_info=exc)
    return problem_response(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal-error",
        "Internal error",
        "the service failed to handle the request; nothing was stored; try again or report the time",
        request,
    )


exception_handlers = {
    DomainError: _domain_error,
    ContractError: _contract_error,
    ConcurrentWriteConflict: _conflict,
    HTTPException: _http_error,
    # the store unreachable (eventsourcing wraps its driver's errors; the key and view tables
    # use psycopg directly, and a pool that cannot connect raises PoolTimeout, one of these)
    StoreOperationalError: _store_unavailable,
    StoreInterfaceError: _store_unavailable,
    psycopg.OperationalError: _store_unavailable,
    psycopg.InterfaceError: _store_unavailable,
    Exception: _internal_error,
}

__all__ = [
    "PROBLEM_JSON",
    "STATUS_BY_CODE",
    "MediaType",
    "Problem",
    "exception_handlers",
    "problem_response",
    "status_for",
]
