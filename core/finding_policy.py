"""Reconciliation findings in the policy process: a ``FindingRecorded`` opens its obligation.

Only rules create obligations: the finding is a fact, and the policy process opens its action
(``domain.reconciliation.ACTIONS``) for the agency of that kind responsible for the finding's
place, as recorded up to the finding's log position (same batch, same transaction, tracked
position), so it is completed, marked overdue and escalated (R15) like any rule's obligation. A
not-registered finding opens nothing here: its suspected case, saved with it, opens R18's.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Notification

from core.registry import REGION_TZ
from domain.obligation import ObligationKind
from domain.reconciliation import RULE, Finding, finding_obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Assignment, Decisions, Trigger

FINDING_RECORDED = Finding.Recorded.TOPIC


def decide_finding(process: Any, notification: Notification) -> tuple[Decisions, Trigger, str] | None:
    """The obligation one finding opens (applied with the batch's decisions), or None."""
    finding: Finding = process.case_record.repository.get(notification.originator_id, version=1)
    action = finding.action
    if action is None:
        return None
    trigger = Trigger(
        patient_id=finding.patient_id or finding.id,
        message_id=finding.message_id,
        position=notification.id,
        recorded_at=finding.occurred_at,
        residence=finding.place,
        topic=notification.topic,
        version=1,
    )
    on = finding.occurred_at.astimezone(REGION_TZ).date()
    assignee = process.registry.responsible(finding.place, action.kind, on, as_of_position=notification.id)
    if assignee is None:  # nobody of that kind works there: the governance center sees to it
        assignee = process.registry.responsible(
            finding.place, AgencyKind.GOVERNANCE_CENTER, on, as_of_position=notification.id
        )
    if assignee is None:
        return None
    opened = Assignment(
        id=finding_obligation_id(finding.id),
        kind=ObligationKind.OBLIGATION,
        rule=RULE,
        action=action.action,
        assignee=assignee,
        episode_key=str(finding.id),
        due_at=finding.occurred_at + action.within,
        risk_level=None,
    )
    return Decisions(opened=[opened]), trigger, finding.place
