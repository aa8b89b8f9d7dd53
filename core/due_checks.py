"""What else falls due when an obligation passes its deadline (R6's run-out warning).

The scheduler records these with ``ObligationOverdue`` in one transaction: a restart or a
second scheduler never records them twice (the overdue fact is recorded once, and so are they).
"""

from __future__ import annotations

from datetime import datetime

from core.case_record import CaseRecord
from core.registry import REGION_TZ, RegistryView
from domain.obligation import Obligation
from domain.registry import AgencyKind
from domain.rules_periodic import OPENS_WHEN_DUE, on_due


def falls_due(case_record: CaseRecord, registry: RegistryView, overdue: Obligation, now: datetime) -> list[Obligation]:
    """The notices to open with ``overdue`` (none for most obligations)."""
    if overdue.rule not in OPENS_WHEN_DUE:
        return []
    patient = case_record.repository.get(overdue.patient_id)  # the facts now: a stale cycle opens nothing
    on = now.astimezone(REGION_TZ).date()

    def responsible(kind: AgencyKind) -> str | None:
        return registry.responsible(patient.residence, kind, on)

    return [
        Obligation.assign(
            id=a.id,
            kind=a.kind,
            rule=a.rule,
            action=a.action,
            patient_id=patient.id,
            episode_key=a.episode_key,
            assignee=a.assignee,
            residence=patient.residence,
            due_at=a.due_at,
            trigger_message_id=f"due:{overdue.id}",
            trigger_position=overdue.trigger_position,
            risk_level=a.risk_level,
            now=now,
        )
        for a in on_due(overdue, patient, responsible)
    ]
