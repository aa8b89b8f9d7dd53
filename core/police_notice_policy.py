"""R7 across two regions in the policy process: the obligations and notices a police notice's facts
open (``domain.police_notice``; inside one region: ``domain.rules.r07_police_notice``).

- origin: the notice sent opens ``notify_destination_police`` for the police station covering
  the residence (none on record: its governance center is asked to assign one), due when the
  notice says; the destination's acknowledgement arriving completes it (the owner may also
  complete it by its word first, as inside the region); no acknowledgement by the deadline tells
  the origin's police station and governance center (``police_notice_unacknowledged``), while R15
  escalates the destination's obligation there; the handover cancelled cancels it;
- destination: the notice received opens ``acknowledge_police_notice`` for the police station
  covering the destination unit, due at the deadline the origin carried (R15 escalates it to the
  governance center there); the origin's cancellation cancels it.

The subject of each obligation and notice is the handover, as R8's between regions.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from core.registry import REGION_TZ
from domain.obligation import ObligationKind, obligation_id
from domain.police_notice import IncomingPoliceNotice, OutgoingPoliceNotice
from domain.registry import AgencyKind
from domain.rules.engine import Assignment, Decisions, Trigger, owner_or_fallback
from domain.rules.r07_police_notice import ACKNOWLEDGE, NOTIFY, RULE, UNACKNOWLEDGED

OPENS = frozenset({OutgoingPoliceNotice.Sent.TOPIC, IncomingPoliceNotice.Received.TOPIC})
POLICE_NOTICE_TOPICS = OPENS | {
    OutgoingPoliceNotice.Acknowledged.TOPIC,
    OutgoingPoliceNotice.Unacknowledged.TOPIC,
    OutgoingPoliceNotice.Cancelled.TOPIC,
    IncomingPoliceNotice.Cancelled.TOPIC,
}
CANCELLED = "the origin region cancelled the handover"


def notify_obligation_id(handover_id: UUID) -> UUID:
    """The origin police's obligation to notify the destination police (one per handover)."""
    return obligation_id(handover_id, RULE, str(handover_id), "origin-police")


def acknowledge_obligation_id(handover_id: UUID) -> UUID:
    """The destination police's obligation to acknowledge the notice (one per handover)."""
    return obligation_id(handover_id, RULE, str(handover_id), "destination-police")


def unacknowledged_notice_id(handover_id: UUID, role: str) -> UUID:
    """The origin's notice that the destination did not acknowledge (``origin-police`` or
    ``origin-governance``)."""
    return obligation_id(handover_id, RULE, f"{handover_id}:{UNACKNOWLEDGED}", role)


def decide_police_notice(process: Any, n: Notification) -> tuple[Decisions, Trigger, str] | None:
    """What one police-notice fact opens, completes or cancels."""
    notice: Any = process.case_record.repository.get(n.originator_id, version=n.originator_version)
    fact: Any = process.case_record.mapper.to_domain_event(n)
    hid = notice.handover_id
    outgoing = isinstance(notice, OutgoingPoliceNotice)
    residence = notice.residence if outgoing else notice.destination_unit
    trigger = Trigger(
        patient_id=hid,
        message_id=f"police-notice:{hid}:{n.originator_version}",
        position=n.id,
        recorded_at=fact.timestamp,
        residence=residence,
        topic=n.topic,
        version=n.originator_version,
    )
    on = fact.timestamp.astimezone(REGION_TZ).date()

    def responsible(kind: AgencyKind) -> str | None:
        return process.registry.responsible(residence, kind, on, as_of_position=n.id)

    decisions = Decisions()
    key = str(hid)
    if n.topic in OPENS:
        oid, action, due = (
            (notify_obligation_id(hid), NOTIFY, notice.notify_by)
            if outgoing
            else (acknowledge_obligation_id(hid), ACKNOWLEDGE, notice.acknowledge_by)
        )
        owner, action = owner_or_fallback(responsible, AgencyKind.POLICE_STATION, action)
        if owner is None:
            return None
        decisions.opened.append(
            Assignment(oid, ObligationKind.OBLIGATION, RULE, action, owner, key, due, notice.risk_level)
        )
    elif n.topic == OutgoingPoliceNotice.Acknowledged.TOPIC:
        # the acknowledgement shows the destination police were told: the origin's notification is done
        decisions.completed.append((notify_obligation_id(hid), f"xr:{notice.destination_region}:{fact.sequence}"))
    elif n.topic == OutgoingPoliceNotice.Unacknowledged.TOPIC:
        told: set[str] = set()
        for role, kind in (
            ("origin-police", AgencyKind.POLICE_STATION),
            ("origin-governance", AgencyKind.GOVERNANCE_CENTER),
        ):
            owner = responsible(kind)
            if owner is None or owner in told:
                continue
            told.add(owner)
            decisions.opened.append(
                Assignment(
                    unacknowledged_notice_id(hid, role),
                    ObligationKind.NOTICE,
                    RULE,
                    UNACKNOWLEDGED,
                    owner,
                    key,
                    None,
                    notice.risk_level,
                )
            )
    elif n.topic == OutgoingPoliceNotice.Cancelled.TOPIC:
        decisions.cancelled.append((notify_obligation_id(hid), "the handover was cancelled", trigger.message_id))
    else:  # the destination: the origin cancelled the handover
        decisions.cancelled.append((acknowledge_obligation_id(hid), CANCELLED, trigger.message_id))
    return decisions, trigger, residence
