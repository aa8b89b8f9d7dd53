"""Obligations and notices: what a coordination rule asks of an agency.

An *obligation* is work with a deadline owned by one agency (R15 escalates it when late); a
*notice* tells an agency something and only needs a read receipt. Both are this aggregate,
told apart by ``kind``. Its id is deterministic — (patient, rule, episode key[, cycle], role) —
so a replay or a duplicate trigger can never open a second one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.personal import SealedText, sealed_text, sealing_upcast

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
        natural_due_at: datetime | None  # v2: the rule's own deadline when go-live moved ``due_at``

        class_version: ClassVar[int] = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["natural_due_at"] = None  # before go-live could move deadlines

    class Acknowledged(Aggregate.Event):
        """ObligationAcknowledged: the owning agency took the work on."""

        TOPIC = "smd.ObligationAcknowledged"
        by_agency: str
        staff_id: str | None

        def apply(self, aggregate: Obligation) -> None:
            aggregate.status = "acknowledged"
            aggregate.acknowledged_at = self.timestamp

    class Read(Aggregate.Event):
        """NoticeRead: the agency told by a notice has read it (a read receipt)."""

        TOPIC = "smd.NoticeRead"
        by_agency: str
        staff_id: str | None

        def apply(self, aggregate: Obligation) -> None:
            aggregate.status = "read"
            aggregate.read_at = self.timestamp

    class Completed(Aggregate.Event):
        """ObligationCompleted: done, with the fact that did it (or the agency's own word). v2: the
        owner's note sealed under the *patient's* key (``SEALED_UNDER``), so that erasing the
        patient erases it too (docs/decisions/004, 024)."""

        TOPIC = "smd.ObligationCompleted"
        class_version: ClassVar[int] = 2
        SEALED_UNDER: ClassVar[str] = "patient_id"
        fulfilled_by: str | None
        by_agency: str | None
        note: SealedText | None
        patient_id: UUID | None  # v2: the subject the note is sealed under

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            sealing_upcast("note")(state)
            state["patient_id"] = None  # a v1 note was stored in the clear, under no key

        def apply(self, aggregate: Obligation) -> None:
            aggregate.status = "completed"
            aggregate.fulfilled_by = self.fulfilled_by
            aggregate.closed_at = self.timestamp

    class Cancelled(Aggregate.Event):
        """ObligationCancelled: the facts changed; the reason says how."""

        TOPIC = "smd.ObligationCancelled"
        reason: str
        because_of: str | None

        def apply(self, aggregate: Obligation) -> None:
            aggregate.status = "cancelled"
            aggregate.cancel_reason = self.reason
            aggregate.closed_at = self.timestamp

    class Overdue(Aggregate.Event):
        """ObligationOverdue + ObligationEscalated (R15): the deadline passed undone; the
        governance center is told. Stored once, when it happens: the lateness stays on record."""

        TOPIC = "smd.ObligationOverdue"
        escalated_to: str | None

        def apply(self, aggregate: Obligation) -> None:
            aggregate.overdue = True
            aggregate.escalated_to = self.escalated_to

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
        natural_due_at: datetime | None = None,
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
        self.natural_due_at = natural_due_at
        self.status = "assigned"
        self.overdue = False
        self.escalated_to: str | None = None
        self.fulfilled_by: str | None = None
        self.cancel_reason: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Still to do (an obligation) or to read (a notice)."""
        return self.status in ("assigned", "acknowledged")

    def check_owner(self, agency_id: str) -> None:
        """Only the agency that owns it acts on it."""
        if agency_id != self.assignee:
            raise NotTheOwner(self.id, agency_id)

    def acknowledge(self, agency_id: str, staff_id: str | None, now: datetime) -> bool:
        """The owner takes it on; False if already acknowledged."""
        self.check_owner(agency_id)
        if self.kind != ObligationKind.OBLIGATION:
            raise WrongObligationKind(self.id, "acknowledged", "mark it read")
        if self.status == "acknowledged":
            return False
        self._check_open("acknowledged")
        self.trigger_event(self.Acknowledged, timestamp=now, by_agency=agency_id, staff_id=staff_id)
        return True

    def mark_read(self, agency_id: str, staff_id: str | None, now: datetime) -> bool:
        """The owner of a notice read it; False if already read."""
        self.check_owner(agency_id)
        if self.kind != ObligationKind.NOTICE:
            raise WrongObligationKind(self.id, "marked read", "acknowledge or complete it")
        if self.status == "read":
            return False
        self._check_open("read")
        self.trigger_event(self.Read, timestamp=now, by_agency=agency_id, staff_id=staff_id)
        return True

    def complete(
        self, now: datetime, *, fulfilled_by: str | None, by_agency: str | None = None, note: str | None = None
    ) -> bool:
        """Done: by a later fact (``fulfilled_by`` = its message id) or by the owner's word."""
        if by_agency is not None:
            self.check_owner(by_agency)
        if not self.is_open:
            if by_agency is not None:
                self._check_open("completed")
            return False
        self.trigger_event(
            self.Completed,
            timestamp=now,
            fulfilled_by=fulfilled_by,
            by_agency=by_agency,
            note=sealed_text(note),
            patient_id=self.patient_id,
        )
        return True

    def cancel(self, now: datetime, *, reason: str, because_of: str | None) -> bool:
        """The facts changed: no longer to do. False if already closed."""
        if not self.is_open:
            return False
        self.trigger_event(self.Cancelled, timestamp=now, reason=reason, because_of=because_of)
        return True

    def mark_overdue(self, now: datetime, escalated_to: str | None) -> bool:
        """R15: the deadline passed with the obligation still open; once only."""
        if self.kind != ObligationKind.OBLIGATION or self.overdue or not self.is_open:
            return False
        if self.due_at is None or now < self.due_at:
            return False
        self.trigger_event(self.Overdue, timestamp=now, escalated_to=escalated_to)
        return True

    def _check_open(self, wanted: str) -> None:
        if not self.is_open:
            raise ObligationClosed(self.id, self.status, wanted)

    @classmethod
    def assign(
        cls,
        *,
        id: UUID,
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
        natural_due_at: datetime | None = None,
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
            natural_due_at=natural_due_at,
        )


#: The status each lifecycle event leaves an obligation or notice in (read models and reviews).
STATUS_AFTER: dict[str, str] = {
    Obligation.Acknowledged.TOPIC: "acknowledged",
    Obligation.Read.TOPIC: "read",
    Obligation.Completed.TOPIC: "completed",
    Obligation.Cancelled.TOPIC: "cancelled",
}


class NotTheOwner(DomainError):
    """Only the owning agency acts on its obligations and notices."""

    code = "not-the-owner"

    def __init__(self, obligation_id: UUID, agency_id: str) -> None:
        # never the owner: which agency holds another's obligation is not the caller's to learn
        super().__init__(
            f"obligation {obligation_id} is not on the work queue of {agency_id}; act only on items of your own "
            "work queue (GET /v1/work-queue)"
        )


class ObligationClosed(DomainError):
    """A closed obligation cannot change."""

    code = "obligation-closed"

    def __init__(self, obligation_id: UUID, status: str, wanted: str) -> None:
        super().__init__(f"obligation {obligation_id} is {status}; it cannot be {wanted} any more")


class WrongObligationKind(DomainError):
    """Obligations are acknowledged and completed; notices are read."""

    code = "wrong-obligation-kind"

    def __init__(self, obligation_id: UUID, wanted: str, instead: str) -> None:
        super().__init__(f"{obligation_id} cannot be {wanted}; {instead} instead")


class ObligationNotFound(DomainError):
    """No obligation or notice with that id."""

    code = "obligation-not-found"

    def __init__(self, obligation_id: UUID) -> None:
        super().__init__(f"no obligation or notice {obligation_id}; take ids from your work queue")
