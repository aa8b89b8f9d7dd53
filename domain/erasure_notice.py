"""Erasure notices between linked regions: an erasure in one region reaches the other region of
every handover of that patient (decision 049).

One ``CrossRegionErasure`` per (sender, receiver, patient), with the same id on both sides (like a
handover's): the sender records that it **sent** the notice (in the transaction that records its
erasure), the receiver that it **received** it and what it decided, and the sender then that the
receiver **answered** (the receiver's answer is a message of the same kind). The receiver erases
what it holds of the patient only where its own law keeps nothing: a patient registered here is
under management, one deregistered here for another reason than an error is under the retention
of clinical records; then the notice is kept with that reason and nothing is destroyed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.handover import HANDOVER_NAMESPACE


class NoticeDecision(StrEnum):
    """What the receiving region did with an erasure notice."""

    ERASE = "erase"  # no retention here: restricted now, the data key destroyed by `smd erasure run`
    ALREADY_ERASED = "already-erased"  # erased here before
    KEPT = "kept"  # this region's law keeps the file (``reason``: the problem code)


def erasure_notice_id(sender: str, receiver: str, patient_id: UUID) -> UUID:
    """The one id a notice has on both sides (the message's ``handover_id``)."""
    return uuid5(HANDOVER_NAMESPACE, f"erasure|{sender}|{receiver}|{patient_id}")


class CrossRegionErasure(Aggregate):
    """One region's erasure of a patient, as told to one linked region."""

    TOPIC = "smd.CrossRegionErasure"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.CrossRegionErasure.Created"

    class Sent(Aggregate.Created):
        """ErasureNoticeSent: this region erased the patient and queued the signed notice."""

        TOPIC = "smd.ErasureNoticeSent"
        sender: str
        receiver: str
        patient_id: UUID
        handover_ids: list[str]  # the handovers between the two about the patient, as the sender holds them
        sequence: int  # the notice's message

    class Received(Aggregate.Created):
        """ErasureNoticeReceived: a linked region erased the patient; what this region decided."""

        TOPIC = "smd.ErasureNoticeReceived"
        sender: str
        receiver: str
        patient_id: UUID
        handover_ids: list[str]  # the handovers with the sender about the patient, as this region holds them
        sequence: int
        decision: str  # ``NoticeDecision``
        reason: str | None  # why kept: "patient-under-management" | "retention-applies"

    class Answered(Aggregate.Event):
        """ErasureNoticeAnswered: the receiver's answer reached the sender."""

        TOPIC = "smd.ErasureNoticeAnswered"
        decision: str
        reason: str | None
        sequence: int

        def apply(self, aggregate: CrossRegionErasure) -> None:
            aggregate.decision = self.decision
            aggregate.reason = self.reason

    def __init__(
        self,
        sender: str,
        receiver: str,
        patient_id: UUID,
        handover_ids: list[str],
        sequence: int,
        decision: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.sender = sender
        self.receiver = receiver
        self.patient_id = patient_id
        self.handover_ids = [UUID(h) for h in handover_ids]
        self.sequence = sequence
        self.decision = decision
        self.reason = reason

    @classmethod
    def send(
        cls, sender: str, receiver: str, patient_id: UUID, handover_ids: list[UUID], sequence: int, now: datetime
    ) -> CrossRegionErasure:
        return cls._create(
            cls.Sent,
            id=erasure_notice_id(sender, receiver, patient_id),
            timestamp=now,
            sender=sender,
            receiver=receiver,
            patient_id=patient_id,
            handover_ids=sorted(str(h) for h in handover_ids),
            sequence=sequence,
        )

    @classmethod
    def receive(
        cls,
        sender: str,
        receiver: str,
        patient_id: UUID,
        handover_ids: list[UUID],
        sequence: int,
        decision: NoticeDecision,
        reason: str | None,
        now: datetime,
    ) -> CrossRegionErasure:
        return cls._create(
            cls.Received,
            id=erasure_notice_id(sender, receiver, patient_id),
            timestamp=now,
            sender=sender,
            receiver=receiver,
            patient_id=patient_id,
            handover_ids=sorted(str(h) for h in handover_ids),
            sequence=sequence,
            decision=str(decision),
            reason=reason,
        )

    def answered(self, decision: str, reason: str | None, sequence: int, now: datetime) -> bool:
        """The receiver's answer (noted once)."""
        if self.decision is not None:
            return False
        self.trigger_event(self.Answered, timestamp=now, decision=decision, reason=reason, sequence=sequence)
        return True
