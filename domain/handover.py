"""Handovers between two regions (R8, DESIGN.md section 6): each region's side is its own
aggregate in its own store, kept in step by signed messages; no stream is written by two regions.

- ``OutgoingHandover`` (origin's store): the origin **opens** and **cancels** it; the
  destination's acceptance or rejection reaches it as a message. *The first decisive fact in the
  origin's log wins*: whichever of cancelled / accepted / rejected the origin records first is the
  outcome; a later one is noted as arrived too late and changes nothing.
- ``IncomingHandover`` (destination's store): recorded from the origin's request; the destination
  **accepts** or **rejects** it. A cancellation that arrives after the destination answered
  means the origin's log had the cancellation first: the destination's answer is **voided**.
- ``CrossRegionOutbox`` / ``CrossRegionInbox``: one per peer region and direction. The outbox
  numbers what this region sends (the per-sender sequence: its version); the inbox keeps the last
  sequence applied and every refused message with its reason.

Responsible at every instant: the origin until its log holds the acceptance; the destination
from its own acceptance until it is voided. Between the two both are, never neither.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.personal import SealedText, sealed_text, sealing_upcast

HANDOVER_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:handover")


class MessageKind(StrEnum):
    """What a cross-region message says."""

    REQUEST = "request"  # origin → destination: take over this patient
    CANCEL = "cancel"  # origin → destination: the handover is withdrawn
    ACCEPT = "accept"  # destination → origin
    REJECT = "reject"  # destination → origin
    FEED = "feed"  # destination → origin, after acceptance: a fact the tracking region may see
    ERASURE = "erasure"  # either way: the sender erased a patient of a handover between the two (or answers that)
    POLICE_NOTICE = "police-notice"  # origin → destination: R7, a level ≥ 3 patient is moving there
    POLICE_ACK = "police-ack"  # destination → origin: its police station acknowledged the notice


class Refusal(StrEnum):
    """Why a cross-region message was refused (kept with the message)."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    UNKNOWN_SENDER = "unknown-sender"
    UNKNOWN_KEY = "unknown-key"
    BAD_SIGNATURE = "bad-signature"
    WRONG_REGION = "wrong-region"
    REPLAYED = "replayed"
    OUT_OF_SEQUENCE = "out-of-sequence"
    UNDECRYPTABLE = "undecryptable"
    UNKNOWN_HANDOVER = "unknown-handover"


def handover_id(origin_region: str, patient_id: UUID, move_id: UUID) -> UUID:
    """The one id a handover has on both sides: (origin, patient, move)."""
    return uuid5(HANDOVER_NAMESPACE, f"{origin_region}|{patient_id}|{move_id}")


def outbox_id(region: str, peer: str) -> UUID:
    """The outbox of messages ``region`` sends to ``peer``."""
    return uuid5(HANDOVER_NAMESPACE, f"outbox|{region}|{peer}")


def inbox_id(region: str, peer: str) -> UUID:
    """The inbox of messages ``region`` received from ``peer``."""
    return uuid5(HANDOVER_NAMESPACE, f"inbox|{region}|{peer}")


def sequence_refusal(last_applied: int, seq: int) -> Refusal | None:
    """Messages from one sender apply in their order, each once: a sequence already applied is a
    replay, one beyond the next a gap (held back until the missing ones arrive)."""
    if seq <= last_applied:
        return Refusal.REPLAYED
    if seq != last_applied + 1:
        return Refusal.OUT_OF_SEQUENCE
    return None


