"""Recording a read in the access log before its answer leaves (docs/decisions/021, 024).

Every endpoint that reveals a patient runs its read through ``recorded``: the purpose is checked,
the read runs, and one access-log row (answered or refused) is committed before the handler
returns. Endpoints older than ``X-Purpose`` (the work queue, the oversight list, the search,
acting on an obligation) default to ``assigned-duty`` (``audit`` for an auditor), so that
today's clients keep working.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar
from uuid import UUID

import structlog
from litestar.exceptions import HTTPException
from litestar.params import HeaderParameter

from api.auth import Caller
from api.ports import AccessLogPort
from api.problems import status_for
from core.access_log import AccessEntry, AccessLog
from domain.errors import DomainError
from domain.read_filter import PURPOSES, check_purpose
from domain.registry import AgencyKind

log = structlog.get_logger(__name__)
T = TypeVar("T")

Purpose = Annotated[
    str | None,
    HeaderParameter(
        name="X-Purpose",
        max_length=32,
        description="Why you read (recorded in the access log): "
        + "; ".join(f"`{k}`: {v}" for k, v in PURPOSES.items()),
    ),
]


async def commit(access_log: AccessLog, entry: AccessEntry) -> None:
    """Append ``entry`` and return once it is committed. A log that groups the rows of the reads
    in flight (``core.intake.GroupedAccessLog``, PostgreSQL) is awaited on the event loop: its
    writer thread commits and wakes this request, no worker thread waits in between; any other
    log is appended in a worker thread (its drivers block)."""
    submit = getattr(access_log, "submit", None)
    if submit is not None:
        await asyncio.wrap_future(submit(entry))
    else:
        await asyncio.to_thread(access_log.append, entry)


def default_purpose(caller: Caller, stated: str | None) -> str:
    """The stated purpose, or the default of the endpoints older than ``X-Purpose``."""
    return stated or ("audit" if caller.kind == AgencyKind.AUDITOR else "assigned-duty")


@dataclass(slots=True)
class Revealed:
    """What an answer revealed: the patients and the names of the fields (never values)."""

    patient_ids: tuple[UUID, ...] = ()
    fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, patients: Iterable[UUID], fields: Iterable[str]) -> Revealed:
        """Patients in order of first appearance, each once; no fields when no patient."""
        ids = tuple(dict.fromkeys(patients))
        return cls(ids, tuple(fields) if ids else ())


@dataclass(slots=True)
class _Outcome:
    status: int = 500
    revealed: Revealed = field(default_factory=Revealed)


async def recorded(
    services: AccessLogPort,
    caller: Caller,
    endpoint: str,
    purpose: str | None,
    staff_id: str | None,
    read: Callable[[], Awaitable[tuple[T, Revealed]]],
    *,
    check: Callable[[], None] | None = None,
) -> T:
    """Check the purpose (and ``check``), run ``read``, record the answer, then return it.

    A refusal (a ``DomainError``) is recorded with its status and nothing revealed; a failure of
    the service (5xx) is recorded when the log can still be written, and the error kept."""
    outcome = _Outcome()
    try:
        check_purpose(caller.kind, purpose)
        if check is not None:
            check()
        answer, outcome.revealed = await read()
        outcome.status = 200
        return answer
    except DomainError as e:
        outcome.status = status_for(e.code)
        raise
    except HTTPException as e:  # e.g. the oversight list refused to a kind that does not oversee
        outcome.status = e.status_code
        raise
    finally:
        entry = AccessEntry(
            at=services.case_record.clock(),
            agency_id=caller.agency_id,
            key_id=caller.key_id,
            staff_id=staff_id,
            purpose=(purpose or "")[:32],
            endpoint=endpoint,
            status=outcome.status,
            patient_ids=outcome.revealed.patient_ids,
            fields=outcome.revealed.fields,
            correlation_id=structlog.contextvars.get_contextvars().get("correlation_id"),
        )
        if outcome.status < 500:
            await commit(services.access_log, entry)
        else:  # the read failed for the service: record it if the log can be written, keep the error
            try:
                await commit(services.access_log, entry)
            except Exception as e:
                log.warning("access log not written", error=type(e).__name__, endpoint=endpoint)
