"""R8 inside the region — a move between townships or stations of this deployment: the receiving
health center accepts or rejects it; acceptance changes the residence (docs/decisions/042).

Seed: Jiaobei 卫生院 4(2) (对接: the receiving health center takes the patient over) and DESIGN.md
R8 (the origin stays responsible until accepted); owner: the health center covering the move's
``destination_unit`` (none on record: the governance center there assigns one), deadline
``RuleSettings.r8_answer_move`` (14 days, our default) from when the move was recorded.

- *Opens* on ``MoveReported`` whose ``destination_region`` is this region and which names a
  ``destination_unit``: ``accept_or_reject_move`` for the receiving health center. The
  obligation is about the destination (``Assignment.residence``), so R15 escalates it there
  and that governance center's oversight sees it. Keyed by the move id.
- *Completed by* the answer (``HandoverAnswered``, accepted or rejected) for that move.
  Acceptance is recorded with ``ResidenceChanged`` (``PatientFile.answer_handover``): from then
  on the registry's agencies for the new residence are responsible, and writes within
  jurisdiction follow it (decision 014 with 042).
- *Rejected*: the origin stays responsible; both governance centers (origin and destination)
  get a ``move_rejected`` notice (one when they are the same).
- *Unanswered by the deadline*: R15 escalates to the destination's governance center and
  ``on_due`` tells the origin's (``move_unanswered``): escalated on both sides.
- *Cancelled by* leaving the register. Moves to another region are the handover's
  (``core.handover``, docs/decisions/039), not this rule's.
- *Open work moves with the patient* (``moved_with_the_patient``): on ``ResidenceChanged``,
  each open obligation of the patient rules about the home (``Assignment.residence`` None: not
  R7's or R8's about a destination) is cancelled, "moved: now <agency>'s", and reopened for the
  agency of the same kind covering the new residence (none on record: the governance center
  there, to assign one), same rule, episode and deadline; unless that agency owes it already.
  Notices stay with whom they told; escalations made stay on the old governance center's record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from domain.obligation import ObligationKind, obligation_id
from domain.patient_file import HandoverAnswered, MoveReported, PatientDeregistered, ResidenceChanged
from domain.registry import AgencyKind
from domain.rules.engine import (
    FALLBACK_ACTION,
    Assignment,
    Decisions,
    History,
    Moved,
    Responsible,
    Trigger,
    owner_or_fallback,
)
from domain.rules.entries import fact_of
from domain.rules.settings import RuleSettings

RULE = "R8"
ANSWER = "accept_or_reject_move"
REJECTED = "move_rejected"
UNANSWERED = "move_unanswered"
R8_MOVE_TOPICS = frozenset({MoveReported.TOPIC, HandoverAnswered.TOPIC, PatientDeregistered.TOPIC})
RESIDENCE_CHANGED = ResidenceChanged.TOPIC

#: ``responsible_at(unit, kind)``: the agency of ``kind`` covering ``unit`` (the registry as
#: recorded at the trigger, on its day), or None.
ResponsibleAt = Callable[[str, AgencyKind], str | None]


def answer_id(patient_id: UUID, move_id: Any) -> UUID:
    """The receiving health center's obligation to answer the move (one per move)."""
    return obligation_id(patient_id, RULE, str(move_id), "destination")


def moves_within(patient: Any, region: str) -> list[dict[str, Any]]:
    """The patient's reported moves inside ``region`` (to a named unit)."""
    return [
        e
        for e in patient.facts.get("move", ())
        if e["destination_region"] == region and e.get("destination_unit") is not None
    ]