class OutgoingHandover(Aggregate):
    """The origin's side: open until its log holds the first decisive fact."""

    TOPIC = "smd.OutgoingHandover"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.OutgoingHandover.Created"

    class Opened(Aggregate.Created):
        """HandoverRequested (origin): the patient moves to another region; the destination must
        accept or reject by ``deadline``."""

        TOPIC = "smd.HandoverOpened"
        patient_id: UUID
        move_id: UUID
        destination_region: str
        destination_unit: str
        moving_on: date
        deadline: datetime
        opened_by: str  # the agency that reported the move
        residence: str  # the patient's residence in the origin region

    class Cancelled(Aggregate.Event):
        """HandoverCancelled: the origin withdrew the handover (decisive when first). v2: the
        reason (free text) sealed under the patient's key, with the patient's id to find it;
        a v1 row's reason was stored in the clear and reads as the same text."""

        TOPIC = "smd.HandoverCancelled"
        class_version: ClassVar[int] = 2
        SEALED_UNDER: ClassVar[str] = "patient_id"  # erasing the patient here erases the reason
        by_agency: str
        reason: SealedText | None
        patient_id: UUID | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            sealing_upcast("reason")(state)
            state["patient_id"] = None  # not stored before v2 (the aggregate has it)

        def apply(self, aggregate: OutgoingHandover) -> None:
            aggregate.status = "cancelled"
            aggregate.decided_at = self.timestamp

    class Answered(Aggregate.Event):
        """HandoverAccepted / HandoverRejected as the origin recorded the destination's message
        (decisive when first)."""

        TOPIC = "smd.HandoverAnswerArrived"
        accepted: bool
        sequence: int  # the destination's message that carried it

        def apply(self, aggregate: OutgoingHandover) -> None:
            aggregate.status = "accepted" if self.accepted else "rejected"
            aggregate.decided_at = self.timestamp

    class ArrivedTooLate(Aggregate.Event):
        """An answer that reached the origin after its log already held the outcome."""

        TOPIC = "smd.HandoverAnswerTooLate"
        accepted: bool
        sequence: int

        def apply(self, aggregate: OutgoingHandover) -> None:
            aggregate.late.append("accepted" if self.accepted else "rejected")

    class Escalated(Aggregate.Event):
        """HandoverEscalated (origin): rejected, or no answer by the deadline."""

        TOPIC = "smd.OutgoingHandoverEscalated"
        reason: str  # "rejected" | "unanswered"

        def apply(self, aggregate: OutgoingHandover) -> None:
            aggregate.escalations.append(self.reason)

    def __init__(
        self,
        patient_id: UUID,
        move_id: UUID,
        destination_region: str,
        destination_unit: str,
        moving_on: date,
        deadline: datetime,
        opened_by: str,
        residence: str,
    ) -> None:
        self.patient_id = patient_id
        self.move_id = move_id
        self.destination_region = destination_region
        self.destination_unit = destination_unit
        self.moving_on = moving_on
        self.deadline = deadline
        self.opened_by = opened_by
        self.residence = residence
        self.status = "open"
        self.decided_at: datetime | None = None
        self.late: list[str] = []
        self.escalations: list[str] = []

    @classmethod
    def open(
        cls,
        origin_region: str,
        now: datetime,
        *,
        patient_id: UUID,
        move_id: UUID,
        destination_region: str,
        destination_unit: str,
        moving_on: date,
        deadline: datetime,
        opened_by: str,
        residence: str,
    ) -> OutgoingHandover:
        """Open the handover of a reported move to another region."""
        if destination_region == origin_region:
            raise HandoverWithinTheRegion()
        return cls._create(
            cls.Opened,
            id=handover_id(origin_region, patient_id, move_id),
            timestamp=now,
            patient_id=patient_id,
            move_id=move_id,
            destination_region=destination_region,
            destination_unit=destination_unit,
            moving_on=moving_on,
            deadline=deadline,
            opened_by=opened_by,
            residence=residence,
        )

    @property
    def origin_responsible(self) -> bool:
        """The origin manages until its log holds the acceptance."""
        return self.status != "accepted"

    def cancel(self, by_agency: str, reason: str, now: datetime) -> None:
        """The origin withdraws the handover; only while nothing decisive is recorded."""
        if self.status != "open":
            raise HandoverAlreadyDecided(self.id, self.status)
        self.trigger_event(
            self.Cancelled, timestamp=now, by_agency=by_agency, reason=sealed_text(reason), patient_id=self.patient_id
        )

    def record_answer(self, accepted: bool, sequence: int, now: datetime) -> bool:
        """The destination's answer arrived: decisive if first (True), else noted too late."""
        if self.status != "open":
            self.trigger_event(self.ArrivedTooLate, timestamp=now, accepted=accepted, sequence=sequence)
            return False
        self.trigger_event(self.Answered, timestamp=now, accepted=accepted, sequence=sequence)
        if not accepted:
            self.trigger_event(self.Escalated, timestamp=now, reason="rejected")
        return True

    def check_deadline(self, now: datetime) -> bool:
        """No answer by the deadline: escalate once (the origin stays responsible)."""
        if self.status != "open" or now < self.deadline or "unanswered" in self.escalations:
            return False
        self.trigger_event(self.Escalated, timestamp=now, reason="unanswered")
        return True


