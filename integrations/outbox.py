"""Outbox: obligations and notices from the global log, published to their assignee over NATS.

Follows the case record's notification log from a tracked position (the process recorder's
tracking table, name ``outbox``). Each ``ObligationAssigned`` becomes a CloudEvents 1.0 message
on ``<root>.<region>.out.<assignee>.obligation.assigned`` (``.notice.assigned`` for a notice)
with ``Nats-Msg-Id`` = the CloudEvents ``id``, derived from (originator id, version): the same
stored event always gets the same id.

At least once: the batch is published and its acks awaited, *then* the position is saved. A
crash in between re-publishes the batch on restart; JetStream drops the copies inside the OUT
stream's duplicate window, and receivers dedup on ``id`` for anything older. Run one outbox per
region (in ``smd serve`` or ``smd outbox``, not both: a second one only publishes duplicates).

Only the assignee receives a message (the access matrix's "may read" for outbound messages),
and only fields it may see: ids, rule, action, deadline, risk level. Never a name, ID number,
phone or address.

Every message is a read of a patient by its recipient: before a batch is published, one
access-log row per recipient and message type is committed (agency, the patient ids, the names
of the fields, purpose ``assigned-duty``, key id ``outbox``, endpoint ``NATS <type>``). A batch
published again after a crash is recorded again: the log says at least what was sent
(docs/decisions/024).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import msgspec
import nats.errors
import structlog
from eventsourcing.persistence import IntegrityError, Notification, Tracking
from nats.aio.client import Client
from nats.js import JetStreamContext

from core.access_log import AccessEntry, AccessLog
from core.case_record import CaseRecord
from core.followers.engine import TRANSIENT, AlreadyApplied, Follower
from core.followers.parking import MemoryParkingStore, ParkingStore
from core.restrictions import restricted_among
from domain.obligation import Obligation
from domain.risk_escalation import RiskEscalation
from integrations.streams import Names

log = structlog.get_logger("smd.outbox")

#: Tracking name of the outbox's position in the case record's tracking table.
TRACKING_NAME = "outbox"
#: Lifecycle changes told to the owner: topic → what happened (the message type's verb).
CHANGES = {
    Obligation.Completed.TOPIC: "completed",
    Obligation.Cancelled.TOPIC: "cancelled",
    Obligation.Overdue.TOPIC: "overdue",
}
#: A patient's risk worsened (derived): told to the agencies that may see risk levels.
RISK_ESCALATED = RiskEscalation.Escalated.TOPIC
#: Topics the outbox publishes (later: handovers).
TOPICS = (Obligation.Assigned.TOPIC, *CHANGES, RISK_ESCALATED)
#: Namespace of outbound event ids; never change it (receivers dedup on these ids).
EVENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:event")
#: Test-only fault injection: SIGKILL after publishing a batch, before saving the position.
FAULT_KILL_AFTER_PUBLISH = "outbox-kill-after-publish"
PUBLISH_TIMEOUT = 10.0
#: The longest pause between tries while the store or NATS is down (1 s, 2 s, 4 s … this).
OUTAGE_PAUSE_MAX = 10.0

TYPES = {"obligation": "cn.smd.obligation.assigned.v1", "notice": "cn.smd.notice.assigned.v1"}


def event_id(originator_id: UUID, originator_version: int) -> UUID:
    """The stable id of a stored event: same event, same id, on every publish."""
    return uuid5(EVENT_NAMESPACE, f"{originator_id}:{originator_version}")


class AssignedData(msgspec.Struct, kw_only=True):
    """What the assignee may see of an obligation or notice (no personal data)."""

    obligation_id: UUID
    kind: str
    rule: str
    action: str
    assignee: str
    patient_id: UUID  # a pseudonymous id; the person's details stay behind the API's checks
    episode_key: str
    residence: str  # org unit id
    due_at: datetime | None
    risk_level: int | None
    trigger_message_id: str
    status: str = "assigned"
    reason: str | None = None  # why it was cancelled
    fulfilled_by: str | None = None  # the message id of the fact that completed it
    escalated_to: str | None = None  # R15: the governance center told of the lateness


class OutboundEvent(msgspec.Struct, kw_only=True):
    """A CloudEvents 1.0 message in structured JSON mode."""

    specversion: str = "1.0"
    id: UUID
    type: str
    source: str
    subject: str
    time: datetime
    datacontenttype: str = "application/json"
    region: str
    data: AssignedData


_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish, and the log position it came from."""

    subject: str
    payload: bytes
    msg_id: str
    position: int
    #: for the access log: who receives it, about which patient, the names of what it tells
    recipient: str = ""
    type: str = ""
    patient_id: UUID | None = None
    fields: tuple[str, ...] = ()


