"""Transfer of management between two regions (R8): the application side of ``domain.handover``.

One ``Handovers`` per deployment, over its own case record. What it does, each in one
transaction of its own store:

- ``follow_moves``: the bridge, a follower of the log: a ``MoveReported`` to another region opens
  an ``OutgoingHandover`` and queues the signed request (personal fields sealed to the
  destination), with the follower's tracked position;
- ``receive``: a message from the peer is verified (signature, addressee, sealed part, then its
  sequence in the inbox) and applied with the inbox's new position, or refused and kept with its
  reason;
- ``answer`` (destination's health center) and ``cancel`` (origin) are the owners' commands;
- ``check_deadlines``: no answer by the deadline escalates, on each side by its own clock;
- ``follow_feed``: after an acceptance from a region it feeds (dual management, Q-5), the facts
  that region may see are sent to it as they are recorded here (``domain.dual_management``);
- ``erasure_notices`` (called by ``core.erasure`` in the erasure's transaction) and the
  ``erasure`` message: an erasure here is told to the other region of each of the patient's
  handovers, which erases what it holds where its law keeps nothing and answers
  (``domain.erasure_notice``, decision 049).

Acceptance registers the patient in the destination under the same patient id through the
ordinary registration (its own blind indexes, its own data key); the origin, when its log holds
the acceptance first, records the answer on the patient's file and deregisters it as moved out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Tracking

from core import handover_police, identity
from core.case_record import CaseRecord, ConcurrentWriteConflict, backoff_seconds
from core.contract import InboundEvent, PatientRegisteredV1, PatientRegisteredV2
from core.erasure import erased_subjects, notice_decision
from core.handover_messages import Refused, Verified, build, digest, verify
from core.region_keys import CrossRegionKeys
from core.registry import REGION_TZ, RegistryView
from core.restrictions import is_restricted
from domain.dual_management import (
    EPISODE_TOPICS,
    FED_TOPICS,
    DualManagement,
    FedFact,
    dual_management_id,
    fed,
    feeds,
)
from domain.erasure_notice import CrossRegionErasure, NoticeDecision, erasure_notice_id
from domain.handover import (
    CrossRegionInbox,
    CrossRegionOutbox,
    ErasedHere,
    HandoverNotFound,
    IncomingHandover,
    MessageKind,
    OutgoingHandover,
    Refusal,
    inbox_id,
    outbox_id,
    sequence_refusal,
)
from domain.lost import LostEpisode
from domain.patient import Patient
from domain.patient_file import MoveReported
from domain.personal import PersonalDetails
from domain.registry import AgencyKind
from domain.restriction import PatientRestricted, Restriction, SubjectKind, restriction_id
from domain.suspected_case import SuspectedCase
from domain.values import Provenance

MOVE_TOPIC = MoveReported.TOPIC
TRACKING = "handovers"
FEED_TRACKING = "handover-feed"
#: What the feed follows: the facts it sends, and the destination's answers and voidings (which
#: start and end a patient's feed), in log order.
FEED_FOLLOWS = (*FED_TOPICS, IncomingHandover.Answered.TOPIC, IncomingHandover.Voided.TOPIC)
#: how often the service's background work looks for passed deadlines, unless told otherwise
#: (SMD_HANDOVER_CHECK_SECONDS): each check reads every open handover, and deadlines are days away
DEADLINE_CHECK_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ErasedMessages:
    """What the cross-region streams must no longer hold (``integrations.crossregion.erasure``):
    every message of these handovers. Only what is safe to delete now is: a received message once
    applied here (its sequence at most ``applied_from[peer]``: a gap would stop the inbox), a sent
    one once the peer said it applied it (at most ``acked_by[peer]``); the rest at a later run."""

    handover_ids: frozenset[UUID]
    applied_from: dict[str, int]
    acked_by: dict[str, int]


class Handovers:
    """This region's handovers: opened from moves, answered, cancelled, carried by messages."""

    def __init__(
        self,
        case_record: CaseRecord,
        keys: CrossRegionKeys,
        registry: RegistryView,
        answer_within: timedelta,
        clock: Callable[[], datetime],
        dual_management_regions: Collection[str] = (),
        check_every: float = DEADLINE_CHECK_SECONDS,
    ) -> None:
        self.case_record = case_record
        self.keys = keys
        self.registry = registry
        self.answer_within = answer_within
        self.clock = clock
        #: regions outside this city fed by agreement (regions of one city always are)
        self.dual_management_regions = frozenset(dual_management_regions)
        self.check_every = check_every  # seconds between two deadline checks
        self._next_deadline_check = 0.0

    #: the follower's name (its tracking name, its lease on PostgreSQL)
    name = TRACKING

    def run_once(self) -> int:
        """One round of the service's background work: open handovers for new moves, and (at
        most every ``check_every`` seconds) escalate the handovers whose deadline passed.
        Returns how much it did (0: nothing to do)."""
        busy = self.follow_moves()
        busy += self.follow_feed()
        busy += self.follow_police()
        if time.monotonic() >= self._next_deadline_check:
            self._next_deadline_check = time.monotonic() + self.check_every
            busy += len(self.check_deadlines())
            busy += len(self.check_police_deadlines())
        return busy

    @property
    def region(self) -> str:
        return self.keys.region

    # -- the bridge: moves open handovers ---------------------------------------------------------

    def follow_moves(self, limit: int = 100) -> int:
        """Open a handover for each move to another region recorded since the last call; returns
        how many moves it read (0: caught up). The handover, its request and the position are
        stored together, so a restart neither loses nor repeats one."""
        start = (self.case_record.recorder.max_tracking_id(TRACKING) or 0) + 1
        notifications = self.case_record.recorder.select_notifications(start, limit, topics=[MOVE_TOPIC])
        for n in notifications:
            move: Any = self.case_record.mapper.to_domain_event(n)
            self._retry(lambda n=n, move=move: self._open(n.originator_id, move, Tracking(TRACKING, n.id)))
        return len(notifications)

    def _open(self, patient_id: UUID, move: Any, tracking: Tracking) -> None:
        aggregates: list[Any] = []
        if move.destination_region != self.region and move.destination_region in self.keys.peers:
            patient = self.case_record.patient(patient_id)
            now = self.clock()
            handover = OutgoingHandover.open(
                self.region,
                now,
                patient_id=patient_id,
                move_id=move.move_id,
                destination_region=move.destination_region,
                destination_unit=move.destination_unit or "",
                moving_on=move.moving_on,
                deadline=now + self.answer_within,
                opened_by=move.agency_id,
                residence=patient.residence,
            )
            if not self._exists(handover.id):
                body = {
                    "patient_id": str(patient_id),
                    "move_id": str(move.move_id),
                    "destination_unit": handover.destination_unit,
                    "moving_on": move.moving_on.isoformat(),
                    "deadline": handover.deadline.isoformat(),
                }
                outbox = self._queue(handover.id, move.destination_region, MessageKind.REQUEST, body, _shared(patient))
                aggregates = [handover, outbox]
        processing = ProcessingEvent[UUID](tracking)
        processing.collect_events(*aggregates)
        self.case_record._notify(self.case_record._record(processing))

    # -- the owners' commands ---------------------------------------------------------------------

    def cancel(self, hid: UUID, by_agency: str, reason: str) -> None:
        """The origin withdraws its handover (refused once anything decisive is recorded)."""

        def attempt() -> None:
            handover = self._load(hid, OutgoingHandover)
            handover.cancel(by_agency, reason, self.clock())
            # the reason is free text: sealed to the destination, never in the signed body's clear
            outbox = self._queue(hid, handover.destination_region, MessageKind.CANCEL, {}, {"reason": reason})
            self.case_record.save(handover, outbox)

        self._retry(attempt)

    def answer(self, hid: UUID, accepted: bool, by_agency: str, staff_id: str | None = None) -> None:
        """The destination's health center accepts or rejects. Acceptance registers the patient
        here first (idempotent: a retry after a crash registers nothing twice)."""
        incoming = self._load(hid, IncomingHandover)
        if accepted and is_restricted(self.case_record, incoming.patient_id):
            raise PatientRestricted(incoming.patient_id)  # erased by the origin's notice, or restricted here
        if accepted and incoming.status == "requested":
            if self._exists(incoming.patient_id):
                self._retry(lambda: self._reregister(incoming))  # a move back (decision 043)
            else:
                self._register(incoming)

        def attempt() -> None:
            handover = self._load(hid, IncomingHandover)
            handover.answer(accepted, by_agency, staff_id, self.clock())
            kind = MessageKind.ACCEPT if accepted else MessageKind.REJECT
            outbox = self._queue(hid, handover.origin_region, kind, {"by_agency": by_agency})
            self.case_record.save(handover, outbox)

        self._retry(attempt)

    def check_deadlines(self) -> list[UUID]:
        """Escalate each handover unanswered by its deadline (once); returns their ids."""
        now = self.clock()
        escalated = []
        sides = (
            (OutgoingHandover.Opened.TOPIC, OutgoingHandover),
            (IncomingHandover.Requested.TOPIC, IncomingHandover),
        )
        for topic, cls in sides:
            for hid in self.case_record.originators_of(topic):
                handover = self._load(hid, cls)
                if handover.check_deadline(now):
                    self.case_record.save(handover)
                    escalated.append(hid)
        return escalated

    # -- the police notice (R7 across regions, ``core.handover_police``) ---------------------------

    def follow_police(self, limit: int = 100) -> int:
        """Send the police notice of each new handover of a level ≥ 3 patient, cancel notices with
        their handovers, and send back this region's stations' acknowledgements; returns how many
        notifications it read (0: caught up)."""
        return handover_police.follow(self, limit)

    def check_police_deadlines(self) -> list[UUID]:
        """Escalate each police notice sent from here and unacknowledged by its deadline (once)."""
        return handover_police.check_deadlines(self)

    # -- the dual-management feed --------------------------------------------------------------------

    def follow_feed(self, limit: int = 100) -> int:
        """Send the tracking region each fact it may see, recorded since the last call, of the
        patients this region took over from it; returns how many notifications it read (0:
        caught up). Each message, the feed's record and the position are stored together."""
        start = (self.case_record.recorder.max_tracking_id(FEED_TRACKING) or 0) + 1
        notifications = self.case_record.recorder.select_notifications(start, limit, topics=list(FEED_FOLLOWS))
        for n in notifications:
            event: Any = self.case_record.mapper.to_domain_event(n)
            self._retry(lambda n=n, event=event: self._feed(n, event, Tracking(FEED_TRACKING, n.id)))
        return len(notifications)

    def _feed(self, n: Any, event: Any, tracking: Tracking) -> None:
        now = self.clock()
        aggregates: list[Any] = []
        if isinstance(event, IncomingHandover.Answered | IncomingHandover.Voided):
            incoming = self._load(n.originator_id, IncomingHandover)
            record = self._dual(incoming.patient_id, create=True)
            if isinstance(event, IncomingHandover.Answered):
                if event.accepted and feeds(self.region, incoming.origin_region, self.dual_management_regions):
                    record.start(incoming.origin_region, incoming.id, now)
            elif record.handover_id == incoming.id:
                record.end("handover voided", now)
            aggregates = [record]
        else:
            patient_id = self._patient_of(n, event)
            record = self._dual(patient_id) if patient_id is not None else None
            item = fed(n.topic, event)
            if record is not None and record.tracking_region is not None and item is not None:
                kind, fields = item
                body = {
                    "patient_id": str(patient_id),
                    "fact": str(kind),
                    "occurred_at": _time_of(event).isoformat(),
                    "recorded_at": event.timestamp.isoformat(),
                }
                personal = {
                    "fields": fields,
                    "agency": getattr(event, "agency_id", None) or "the service",
                    "staff": getattr(event, "staff_id", None),
                }
                assert record.handover_id is not None
                outbox = self._queue(record.handover_id, record.tracking_region, MessageKind.FEED, body, personal)
                if kind == FedFact.DEREGISTERED:
                    record.end("deregistered here", now)
                aggregates = [outbox, record]
        processing = ProcessingEvent[UUID](tracking)
        processing.collect_events(*aggregates)
        self.case_record._notify(self.case_record._record(processing))

    def _dual(self, patient_id: UUID, create: bool = False) -> DualManagement | None:
        try:
            return self.case_record.repository.get(dual_management_id(patient_id))
        except AggregateNotFoundError:
            return DualManagement.open(patient_id, self.clock()) if create else None

    def _patient_of(self, n: Any, event: Any) -> UUID | None:
        if n.topic not in EPISODE_TOPICS:
            return n.originator_id
        episode = self.case_record.repository.get(n.originator_id)
        return episode.patient_id if isinstance(episode, LostEpisode) else None

    def _on_feed(self, verified: Verified, now: datetime) -> list[Any] | None:
        m, body = verified.message, verified.message.body
        try:
            outgoing = self._load(m.handover_id, OutgoingHandover)
        except HandoverNotFound:
            return None
        if outgoing.status != "accepted" or str(outgoing.patient_id) != body.get("patient_id"):
            return None  # only a region this one handed the patient over to reports about them
        personal = verified.personal or {}
        patient = self.case_record.patient(outgoing.patient_id)
        patient.record_reported_by_region(
            now,
            region=m.sender,
            handover_id=outgoing.id,
            message_id=f"xr:{m.sender}:{m.sequence}",
            fact=str(FedFact(body["fact"])),
            occurred_at=datetime.fromisoformat(body["occurred_at"]),
            reported_by=str(personal.get("agency") or ""),
            reported_staff=personal.get("staff"),
            details=msgspec.json.encode(personal.get("fields") or {}).decode(),
        )
        return [patient]

    # -- erasure notices ------------------------------------------------------------------------------

    def erasure_notices(self, patient_id: UUID, now: datetime, exclude: str | None = None) -> list[Any]:
        """The notices (records and outboxes) telling each linked region of a handover about this
        patient that it was erased here, but ``exclude`` (the region whose notice caused it) and a
        region told already. The caller saves them with the erasure: none is lost, none sent twice."""
        by_peer: dict[str, list[UUID]] = {}
        for hid, (pid, peer) in self._handover_index().items():
            if pid == patient_id and peer != exclude and peer in self.keys.peers:
                by_peer.setdefault(peer, []).append(hid)
        out: list[Any] = []
        for peer, hids in sorted(by_peer.items()):
            nid = erasure_notice_id(self.region, peer, patient_id)
            if self._exists(nid):
                continue
            body = {
                "patient_id": str(patient_id),
                "handover_ids": sorted(str(h) for h in hids),
                "erased_at": now.isoformat(),
            }
            outbox = self._queue(nid, peer, MessageKind.ERASURE, body)
            out += [CrossRegionErasure.send(self.region, peer, patient_id, hids, outbox.last_sequence, now), outbox]
        return out

    def _on_erasure(self, verified: Verified, now: datetime) -> list[Any] | None:
        m, body = verified.message, verified.message.body
        if "answer" in body:  # the peer's answer to a notice of ours
            try:
                notice = self.case_record.repository.get(m.handover_id)
            except AggregateNotFoundError:
                return None
            if not isinstance(notice, CrossRegionErasure) or (notice.sender, notice.receiver) != (
                self.region,
                m.sender,
            ):
                return None
            notice.answered(str(body["answer"]), body.get("reason"), m.sequence, now)
            return [notice]
        patient_id = UUID(str(body["patient_id"]))
        if m.handover_id != erasure_notice_id(m.sender, self.region, patient_id):
            return None
        # a region erases here only what was handed over between the two of us
        hids = [hid for hid, (pid, peer) in self._handover_index().items() if pid == patient_id and peer == m.sender]
        if not hids:
            return None
        if self._exists(m.handover_id):
            return []
        decision, reason = notice_decision(self.case_record, patient_id)
        record = CrossRegionErasure.receive(m.sender, self.region, patient_id, hids, m.sequence, decision, reason, now)
        changed: list[Any] = [record]
        if decision == NoticeDecision.ERASE:
            restriction = self._restriction(patient_id, now)
            restriction.erase_by_notice(record.id, m.sender, now)
            changed.append(restriction)
        answer = {"patient_id": str(patient_id), "answer": str(decision), "reason": reason}
        changed.append(self._queue(m.handover_id, m.sender, MessageKind.ERASURE, answer))
        return changed

    def _restriction(self, subject_id: UUID, now: datetime) -> Restriction:
        try:
            return self.case_record.repository.get(restriction_id(subject_id))  # type: ignore[no-any-return]
        except AggregateNotFoundError:
            pass
        try:
            suspected = isinstance(self.case_record.repository.get(subject_id), SuspectedCase)
        except AggregateNotFoundError:
            suspected = False
        kind = SubjectKind.SUSPECTED_CASE if suspected else SubjectKind.PATIENT
        return Restriction.open(subject_id, kind, now)

    def erasure_notices_received(self) -> list[CrossRegionErasure]:
        """Every linked region's erasure notice recorded here, with what was decided, oldest first."""
        found = self.case_record.load_many(self.case_record.originators_of(CrossRegionErasure.Received.TOPIC))
        notices = [n for n in found.values() if isinstance(n, CrossRegionErasure)]
        return sorted(notices, key=lambda n: (n.created_on, str(n.id)))

    def erased_messages(self) -> ErasedMessages:
        """Which messages the cross-region streams must no longer hold: those of every handover
        about a patient erased here or named in a linked region's notice, whatever was decided
        (the streams are transport: what this region keeps of the patient is in its store)."""
        subjects = set(erased_subjects(self.case_record)) | {n.patient_id for n in self.erasure_notices_received()}
        ids = frozenset(hid for hid, (pid, _) in self._handover_index().items() if pid in subjects)
        peers = sorted(self.keys.peers)
        return ErasedMessages(
            ids, {p: self.applied_from(p) for p in peers}, {p: self._inbox(p).peer_acked for p in peers}
        )

    def handovers_about(self, patient_id: UUID) -> list[UUID]:
        """The handovers on this side about this patient (either direction)."""
        return sorted((hid for hid, (pid, _) in self._handover_index().items() if pid == patient_id), key=str)

    def _handover_index(self) -> dict[UUID, tuple[UUID, str]]:
        """Every handover on this side: its patient and the other region."""
        ids = self.case_record.originators_of(OutgoingHandover.Opened.TOPIC)
        ids |= self.case_record.originators_of(IncomingHandover.Requested.TOPIC)
        index: dict[UUID, tuple[UUID, str]] = {}
        for hid, h in self.case_record.load_many(ids).items():  # never snapshotted: one query
            if isinstance(h, OutgoingHandover):
                index[hid] = (h.patient_id, h.destination_region)
            elif isinstance(h, IncomingHandover):
                index[hid] = (h.patient_id, h.origin_region)
        return index

    # -- messages ---------------------------------------------------------------------------------

    def receive(self, wire: str | bytes) -> str:
        """Verify and apply one message from a peer: "applied", or the refusal's reason (the
        message kept with it, except when its sender cannot be told)."""
        try:
            verified = verify(self.keys, wire)
        except Refused as refused:
            self._keep_refused(refused, wire)
            return refused.reason.value
        outcome: list[str] = []
        self._retry(lambda: outcome.append(self._apply(verified, wire)))
        return outcome[-1]

    def _apply(self, verified: Verified, wire: str | bytes) -> str:
        m = verified.message
        inbox = self._inbox(m.sender)
        refusal = sequence_refusal(inbox.last_applied, m.sequence)
        if refusal is not None:
            if inbox.refuse(refusal, m.sequence, digest(wire), _text(wire), self.clock()):
                self.case_record.save(inbox)
            return refusal.value
        now = self.clock()
        changed: list[Any] = []
        match m.kind:
            case MessageKind.REQUEST:
                changed = self._on_request(verified, now)
            case MessageKind.CANCEL:
                changed = self._on_cancel(m.handover_id, m.sequence, now)
            case MessageKind.ACCEPT | MessageKind.REJECT:
                changed = self._on_answer(m.handover_id, m.kind == MessageKind.ACCEPT, m.sequence, m.sender, now)
            case MessageKind.FEED:
                changed = self._on_feed(verified, now)
            case MessageKind.ERASURE:
                changed = self._on_erasure(verified, now)
            case MessageKind.POLICE_NOTICE | MessageKind.POLICE_ACK:
                changed = handover_police.on_message(self, verified, now)
        if changed is None:  # about a handover this region does not hold
            if inbox.refuse(Refusal.UNKNOWN_HANDOVER, m.sequence, digest(wire), _text(wire), now):
                self.case_record.save(inbox)
            return Refusal.UNKNOWN_HANDOVER.value
        inbox.applied(m.sequence, m.acked, m.handover_id, m.kind, digest(wire), now)
        self.case_record.save(inbox, *changed)
        return "applied"

    def _on_request(self, verified: Verified, now: datetime) -> list[Any]:
        m, body = verified.message, verified.message.body
        if self._exists(m.handover_id):
            return []  # the same handover requested again: nothing new
        unit = body["destination_unit"]
        assignee = self.registry.responsible(unit, AgencyKind.HEALTH_CENTER, now.astimezone(REGION_TZ).date())
        incoming = IncomingHandover.request(
            m.handover_id,
            now,
            origin_region=m.sender,
            patient_id=UUID(body["patient_id"]),
            move_id=UUID(body["move_id"]),
            destination_unit=unit,
            moving_on=datetime.fromisoformat(body["moving_on"]).date(),
            deadline=datetime.fromisoformat(body["deadline"]),
            assignee=assignee or "",
            sequence=m.sequence,
            details=msgspec.json.encode(verified.personal or {}).decode(),
        )
        return [incoming]

    def _on_cancel(self, hid: UUID, sequence: int, now: datetime) -> list[Any] | None:
        try:
            incoming = self._load(hid, IncomingHandover)
        except HandoverNotFound:
            return None
        was = incoming.status
        if incoming.origin_cancelled(sequence, now) == "voided" and was == "accepted":
            # the origin's log had the cancellation first: this region's registration is undone
            patient = self.case_record.patient(incoming.patient_id)
            if patient.deregistered_at is None:
                by = Provenance(incoming.assignee, None, now, f"xr:{incoming.origin_region}:{sequence}")
                patient.deregister(by, now, reason="other", note="handover voided by the origin region")
                return [incoming, patient]
        return [incoming]

    def _on_answer(self, hid: UUID, accepted: bool, sequence: int, sender: str, now: datetime) -> list[Any] | None:
        try:
            outgoing = self._load(hid, OutgoingHandover)
        except HandoverNotFound:
            return None
        if not outgoing.record_answer(accepted, sequence, now):
            return [outgoing]  # too late: the origin's log already holds the outcome
        patient = self.case_record.patient(outgoing.patient_id)
        by = Provenance(outgoing.opened_by, None, now, f"xr:{sender}:{sequence}")
        patient.answer_handover(by, now, move_id=outgoing.move_id, accepted=accepted)
        if accepted and patient.deregistered_at is None:
            patient.deregister(by, now, reason="moved_out")
        return [outgoing, patient]

    def outbox(self, peer: str, after: int = 0) -> list[str]:
        """The messages to ``peer`` with a sequence above ``after``, in order (what a transport
        publishes, and publishes again after an outage)."""
        events = self.case_record.events.get(outbox_id(self.region, peer), gt=after + 1)
        return [e.wire for e in events if isinstance(e, CrossRegionOutbox.Queued)]

    def applied_from(self, peer: str) -> int:
        """The last sequence applied from ``peer``."""
        return self._inbox(peer).last_applied

    def refused_from(self, peer: str) -> list[dict[str, Any]]:
        """The refused messages from ``peer``, oldest first: reason, sequence, when."""
        events = self.case_record.events.get(inbox_id(self.region, peer))
        return [
            {"reason": e.reason, "sequence": e.sequence, "digest": e.digest, "at": e.timestamp}
            for e in events
            if isinstance(e, CrossRegionInbox.Refused)
        ]

    # -- queries ----------------------------------------------------------------------------------

    def handover(self, hid: UUID, history: bool = True) -> dict[str, Any]:
        """One handover on this side: direction, status, the unit involved here, who is
        responsible now, and (``history``) the facts recorded about it, oldest first."""
        try:
            aggregate = self.case_record.repository.get(hid)
        except AggregateNotFoundError:
            raise HandoverNotFound(hid) from None
        return self._view(aggregate, history) | handover_police.view(self, hid)

    def handovers(self, direction: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Every handover on this side (``direction`` "in" or "out", ``status``), newest deadline
        first, without their histories."""
        sides = {"out": OutgoingHandover.Opened.TOPIC, "in": IncomingHandover.Requested.TOPIC}
        ids: set[UUID] = set()
        for side, topic in sides.items():
            if direction in (None, side):
                ids |= self.case_record.originators_of(topic)
        views = [self._view(self.case_record.repository.get(hid), False) for hid in ids]
        views = [v for v in views if status is None or v["status"] == status]
        return sorted(views, key=lambda v: (v["deadline"], v["id"]), reverse=True)

    def _view(self, aggregate: Any, history: bool) -> dict[str, Any]:
        hid = aggregate.id
        if isinstance(aggregate, OutgoingHandover):
            view = {
                "direction": "out",
                "peer_region": aggregate.destination_region,
                "unit": aggregate.residence,  # the patient's residence here
                "peer_unit": aggregate.destination_unit,
                "responsible": [self.region] if aggregate.origin_responsible else [aggregate.destination_region],
                "late_answers": list(aggregate.late),
            }
        elif isinstance(aggregate, IncomingHandover):
            view = {
                "direction": "in",
                "peer_region": aggregate.origin_region,
                "unit": aggregate.destination_unit,
                "assignee": aggregate.assignee,
                # the origin stays responsible until its log holds our acceptance
                "responsible": [aggregate.origin_region] + ([self.region] if aggregate.destination_responsible else []),
            }
        else:
            raise HandoverNotFound(hid)
        out = {
            "id": str(hid),
            "patient_id": str(aggregate.patient_id),
            "status": aggregate.status,
            "moving_on": aggregate.moving_on.isoformat(),
            "deadline": aggregate.deadline.isoformat(),
            "escalations": list(aggregate.escalations),
            **view,
        }
        if history:
            out["history"] = [
                {"fact": type(e).__name__, "at": e.timestamp.isoformat()} for e in self.case_record.events.get(hid)
            ]
        return out

    # -- helpers ----------------------------------------------------------------------------------

    def _queue(
        self, hid: UUID, peer: str, kind: MessageKind, body: dict[str, Any], personal: dict[str, Any] | None = None
    ) -> CrossRegionOutbox:
        now = self.clock()
        try:
            outbox = self.case_record.repository.get(outbox_id(self.region, peer))
        except AggregateNotFoundError:
            outbox = CrossRegionOutbox.start(self.region, peer, now)
        sequence = outbox.last_sequence + 1
        wire = build(
            self.keys,
            peer,
            handover_id=hid,
            sequence=sequence,
            acked=self.applied_from(peer),
            kind=kind,
            body=body,
            personal=personal,
        )
        outbox.queue(hid, kind, wire, sequence, now)
        return outbox

    def _inbox(self, peer: str) -> CrossRegionInbox:
        try:
            return self.case_record.repository.get(inbox_id(self.region, peer))
        except AggregateNotFoundError:
            return CrossRegionInbox.start(self.region, peer, self.clock())

    def _keep_refused(self, refused: Refused, wire: str | bytes) -> None:
        if refused.sender is None or refused.sender not in self.keys.peers:
            return  # malformed, or from a region we have no link with: nowhere to keep it
        inbox = self._inbox(refused.sender)
        if inbox.refuse(refused.reason, refused.sequence, digest(wire), _text(wire), self.clock()):
            self._retry(lambda: self.case_record.save(inbox))

    def _register(self, incoming: IncomingHandover) -> None:
        """Register the patient in this region from the request's sealed details (same id), with
        the arrival by this handover in the same transaction (the "moved-in" list reads it)."""
        personal = msgspec.json.decode(incoming.details.text or "{}")  # erased: nothing
        data = {k: v for k, v in personal.items() if v is not None}
        data["residence"] = incoming.destination_unit
        v2 = "birth_date" in data and "household_region" in data
        envelope = {
            "specversion": "1.0",
            "id": str(uuid.uuid5(incoming.id, "registration")),
            "source": incoming.assignee,
            "subject": str(incoming.patient_id),
            "time": self.clock().isoformat(),
            "type": "cn.smd.patient.registered.v2" if v2 else "cn.smd.patient.registered.v1",
            "data": data if v2 else {k: v for k, v in data.items() if k not in ("birth_date", "household_region")},
        }
        event: InboundEvent = msgspec.convert(envelope, PatientRegisteredV2 if v2 else PatientRegisteredV1)
        # what authenticated it: the origin region's signed request for this handover (its
        # signature checked on arrival), accepted by the health center that answered
        for attempt in range(self.case_record.max_attempts):
            unit = self.case_record.unit_of_work()
            recorded = unit.record(event, incoming.assignee, authenticated_by=f"handover:{incoming.id}")
            if recorded.outcome == "duplicate":
                return  # registered, with its arrival, by an earlier try
            patient = unit.patient(incoming.patient_id)
            patient.record_arrival(
                self._by(incoming, "arrival"),
                self.clock(),
                handover_id=incoming.id,
                origin_region=incoming.origin_region,
            )
            unit.include(patient)
            try:
                unit.commit()
                return
            except IntegrityError:
                time.sleep(backoff_seconds(attempt))
        raise ConcurrentWriteConflict(str(incoming.id), self.case_record.max_attempts)

    def _reregister(self, incoming: IncomingHandover) -> None:
        """A move back: the patient this region deregistered is registered again on the same file
        from the request's details (re-sealed under the patient's key), with its ID-number and name
        markers and the arrival by this handover, in one transaction. Nothing twice on a retry."""
        patient = self.case_record.patient(incoming.patient_id)
        if patient.personal.erased:
            raise ErasedHere(incoming.id)  # the erasure is not undone by a handover
        if patient.reregistered_by(incoming.id) or patient.deregistered_at is None:
            return  # registered again by an earlier try (or still registered here: nothing to do)
        personal = msgspec.json.decode(incoming.details.text or "{}")
        born = personal.get("birth_date")
        details = PersonalDetails(
            name=personal.get("name"),
            id_number=personal.get("id_number"),
            phone=personal.get("phone"),
            address=personal.get("address"),
            birth_date=date.fromisoformat(born) if born else None,
        )
        now = self.clock()
        changed = identity.reregister(
            self.case_record,
            patient,
            self._by(incoming, "reregistration"),
            now,
            handover_id=incoming.id,
            origin_region=incoming.origin_region,
            residence=incoming.destination_unit,
            personal=details,
            household_region=personal.get("household_region"),
        )
        by = self._by(incoming, "arrival")
        patient.record_arrival(by, now, handover_id=incoming.id, origin_region=incoming.origin_region)
        self.case_record.save(*changed)

    def _by(self, incoming: IncomingHandover, what: str) -> Provenance:
        """Who records a fact of this acceptance: the health center that answers, now."""
        return Provenance(incoming.assignee, None, self.clock(), f"handover:{incoming.id}:{what}")

    def _load(self, hid: UUID, cls: type) -> Any:
        try:
            aggregate = self.case_record.repository.get(hid)
        except AggregateNotFoundError:
            raise HandoverNotFound(hid) from None
        if not isinstance(aggregate, cls):
            raise HandoverNotFound(hid)
        return aggregate

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.case_record.existing([aggregate_id]))

    def _retry(self, attempt: Callable[[], None], tries: int = 10) -> None:
        for n in range(tries):
            try:
                attempt()
                return
            except IntegrityError:
                time.sleep(backoff_seconds(n))
        attempt()


def _shared(patient: Patient) -> dict[str, Any]:
    """What a receiving health center may see to take the patient over: identity and contact (to
    register and find them), the diagnosis, the household region."""
    p = patient.personal
    return {
        "name": p.name,
        "id_number": p.id_number,
        "phone": p.phone,
        "address": p.address,
        "birth_date": p.birth_date.isoformat() if p.birth_date else None,
        "household_region": getattr(patient, "household_region", None),
        "diagnosis": getattr(patient, "diagnosis", None),
    }


def _text(wire: str | bytes) -> str:
    return wire if isinstance(wire, str) else wire.decode("utf-8", "replace")


def _time_of(event: Any) -> datetime:
    """When a fed fact occurred: a patient fact's own time, a derived one's recording."""
    occurred = getattr(event, "occurred_at", None)
    return occurred if isinstance(occurred, datetime) else event.timestamp