class IncomingHandover(Aggregate):
    """The destination's side: requested, then answered here, perhaps voided by the origin."""

    TOPIC = "smd.IncomingHandover"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.IncomingHandover.Created"

    class Requested(Aggregate.Created):
        """HandoverRequested (destination): the origin asks this region to take the patient over
        by ``deadline``; ``assignee`` is the health center that must answer."""

        TOPIC = "smd.HandoverRequested"
        SEALED_UNDER: ClassVar[str] = "patient_id"  # erasing the patient here erases the details
        origin_region: str
        patient_id: UUID
        move_id: UUID
        destination_unit: str
        moving_on: date
        deadline: datetime
        assignee: str
        sequence: int
        details: SealedText  # what the receiving health center may see (JSON), sealed

    class Answered(Aggregate.Event):
        """HandoverAccepted / HandoverRejected by the destination's health center."""

        TOPIC = "smd.HandoverAnswered.Destination"
        accepted: bool
        by_agency: str
        staff_id: str | None

        def apply(self, aggregate: IncomingHandover) -> None:
            aggregate.status = "accepted" if self.accepted else "rejected"
            aggregate.answered_at = self.timestamp

    class Cancelled(Aggregate.Event):
        """The origin's cancellation arrived before this region answered."""

        TOPIC = "smd.IncomingHandoverCancelled"
        sequence: int

        def apply(self, aggregate: IncomingHandover) -> None:
            aggregate.status = "cancelled"

    class Voided(Aggregate.Event):
        """HandoverVoided: the origin's cancellation arrived after this region answered; the
        origin's log had it first, so the answer counts for nothing (an acceptance is undone)."""

        TOPIC = "smd.HandoverVoided"
        sequence: int
        answer: str  # what this region had answered

        def apply(self, aggregate: IncomingHandover) -> None:
            aggregate.status = "voided"

    class Escalated(Aggregate.Event):
        """HandoverEscalated (destination): rejected here, or no answer by the deadline."""

        TOPIC = "smd.IncomingHandoverEscalated"
        reason: str

        def apply(self, aggregate: IncomingHandover) -> None:
            aggregate.escalations.append(self.reason)

    def __init__(
        self,
        origin_region: str,
        patient_id: UUID,
        move_id: UUID,
        destination_unit: str,
        moving_on: date,
        deadline: datetime,
        assignee: str,
        sequence: int,
        details: SealedText,
    ) -> None:
        self.origin_region = origin_region
        self.patient_id = patient_id
        self.move_id = move_id
        self.destination_unit = destination_unit
        self.moving_on = moving_on
        self.deadline = deadline
        self.assignee = assignee
        self.sequence = sequence
        self.details = details
        self.status = "requested"
        self.answered_at: datetime | None = None
        self.escalations: list[str] = []

    @classmethod
    def request(
        cls,
        hid: UUID,
        now: datetime,
        *,
        origin_region: str,
        patient_id: UUID,
        move_id: UUID,
        destination_unit: str,
        moving_on: date,
        deadline: datetime,
        assignee: str,
        sequence: int,
        details: str,
    ) -> IncomingHandover:
        """Record the origin's request."""
        return cls._create(
            cls.Requested,
            id=hid,
            timestamp=now,
            origin_region=origin_region,
            patient_id=patient_id,
            move_id=move_id,
            destination_unit=destination_unit,
            moving_on=moving_on,
            deadline=deadline,
            assignee=assignee,
            sequence=sequence,
            details=SealedText(text=details),
        )

    @property
    def destination_responsible(self) -> bool:
        """This region manages from its acceptance until a voiding."""
        return self.status == "accepted"

    def answer(self, accepted: bool, by_agency: str, staff_id: str | None, now: datetime) -> None:
        """The health center accepts or rejects (once, and only while the request stands)."""
        if self.status == "cancelled":
            raise HandoverCancelledByOrigin(self.id)
        if self.status != "requested":
            raise HandoverAlreadyDecided(self.id, self.status)
        if by_agency != self.assignee:
            raise NotTheReceivingHealthCenter(by_agency, self.assignee)
        self.trigger_event(self.Answered, timestamp=now, accepted=accepted, by_agency=by_agency, staff_id=staff_id)
        if not accepted:
            self.trigger_event(self.Escalated, timestamp=now, reason="rejected")

    def origin_cancelled(self, sequence: int, now: datetime) -> str:
        """The origin's cancellation arrived: "cancelled" before an answer, "voided" after one."""
        if self.status == "requested":
            self.trigger_event(self.Cancelled, timestamp=now, sequence=sequence)
            return "cancelled"
        if self.status in ("accepted", "rejected"):
            self.trigger_event(self.Voided, timestamp=now, sequence=sequence, answer=self.status)
            return "voided"
        return self.status

    def check_deadline(self, now: datetime) -> bool:
        """No answer here by the deadline: escalate once."""
        if self.status != "requested" or now < self.deadline or "unanswered" in self.escalations:
            return False
        self.trigger_event(self.Escalated, timestamp=now, reason="unanswered")
        return True