#: the key id of the access-log rows of outbound messages (no API key: the service pushes them)
OUTBOX_KEY_ID = "outbox"


def _obligation_fields(risk_level: int | None) -> tuple[str, ...]:
    return ("obligations", "residence", "risk") if risk_level is not None else ("obligations", "residence")


def access_entries(messages: list[Outgoing], at: datetime) -> list[AccessEntry]:
    """The access-log rows of a batch: one per recipient and message type, with its patients."""
    groups: dict[tuple[str, str], list[Outgoing]] = {}
    for o in messages:
        groups.setdefault((o.recipient, o.type), []).append(o)
    return [
        AccessEntry(
            at=at,
            agency_id=recipient,
            key_id=OUTBOX_KEY_ID,
            staff_id=None,
            purpose="assigned-duty",
            endpoint=f"NATS {type_}",
            status=200,
            patient_ids=tuple(dict.fromkeys(o.patient_id for o in group if o.patient_id is not None)),
            fields=tuple(dict.fromkeys(f for o in group for f in o.fields)),
            correlation_id=group[0].msg_id,
        )
        for (recipient, type_), group in groups.items()
    ]


def to_outgoing(event: Any, position: int, names: Names) -> Outgoing:
    """The message for one ``ObligationAssigned`` event."""
    eid = event_id(event.originator_id, event.originator_version)
    message = OutboundEvent(
        id=eid,
        type=TYPES[event.kind],
        source=f"smd/{names.region}",
        subject=str(event.originator_id),
        time=event.timestamp,
        region=names.region,
        data=AssignedData(
            obligation_id=event.originator_id,
            kind=event.kind,
            rule=event.rule,
            action=event.action,
            assignee=event.assignee,
            patient_id=event.patient_id,
            episode_key=event.episode_key,
            residence=event.residence,
            due_at=event.due_at,
            risk_level=event.risk_level,
            trigger_message_id=event.trigger_message_id,
        ),
    )
    return Outgoing(
        subject=names.out(event.assignee, event.kind, "assigned"),
        payload=_encoder.encode(message),
        msg_id=str(eid),
        position=position,
        recipient=event.assignee,
        type=message.type,
        patient_id=event.patient_id,
        fields=_obligation_fields(event.risk_level),
    )


def changes_to_outgoing(event: Any, obligation: Any, position: int, names: Names) -> list[Outgoing]:
    """Messages for a lifecycle change: to the owner; an overdue one also to the governance
    center it was escalated to (R15)."""
    what = CHANGES[type(event).TOPIC]
    eid = event_id(event.originator_id, event.originator_version)
    data = AssignedData(
        obligation_id=obligation.id,
        kind=obligation.kind,
        rule=obligation.rule,
        action=obligation.action,
        assignee=obligation.assignee,
        patient_id=obligation.patient_id,
        episode_key=obligation.episode_key,
        residence=obligation.residence,
        due_at=obligation.due_at,
        risk_level=obligation.risk_level,
        trigger_message_id=obligation.trigger_message_id,
        status=obligation.status,
        reason=getattr(event, "reason", None),
        fulfilled_by=getattr(event, "fulfilled_by", None),
        escalated_to=getattr(event, "escalated_to", None),
    )
    recipients = [(obligation.assignee, what)]
    if what == "overdue" and data.escalated_to:
        recipients.append((data.escalated_to, "escalated"))
    out = []
    for recipient, verb in recipients:
        # one event id per recipient: receivers dedup per message, not per stored event
        mid = eid if recipient == obligation.assignee else uuid5(EVENT_NAMESPACE, f"{eid}:{recipient}")
        message = OutboundEvent(
            id=mid,
            type=f"cn.smd.{obligation.kind}.{verb}.v1",
            source=f"smd/{names.region}",
            subject=str(obligation.id),
            time=event.timestamp,
            region=names.region,
            data=data,
        )
        out.append(
            Outgoing(
                subject=names.out(recipient, obligation.kind, verb),
                payload=_encoder.encode(message),
                msg_id=str(mid),
                position=position,
                recipient=recipient,
                type=message.type,
                patient_id=obligation.patient_id,
                fields=_obligation_fields(obligation.risk_level),
            )
        )
    return out


