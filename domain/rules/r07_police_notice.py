"""R7 — a level ≥ 3 patient reported leaving: the origin police notify the destination police,
who acknowledge the notice (J 派出所 5: 及时通报流入地派出所).

Owners: the police station covering the residence (``notify_destination_police``, deadline
``RuleSettings.r7_notify_destination_police``, 24 hours) and the police station covering the
move's destination unit (``acknowledge_police_notice``, ``r7_acknowledge_notice``, 72 hours; both
our defaults), from when the move was recorded. Each completes its obligation by its own word
(``POST /v1/obligations/{id}/complete``): the origin when it has told the destination, the
destination when it acknowledges.

- *Opens* on ``MoveReported`` inside this region (its ``destination_region``, a
  ``destination_unit``) when the patient's level (latest assessment by occurred time) is ≥ 3
  and the destination's station is another station. The destination's obligation is about the
  destination (``Assignment.residence``): R15 escalates it to the governance center there.
  A station missing on either side: that side's governance center is asked to assign one.
- *Unacknowledged by the deadline*: R15 escalates to the destination's governance center and
  ``on_due`` tells the origin's police station and governance center
  (``police_notice_unacknowledged``): escalated on both sides. The origin's own obligation,
  undone, is escalated by R15 to the origin's governance center.
- *Cancelled by* leaving the register. Keyed by the move id. Moves to a linked region: the
  notice crosses the region link with the handover (``core.handover_police``,
  ``core.police_notice_policy``; the same actions and settings, the handover as subject).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.obligation import ObligationKind, obligation_id
from domain.patient_file import MoveReported, PatientDeregistered
from domain.registry import AgencyKind
from domain.rules.engine import Assignment, Decisions, History, Responsible, Trigger, owner_or_fallback
from domain.rules.r08_move_in_region import ResponsibleAt, moves_within
from domain.rules.settings import RuleSettings
from domain.values import HIGH_RISK_LEVEL

RULE = "R7"
NOTIFY = "notify_destination_police"
ACKNOWLEDGE = "acknowledge_police_notice"
UNACKNOWLEDGED = "police_notice_unacknowledged"
R7_TOPICS = frozenset({MoveReported.TOPIC, PatientDeregistered.TOPIC})


def notify_id(patient_id: UUID, move_id: Any) -> UUID:
    """The origin police's obligation to notify the destination police (one per move)."""
    return obligation_id(patient_id, RULE, str(move_id), "origin-police")


def acknowledge_id(patient_id: UUID, move_id: Any) -> UUID:
    """The destination police's obligation to acknowledge the notice (one per move)."""
    return obligation_id(patient_id, RULE, str(move_id), "destination-police")


def r07_police_notice(
    t: Trigger,
    patient: Any,
    region: str,
    responsible: Responsible,
    responsible_at: ResponsibleAt,
    settings: RuleSettings,
) -> Decisions:
    """R7's decisions for one patient fact (module docstring)."""
    d = Decisions()
    if t.topic == PatientDeregistered.TOPIC:
        for move in moves_within(patient, region):
            for oid in (notify_id(t.patient_id, move["move_id"]), acknowledge_id(t.patient_id, move["move_id"])):
                d.cancelled.append((oid, "the patient left the register", t.message_id))
        return d
    if t.topic != MoveReported.TOPIC:
        return d
    move = next((m for m in moves_within(patient, region) if m["key"] == t.message_id), None)
    level = patient.risk_level
    if move is None or level is None or level < HIGH_RISK_LEVEL:
        return d
    unit = move["destination_unit"]
    origin, notify_action = owner_or_fallback(responsible, AgencyKind.POLICE_STATION, NOTIFY)
    destination, ack_action = owner_or_fallback(
        lambda k: responsible_at(unit, k), AgencyKind.POLICE_STATION, ACKNOWLEDGE
    )
    if responsible(AgencyKind.POLICE_STATION) == responsible_at(unit, AgencyKind.POLICE_STATION):
        return d  # the same station on both sides: nobody else to tell
    key = str(move["move_id"])
    if origin is not None:
        d.opened.append(
            Assignment(
                id=notify_id(t.patient_id, move["move_id"]),
                kind=ObligationKind.OBLIGATION,
                rule=RULE,
                action=notify_action,
                assignee=origin,
                episode_key=key,
                due_at=t.recorded_at + settings.r7_notify_destination_police,
                risk_level=level,
            )
        )
    if destination is not None:
        d.opened.append(
            Assignment(
                id=acknowledge_id(t.patient_id, move["move_id"]),
                kind=ObligationKind.OBLIGATION,
                rule=RULE,
                action=ack_action,
                assignee=destination,
                episode_key=key,
                due_at=t.recorded_at + settings.r7_acknowledge_notice,
                risk_level=level,
                residence=unit,
            )
        )
    return d


def on_due(overdue: Any, h: History, responsible: Responsible) -> list[Assignment]:
    """The destination police did not acknowledge in time: the origin's police station and
    governance center are told (R15 escalates the obligation to the destination's governance)."""
    if overdue.action != ACKNOWLEDGE:
        return []
    found: list[Assignment] = []
    for role, kind in (
        ("origin-police", AgencyKind.POLICE_STATION),
        ("origin-governance", AgencyKind.GOVERNANCE_CENTER),
    ):
        owner = responsible(kind)
        if owner is None or owner == overdue.assignee or any(a.assignee == owner for a in found):
            continue
        oid = obligation_id(h.patient.id, RULE, f"{overdue.episode_key}:{UNACKNOWLEDGED}", role)
        found.append(
            Assignment(oid, ObligationKind.NOTICE, RULE, UNACKNOWLEDGED, owner, overdue.episode_key, None, h.risk_level)
        )
    return found