class CrossRegionOutbox(Aggregate):
    """What this region sends one peer, in order: each message's sequence is its position here."""

    TOPIC = "smd.CrossRegionOutbox"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.CrossRegionOutbox.Created"

    class Started(Aggregate.Created):
        """The first message to this peer."""

        TOPIC = "smd.CrossRegionOutboxStarted"
        region: str
        peer: str

    class Queued(Aggregate.Event):
        """A signed message to the peer (its personal part sealed to the peer's key)."""

        TOPIC = "smd.CrossRegionMessageQueued"
        sequence: int
        handover_id: UUID
        kind: str
        wire: str  # the signed message as sent (JSON)

        def apply(self, aggregate: CrossRegionOutbox) -> None:
            aggregate.last_sequence = self.sequence

    def __init__(self, region: str, peer: str) -> None:
        self.region = region
        self.peer = peer
        self.last_sequence = 0

    @classmethod
    def start(cls, region: str, peer: str, now: datetime) -> CrossRegionOutbox:
        """The outbox of messages to ``peer``."""
        return cls._create(cls.Started, id=outbox_id(region, peer), timestamp=now, region=region, peer=peer)

    def queue(self, handover: UUID, kind: MessageKind, wire: str, sequence: int, now: datetime) -> None:
        """Queue the message signed with ``sequence`` (the next one: the store refuses a second
        writer of the same sequence)."""
        if sequence != self.last_sequence + 1:
            raise ValueError(f"sequence {sequence} is not the next after {self.last_sequence}")
        self.trigger_event(self.Queued, timestamp=now, sequence=sequence, handover_id=handover, kind=kind, wire=wire)