def r08_move_in_region(
    t: Trigger,
    patient: Any,
    region: str,
    responsible: Responsible,
    responsible_at: ResponsibleAt,
    settings: RuleSettings,
) -> Decisions:
    """R8's decisions for one patient fact about a move inside the region (module docstring)."""
    d = Decisions()
    if t.topic == MoveReported.TOPIC:
        move = fact_of(patient, "move", t.message_id)
        if move is None or move not in moves_within(patient, region):
            return d
        unit = move["destination_unit"]
        owner, action = owner_or_fallback(lambda k: responsible_at(unit, k), AgencyKind.HEALTH_CENTER, ANSWER)
        if owner is None:
            return d
        d.opened.append(
            Assignment(
                id=answer_id(t.patient_id, move["move_id"]),
                kind=ObligationKind.OBLIGATION,
                rule=RULE,
                action=action,
                assignee=owner,
                episode_key=str(move["move_id"]),
                due_at=t.recorded_at + settings.r8_answer_move,
                risk_level=patient.risk_level,
                residence=unit,
            )
        )
    elif t.topic == HandoverAnswered.TOPIC:
        answer = fact_of(patient, "handover", t.message_id)
        if answer is None:
            return d
        move = next((m for m in moves_within(patient, region) if m["move_id"] == answer["move_id"]), None)
        if move is None:
            return d
        d.completed.append((answer_id(t.patient_id, move["move_id"]), t.message_id))
        if not answer["accepted"]:
            d.opened += _both_governance_centers(t, move, REJECTED, responsible, responsible_at)
    elif t.topic == PatientDeregistered.TOPIC:
        for move in moves_within(patient, region):
            d.cancelled.append(
                (answer_id(t.patient_id, move["move_id"]), "the patient left the register", t.message_id)
            )
    return d


def moved_with_the_patient(
    t: Trigger, patient: Any, open_now: Iterable[Assignment], responsible_at: ResponsibleAt
) -> Decisions:
    """On ``ResidenceChanged``: the open obligations about the home move to the agencies of the
    same kind covering the new residence (module docstring). ``open_now``: the patient rules'
    obligations open before the change, each naming the agency kind it asks for
    (``domain.rules.open_work.open_after``); the policy process moves only those still open and
    owed by another agency."""
    d = Decisions()
    change = fact_of(patient, "residence", t.message_id) if t.topic == RESIDENCE_CHANGED else None
    if change is None:
        return d
    unit = change["residence"]
    for a in open_now:
        if a.kind != ObligationKind.OBLIGATION or a.residence is not None:
            continue
        kind = AgencyKind(a.assignee)
        if kind in FALLBACK_ACTION:
            owner, action = owner_or_fallback(lambda k: responsible_at(unit, k), kind, a.action)
        else:
            owner, action = responsible_at(unit, kind), a.action
        if owner is not None:
            d.moved.append(Moved(a.id, str(change["move_id"]), owner, action, unit))
    return d


def _both_governance_centers(
    t: Trigger, move: dict[str, Any], action: str, responsible: Responsible, responsible_at: ResponsibleAt
) -> list[Assignment]:
    """A notice for the origin's governance center and the destination's (one when the same)."""
    found: list[Assignment] = []
    origin = responsible(AgencyKind.GOVERNANCE_CENTER)
    destination = responsible_at(move["destination_unit"], AgencyKind.GOVERNANCE_CENTER)
    for role, owner, residence in (("origin", origin, None), ("destination", destination, move["destination_unit"])):
        if owner is None or any(a.assignee == owner for a in found):
            continue
        found.append(
            Assignment(
                id=obligation_id(t.patient_id, RULE, f"{move['move_id']}:{action}", role),
                kind=ObligationKind.NOTICE,
                rule=RULE,
                action=action,
                assignee=owner,
                episode_key=str(move["move_id"]),
                due_at=None,
                risk_level=None,
                residence=residence,
            )
        )
    return found


def on_due(overdue: Any, h: History, responsible: Responsible) -> list[Assignment]:
    """The receiving health center did not answer in time: the origin's governance center is
    told (R15 escalates the obligation to the destination's)."""
    if overdue.action not in (ANSWER, FALLBACK_ACTION[AgencyKind.HEALTH_CENTER]):
        return []
    owner = responsible(AgencyKind.GOVERNANCE_CENTER)
    if owner is None or owner == overdue.assignee:
        return []
    oid = obligation_id(h.patient.id, RULE, f"{overdue.episode_key}:{UNANSWERED}", "origin")
    return [Assignment(oid, ObligationKind.NOTICE, RULE, UNANSWERED, owner, overdue.episode_key, None, h.risk_level)]
