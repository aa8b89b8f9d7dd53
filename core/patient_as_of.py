"""A patient as of a time, on either axis (DESIGN.md section 3, "two time axes";
docs/decisions/026): an accountability review asks what was true and what was known, when.

- ``recorded``: what the system knew at T — every event of the patient recorded at or before T,
  folded as they were; the obligations and notices as they stood at T.
- ``occurred``: what was true at T as far as we know now — every fact of the patient that
  occurred at or before T, whenever it was recorded (a late fact counts); events that are not
  agency facts (no occurred time) count when recorded at or before T. The obligations are shown
  as they stood at T by recorded time on both axes: they are the system's own acts.

Facts are folded in recorded order, so the file's "latest by occurred time" answers are the
same fold the service makes; a fact left out only moves the version on. The answer names the
log position it stands on and the first signed checkpoint whose tree holds it, so an auditor can
prove the rows behind it (``GET /v1/audit/patients/{id}/bundle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from core.case_record import CaseRecord
from core.patient_read import whole_file
from domain.errors import DomainError
from domain.obligation import STATUS_AFTER
from domain.patient import Patient

Axis = Literal["occurred", "recorded"]


class NotRegisteredAsOf(DomainError):
    """The patient was not on file at that time (on that axis)."""

    code = "patient-not-found"

    def __init__(self, patient_id: UUID, as_of: datetime, axis: str) -> None:
        when = "occurred" if axis == "occurred" else "was recorded"
        super().__init__(
            f"patient {patient_id} has no registration that {when} at or before {as_of.isoformat()}: "
            "ask for a later as_of, or the other axis"
        )


@dataclass(frozen=True, slots=True)
class ObligationAsOf:
    """An obligation or notice as it stood at T (what ``whole_file`` shows of it)."""

    obligation_id: UUID
    kind: str
    rule: str
    action: str
    assignee: str
    due_at: datetime | None
    status: str
    assigned_at: datetime
    overdue: bool
    escalated_to: str | None
    trigger_message_id: str


@dataclass(frozen=True, slots=True)
class PatientAsOf:
    """The answer: the whole file at T, what it stands on, and the facts the other axis differs by."""

    patient_id: UUID
    as_of: datetime
    axis: str
    file: dict[str, Any]
    versions: int  # the events of the patient folded
    position: int | None  # the log position of the last event the answer stands on (None: not chained yet)
    checkpoint_size: int | None  # the first signed checkpoint whose tree holds that position
    late_facts: list[dict[str, Any]]  # occurred at or before T, recorded after it: where the axes differ


def patient_as_of(
    case_record: CaseRecord,
    patient_id: UUID,
    as_of: datetime,
    axis: Axis,
    obligation_ids: list[UUID],
    chain_store: Any = None,
) -> PatientAsOf:
    """The patient's whole file at ``as_of`` on ``axis`` (unfiltered: for auditors)."""
    try:
        events = list(case_record.events.get(patient_id))
    except AggregateNotFoundError:
        events = []
    if not events or not isinstance(events[0], Patient.Registered):
        raise NotRegisteredAsOf(patient_id, as_of, axis)

    def counts(e: Any) -> bool:
        when = getattr(e, "occurred_at", None) if axis == "occurred" else None
        return (when or e.timestamp) <= as_of

    if not counts(events[0]):
        raise NotRegisteredAsOf(patient_id, as_of, axis)
    patient: Any = None
    last = 0
    for e in events:
        if counts(e):
            patient = e.mutate(patient)
            last = e.originator_version
        else:
            patient.version = e.originator_version  # left out: the next event still follows on
    late = [
        {
            "version": e.originator_version,
            "topic": type(e).TOPIC if hasattr(type(e), "TOPIC") else type(e).__qualname__,
            "occurred_at": e.occurred_at,
            "recorded_at": e.timestamp,
            "message_id": e.message_id,
            "agency_id": e.agency_id,
        }
        for e in events
        if getattr(e, "occurred_at", None) is not None and e.occurred_at <= as_of < e.timestamp
    ]
    obligations = [o for o in (_obligation_at(case_record, i, as_of) for i in obligation_ids) if o is not None]
    position, checkpoint = _stands_on(chain_store, patient_id, last)
    return PatientAsOf(
        patient_id=patient_id,
        as_of=as_of,
        axis=axis,
        file={"patient_id": patient_id, **whole_file(patient, as_of, obligations)},
        versions=sum(1 for e in events if counts(e)),
        position=position,
        checkpoint_size=checkpoint,
        late_facts=late,
    )


def _obligation_at(case_record: CaseRecord, obligation_id: UUID, as_of: datetime) -> ObligationAsOf | None:
    """The obligation as it stood at ``as_of`` by recorded time (None: not assigned yet)."""
    events = [e for e in case_record.events.get(obligation_id) if e.timestamp <= as_of]
    if not events:
        return None
    a = events[0]
    status, overdue, escalated_to = "assigned", False, None
    for e in events[1:]:
        topic = getattr(type(e), "TOPIC", "")
        if topic in STATUS_AFTER:
            status = STATUS_AFTER[topic]
        elif topic == "smd.ObligationOverdue":
            overdue, escalated_to = True, e.escalated_to
    return ObligationAsOf(
        obligation_id=obligation_id,
        kind=a.kind,
        rule=a.rule,
        action=a.action,
        assignee=a.assignee,
        due_at=a.due_at,
        status=status,
        assigned_at=a.timestamp,
        overdue=overdue,
        escalated_to=escalated_to,
        trigger_message_id=a.trigger_message_id,
    )


def _stands_on(chain_store: Any, patient_id: UUID, version: int) -> tuple[int | None, int | None]:
    """The log position of the patient's event at ``version`` and the first checkpoint holding it."""
    if chain_store is None:
        return None, None
    leaf = next((lf for lf in chain_store.leaves_of(str(patient_id)) if lf.originator_version == version), None)
    if leaf is None:
        return None, None
    holding = [cp.size for cp in chain_store.checkpoints() if cp.size > leaf.leaf_index]
    return leaf.notification_id, (min(holding) if holding else None)
