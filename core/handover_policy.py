"""Handovers in the policy process: the obligations and notices a handover's facts open (R8).

- the destination's request opens the receiving health center's obligation to accept or reject
  by the handover's deadline (so it is in its work queue and oversight, and R15 marks it overdue
  and escalates it when the deadline passes); the answer completes it, the origin's cancellation
  cancels it;
- an escalation (rejected, or unanswered by the deadline) on either side tells that region's
  governance center (a notice).

The obligations' subject is the handover (the patient may not be registered on this side yet).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Notification

from core.registry import REGION_TZ
from domain.handover import IncomingHandover, OutgoingHandover
from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Assignment, Decisions, Trigger

RULE = "R8"
ANSWER = "accept_or_reject_handover"
ESCALATED = "handover_escalated"
HANDOVER_TOPICS = frozenset(
    {
        IncomingHandover.Requested.TOPIC,
        IncomingHandover.Answered.TOPIC,
        IncomingHandover.Cancelled.TOPIC,
        IncomingHandover.Voided.TOPIC,
        IncomingHandover.Escalated.TOPIC,
        OutgoingHandover.Escalated.TOPIC,
    }
)


def answer_obligation_id(handover_id: Any) -> Any:
    """The receiving health center's obligation to answer the handover (one per handover)."""
    return obligation_id(handover_id, RULE, str(handover_id), "destination")


def escalation_notice_id(handover_id: Any, reason: str) -> Any:
    """The governance center's notice of an escalation (one per handover and reason)."""
    return obligation_id(handover_id, RULE, f"{handover_id}:{reason}", "governance")


def decide_handover(process: Any, n: Notification) -> tuple[Decisions, Trigger, str] | None:
    """What one handover fact opens, completes or cancels."""
    handover: Any = process.case_record.repository.get(n.originator_id, version=n.originator_version)
    fact: Any = process.case_record.mapper.to_domain_event(n)
    residence = handover.destination_unit if isinstance(handover, IncomingHandover) else handover.residence
    trigger = Trigger(
        patient_id=handover.id,
        message_id=f"handover:{handover.id}:{n.originator_version}",
        position=n.id,
        recorded_at=fact.timestamp,
        residence=residence,
        topic=n.topic,
        version=n.originator_version,
    )
    answer = answer_obligation_id(handover.id)
    decisions = Decisions()
    if n.topic == IncomingHandover.Requested.TOPIC:
        if not handover.assignee:
            return None
        decisions.opened.append(
            Assignment(
                answer,
                ObligationKind.OBLIGATION,
                RULE,
                ANSWER,
                handover.assignee,
                str(handover.id),
                handover.deadline,
                None,
            )
        )
    elif n.topic == IncomingHandover.Answered.TOPIC:
        decisions.completed.append((answer, trigger.message_id))
    elif n.topic in (IncomingHandover.Cancelled.TOPIC, IncomingHandover.Voided.TOPIC):
        decisions.cancelled.append((answer, "the origin region cancelled the handover", trigger.message_id))
    else:  # an escalation on either side: the governance center is told
        on = fact.timestamp.astimezone(REGION_TZ).date()
        gov = process.registry.responsible(residence, AgencyKind.GOVERNANCE_CENTER, on, as_of_position=n.id)
        if gov is None:
            return None
        notice = escalation_notice_id(handover.id, fact.reason)
        decisions.opened.append(
            Assignment(notice, ObligationKind.NOTICE, RULE, ESCALATED, gov, f"{handover.id}:{fact.reason}", None, None)
        )
    return decisions, trigger, residence
