"""Tasks people assign, in the policy process: a ``TaskAssigned`` opens the assignee's obligation.

Only rules create obligations: the governance center's task is a fact, and the policy process
opens its obligation from it (same batch, same transaction, tracked position), so the task is
completed, marked overdue and escalated (R15) like any rule's obligation, and shows in the
assignee's work queue and in oversight. The obligation's subject is the patient the task is
about, else the task itself.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Notification

from domain.obligation import ObligationKind
from domain.rules.engine import Assignment, Decisions, Trigger
from domain.task import ACTION, RULE, AssignedTask, task_obligation_id

TASK_ASSIGNED = AssignedTask.Assigned.TOPIC


def decide_task(process: Any, notification: Notification) -> tuple[Decisions, Trigger, str]:
    """The assignee's obligation for one assigned task (applied with the batch's decisions)."""
    task: AssignedTask = process.case_record.repository.get(notification.originator_id, version=1)
    fact: Any = process.case_record.mapper.to_domain_event(notification)
    subject = task.patient_id or task.id
    trigger = Trigger(
        patient_id=subject,
        message_id=task.message_id,
        position=notification.id,
        recorded_at=fact.timestamp,
        residence=task.place,
        topic=notification.topic,
        version=1,
    )
    opened = Assignment(
        id=task_obligation_id(task.id),
        kind=ObligationKind.OBLIGATION,
        rule=RULE,
        action=ACTION,
        assignee=task.assignee,
        episode_key=str(task.id),
        due_at=task.due_at,
        risk_level=None,
    )
    return Decisions(opened=[opened]), trigger, task.place
