"""`GET /v1/audit/access`: the access log, for auditors (their own reads of it are recorded too)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.patient_files import MAX_CURSOR
from api.ports import PatientReadPort, Port
from api.reads import commit
from core.access_log import AccessEntry
from domain.errors import DomainError
from domain.registry import AgencyKind


class NotAnAuditor(DomainError):
    """Only an auditor reads the access log."""

    code = "not-an-auditor"

    def __init__(self, kind: str) -> None:
        super().__init__(f"a {kind} may not read the access log; ask an auditor")


class AccessRow(msgspec.Struct):
    """One recorded read: who, why, which patients, which fields (names only), the status."""

    position: int
    at: datetime
    agency_id: str
    key_id: str
    staff_id: str | None  # asserted by the agency's system, not verified
    purpose: str
    endpoint: str
    status: int
    patient_ids: list[UUID]
    fields: list[str]
    correlation_id: str | None
    emergency_grant: UUID | None = None  # the emergency access grant the read was made under


class AccessPage(msgspec.Struct):
    """One page of the log; pass `next` as `after` (null: no more)."""

    items: list[AccessRow]
    next: int | None


class AccessLogController(Controller):
    """The access log, read by auditors."""

    path = "/v1/audit/access"
    tags = ["audit"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        operation_id="accessLog",
        summary="Who read which patient, when, why (auditors)",
        description=(
            "Every recorded read, in order: agency, key id, asserted staff id, purpose, endpoint, "
            "status, the patient ids and the names of the fields revealed (never values). Filters: "
            "`patient`, `agency`, `from` (inclusive), `to` (exclusive). Auditors only (403 otherwise); "
            "this read is itself recorded."
        ),
    )
    async def access(
        self,
        caller: NamedDependency[Caller],
        services: Port[PatientReadPort],
        staff_id: StaffId = None,
        patient: Annotated[UUID | None, QueryParameter(description="only reads of this patient")] = None,
        agency: Annotated[str | None, QueryParameter(description="only reads by this agency")] = None,
        since: Annotated[datetime | None, QueryParameter(name="from")] = None,
        until: Annotated[datetime | None, QueryParameter(name="to")] = None,
        after: Annotated[int, QueryParameter(ge=0, le=MAX_CURSOR)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> AccessPage:
        log = services.access_log
        allowed = caller.kind == AgencyKind.AUDITOR
        rows: list[AccessEntry] = []
        if allowed:
            rows = await asyncio.to_thread(
                log.entries, patient=patient, agency=agency, since=since, until=until, after=after, limit=limit
            )
        revealed = tuple(dict.fromkeys(p for r in rows for p in r.patient_ids))
        entry = AccessEntry(
            at=services.case_record.clock(),
            agency_id=caller.agency_id,
            key_id=caller.key_id,
            staff_id=staff_id,
            purpose="audit",
            endpoint="GET /v1/audit/access",
            status=200 if allowed else 403,
            patient_ids=revealed,
            fields=("access_log",) if revealed else (),
        )
        await commit(log, entry)
        if not allowed:
            raise NotAnAuditor(caller.kind)
        items = [
            AccessRow(
                position=r.position or 0,
                at=r.at,
                agency_id=r.agency_id,
                key_id=r.key_id,
                staff_id=r.staff_id,
                purpose=r.purpose,
                endpoint=r.endpoint,
                status=r.status,
                patient_ids=list(r.patient_ids),
                fields=list(r.fields),
                correlation_id=r.correlation_id,
                emergency_grant=r.emergency_grant,
            )
            for r in rows
        ]
        return AccessPage(items=items, next=items[-1].position if len(items) == limit else None)
