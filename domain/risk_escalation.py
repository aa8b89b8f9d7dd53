"""The derived RiskEscalated fact: a patient's risk level or class worsened (by occurred time).

An assessment (a visit's or one outside a visit) whose level is higher, or whose class is worse,
than the assessment just before it by occurred time is an escalation. The policy derives it once
per assessment (its id comes from the patient and the assessment's message id), with the level
and class before and after and the agencies that may see risk levels (DESIGN.md section 4: the
health center, the police station, the governance center covering the residence) as they were
when it was decided. It is its own small aggregate, like ``LostEpisode``: the policy never
writes into a patient's stream. The outbox tells each of those agencies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.values import RiskClass, by_occurred

#: Namespace of escalation ids; never change it (replays must find the same ids).
ESCALATION_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:risk-escalation")
#: Worse is higher: the order of the classes.
CLASS_RANK = {RiskClass.STABLE: 0, RiskClass.BASICALLY_STABLE: 1, RiskClass.UNSTABLE: 2}


def escalation_id(patient_id: UUID, assessment_key: str) -> UUID:
    """The escalation derived from one assessment (same inputs, same id, on every replay)."""
    return uuid5(ESCALATION_NAMESPACE, f"{patient_id}:{assessment_key}")


def worsened(assessments: list[dict[str, Any]], key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(before, after) when the assessment ``key`` is worse than the one just before it by
    occurred time (None: the first assessment, or not worse)."""
    ordered = sorted(assessments, key=by_occurred)
    i = next((n for n, a in enumerate(ordered) if a["key"] == key), None)
    if i is None or i == 0:
        return None
    before, after = ordered[i - 1], ordered[i]
    if after["level"] > before["level"] or CLASS_RANK.get(after["class"], 0) > CLASS_RANK.get(before["class"], 0):
        return before, after
    return None


class RiskEscalation(Aggregate):
    """One escalation of a patient's risk, derived from the assessment that showed it."""

    TOPIC = "smd.RiskEscalation"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.RiskEscalation.Created"

    class Escalated(Aggregate.Created):
        """RiskEscalated: the level or the class worsened, by occurred time."""

        TOPIC = "smd.RiskEscalated"
        patient_id: UUID
        assessment_key: str
        occurred_at: datetime
        level_before: int
        level_after: int
        class_before: str
        class_after: str
        residence: str
        recipients: list[str]

    def __init__(
        self,
        patient_id: UUID,
        assessment_key: str,
        occurred_at: datetime,
        level_before: int,
        level_after: int,
        class_before: str,
        class_after: str,
        residence: str,
        recipients: list[str],
    ) -> None:
        self.patient_id = patient_id
        self.assessment_key = assessment_key
        self.occurred_at = occurred_at
        self.level_before, self.level_after = level_before, level_after
        self.class_before, self.class_after = class_before, class_after
        self.residence = residence
        self.recipients = recipients

    @classmethod
    def derive(
        cls,
        patient_id: UUID,
        before: dict[str, Any],
        after: dict[str, Any],
        residence: str,
        recipients: list[str],
        now: datetime,
    ) -> RiskEscalation:
        """Record that ``after`` worsened the patient's risk from ``before``."""
        return cls._create(
            cls.Escalated,
            id=escalation_id(patient_id, after["key"]),
            timestamp=now,
            patient_id=patient_id,
            assessment_key=after["key"],
            occurred_at=after["at"],
            level_before=before["level"],
            level_after=after["level"],
            class_before=str(before["class"]),
            class_after=str(after["class"]),
            residence=residence,
            recipients=recipients,
        )