class RiskEscalatedData(msgspec.Struct, kw_only=True):
    """What an agency that may see risk levels is told of an escalation (no personal data)."""

    patient_id: UUID
    residence: str
    occurred_at: datetime
    level_before: int
    level_after: int
    class_before: str
    class_after: str
    assessment_message_id: str


class OutboundRiskEvent(msgspec.Struct, kw_only=True):
    """A CloudEvents 1.0 message telling of a risk escalation."""

    specversion: str = "1.0"
    id: UUID
    type: str = "cn.smd.patient.risk-escalated.v1"
    source: str
    subject: str
    time: datetime
    datacontenttype: str = "application/json"
    region: str
    data: RiskEscalatedData


def escalation_to_outgoing(event: Any, position: int, names: Names) -> list[Outgoing]:
    """One message per agency that may see risk levels (as decided with the escalation)."""
    eid = event_id(event.originator_id, event.originator_version)
    data = RiskEscalatedData(
        patient_id=event.patient_id,
        residence=event.residence,
        occurred_at=event.occurred_at,
        level_before=event.level_before,
        level_after=event.level_after,
        class_before=event.class_before,
        class_after=event.class_after,
        assessment_message_id=event.assessment_key,
    )
    out = []
    for recipient in event.recipients:
        mid = uuid5(EVENT_NAMESPACE, f"{eid}:{recipient}")  # receivers dedup per message
        message = OutboundRiskEvent(
            id=mid,
            source=f"smd/{names.region}",
            subject=str(event.patient_id),
            time=event.timestamp,
            region=names.region,
            data=data,
        )
        out.append(
            Outgoing(
                subject=names.out(recipient, "risk", "escalated"),
                payload=_encoder.encode(message),
                msg_id=str(mid),
                position=position,
                recipient=recipient,
                type=message.type,
                patient_id=event.patient_id,
                fields=("residence", "risk"),
            )
        )
    return out


@dataclass
class _Messages:
    """The outbox's unit of work: messages of one batch, and whether they went out."""

    messages: list[Outgoing]
    published: bool = False


class OutboxHandler:
    """The follower engine's handler for the outbox: an event → its outgoing messages; the
    commit saves the position once they are published (at least once)."""

    topics = TOPICS

    def __init__(self, case_record: CaseRecord, names: Names, access_log: AccessLog | None = None) -> None:
        self.case_record = case_record
        self.names = names
        self.access_log = access_log  # None only where nothing is published (status, tests of the mapping)
        #: set by a command that retries parked events outside the service (publishes, waits)
        self.sync_publish: Callable[[list[Outgoing]], None] | None = None

    def position_of(self, tracking_name: str) -> int:
        return self.case_record.recorder.max_tracking_id(tracking_name) or 0

    def begin(self) -> _Messages:
        return _Messages([])

    def apply(self, work: _Messages, n: Notification) -> None:
        event = self.case_record.mapper.to_domain_event(n)
        if n.topic == Obligation.Assigned.TOPIC:
            work.messages.append(to_outgoing(event, n.id, self.names))
        elif n.topic == RISK_ESCALATED:
            work.messages += escalation_to_outgoing(event, n.id, self.names)
        else:  # the obligation as it stood after this change
            obligation = self.case_record.repository.get(n.originator_id, version=n.originator_version)
            work.messages += changes_to_outgoing(event, obligation, n.id, self.names)

    def record(self, messages: list[Outgoing]) -> None:
        """Commit the batch's access-log rows (before it is published: nothing leaves unrecorded)."""
        if self.access_log is None:
            raise RuntimeError("the outbox records every message in the access log; no access log was given")
        self.access_log.append_many(access_entries(messages, self.case_record.clock()))  # one commit

    def commit(self, work: _Messages, tracking_name: str, position: int, *, exclusive: bool = False) -> None:
        if work.messages and not work.published:
            # nothing goes out about a restricted patient (one read per batch)
            hidden = restricted_among(self.case_record, {m.patient_id for m in work.messages if m.patient_id})
            work.messages = [m for m in work.messages if m.patient_id not in hidden]
        if work.messages and not work.published:
            if self.sync_publish is None:
                raise RuntimeError("the outbox publishes before it commits; no NATS connection was given")
            self.record(work.messages)
            self.sync_publish(work.messages)
            work.published = True
        if exclusive and self.case_record.recorder.max_tracking_id(tracking_name):
            raise AlreadyApplied(tracking_name)
        try:
            self.case_record.recorder.insert_tracking(Tracking(tracking_name, position))
        except IntegrityError:
            log.warning("outbox position moved by another outbox", position=position)


