"""R7 across two regions, the application side of ``domain.police_notice``: what ``Handovers``
does for the police notice that goes with a handover (docs/decisions/048).

- ``follow``: a follower of the log (tracking ``handover-police``), each step in one transaction
  with its position: an outgoing handover of a patient whose level at the move was ≥ 3 records
  the notice and queues a ``police-notice`` message (level and class sealed, the deadline of the
  origin's ``r7_acknowledge_notice`` setting from when the move was recorded); the handover
  cancelled cancels the notice on either side; the destination station's completion of
  ``acknowledge_police_notice`` (by its word, ``POST /v1/obligations/{id}/complete``) records
  the acknowledgement and queues a ``police-ack`` message;
- ``on_message``: applies those two messages (``Handovers._apply``);
- ``check_deadlines``: the origin escalates an unacknowledged notice by its own clock, once.

The obligations and notices these facts open are the policy process's
(``core.police_notice_policy``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
from eventsourcing.persistence import Tracking

from core.handover_messages import Verified
from core.police_notice_policy import acknowledge_obligation_id
from core.registry import REGION_TZ
from core.restrictions import is_restricted
from core.rule_settings_view import RuleSettingsView
from domain.handover import HandoverNotFound, IncomingHandover, MessageKind, OutgoingHandover
from domain.obligation import Obligation
from domain.police_notice import IncomingPoliceNotice, OutgoingPoliceNotice, police_notice_id
from domain.rules.r07_police_notice import ACKNOWLEDGE
from domain.values import HIGH_RISK_LEVEL

if TYPE_CHECKING:
    from core.handover import Handovers

TRACKING = "handover-police"
#: What the follower reads, in log order: outgoing handovers opened and cancelled (origin),
#: incoming ones cancelled or voided (destination), and obligations completed (the destination
#: station's acknowledgement among them).
FOLLOWS = (
    OutgoingHandover.Opened.TOPIC,
    OutgoingHandover.Cancelled.TOPIC,
    IncomingHandover.Cancelled.TOPIC,
    IncomingHandover.Voided.TOPIC,
    Obligation.Completed.TOPIC,
)
INCOMING = IncomingHandover.Requested.TOPIC


def follow(h: Handovers, limit: int = 100) -> int:
    """Send, cancel and acknowledge police notices for what was recorded since the last call;
    returns how many notifications it read (0: caught up)."""
    record = h.case_record
    start = (record.recorder.max_tracking_id(TRACKING) or 0) + 1
    notifications = record.recorder.select_notifications(start, limit, topics=list(FOLLOWS))
    ours: dict[UUID, UUID] | None = None  # this region's acknowledgement obligations → their handover
    tracked = 0
    for n in notifications:
        if n.topic == Obligation.Completed.TOPIC:
            if ours is None:
                ours = {acknowledge_obligation_id(hid): hid for hid in record.originators_of(INCOMING)}
            if n.originator_id not in ours:
                continue  # any other obligation: nothing to send (the position is stored below)
            hid = ours[n.originator_id]
            h._retry(lambda n=n, hid=hid: _step(h, _acknowledged(h, n, hid), n.id))
        else:
            h._retry(lambda n=n: _step(h, _handover_changed(h, n), n.id))
        tracked = n.id
    if notifications and tracked != notifications[-1].id:
        h._retry(lambda: _step(h, [], notifications[-1].id))
    return len(notifications)


def _step(h: Handovers, aggregates: list[Any], position: int) -> None:
    processing = ProcessingEvent[UUID](Tracking(TRACKING, position))
    processing.collect_events(*aggregates)
    h.case_record._notify(h.case_record._record(processing))


def _handover_changed(h: Handovers, n: Any) -> list[Any]:
    now = h.clock()
    if n.topic == OutgoingHandover.Opened.TOPIC:
        return _send(h, n, now)
    notice = _notice(h, police_notice_id(n.originator_id))
    if isinstance(notice, OutgoingPoliceNotice | IncomingPoliceNotice) and notice.cancel(
        "the origin region cancelled the handover", now
    ):
        return [notice]
    return []


def _send(h: Handovers, n: Any, now: datetime) -> list[Any]:
    """The notice of an outgoing handover, when the patient's level at the move was ≥ 3."""
    handover = h._load(n.originator_id, OutgoingHandover)
    if handover.status == "cancelled" or _notice(h, police_notice_id(handover.id)) is not None:
        return []  # cancelled before the notice could go (nobody to tell), or sent already
    if is_restricted(h.case_record, handover.patient_id):
        return []  # the rules open nothing for a restricted patient, inside the region neither
    patient = h.case_record.patient(handover.patient_id)
    move = next((e for e in patient.facts.get("move", ()) if e["move_id"] == handover.move_id), None)
    if move is None:
        return []
    at_move = h.case_record.repository.get(handover.patient_id, version=move["v"])  # as R7 sees the move
    level = at_move.risk_level
    if level is None or level < HIGH_RISK_LEVEL:
        return []
    recorded = at_move.modified_on  # deadlines run from when the move was recorded, as inside the region
    settings = _settings(h).settings(recorded.astimezone(REGION_TZ).date(), as_of_position=n.id)
    if handover.status != "open" and now >= recorded + settings.r7_acknowledge_notice:
        # history, when a region first runs this follower over handovers decided long ago: a
        # notice now would only open obligations overdue at once (an open one is still sent)
        return []
    notice = OutgoingPoliceNotice.send(
        now,
        handover_id=handover.id,
        patient_id=handover.patient_id,
        move_id=handover.move_id,
        residence=handover.residence,
        destination_region=handover.destination_region,
        destination_unit=handover.destination_unit,
        risk_level=level,
        risk_class=str(at_move.risk_class),
        notify_by=recorded + settings.r7_notify_destination_police,
        acknowledge_by=recorded + settings.r7_acknowledge_notice,
    )
    body = {
        "patient_id": str(handover.patient_id),
        "move_id": str(handover.move_id),
        "destination_unit": handover.destination_unit,
        "acknowledge_by": notice.acknowledge_by.isoformat(),
    }
    personal = {"risk_level": level, "risk_class": notice.risk_class}  # health data: sealed to the receiver
    outbox = h._queue(handover.id, handover.destination_region, MessageKind.POLICE_NOTICE, body, personal)
    return [notice, outbox]


