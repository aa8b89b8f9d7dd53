"""Handovers between regions (R8, docs/decisions/039): listed, read, answered and cancelled.

- ``GET /v1/handovers?direction=in|out&status=``: this region's side of each handover the
  caller may read; ``GET /v1/handovers/{id}``: one, with its history and who is responsible now.
  Readers (DESIGN.md section 4): the health centers and governance centers whose area holds the
  unit involved on this side (out: the patient's residence here; in: the destination unit), and
  auditors. Anyone else gets 404, as for an unknown id. Each answer is in the access log.
- ``POST /v1/handovers/{id}/answer``: the receiving health center accepts or rejects (this
  completes its R8 obligation, as the fulfilling fact completes any other);
  ``POST /v1/handovers/{id}/cancel``: the origin's health center or governance center withdraws.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.ports import AccessLogPort, Port
from api.reads import Purpose, Revealed, default_purpose, recorded
from core.restrictions import hidden_from
from domain.handover import HandoverNotFound
from domain.registry import AgencyKind

READERS = (AgencyKind.HEALTH_CENTER, AgencyKind.GOVERNANCE_CENTER)


class HandoversService(Protocol):
    """What the endpoints need of ``core.handover.Handovers``."""

    def handover(self, hid: UUID, history: bool = True) -> dict[str, Any]: ...

    def handovers(self, direction: str | None = None, status: str | None = None) -> list[dict[str, Any]]: ...

    def answer(self, hid: UUID, accepted: bool, by_agency: str, staff_id: str | None = None) -> None: ...

    def cancel(self, hid: UUID, by_agency: str, reason: str) -> None: ...


class HandoversPort(AccessLogPort, Protocol):
    """The handovers, and the extent of a caller's area."""

    @property
    def handovers(self) -> HandoversService | None: ...

    def units_within(self, org_units: tuple[str, ...] | list[str]) -> set[str]: ...


class HistoryEntry(msgspec.Struct):
    """One fact recorded about the handover on this side."""

    fact: str
    at: datetime


class PoliceNoticeView(msgspec.Struct):
    """R7 across regions (docs/decisions/048): the police notice that goes with the handover of a
    level ≥ 3 patient, on this side (out: ``sent``, ``acknowledged`` or ``cancelled``; in:
    ``received``, ``acknowledged`` or ``cancelled``). ``escalated``: the origin's deadline passed
    with no acknowledgement there (its police station and governance center were told)."""

    status: str
    risk_level: int
    risk_class: str
    acknowledge_by: datetime
    acknowledged_at: datetime | None
    escalated: bool


class HandoverView(msgspec.Struct, omit_defaults=True):
    """This region's side of a handover. ``responsible``: the regions responsible for the patient
    now, as this side's record says (the origin until its log holds the acceptance; both while an
    acceptance is on its way; never none)."""

    id: UUID
    direction: Literal["in", "out"]
    patient_id: UUID
    status: str
    moving_on: date
    deadline: datetime
    peer_region: str
    unit: str
    responsible: list[str]
    escalations: list[str]
    peer_unit: str | None = None
    assignee: str | None = None
    late_answers: list[str] | None = None
    history: list[HistoryEntry] | None = None
    police_notice: PoliceNoticeView | None = None


class HandoverList(msgspec.Struct):
    """The handovers the caller may read, latest deadline first."""

    items: list[HandoverView]


class Answer(msgspec.Struct, forbid_unknown_fields=True):
    """The receiving health center's answer."""

    accepted: bool