def outbox_follower(
    case_record: CaseRecord,
    names: Names,
    parking: ParkingStore,
    batch: int = 100,
    access_log: AccessLog | None = None,
) -> Follower:
    """The outbox's follower (its position is the tracking name ``outbox``)."""
    return Follower(TRACKING_NAME, case_record, OutboxHandler(case_record, names, access_log), parking, batch=batch)


class Outbox:
    """Publishes new outbound events from the log, then moves its tracked position."""

    def __init__(
        self,
        case_record: CaseRecord,
        nc: Client,
        names: Names,
        *,
        batch: int = 100,
        poll_interval: float = 0.25,
        parking: ParkingStore | None = None,
        fault: str = "",
        access_log: AccessLog | None = None,
        leases: Any = None,
    ) -> None:
        self.case_record = case_record
        #: core.followers.leases: publish only while this process holds the outbox's lease
        self.leases = leases
        self.js: JetStreamContext = nc.jetstream()
        self.names = names
        self.batch = batch
        self.poll_interval = poll_interval
        self.fault = fault  # SMD_FAULT (test only)
        self.follower = outbox_follower(case_record, names, parking or MemoryParkingStore(), batch, access_log)
        self.handler: OutboxHandler = self.follower.handler

    @property
    def position(self) -> int:
        """The saved position: every notification up to it has been dealt with."""
        return self.follower.position

    async def step(self) -> int:
        """Publish what is new and save the position; returns how many were published (none
        while another process holds the outbox's lease: this one stands by)."""
        if self.leases is not None and not await asyncio.to_thread(self.leases.held, self.follower.name):
            return 0
        prepared = await asyncio.to_thread(self.follower.prepare, self.batch)
        if prepared is None:
            return 0
        out: list[Outgoing] = prepared.work.messages
        if out:
            await asyncio.to_thread(self.handler.record, out)  # committed before the first byte leaves
            await self.publish(out)
            prepared.work.published = True
            if self.fault == FAULT_KILL_AFTER_PUBLISH:
                os.kill(os.getpid(), signal.SIGKILL)  # test only: published, position not saved
        await asyncio.to_thread(self.follower.commit, prepared)
        return len(out)

    async def publish(self, out: list[Outgoing]) -> None:
        """Publish and wait for every ack (raises on timeout: the position is not saved)."""
        futures = [
            await self.js.publish_async(
                o.subject,
                o.payload,
                headers={"Nats-Msg-Id": o.msg_id},
                stream=self.names.out_stream,
            )
            for o in out
        ]
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=PUBLISH_TIMEOUT)
        for o, ack in zip(out, acks, strict=True):
            log.info("outbox published", event_id=o.msg_id, position=o.position, duplicate=bool(ack.duplicate))

    async def run(self, stop: asyncio.Event) -> None:
        """Step until ``stop`` is set; idle steps wait ``poll_interval``. The store or NATS failing
        is an outage, not a bug: logged as a warning and tried again after a growing pause (the
        position did not move, so nothing is skipped)."""
        pause = 0.0
        while not stop.is_set():
            try:
                published = await self.step()
            except (*TRANSIENT, nats.errors.Error) as e:
                pause = min(OUTAGE_PAUSE_MAX, max(1.0, pause * 2))
                log.warning("outbox cannot go on for now; trying again", error=type(e).__name__, pause=pause)
                published = 0
            else:
                pause = 0.0
            if not published:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=pause or self.poll_interval)
                except TimeoutError:
                    pass
