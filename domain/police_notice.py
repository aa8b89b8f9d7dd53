"""R7 across two regions: the police notice that goes with a handover (J 派出所 5: 及时通报流入地派出所).

A patient whose latest level is ≥ 3 moves to a linked region: the origin's police station owes
``notify_destination_police`` and the destination's station owes ``acknowledge_police_notice``,
as inside one region (``domain.rules.r07_police_notice``), but the two stations are in two
deployments. Each region keeps its side in its own store, kept in step by the handover's signed
messages (``domain.handover``); the obligations' subject is the handover, as R8's between
regions (the patient may not be registered on the destination's side).

- ``OutgoingPoliceNotice`` (origin): **sent** with the handover's request when the patient's
  level at the move is ≥ 3, carrying the level and class and the acknowledgement deadline (the
  origin's setting, so both sides escalate at the same instant); **acknowledged** when the
  destination's acknowledgement arrives; **unacknowledged** by the origin's own clock when the
  deadline passes first (escalated once); **cancelled** with the handover.
- ``IncomingPoliceNotice`` (destination): **received**; **acknowledged** when its station
  completes its obligation (the acknowledgement is then sent back); **cancelled** when the origin
  cancels the handover (before or after an answer).
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

POLICE_NOTICE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:police-notice")


def police_notice_id(handover_id: UUID) -> UUID:
    """The police notice of one handover (the same id on both sides, each in its own store)."""
    return uuid5(POLICE_NOTICE_NAMESPACE, str(handover_id))


class OutgoingPoliceNotice(Aggregate):
    """The origin's side: sent with the handover, until acknowledged, escalated or cancelled."""

    TOPIC = "smd.OutgoingPoliceNotice"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.OutgoingPoliceNotice.Created"

    class Sent(Aggregate.Created):
        """PoliceNoticeSent: a level ≥ 3 patient moves to ``destination_region``; the origin's
        police owe the notification by ``notify_by``, the destination's the acknowledgement by
        ``acknowledge_by`` (both from when the move was recorded)."""

        TOPIC = "smd.PoliceNoticeSent"
        handover_id: UUID
        patient_id: UUID
        move_id: UUID
        residence: str  # the patient's residence here (its police station notifies)
        destination_region: str
        destination_unit: str
        risk_level: int
        risk_class: str
        notify_by: datetime
        acknowledge_by: datetime

    class Acknowledged(Aggregate.Event):
        """PoliceNoticeAcknowledged (origin): the destination's station acknowledged, as its
        signed message says (``by_agency`` as that region asserts it)."""

        TOPIC = "smd.PoliceNoticeAcknowledgedThere"
        by_agency: str
        acknowledged_at: datetime  # the destination's time
        sequence: int  # the destination's message that carried it

        def apply(self, aggregate: OutgoingPoliceNotice) -> None:
            aggregate.acknowledged_at = self.acknowledged_at
            if aggregate.status == "sent":
                aggregate.status = "acknowledged"

    class Unacknowledged(Aggregate.Event):
        """PoliceNoticeUnacknowledged (origin): the deadline passed with no acknowledgement here."""

        TOPIC = "smd.PoliceNoticeUnacknowledged"

        def apply(self, aggregate: OutgoingPoliceNotice) -> None:
            aggregate.escalated = True

    class Cancelled(Aggregate.Event):
        """The origin cancelled the handover: nobody needs to be told any more."""

        TOPIC = "smd.OutgoingPoliceNoticeCancelled"
        reason: str

        def apply(self, aggregate: OutgoingPoliceNotice) -> None:
            aggregate.status = "cancelled"

    def __init__(
        self,
        handover_id: UUID,
        patient_id: UUID,
        move_id: UUID,
        residence: str,
        destination_region: str,
        destination_unit: str,
        risk_level: int,
        risk_class: str,
        notify_by: datetime,
        acknowledge_by: datetime,
    ) -> None:
        self.handover_id = handover_id
        self.patient_id = patient_id
        self.move_id = move_id
        self.residence = residence
        self.destination_region = destination_region
        self.destination_unit = destination_unit
        self.risk_level = risk_level
        self.risk_class = risk_class
        self.notify_by = notify_by
        self.acknowledge_by = acknowledge_by
        self.status = "sent"
        self.escalated = False
        self.acknowledged_at: datetime | None = None

    @classmethod
    def send(
        cls,
        now: datetime,
        *,
        handover_id: UUID,
        patient_id: UUID,
        move_id: UUID,
        residence: str,
        destination_region: str,
        destination_unit: str,
        risk_level: int,
        risk_class: str,
        notify_by: datetime,
        acknowledge_by: datetime,
    ) -> OutgoingPoliceNotice:
        """The notice of a level ≥ 3 patient's move to a linked region."""
        return cls._create(
            cls.Sent,
            id=police_notice_id(handover_id),
            timestamp=now,
            handover_id=handover_id,
            patient_id=patient_id,
            move_id=move_id,
            residence=residence,
            destination_region=destination_region,
            destination_unit=destination_unit,
            risk_level=risk_level,
            risk_class=risk_class,
            notify_by=notify_by,
            acknowledge_by=acknowledge_by,
        )

    def acknowledged(self, by_agency: str, at: datetime, sequence: int, now: datetime) -> bool:
        """The destination's acknowledgement arrived (recorded once, also after a cancellation
        or an escalation: it is what happened there)."""
        if self.acknowledged_at is not None:
            return False
        self.trigger_event(self.Acknowledged, timestamp=now, by_agency=by_agency, acknowledged_at=at, sequence=sequence)
        return True

    def check_deadline(self, now: datetime) -> bool:
        """No acknowledgement here by the deadline: escalate once (a late one is still recorded)."""
        if self.status != "sent" or self.escalated or now < self.acknowledge_by:
            return False
        self.trigger_event(self.Unacknowledged, timestamp=now)
        return True

    def cancel(self, reason: str, now: datetime) -> bool:
        """The handover was cancelled: False when already cancelled or acknowledged."""
        if self.status != "sent":
            return False
        self.trigger_event(self.Cancelled, timestamp=now, reason=reason)
        return True