class Cancellation(msgspec.Struct, forbid_unknown_fields=True):
    """Why the origin withdraws the handover."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


FIELDS = ("handover",)

Direction = Annotated[
    Literal["in", "out"] | None,
    QueryParameter(name="direction", description="`in` (to this region) or `out` (from it); absent: both."),
]
Status = Annotated[
    str | None,
    QueryParameter(
        name="status",
        description="out: `open`, `accepted`, `rejected`, `cancelled`; in: `requested`, `accepted`, "
        "`rejected`, `cancelled`, `voided`.",
    ),
]


def _port(services: HandoversPort) -> HandoversService:
    if services.handovers is None:
        raise NotFoundException(detail="this service keeps no handovers")
    return services.handovers


def _may_read(caller: Caller, view: dict[str, Any], areas: set[str]) -> bool:
    if caller.kind == AgencyKind.AUDITOR:
        return True
    return caller.kind in READERS and view["unit"] in areas


def _one(services: HandoversPort, caller: Caller, hid: UUID, history: bool = True) -> dict[str, Any]:
    try:
        view = _port(services).handover(hid, history)
    except HandoverNotFound:
        view = None
    areas = services.units_within(caller.jurisdiction)
    if (
        view is None
        or not _may_read(caller, view, areas)
        or hidden_from(caller.kind, services.case_record, [UUID(view["patient_id"])])
    ):
        raise NotFoundException(detail=f"no handover {hid} that {caller.agency_id} may read")
    return view


class HandoversController(Controller):
    """Transfers of management to and from linked regions."""

    path = "/v1/handovers"
    tags = ["handovers"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/",
        operation_id="listHandovers",
        summary="This region's handovers the caller may read (health and governance centers of the unit "
        "involved, auditors)",
        description="Recorded in the access log (the patient ids, the field `handover`).",
    )
    async def list_handovers(
        self,
        caller: NamedDependency[Caller],
        services: Port[HandoversPort],
        direction: Direction = None,
        status: Status = None,
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> HandoverList:
        async def read() -> tuple[HandoverList, Revealed]:
            def load() -> list[dict[str, Any]]:
                areas = services.units_within(caller.jurisdiction)
                views = [v for v in _port(services).handovers(direction, status) if _may_read(caller, v, areas)]
                hidden = hidden_from(caller.kind, services.case_record, [UUID(v["patient_id"]) for v in views])
                return [v for v in views if UUID(v["patient_id"]) not in hidden]

            views = await asyncio.to_thread(load)
            items = [msgspec.convert(v, HandoverView, strict=False) for v in views]
            return HandoverList(items=items), Revealed.of((i.patient_id for i in items), FIELDS)

        return await recorded(services, caller, "GET /v1/handovers", default_purpose(caller, purpose), staff_id, read)

    @get(
        "/{handover_id:uuid}",
        operation_id="getHandover",
        summary="One handover on this side: its history and who is responsible now",
        description="404 for anyone who may not read it, exactly as for an unknown id. Recorded in the access log.",
    )
    async def get_handover(
        self,
        handover_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[HandoversPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> HandoverView:
        async def read() -> tuple[HandoverView, Revealed]:
            view = await asyncio.to_thread(_one, services, caller, handover_id)
            answer = msgspec.convert(view, HandoverView, strict=False)
            return answer, Revealed.of([answer.patient_id], FIELDS)

        endpoint = "GET /v1/handovers/{id}"
        return await recorded(services, caller, endpoint, default_purpose(caller, purpose), staff_id, read)

    @post(
        "/{handover_id:uuid}/answer",
        operation_id="answerHandover",
        status_code=200,
        summary="The receiving health center accepts or rejects a handover to this region",
        description="Acceptance registers the patient here (same patient id; a patient this region "
        "deregistered is registered again on the same file, decision 043) and tells the origin region; "
        "rejection tells it too and escalates on both sides. Completes the R8 obligation. 403 "
        "`not-the-receiving-health-center` for any other agency; 409 `handover-already-decided`, "
        "`handover-cancelled`, `patient-erased-here` (a move back of a patient whose data this region "
        "erased: only a rejection is possible), `id-number-already-registered` (the patient's ID "
        "number is now another patient's here), or `patient-restricted` (the patient is restricted here, "
        "or erased by the origin region's erasure notice, decision 049: only a rejection is possible).",
    )
    async def answer(
        self,
        handover_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[HandoversPort],
        data: JSONBody[Answer],
        staff_id: StaffId = None,
    ) -> HandoverView:
        def act() -> HandoverView:
            view = _one(services, caller, handover_id, history=False)
            if view["direction"] != "in":
                raise NotFoundException(detail=f"handover {handover_id} is not one to this region")
            _port(services).answer(handover_id, data.accepted, caller.agency_id, staff_id)
            return msgspec.convert(_port(services).handover(handover_id), HandoverView, strict=False)

        return await asyncio.to_thread(act)

    @post(
        "/{handover_id:uuid}/cancel",
        operation_id="cancelHandover",
        status_code=200,
        summary="The origin withdraws a handover from this region (health or governance center of the "
        "patient's residence)",
        description="Only while nothing decisive is recorded (409 `handover-already-decided`); an answer that "
        "crosses the cancellation arrives too late and changes nothing.",
    )
    async def cancel(
        self,
        handover_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[HandoversPort],
        data: JSONBody[Cancellation],
    ) -> HandoverView:
        def act() -> HandoverView:
            view = _one(services, caller, handover_id, history=False)
            if view["direction"] != "out" or caller.kind not in READERS:
                raise NotFoundException(detail=f"no handover {handover_id} from this region that you may cancel")
            _port(services).cancel(handover_id, caller.agency_id, data.reason)
            return msgspec.convert(_port(services).handover(handover_id), HandoverView, strict=False)

        return await asyncio.to_thread(act)
