"""Obligations and notices: what a coordination rule asks of an agency.

An *obligation* is work with a deadline owned by one agency (R15 escalates it when late); a
*notice* tells an agency something and only needs a read receipt. Both are this aggregate,
told apart by ``kind``. Its id is deterministic — (patient, rule, episode key[, cycle], role) —
so a replay or a duplicate trigger can never open a second one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

OBLIGATION_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:obligation")


class ObligationKind(StrEnum):
    """Work with a deadline, or information with a read receipt."""

    OBLIGATION = "obligation"
    NOTICE = "notice"


def obligation_id(patient_id: UUID, rule: str, episode_key: str, role: str, cycle: int | None = None) -> UUID:
    """The one id an obligation can have; ``role`` separates e.g. the police task from a notice."""
    parts = [str(patient_id), rule, episode_key, role] + ([str(cycle)] if cycle is not None else [])
    return uuid5(OBLIGATION_NAMESPACE, "|".join(parts))


class Obligation(Aggregate):
    """One agency's obligation or notice, from assignment to its end."""

    TOPIC = "smd.Obligation"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.Obligation.Created"

    class Assigned(Aggregate.Created):
        """ObligationAssigned: a rule fired and gave an agency something to do or to know."""

        TOPIC = "smd.ObligationAssigned"
        kind: str
        rule: str
        action: str
        patient_id: UUID
        episode_key: str
        assignee: str
        residence: str
        due_at: datetime | None
        trigger_message_id: str
        trigger_position: int
        risk_level: int | None

    def __init__(
        self,
        kind: str,
        rule: str,
        action: str,
        patient_id: UUID,
        episode_key: str,
        assignee: str,
        residence: str,
        due_at: datetime | None,
        trigger_message_id: str,
        trigger_position: int,
        risk_level: int | None,
    ) -> None:
        self.kind = kind
        self.rule = rule
        self.action = action
        self.patient_id = patient_id
        self.episode_key = episode_key
        self.assignee = assignee
        self.residence = residence
        self.due_at = due_at
        self.trigger_message_id = trigger_message_id
        self.trigger_position = trigger_position
        self.risk_level = risk_level
        self.status = "assigned"

    @classmethod
    def assign(
        cls,
        *,
        id: UUID,  # noqa: A002 - the library's name
        kind: ObligationKind,
        rule: str,
        action: str,
        patient_id: UUID,
        episode_key: str,
        assignee: str,
        residence: str,
        due_at: datetime | None,
        trigger_message_id: str,
        trigger_position: int,
        risk_level: int | None,
        now: datetime,
    ) -> Obligation:
        """Assign an obligation (with a deadline) or a notice (without one)."""
        if kind == ObligationKind.OBLIGATION and due_at is None:
            raise ValueError("an obligation needs a deadline; a notice has none")
        return cls._create(
            cls.Assigned,
            id=id,
            timestamp=now,
            kind=str(kind),
            rule=rule,
            action=action,
            patient_id=patient_id,
            episode_key=episode_key,
            assignee=assignee,
            residence=residence,
            due_at=due_at,
            trigger_message_id=trigger_message_id,
            trigger_position=trigger_position,
            risk_level=risk_level,
        )