class IncomingPoliceNotice(Aggregate):
    """The destination's side: received, then acknowledged by its station or cancelled."""

    TOPIC = "smd.IncomingPoliceNotice"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.IncomingPoliceNotice.Created"

    class Received(Aggregate.Created):
        """PoliceNoticeReceived: the origin's police tell this region's of a level ≥ 3 patient
        moving to ``destination_unit``; its station acknowledges by ``acknowledge_by``."""

        TOPIC = "smd.PoliceNoticeReceived"
        handover_id: UUID
        origin_region: str
        patient_id: UUID
        move_id: UUID
        destination_unit: str
        risk_level: int
        risk_class: str
        acknowledge_by: datetime
        sequence: int  # the origin's message that carried it

    class Acknowledged(Aggregate.Event):
        """PoliceNoticeAcknowledged (destination): the station completed its obligation; the
        acknowledgement is queued to the origin in the same transaction."""

        TOPIC = "smd.PoliceNoticeAcknowledged"
        by_agency: str
        obligation_id: UUID

        def apply(self, aggregate: IncomingPoliceNotice) -> None:
            aggregate.status = "acknowledged"
            aggregate.acknowledged_at = self.timestamp

    class Cancelled(Aggregate.Event):
        """The origin cancelled the handover (before or after this region answered it)."""

        TOPIC = "smd.IncomingPoliceNoticeCancelled"
        reason: str

        def apply(self, aggregate: IncomingPoliceNotice) -> None:
            aggregate.status = "cancelled"

    def __init__(
        self,
        handover_id: UUID,
        origin_region: str,
        patient_id: UUID,
        move_id: UUID,
        destination_unit: str,
        risk_level: int,
        risk_class: str,
        acknowledge_by: datetime,
        sequence: int,
    ) -> None:
        self.handover_id = handover_id
        self.origin_region = origin_region
        self.patient_id = patient_id
        self.move_id = move_id
        self.destination_unit = destination_unit
        self.risk_level = risk_level
        self.risk_class = risk_class
        self.acknowledge_by = acknowledge_by
        self.sequence = sequence
        self.status = "received"
        self.acknowledged_at: datetime | None = None

    @classmethod
    def receive(
        cls,
        now: datetime,
        *,
        handover_id: UUID,
        origin_region: str,
        patient_id: UUID,
        move_id: UUID,
        destination_unit: str,
        risk_level: int,
        risk_class: str,
        acknowledge_by: datetime,
        sequence: int,
    ) -> IncomingPoliceNotice:
        """Record the origin's notice."""
        return cls._create(
            cls.Received,
            id=police_notice_id(handover_id),
            timestamp=now,
            handover_id=handover_id,
            origin_region=origin_region,
            patient_id=patient_id,
            move_id=move_id,
            destination_unit=destination_unit,
            risk_level=risk_level,
            risk_class=risk_class,
            acknowledge_by=acknowledge_by,
            sequence=sequence,
        )

    def acknowledge(self, by_agency: str, obligation_id: UUID, now: datetime) -> bool:
        """The station acknowledged (once; not after a cancellation)."""
        if self.status != "received":
            return False
        self.trigger_event(self.Acknowledged, timestamp=now, by_agency=by_agency, obligation_id=obligation_id)
        return True

    def cancel(self, reason: str, now: datetime) -> bool:
        """The origin cancelled the handover: False when already acknowledged or cancelled."""
        if self.status != "received":
            return False
        self.trigger_event(self.Cancelled, timestamp=now, reason=reason)
        return True
