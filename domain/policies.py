"""Coordination rules as pure policies: a trigger and what was known then → obligations.

A policy sees the triggering fact, the patient's state by occurred time just before and just
after that fact (as known at the fact's log position), and a ``responsible`` function that
answers from the registry as recorded up to that position. "Now" is the trigger's
``recorded_at``. So a replay decides exactly the same, and a policy is one small test.

Episodes: a rule fires when a patient *enters* a condition, not on every event. The episode
key is the message id of the first recorded fact that opened the episode; a late fact that
extends the episode backwards (an older level-4 assessment arriving after a newer one) does
not change the current level, so it opens nothing and the key stays put.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.values import HIGH_RISK_LEVEL


@dataclass(frozen=True, slots=True)
class Trigger:
    """The fact a policy reacts to, with its place in the global log."""

    patient_id: UUID
    message_id: str
    position: int
    recorded_at: datetime
    residence: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """An obligation or notice a policy decided to open."""

    id: UUID
    kind: ObligationKind
    rule: str
    action: str
    assignee: str
    episode_key: str
    due_at: datetime | None
    risk_level: int | None


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """Deadlines of the rules (the seeds say "promptly" (及时); these are our defaults)."""

    r1_take_under_management: timedelta = timedelta(hours=24)


#: ``responsible(kind)`` → the agency id responsible for the trigger's residence, or None.
Responsible = Callable[[AgencyKind], str | None]


def entered_high_risk(level_before: int | None, level_after: int | None) -> bool:
    """The patient's current level went from below 3 (or unknown) to 3 or more."""
    before_high = level_before is not None and level_before >= HIGH_RISK_LEVEL
    after_high = level_after is not None and level_after >= HIGH_RISK_LEVEL
    return after_high and not before_high


def r1_high_risk_management(
    trigger: Trigger,
    level_before: int | None,
    level_after: int | None,
    responsible: Responsible,
    settings: RuleSettings,
) -> list[Assignment]:
    """R1: entering risk level ≥ 3 gives the police station "take under management" (列管)
    with a deadline, and the governance center a notice."""
    if not entered_high_risk(level_before, level_after):
        return []
    episode = trigger.message_id
    decided: list[Assignment] = []
    police = responsible(AgencyKind.POLICE_STATION)
    governance = responsible(AgencyKind.GOVERNANCE_CENTER)
    if police is None and governance is not None:
        # Nobody may fall between agencies: without a responsible station on record, the
        # governance center must find one, under the same deadline.
        decided.append(
            Assignment(
                id=obligation_id(trigger.patient_id, "R1", episode, "police"),
                kind=ObligationKind.OBLIGATION,
                rule="R1",
                action="assign_police_station",
                assignee=governance,
                episode_key=episode,
                due_at=trigger.recorded_at + settings.r1_take_under_management,
                risk_level=level_after,
            )
        )
    if police is not None:
        decided.append(
            Assignment(
                id=obligation_id(trigger.patient_id, "R1", episode, "police"),
                kind=ObligationKind.OBLIGATION,
                rule="R1",
                action="take_under_management",
                assignee=police,
                episode_key=episode,
                due_at=trigger.recorded_at + settings.r1_take_under_management,
                risk_level=level_after,
            )
        )
    if governance is not None:
        decided.append(
            Assignment(
                id=obligation_id(trigger.patient_id, "R1", episode, "governance-notice"),
                kind=ObligationKind.NOTICE,
                rule="R1",
                action="high_risk_patient_notice",
                assignee=governance,
                episode_key=episode,
                due_at=None,
                risk_level=level_after,
            )
        )
    return decided
