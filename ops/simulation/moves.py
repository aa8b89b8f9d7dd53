"""Moves in the simulated year (decision 050): a second region linked to the township's, and a
cohort of patients who move, on a random stream of its own.

Only with ``generate(..., moves=True)``: without it the township's year is what it always was,
byte for byte. Each mover is registered live by the health center of an A village, visited once,
then reported moving by the village committee. The kinds of move, each with a planned end:

- *inside the region* (to another A village): accepted, rejected, unanswered (decision 042; the
  answer is the destination health center's ``handover.accepted`` / ``handover.rejected``);
- *to the linked region B* (decision 039): accepted, rejected, unanswered, and cancelled by A in
  the same hour as B's acceptance, before the link carries it (the two messages cross);
- *to a region without the system* (decision 042): a contact recorded, then an answer relayed by
  hand (accepted or rejected) or none.

B's health center answers by command (``kind="answer"`` deliveries in ``Moves.in_b``), A's
cancels by command (``kind="cancel"`` in the township's deliveries); both carry the handover id.
After the move the patient is visited by whoever manages them then: B's health center after an
accepted transfer (its facts are fed back to A: same city, decision 047), A's otherwise. The link
is down for a day now and then (``LINK_DOWN``): what is sent meanwhile waits, and answers are
planned after the request has reached B.

Pure: no I/O, no clock (the runner writes B's registry file).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from domain.handover import handover_id
from domain.registry import AgencyKind
from ops.simulation.generator import CST, HOME_REGION, Delivery, _at, _uuid, _Year
from ops.simulation.people import pseudonym

#: The linked region (same city as the demo district's 990101: B feeds A, decision 047) and a
#: region without the system (another city): fictional codes, no real province starts with 99.
REGION_B, UNLINKED_REGION = "990104", "990301"
#: The handover's answer deadline both regions use (``SMD_HANDOVER_ANSWER_DAYS``' default).
ANSWER_WITHIN = timedelta(days=10)
#: Days of the year (from the start) on which the link between A and B is down, for a day.
LINK_DOWN_DAYS = (97, 181, 262)

#: Every kind of move with its planned end, in the order the cohort cycles through them.
KINDS = (
    ("inside", "accepted"),
    ("inside", "rejected"),
    ("inside", "unanswered"),
    ("linked", "accepted"),
    ("linked", "rejected"),
    ("linked", "unanswered"),
    ("linked", "cancelled crossing an acceptance"),
    ("unlinked", "accepted"),
    ("unlinked", "rejected"),
    ("unlinked", "no answer"),
)


def in_b(unit: str) -> str:
    """A's unit code as region B's copy of the demo district names it."""
    return REGION_B + unit[len(REGION_B) :]


def link_down(at: datetime, start: date) -> bool:
    """Whether the link is down at ``at`` (a whole local day of ``LINK_DOWN_DAYS``)."""
    day = (at.astimezone(CST).date() - start).days
    return day in LINK_DOWN_DAYS


def link_up_after(at: datetime, start: date) -> datetime:
    """The first instant at or after ``at`` when the link is up (UTC)."""
    while link_down(at, start):
        at = datetime.combine(at.astimezone(CST).date() + timedelta(days=1), time(), CST).astimezone(UTC)
    return at


@dataclass
class Moves:
    """What the movers add: region B's deliveries, and the plan (move id → kind, end)."""

    in_b: list[Delivery] = field(default_factory=list)
    planned: dict[str, tuple[str, str]] = field(default_factory=dict)  # move id → (kind, end)
    counts: Counter[str] = field(default_factory=Counter)


def add_moves(year: _Year, seed: int, movers: int) -> Moves:
    """Add ``movers`` patients who move (each kind of ``KINDS`` in turn) to the year; returns B's side."""
    rng = random.Random(f"{seed}/moves")  # noqa: S311 - a reproducible fiction
    out = Moves()
    with year.drawing_from(rng):
        for i in range(movers):
            kind, end = KINDS[i % len(KINDS)]
            _mover(year, rng, out, 800 + i, kind, end)
    out.in_b.sort(key=lambda d: d.at)
    return out


def _fact_at(year: _Year, agency: str, event_type: str, subject: UUID, data: dict[str, Any], at: datetime) -> datetime:
    """Send one fact that occurred at ``at``, delivered within the hour (the planned story needs
    its order); returns the delivery instant."""
    delivered = at + timedelta(minutes=year.rng.randint(5, 50))
    sent = year.send(agency, event_type, subject, data, at, at=delivered)
    assert sent is not None, (event_type, at)
    return delivered


