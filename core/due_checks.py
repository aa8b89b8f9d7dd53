"""What else falls due when an obligation passes its deadline (R6's run-out warning).

The scheduler records these with ``ObligationOverdue`` in one transaction: a restart or a
second scheduler never records them twice (the overdue fact is recorded once, and so are they).
"""

from __future__ import annotations

from datetime import datetime

from core.case_record import CaseRecord
from core.registry import REGION_TZ, RegistryView
from domain.obligation import Obligation
from domain.patient import Patient
from domain.registry import AgencyKind
from domain.rules.engine import Trigger, to_obligation
from domain.rules.entries import FullHistory
from domain.rules.r15_overdue import falls_due as decide_falls_due
from domain.rules.r15_overdue import opens_when_due


def falls_due(case_record: CaseRecord, registry: RegistryView, overdue: Obligation, now: datetime) -> list[Obligation]:
    """The notices to open with ``overdue`` (none for most obligations)."""
    if not opens_when_due(overdue):
        return []
    patient = case_record.repository.get(overdue.patient_id)  # the facts now: a stale cycle opens nothing
    if not isinstance(patient, Patient):
        return []  # about a handover (R7 across regions): the other region escalates by its own clock
    on = now.astimezone(REGION_TZ).date()

    def responsible(kind: AgencyKind) -> str | None:
        return registry.responsible(patient.residence, kind, on)

    because = Trigger(
        patient_id=patient.id,
        message_id=f"due:{overdue.id}",
        position=overdue.trigger_position,
        recorded_at=now,
        residence=patient.residence,
    )
    found = decide_falls_due(overdue, FullHistory(patient, patient.version), responsible)
    return [to_obligation(a, subject=patient.id, residence=patient.residence, trigger=because, now=now) for a in found]
