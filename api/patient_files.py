"""`GET /v1/patients/{id}` and `GET /v1/patients/{id}/timeline`: a patient as the caller may see it.

Each answer passes ``domain.read_filter`` for the caller's kind; a patient outside the caller's
reach is a 404 identical to an unknown id, unless an emergency access grant is in force for the
caller and the patient (break the glass: ``api.emergency_access``), which lifts the reach check
only; such a read is marked with the grant's id in the access log. Every answer, refusals included, is recorded in the
access log (``core.access_log``) before it leaves: who, why (``X-Purpose``), which patient,
which endpoint, the names of the fields revealed, the status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
import structlog
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from msgspec import UNSET, UnsetType

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.ports import PatientReadPort, Port
from api.problems import status_for
from api.reads import Purpose, commit
from core.access_log import AccessEntry
from core.patient_read import first_events, load_reachable, revealed_fields, timeline, visible_file
from domain.errors import DomainError
from domain.read_filter import check_purpose

log = structlog.get_logger(__name__)
T = TypeVar("T")

Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=200)]
#: Cursors fit both stores' 64-bit integers: a larger one is a 400, not an overflow in the driver.
MAX_CURSOR = 2**53  # exact as a JSON number (OpenAPI writes bounds as floats)
After = Annotated[
    int, QueryParameter(name="after", ge=0, le=MAX_CURSOR, description="Cursor: `next` of the previous page.")
]


class PatientFileView(msgspec.Struct, omit_defaults=True):
    """A patient's file as the caller's kind may see it: a field the kind may not see is absent
    (docs/decisions/021 has the table); a field present with null is not known."""

    patient_id: UUID
    registration: dict[str, Any] | UnsetType = UNSET
    name: str | UnsetType | None = UNSET
    id_number: str | UnsetType | None = UNSET  # masked for committees
    phone: str | UnsetType | None = UNSET
    address: str | UnsetType | None = UNSET
    residence: str | UnsetType = UNSET
    provisional_identity: dict[str, Any] | UnsetType | None = UNSET
    circumstances: dict[str, Any] | UnsetType = UNSET
    confinement: dict[str, Any] | UnsetType = UNSET
    diagnosis: str | UnsetType | None = UNSET
    risk: dict[str, Any] | UnsetType = UNSET
    review: dict[str, Any] | UnsetType = UNSET
    visit_schedule: dict[str, Any] | UnsetType = UNSET
    medication: dict[str, Any] | UnsetType = UNSET
    hospital: dict[str, Any] | UnsetType = UNSET
    guardian: dict[str, Any] | UnsetType = UNSET
    guardian_exists: bool | UnsetType = UNSET
    agreement: dict[str, Any] | UnsetType = UNSET
    care_team: dict[str, Any] | UnsetType = UNSET
    care_team_contacts: list[dict[str, Any]] | UnsetType = UNSET
    aid: dict[str, str] | UnsetType = UNSET
    aid_exists: bool | UnsetType = UNSET
    disability: dict[str, Any] | UnsetType = UNSET
    incidents: list[dict[str, Any]] | UnsetType = UNSET
    police_management: dict[str, Any] | UnsetType = UNSET
    moves: list[dict[str, Any]] | UnsetType = UNSET
    #: what the region that manages the patient now reported (dual management); absent when none
    reported_by_region: list[dict[str, Any]] | UnsetType = UNSET
    refusals: dict[str, bool] | UnsetType = UNSET
    lost: dict[str, bool] | UnsetType = UNSET
    focus: dict[str, Any] | UnsetType = UNSET
    suspected_case: list[UUID] | UnsetType = UNSET
    obligations: list[dict[str, Any]] | UnsetType = UNSET


class TimelineItem(msgspec.Struct):
    """One fact: its type, when it occurred (as the agency says) and was recorded (our clock),
    the recording agency (authenticated) and the staff id it asserted (not verified by us)."""

    version: int
    type: str
    occurred_at: datetime | None
    recorded_at: datetime
    recorded_by: str | None
    asserted_staff_id: str | None
    data: dict[str, Any]
    obligations: list[dict[str, Any]] = []  # opened by this fact (yours only, unless you oversee)


class TimelinePage(msgspec.Struct):
    """Facts in the order they were recorded; pass `next` as `after` for the next page (null: no more)."""

    patient_id: UUID
    items: list[TimelineItem]
    next: int | None


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value, builtin_types=(datetime, date, UUID))


async def _recorded_read(
    services: PatientReadPort,
    caller: Caller,
    endpoint: str,
    patient_id: UUID,
    purpose: str | None,
    staff_id: str | None,
    read: Callable[[], tuple[T, tuple[str, ...]]],
    under: dict[str, UUID] | None = None,
) -> T:
    """Run a read and record it (answered or refused) in the access log before answering;
    ``under["grant"]``, set by the read, marks it as made under emergency access."""
    status, fields = 500, ()
    try:
        check_purpose(caller.kind, purpose)
        answer, fields = await asyncio.to_thread(read)
        status = 200
        return answer
    except DomainError as e:
        status = status_for(e.code)
        raise
    finally:
        entry = AccessEntry(
            at=services.case_record.clock(),
            agency_id=caller.agency_id,
            key_id=caller.key_id,
            staff_id=staff_id,
            purpose=(purpose or "")[:32],
            endpoint=endpoint,
            status=status,
            patient_ids=(patient_id,),
            fields=fields,
            correlation_id=structlog.contextvars.get_contextvars().get("correlation_id"),
            emergency_grant=(under or {}).get("grant"),
        )
        if status < 500:
            await commit(services.access_log, entry)
        else:  # the read failed for the service: record it if the log can be written, keep the error
            try:
                await commit(services.access_log, entry)
            except Exception as e:
                log.warning("access log not written", error=type(e).__name__, endpoint=endpoint)


class PatientFilesController(Controller):
    """A patient's file and its timeline, as the caller's kind may see them."""

    path = "/v1/patients/{patient_id:uuid}"
    tags = ["patients"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        operation_id="getPatientFile",
        summary="A patient's file, as your agency's kind may see it",
        description=(
            "Identity, household, residence, diagnosis, risk, the three-tier review, medication, "
            "hospital stays, guardian and agreement, care team, aid and disability, incidents, lost "
            "status (declared and derived), focus categories and grade, open obligations and notices: "
            "each only if your kind may see it (fields you may not see are absent). 404 for a patient "
            "outside your reach, exactly as for an unknown id. `X-Purpose` is required; every answer "
            "is recorded in the access log."
        ),
    )
    async def file(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[PatientReadPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> PatientFileView:
        under: dict[str, UUID] = {}

        def read() -> tuple[PatientFileView, tuple[str, ...]]:
            now = services.case_record.clock()
            patient, grant = load_reachable(
                services.case_record, services.registry, caller.kind, caller.agency_id, patient_id, now
            )
            if grant is not None:
                under["grant"] = grant
            answer = visible_file(patient, caller.kind, caller.agency_id, now, services.patient_obligations(patient_id))
            view = msgspec.convert(_builtins(answer), PatientFileView, strict=False)
            return view, revealed_fields(answer)

        return await _recorded_read(
            services, caller, "GET /v1/patients/{patient_id}", patient_id, purpose, staff_id, read, under
        )

    @get(
        "/timeline",
        operation_id="getPatientTimeline",
        summary="A patient's facts in order, as your agency's kind may see them",
        description=(
            "Every fact your kind may see, in the order recorded, with occurred and recorded times, "
            "the recording agency and the staff id it asserted (not verified). A fact type your kind "
            "may not see is absent, not redacted. Cursor pagination: pass `next` as `after`."
        ),
    )
    async def timeline(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[PatientReadPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> TimelinePage:
        under: dict[str, UUID] = {}

        def read() -> tuple[TimelinePage, tuple[str, ...]]:
            now = services.case_record.clock()
            record = services.case_record
            # the page's events are read once: on a short stream's first page they make the patient too
            first, whole = first_events(record, patient_id, after, limit)
            _, grant = load_reachable(
                record, services.registry, caller.kind, caller.agency_id, patient_id, now, first if whole else None
            )
            if grant is not None:
                under["grant"] = grant
            rows = services.patient_obligations(patient_id)
            items, nxt = timeline(record, patient_id, caller.kind, caller.agency_id, rows, after, limit, first)
            page = TimelinePage(
                patient_id=patient_id,
                items=[msgspec.convert(_builtins(i), TimelineItem, strict=False) for i in items],
                next=nxt,
            )
            return page, tuple(sorted({i["type"] for i in items}))

        return await _recorded_read(
            services, caller, "GET /v1/patients/{patient_id}/timeline", patient_id, purpose, staff_id, read, under
        )
