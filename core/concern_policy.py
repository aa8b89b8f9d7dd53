"""People of concern in the policy process: a listing notifies, a level ≥ 3 listing obliges.

Only rules create obligations and notices: the entry is a fact, and the policy process tells the
police station and the governance center responsible for the entry's place (notices, rule
``CONCERN``) and, when the person is a patient at risk level ≥ 3, gives the police station an
obligation (``review_person_of_concern``, escalated by R15 like any other). Responsibility is
as recorded up to the entry's log position. A re-listing notifies again (its own ids); taking
an entry off the list cancels the police obligation of that listing if it is still open.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Notification

from core.registry import REGION_TZ
from domain.concern import (
    ACTION,
    DELISTED_TOPIC,
    LISTED_TOPICS,
    NOTIFIED,
    OBLIGATION_LEVEL,
    RULE,
    WITHIN,
    ConcernEntry,
    SubjectKind,
    concern_obligation_id,
)
from domain.obligation import ObligationKind
from domain.rules.engine import Assignment, Decisions, Trigger

CONCERN_TOPICS = LISTED_TOPICS | {DELISTED_TOPIC}


def decide_concern(process: Any, notification: Notification) -> tuple[Decisions, Trigger, str] | None:
    """The notices and obligation a listing gives, or the cancellation a taking-off gives."""
    entry: ConcernEntry = process.case_record.repository.get(
        notification.originator_id, version=notification.originator_version
    )
    trigger = Trigger(
        patient_id=entry.subject_id,
        message_id=entry.message_id,
        position=notification.id,
        recorded_at=entry.occurred_at,
        residence=entry.place,
        topic=notification.topic,
        version=notification.originator_version,
    )
    police_action = concern_obligation_id(entry.id, entry.listings, "police-action")
    if notification.topic == DELISTED_TOPIC:
        return Decisions(cancelled=[(police_action, "taken_off_the_list", entry.message_id)]), trigger, entry.place
    on = entry.occurred_at.astimezone(REGION_TZ).date()
    key = f"{entry.id}|{entry.listings}"
    decisions = Decisions()
    for kind in NOTIFIED:
        assignee = process.registry.responsible(entry.place, kind, on, as_of_position=notification.id)
        if assignee is None:
            continue
        decisions.opened.append(
            Assignment(
                id=concern_obligation_id(entry.id, entry.listings, kind.value),
                kind=ObligationKind.NOTICE,
                rule=RULE,
                action="person_of_concern_listed",
                assignee=assignee,
                episode_key=key,
                due_at=None,
                risk_level=entry.risk_level,
            )
        )
        if (
            kind == NOTIFIED[0]
            and entry.subject_kind == SubjectKind.PATIENT
            and entry.risk_level is not None
            and entry.risk_level >= OBLIGATION_LEVEL
        ):
            decisions.opened.append(
                Assignment(
                    id=police_action,
                    kind=ObligationKind.OBLIGATION,
                    rule=RULE,
                    action=ACTION,
                    assignee=assignee,
                    episode_key=key,
                    due_at=entry.occurred_at + WITHIN,
                    risk_level=entry.risk_level,
                )
            )
    return decisions, trigger, entry.place
