"""`GET /v1/audit/patients/{id}`: a patient as of a time, on the occurred or the recorded axis.

For auditors (an accountability review asks "what was true" and "what did we know, when"). The
answer is the whole file (an auditor sees every field), the log position it stands on, the
first signed checkpoint that holds that position, and the late facts where the two axes differ.
Every answer is recorded in the access log, like every read of a patient.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException, ValidationException
from litestar.params import FromPath, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.patient_files import Purpose, _builtins, _recorded_read
from api.ports import PatientReadPort, Port
from core.patient_as_of import patient_as_of

AsOf = Annotated[
    datetime,
    QueryParameter(name="as_of", description="The time asked about, with its offset (2026-11-20T09:00:00+08:00)."),
]
AxisParam = Annotated[
    Literal["occurred", "recorded"],
    QueryParameter(
        name="axis",
        description="`occurred`: what was true at `as_of`, as far as is known now (late facts count); "
        "`recorded`: what the system knew at `as_of` (the default).",
    ),
]


class PatientAsOfView(msgspec.Struct):
    """The patient as of a time: the whole file, what it stands on, where the axes differ."""

    patient_id: UUID
    as_of: datetime
    axis: str
    file: dict[str, Any]
    versions: int
    position: int | None
    checkpoint_size: int | None
    late_facts: list[dict[str, Any]]


class AuditPatientsController(Controller):
    """A patient's state as of a time, for auditors."""

    tags = ["audit"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/audit/patients/{patient_id:uuid}",
        operation_id="patientAsOf",
        summary="Auditors: a patient's file as of a time, by occurred or recorded time",
        description=(
            "`axis=recorded` (default): what the system knew at `as_of` (every event recorded by then, "
            "obligations as they stood). `axis=occurred`: what was true at `as_of` as far as is known now "
            "(facts that occurred by then, whenever recorded). `position`: the log position of the last "
            "event it stands on; `checkpoint_size`: the first signed checkpoint holding it (null: none yet); "
            "`late_facts`: facts that occurred by `as_of` but were recorded after it. 404 when the patient "
            "was not registered by then on that axis. Recorded in the access log."
        ),
    )
    async def as_of(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[PatientReadPort],
        as_of: AsOf,
        axis: AxisParam = "recorded",
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> PatientAsOfView:
        if caller.kind != "auditor":
            raise PermissionDeniedException(
                detail=f"as-of replay is for auditors; {caller.agency_id} is a {caller.kind}"
            )
        if as_of.tzinfo is None:
            raise ValidationException(detail="as_of needs a UTC offset, like 2026-11-20T09:00:00+08:00")

        def read() -> tuple[PatientAsOfView, tuple[str, ...]]:
            ids = [r.obligation_id for r in services.patient_obligations(patient_id)]
            found = patient_as_of(
                services.case_record, patient_id, as_of, axis, ids, getattr(services, "chain_store", None)
            )
            view = PatientAsOfView(
                patient_id=found.patient_id,
                as_of=found.as_of,
                axis=found.axis,
                file=_builtins(found.file),
                versions=found.versions,
                position=found.position,
                checkpoint_size=found.checkpoint_size,
                late_facts=_builtins(found.late_facts),
            )
            return view, tuple(sorted(k for k, v in found.file.items() if v not in (None, [], {})))

        return await _recorded_read(
            services, caller, "GET /v1/audit/patients/{patient_id}", patient_id, purpose or "audit", staff_id, read
        )
