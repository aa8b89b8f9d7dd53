"""Break the glass: `POST /v1/patients/{id}/emergency-access` and `GET /v1/audit/emergency-access`.

An agency outside a patient's reach asks for time-limited access with a reason; the grant lifts
only the reach check of ``GET /v1/patients/{id}`` and its timeline (the kind's field filter
stays), and reads under it are marked in the access log. The governance center covering the
residence reviews each grant (R22). Auditors, and each governance center for its area, list the
grants; the reasons and the review remarks only they read. Every request here is recorded in
the access log (docs/decisions/029).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
import structlog
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.patient_files import MAX_CURSOR
from api.ports import EmergencyAccessPort, Port
from api.problems import status_for
from api.reads import Purpose, Revealed, commit, default_purpose, recorded
from core.access_log import AccessEntry
from core.emergency_access import GrantRow, grant, grants, settings_on
from domain.emergency_access import MAX_REASON
from domain.errors import DomainError
from domain.registry import AgencyKind

log = structlog.get_logger(__name__)

#: Who lists the grants: auditors (all), governance centers (their area's).
LISTS_GRANTS = frozenset({AgencyKind.AUDITOR, AgencyKind.GOVERNANCE_CENTER})


class EmergencyAccessRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Why your agency must read this patient's file now, and for how long."""

    reason: Annotated[
        str,
        msgspec.Meta(
            max_length=MAX_REASON,
            description="Why (free text, sealed; read by the auditor and the reviewing governance center).",
        ),
    ]
    hours: (
        Annotated[
            float,
            msgspec.Meta(gt=0, le=8760, description="How long (default and longest: the region's rule settings)."),
        ]
        | None
    ) = None


class EmergencyAccessGrantView(msgspec.Struct):
    """A grant: read the file with GET /v1/patients/{id} until ``expires_at``."""

    grant_id: UUID
    patient_id: UUID
    agency_id: str
    key_id: str
    staff_id: str | None  # asserted by your system, not verified
    granted_at: datetime
    expires_at: datetime


class GrantListItem(msgspec.Struct):
    """A grant and its review (``reason`` and ``review.remarks``: null unless you may read them)."""

    position: int
    grant_id: UUID
    patient_id: UUID
    agency_id: str
    key_id: str
    staff_id: str | None
    granted_at: datetime
    expires_at: datetime
    reason: str | None
    review: dict[str, Any]


class GrantPage(msgspec.Struct):
    """Grants in the order recorded; pass `next` as `after` (null: no more)."""

    items: list[GrantListItem]
    next: int | None


class EmergencyAccessListNotAllowed(DomainError):
    """Only auditors and governance centers list the grants."""

    code = "emergency-access-list-not-allowed"

    def __init__(self, kind: str) -> None:
        super().__init__(f"a {kind} may not list emergency access grants; ask an auditor or the governance center")


def _item(row: GrantRow) -> GrantListItem:
    return GrantListItem(**{f: getattr(row, f) for f in GrantListItem.__struct_fields__})


class EmergencyAccessController(Controller):
    """Break the glass: grants, and their audit listing."""

    tags = ["emergency access"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @post(
        "/v1/patients/{patient_id:uuid}/emergency-access",
        operation_id="grantEmergencyAccess",
        status_code=201,
        summary="Break the glass: read a patient outside your reach for a few hours, with a reason",
        description=(
            "Records an EmergencyAccessGranted fact (your agency, key id, asserted staff id, the reason "
            "sealed, granted and expiry times; default length and longest length, and the grants per "
            "agency per day, are the region's rule settings `r22_emergency_access_hours`, "
            "`r22_emergency_access_longest`, `r22_emergency_access_per_agency_per_day`). Until it "
            "expires GET /v1/patients/{id} and its timeline answer you as for a patient in your "
            "jurisdiction, with your kind's field filter; those reads are marked in the access log. "
            "The governance center covering the patient reviews every grant within 5 working days (R22). "
            "400 without a reason; 404 for an unknown patient; 403 for departments and auditors; 409 "
            "when your agency reaches the patient already; 429 `emergency-access-cap-reached`."
        ),
    )
    async def grant(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[EmergencyAccessPort],
        data: JSONBody[EmergencyAccessRequest],
        staff_id: StaffId = None,
    ) -> Response[EmergencyAccessGrantView]:
        status = 500
        granted: EmergencyAccessGrantView | None = None
        try:

            def run() -> EmergencyAccessGrantView:
                settings = settings_on(services.rule_settings, services.case_record.clock())
                g = grant(
                    services.case_record,
                    services.registry,
                    settings,
                    kind=caller.kind,
                    agency_id=caller.agency_id,
                    key_id=caller.key_id,
                    staff_id=staff_id,
                    patient_id=patient_id,
                    reason=data.reason,
                    hours=data.hours,
                )
                return EmergencyAccessGrantView(
                    **{f: getattr(g, f) for f in EmergencyAccessGrantView.__struct_fields__}
                )

            granted = await asyncio.to_thread(run)
            status = 201
            return Response(granted, status_code=201)
        except DomainError as e:
            status = status_for(e.code)
            raise
        finally:
            # the answer confirms that the id is a patient's: recorded like a read
            entry = AccessEntry(
                at=services.case_record.clock(),
                agency_id=caller.agency_id,
                key_id=caller.key_id,
                staff_id=staff_id,
                purpose="emergency-response",
                endpoint="POST /v1/patients/{patient_id}/emergency-access",
                status=status,
                patient_ids=(patient_id,),
                fields=(),
                correlation_id=structlog.contextvars.get_contextvars().get("correlation_id"),
                emergency_grant=None if granted is None else granted.grant_id,
            )
            try:
                await commit(services.access_log, entry)
            except Exception as e:  # the grant is recorded; its request row is best effort on a failure
                if status < 500:
                    raise
                log.warning("access log not written", error=type(e).__name__, endpoint=entry.endpoint)

    @get(
        "/v1/audit/emergency-access",
        operation_id="listEmergencyAccess",
        summary="Emergency access grants and their reviews (auditors; governance centers for their area)",
        description=(
            "Every grant in the order recorded: agency, key id, asserted staff id (not verified), "
            "patient id, granted and expiry times, and the review (outcome, who reviewed when, the "
            "reviewer, due, overdue, escalated). The reason and the review's remarks are shown to "
            "auditors and to the governance center (its area's grants only). 403 for other kinds. "
            "Every read of this list is recorded in the access log."
        ),
    )
    async def listing(
        self,
        caller: NamedDependency[Caller],
        services: Port[EmergencyAccessPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
        after: Annotated[
            int, QueryParameter(ge=0, le=MAX_CURSOR, description="Cursor: `next` of the previous page.")
        ] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 100,
    ) -> GrantPage:
        def check() -> None:
            if AgencyKind(caller.kind) not in LISTS_GRANTS:
                raise EmergencyAccessListNotAllowed(caller.kind)

        async def read() -> tuple[GrantPage, Revealed]:
            area = None if caller.kind == AgencyKind.AUDITOR else caller.agency_id
            rows, nxt = await asyncio.to_thread(
                grants, services.case_record, services.registry, area_of=area, after=after, limit=limit
            )
            page = GrantPage(items=[_item(r) for r in rows], next=nxt)
            return page, Revealed.of((r.patient_id for r in rows), ("emergency_access", "emergency_access_reason"))

        return await recorded(
            services,
            caller,
            "GET /v1/audit/emergency-access",
            default_purpose(caller, purpose),
            staff_id,
            read,
            check=check,
        )
