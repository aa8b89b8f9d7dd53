"""`/v1/audit/…restriction…`: requesting, approving and listing the restriction of a patient's data.

An agency requests restricting (or lifting) a patient off the register or a dismissed suspected
case; a different agency approves, one of the two an auditor (``domain.restriction``). The acts
are recorded facts carrying the API key id; the reasons are sealed under the patient's key.
The listing is the auditor's, and recorded in the access log like every read of a patient.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.ports import AccessLogPort, Port, RestrictionPort
from api.reads import Purpose, Revealed, default_purpose, recorded
from core import restrictions
from core.restrictions import Requester, RequestView
from domain.restriction import RestrictionAct, RestrictionRequest


class Reason(msgspec.Struct, forbid_unknown_fields=True):
    """Why (free text, sealed under the patient's key; at most 2000 characters)."""

    reason: str


class RequestOut(msgspec.Struct, omit_defaults=True):
    """A request to restrict or lift, and its approval once given."""

    request_id: UUID
    patient_id: UUID
    subject_kind: str
    act: str
    requested_by: str
    requested_at: datetime
    request_reason: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    approval_reason: str | None = None
    restricted_now: bool | None = None
    erase_after: datetime | None = None
    erased_at: datetime | None = None


class RequestList(msgspec.Struct):
    """Requests, oldest first."""

    requests: list[RequestOut]


def _out(r: RestrictionRequest) -> RequestOut:
    return RequestOut(
        request_id=r.id,
        patient_id=r.subject_id,
        subject_kind=r.subject_kind,
        act=r.act,
        requested_by=r.requested_by,
        requested_at=r.created_on,
        approved_by=r.approved_by,
        approved_at=r.approved_at,
    )


def _view(v: RequestView) -> RequestOut:
    return RequestOut(
        request_id=v.request_id,
        patient_id=v.subject_id,
        subject_kind=v.subject_kind,
        act=v.act,
        requested_by=v.requested_by,
        requested_at=v.requested_at,
        request_reason=v.request_reason,
        approved_by=v.approved_by,
        approved_at=v.approved_at,
        approval_reason=v.approval_reason,
        restricted_now=v.restricted_now,
        erase_after=v.erase_after,
        erased_at=v.erased_at,
    )


def _by(caller: Caller, staff_id: str | None) -> Requester:
    return Requester(caller.agency_id, caller.kind, caller.key_id, staff_id)


PAIRING = (
    "A different agency approves it (POST /v1/audit/restriction-requests/{request_id}/approval), "
    "one of the two an auditor."
)


async def _file(
    services: AccessLogPort, patient_id: UUID, act: RestrictionAct, caller: Caller, staff_id: str | None, reason: str
) -> RequestOut:
    """Record a request of ``act`` for the patient by the caller (off the event loop)."""
    filed = await asyncio.to_thread(
        restrictions.request, services.case_record, patient_id, act, _by(caller, staff_id), reason
    )
    return _out(filed)


class RestrictionsController(Controller):
    """Restriction of a patient's data: request, approve, list."""

    tags = ["audit"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @post(
        "/v1/audit/patients/{patient_id:uuid}/restriction-requests",
        operation_id="requestRestriction",
        status_code=201,
        summary="Request restricting a patient's data (a patient off the register, or a dismissed suspected case)",
        description=(
            'Body: `{"reason": "..."}`. `patient_id`: a deregistered patient or a dismissed suspected case; '
            f"409 `patient-under-management` for one on the register, 409 `already-restricted`. {PAIRING}"
        ),
    )
    async def request_restriction(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[AccessLogPort],
        data: JSONBody[Reason],
        staff_id: StaffId = None,
    ) -> RequestOut:
        return await _file(services, patient_id, RestrictionAct.RESTRICT, caller, staff_id, data.reason)

    @post(
        "/v1/audit/patients/{patient_id:uuid}/restriction-lift-requests",
        operation_id="requestRestrictionLift",
        status_code=201,
        summary="Request lifting a patient's restriction",
        description=f'Body: `{{"reason": "..."}}`. 409 `not-restricted` when there is nothing to lift. {PAIRING}',
    )
    async def request_lift(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[AccessLogPort],
        data: JSONBody[Reason],
        staff_id: StaffId = None,
    ) -> RequestOut:
        return await _file(services, patient_id, RestrictionAct.LIFT, caller, staff_id, data.reason)

    @post(
        "/v1/audit/patients/{patient_id:uuid}/erasure-requests",
        operation_id="requestErasure",
        status_code=201,
        summary="Request erasing a patient's data (a registration made in error, or a dismissed suspected case)",
        description=(
            'Body: `{"reason": "..."}`. Only where no legal retention applies: a patient deregistered with reason '
            "`registered_in_error`, or a dismissed suspected case; 409 `retention-applies` otherwise, 409 "
            "`patient-under-management` for a patient on the register. Once approved the patient is restricted "
            "at once and its data key is destroyed after `SMD_ERASURE_COOLING_OFF_DAYS` (`smd erasure run`). "
            f"{PAIRING}"
        ),
    )
    async def request_erasure(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[AccessLogPort],
        data: JSONBody[Reason],
        staff_id: StaffId = None,
    ) -> RequestOut:
        return await _file(services, patient_id, RestrictionAct.ERASE, caller, staff_id, data.reason)

    @post(
        "/v1/audit/restriction-requests/{request_id:uuid}/approval",
        operation_id="approveRestrictionRequest",
        status_code=200,
        summary="Approve a request to restrict, lift or erase (erasure: after the cooling-off)",
        description=(
            'Body: `{"reason": "..."}`. By an agency other than the requesting one, one of the two an '
            "auditor: 403 `approval-by-requesting-agency`, 403 `approval-needs-an-auditor`; 409 "
            "`restriction-request-decided` when approved already; 404 `restriction-request-not-found`. An approved "
            "erasure answers `erase_after`: when `smd erasure run` destroys the key."
        ),
    )
    async def approve(
        self,
        request_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[RestrictionPort],
        data: JSONBody[Reason],
        staff_id: StaffId = None,
    ) -> RequestOut:
        cooling_off = timedelta(days=services.settings.erasure_cooling_off_days)
        approved = await asyncio.to_thread(
            restrictions.approve, services.case_record, request_id, _by(caller, staff_id), data.reason, cooling_off
        )
        out = _out(approved)
        if approved.act == RestrictionAct.ERASE and approved.approved_at is not None:
            out.erase_after = approved.approved_at + cooling_off
        return out

    @get(
        "/v1/audit/restriction-requests",
        operation_id="listRestrictionRequests",
        summary="Auditors: every request to restrict or lift (or one patient's), with reasons and approvals",
        description="Oldest first; `restricted_now` says whether the patient is restricted now. Recorded in the "
        "access log (the patients, the field `restriction_requests`).",
    )
    async def list_requests(
        self,
        caller: NamedDependency[Caller],
        services: Port[AccessLogPort],
        patient_id: Annotated[UUID | None, QueryParameter(name="patient_id")] = None,
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> RequestList:
        def check() -> None:
            if caller.kind != "auditor":
                raise PermissionDeniedException(
                    detail=f"restriction requests are listed to auditors; {caller.agency_id} is a {caller.kind}"
                )

        async def read() -> tuple[RequestList, Revealed]:
            found = await asyncio.to_thread(restrictions.requests, services.case_record, patient_id)
            answer = RequestList(requests=[_view(v) for v in found])
            return answer, Revealed.of({v.subject_id for v in found}, ["restriction_requests"])

        endpoint = "GET /v1/audit/restriction-requests"
        stated = default_purpose(caller, purpose)
        return await recorded(services, caller, endpoint, stated, staff_id, read, check=check)