class CrossRegionInbox(Aggregate):
    """What this region received from one peer: the last sequence applied, what was refused."""

    TOPIC = "smd.CrossRegionInbox"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.CrossRegionInbox.Created"

    class Started(Aggregate.Created):
        """The first message from this peer."""

        TOPIC = "smd.CrossRegionInboxStarted"
        region: str
        peer: str

    class Applied(Aggregate.Event):
        """The message was verified and applied (its digest kept, not its content)."""

        TOPIC = "smd.CrossRegionMessageApplied"
        sequence: int
        acked: int  # the last sequence of ours the peer had applied when it sent this
        handover_id: UUID
        kind: str
        digest: str

        def apply(self, aggregate: CrossRegionInbox) -> None:
            aggregate.last_applied = self.sequence
            aggregate.peer_acked = max(aggregate.peer_acked, self.acked)

    class Refused(Aggregate.Event):
        """A message refused, kept with its reason (the wire as received: personal parts stay
        sealed to this region's key)."""

        TOPIC = "smd.CrossRegionMessageRefused"
        reason: str
        sequence: int | None
        digest: str
        wire: str

        def apply(self, aggregate: CrossRegionInbox) -> None:
            aggregate.refused[self.digest] = self.reason

    def __init__(self, region: str, peer: str) -> None:
        self.region = region
        self.peer = peer
        self.last_applied = 0
        self.peer_acked = 0
        self.refused: dict[str, str] = {}

    @classmethod
    def start(cls, region: str, peer: str, now: datetime) -> CrossRegionInbox:
        """The inbox of messages from ``peer``."""
        return cls._create(cls.Started, id=inbox_id(region, peer), timestamp=now, region=region, peer=peer)

    def applied(self, sequence: int, acked: int, handover: UUID, kind: str, digest: str, now: datetime) -> None:
        """Note a verified message as applied (only the next in sequence)."""
        refusal = sequence_refusal(self.last_applied, sequence)
        if refusal is not None:
            raise ValueError(f"message {sequence} is {refusal} after {self.last_applied}")
        self.trigger_event(
            self.Applied, timestamp=now, sequence=sequence, acked=acked, handover_id=handover, kind=kind, digest=digest
        )

    def refuse(self, reason: Refusal, sequence: int | None, digest: str, wire: str, now: datetime) -> bool:
        """Keep a refused message with its reason (the same message refused again is kept once)."""
        if self.refused.get(digest) == reason:
            return False
        self.trigger_event(self.Refused, timestamp=now, reason=reason, sequence=sequence, digest=digest, wire=wire)
        return True


class HandoverWithinTheRegion(DomainError):
    """A handover goes to another region."""

    code = "handover-within-the-region"

    def __init__(self) -> None:
        super().__init__("the move's destination is this region: no cross-region handover is opened")


class HandoverAlreadyDecided(DomainError):
    """A handover is decided once: the first decisive fact wins."""

    code = "handover-already-decided"

    def __init__(self, hid: UUID, status: str) -> None:
        super().__init__(f"handover {hid} is already {status}")


class ErasedHere(DomainError):
    """A move back of a patient whose data this region erased (the key destroyed): the file
    cannot take the details again, and the erasure must not be undone by a handover."""

    code = "patient-erased-here"

    def __init__(self, hid: UUID) -> None:
        super().__init__(
            f"handover {hid}: this region erased the patient's data and cannot register them again "
            "under the same id; reject it (both regions escalate) and register the patient anew by hand"
        )


class HandoverCancelledByOrigin(DomainError):
    """The origin withdrew the handover before it was answered."""

    code = "handover-cancelled"

    def __init__(self, hid: UUID) -> None:
        super().__init__(f"handover {hid} was cancelled by the origin region; there is nothing to answer")


class NotTheReceivingHealthCenter(DomainError):
    """Only the health center the request went to answers it."""

    code = "not-the-receiving-health-center"

    def __init__(self, agency: str, assignee: str) -> None:
        super().__init__(f"agency {agency} may not answer this handover; it is {assignee}'s to accept or reject")


class HandoverNotFound(DomainError):
    """No handover with that id in this region."""

    code = "handover-not-found"

    def __init__(self, hid: UUID) -> None:
        super().__init__(f"no handover {hid} in this region")