def _mover(year: _Year, rng: random.Random, out: Moves, n: int, kind: str, end: str) -> None:
    places, start = year.places, year.start
    pid, move = _uuid(rng), _uuid(rng)
    unit = places.pick(rng)
    registered_on = start + timedelta(days=rng.randint(5, 150))
    hc = places.agency(unit, AgencyKind.HEALTH_CENTER, registered_on)
    committee = places.agency(unit, AgencyKind.COMMITTEE, registered_on)
    data = {"name": pseudonym(rng, n), "residence": unit, "diagnosis": "schizophrenia"}
    _fact_at(year, hc, "patient.registered", pid, data, _at(registered_on, rng))
    visited_on = registered_on + timedelta(days=rng.randint(2, 8))
    visit = {"face_to_face": True, "joint": False, "risk_level": 0, "risk_class": "stable"}
    _fact_at(year, hc, "visit.recorded", pid, visit, _at(visited_on, rng))
    moving_on = visited_on + timedelta(days=rng.randint(10, 40))
    reported = _at(moving_on - timedelta(days=rng.randint(1, 5)), rng)
    if kind == "inside":
        destination_unit = rng.choice([u for u in places.units if u != unit])
        region = places.region
    elif kind == "linked":
        destination_unit, region = in_b(places.pick(rng)), REGION_B
    else:
        destination_unit, region = None, UNLINKED_REGION
    body = {"move_id": str(move), "destination_region": region, "moving_on": moving_on.isoformat()}
    if destination_unit is not None:
        body["destination_unit"] = destination_unit
    move_delivered = _fact_at(year, committee, "move.reported", pid, body, reported)
    out.planned[str(move)] = (kind, end)
    out.counts[f"{kind} {end}"] += 1
    # who manages the patient once the move has ended, and from when
    managed_by, settled = hc, move_delivered + timedelta(days=rng.randint(2, 9))
    if kind == "inside":
        assert destination_unit is not None
        there = places.agency(destination_unit, AgencyKind.HEALTH_CENTER, moving_on)
        if end != "unanswered":
            answer = {"move_id": str(move)} | ({} if end == "accepted" else {"reason": "家属未迁入"})
            _fact_at(year, there, f"handover.{end}", pid, answer, settled)
        if end == "accepted":
            managed_by = there
    elif kind == "linked":
        hid = handover_id(places.region, pid, move)
        # the request leaves A at the first hourly run after the move arrives, and reaches B when
        # the link is up: B answers a few days after that
        reached = link_up_after(move_delivered + timedelta(hours=2), start)
        answer_at = link_up_after(reached + timedelta(days=rng.randint(1, 6), minutes=rng.randint(1, 40)), start)
        answer_at = answer_at.replace(minute=rng.randint(1, 20))
        assert destination_unit is not None
        b_hc = places.agency(unit_in_a(destination_unit), AgencyKind.HEALTH_CENTER, moving_on)  # same ids in B
        if end in ("accepted", "rejected", "cancelled crossing an acceptance"):
            accepted = end != "rejected"
            raw = json.dumps({"handover": str(hid), "accepted": accepted}).encode()
            out.in_b.append(Delivery(answer_at.astimezone(UTC), b_hc, raw, "answer", "handover answer"))
        if end == "cancelled crossing an acceptance":  # A cancels in the same hour, before the link carries B's word
            cancel_at = answer_at + timedelta(minutes=rng.randint(5, 30))
            raw = json.dumps({"handover": str(hid), "reason": "the family stays"}).encode()
            year.deliveries.append(Delivery(cancel_at.astimezone(UTC), hc, raw, "cancel", "handover cancel"))
        settled = answer_at + timedelta(days=1)
        if end == "accepted":  # B manages the patient from its acceptance: B's health center visits
            visit_at = _at(settled.astimezone(CST).date() + timedelta(days=rng.randint(5, 20)), rng)
            delivered = visit_at + timedelta(minutes=rng.randint(5, 50))
            if delivered.astimezone(UTC) < year.end:
                doc = _envelope(year, b_hc, "visit.recorded", pid, visit, visit_at)
                out.in_b.append(Delivery(delivered.astimezone(UTC), b_hc, doc, "fact", "cn.smd.visit.recorded.v1"))
            return
    else:
        if end in ("accepted", "rejected"):
            contact_on = move_delivered.astimezone(CST).date() + timedelta(days=rng.randint(1, 5))
            contact = {"move_id": str(move), "contacted_on": contact_on.isoformat(), "channel": "letter"}
            contacted = _fact_at(year, hc, "handover.contact-recorded", pid, contact, _at(contact_on, rng))
            answered_on = contacted.astimezone(CST).date() + timedelta(days=rng.randint(3, 20))
            relayed = {
                "move_id": str(move),
                "accepted": end == "accepted",
                "answered_on": answered_on.isoformat(),
                "evidence": f"函{rng.randint(100, 999)}号",
            }
            settled = _fact_at(year, hc, "handover.answer-received", pid, relayed, _at(answered_on, rng, 14, 18))
            if end == "accepted":
                return  # deregistered as moved out: the other region's, and no system of ours there
        else:
            contact_on = move_delivered.astimezone(CST).date() + timedelta(days=rng.randint(1, 5))
            contact = {"move_id": str(move), "contacted_on": contact_on.isoformat(), "channel": "phone"}
            _fact_at(year, hc, "handover.contact-recorded", pid, contact, _at(contact_on, rng))
    # A still manages the patient (or its new health center does, after a move inside): one more visit
    next_on = settled.astimezone(CST).date() + timedelta(days=rng.randint(5, 20))
    if datetime.combine(next_on, time(23), CST) < year.end:
        _fact_at(year, managed_by, "visit.recorded", pid, visit, _at(next_on, rng))


def unit_in_a(unit: str) -> str:
    """Region B's unit code as A's demo district names it (the same district, another code)."""
    return HOME_REGION + unit[len(REGION_B) :]


def _envelope(year: _Year, agency: str, event_type: str, subject: UUID, data: dict[str, Any], at: datetime) -> bytes:
    """A fact of region B's agency, built as the agency client builds it (no delivery in A)."""
    from core.contract import encode
    from integrations.agency_client import AgencyClient

    envelope = AgencyClient(agency).envelope(
        f"cn.smd.{event_type}.v1",
        subject,
        data,
        occurred=at,
        actor=f"staff-{year.rng.randint(1, 40):02d}",
        id=_uuid(year.rng),
    )
    return encode(envelope)