def _acknowledged(h: Handovers, n: Any, hid: UUID) -> list[Any]:
    """The destination station completed its obligation: record it and tell the origin."""
    obligation = h.case_record.repository.get(n.originator_id)
    completed: Any = h.case_record.mapper.to_domain_event(n)
    notice = _notice(h, police_notice_id(hid))
    if obligation.action != ACKNOWLEDGE or not isinstance(notice, IncomingPoliceNotice):
        return []  # the governance center's fallback (assign a station) acknowledges nothing
    by = completed.by_agency or obligation.assignee
    if not notice.acknowledge(by, obligation.id, h.clock()):
        return []
    body = {"by_agency": by, "acknowledged_at": completed.timestamp.isoformat()}
    return [notice, h._queue(hid, notice.origin_region, MessageKind.POLICE_ACK, body)]


def on_message(h: Handovers, verified: Verified, now: datetime) -> list[Any] | None:
    """Apply a ``police-notice`` or ``police-ack`` message; None: about a handover (or notice)
    this region does not hold, refused as ``unknown-handover``."""
    m, body = verified.message, verified.message.body
    if m.kind == MessageKind.POLICE_NOTICE:
        try:
            incoming = h._load(m.handover_id, IncomingHandover)
        except HandoverNotFound:
            return None
        if str(incoming.patient_id) != body.get("patient_id") or incoming.origin_region != m.sender:
            return None
        if incoming.status in ("cancelled", "voided") or _notice(h, police_notice_id(incoming.id)) is not None:
            return []  # nothing to acknowledge any more, or received already
        personal = verified.personal or {}
        notice = IncomingPoliceNotice.receive(
            now,
            handover_id=incoming.id,
            origin_region=m.sender,
            patient_id=incoming.patient_id,
            move_id=incoming.move_id,
            destination_unit=incoming.destination_unit,
            risk_level=int(personal["risk_level"]),
            risk_class=str(personal["risk_class"]),
            acknowledge_by=datetime.fromisoformat(body["acknowledge_by"]),
            sequence=m.sequence,
        )
        return [notice]
    outgoing = _notice(h, police_notice_id(m.handover_id))
    if not isinstance(outgoing, OutgoingPoliceNotice) or outgoing.destination_region != m.sender:
        return None
    at = datetime.fromisoformat(body["acknowledged_at"])
    return [outgoing] if outgoing.acknowledged(str(body["by_agency"]), at, m.sequence, now) else []


def check_deadlines(h: Handovers) -> list[UUID]:
    """Escalate each outgoing notice unacknowledged by its deadline (once); returns their handovers."""
    now = h.clock()
    escalated: list[UUID] = []

    def attempt(nid: UUID) -> None:
        notice = h.case_record.repository.get(nid)  # loaded again on a retry: its acknowledgement may have arrived
        if notice.check_deadline(now):
            h.case_record.save(notice)
            escalated.append(notice.handover_id)

    for nid in h.case_record.originators_of(OutgoingPoliceNotice.Sent.TOPIC):
        h._retry(lambda nid=nid: attempt(nid))
    return escalated


def view(h: Handovers, hid: UUID) -> dict[str, Any]:
    """The police notice of a handover on this side, if any (for the handover's view)."""
    notice = _notice(h, police_notice_id(hid))
    if notice is None:
        return {}
    return {
        "police_notice": {
            "status": notice.status,
            "risk_level": notice.risk_level,
            "risk_class": notice.risk_class,
            "acknowledge_by": notice.acknowledge_by.isoformat(),
            "acknowledged_at": notice.acknowledged_at.isoformat() if notice.acknowledged_at else None,
            "escalated": bool(getattr(notice, "escalated", False)),
        }
    }


def _notice(h: Handovers, nid: UUID) -> Any:
    try:
        return h.case_record.repository.get(nid)
    except AggregateNotFoundError:
        return None


def _settings(h: Handovers) -> RuleSettingsView:
    """The region's rule settings as recorded in the log (one view per ``Handovers``)."""
    found = getattr(h, "_rule_settings_view", None)
    if found is None:
        found = RuleSettingsView(h.case_record, h.region)
        h._rule_settings_view = found  # type: ignore[attr-defined]
    return found
