"""R6 — the medication supply runs out with no new pickup: the health center follows up, and
the care team is warned when it has run out.

Seed: Qingyang Q-2 and Jiaobei 卫生院 2 (规律服药; free medication picked up monthly); owner:
the health center covering the residence (none on record: the governance center,
``assign_health_center``); the deadline is the supply itself: the first day without
medication, 00:00 China time (pickups by date, leftover supply carried over).

- *Episode*: on the register, not in hospital or institutional care, and on medication (a pickup is recorded).
- *Cycles*: each a ``medication_pickup_due`` obligation due on the first day without
  medication; anchored on the latest *recorded* pickup since the episode opened (every pickup
  moves the supply's end, a late one too). The next pickup completes the cycle and opens the next.
- *When due* (R15 marks the cycle overdue): the committee covering the residence, which runs the
  care team, gets ``medication_run_out_warning`` (``on_due``), recorded with the overdue mark in
  one transaction.
- *Cancelled by*: an admission or a placement in institutional care (the hospital or the
  institution supplies the medication), or the patient leaves
  the register.
"""

from __future__ import annotations

from datetime import datetime, time

from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Assignment, Closing, Condition, CycleRule, History, Responsible, left_register
from domain.rules.entries import (
    CARED_FOR_KINDS,
    REREGISTRATION,
    Entry,
    cared_for,
    deregistration,
    in_hospital,
    in_institutional_care,
    latest,
)
from domain.rules.settings import RuleSettings


def _on_medication_at_home(known: list[Entry]) -> bool:
    return deregistration(known) is None and not cared_for(known) and latest(known, "medication") is not None


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if in_institutional_care(known) and not in_hospital(known):
        return Closing(reason="the patient was placed in institutional care (the institution supplies the medication)")
    return Closing(reason="the patient was admitted to hospital (the hospital supplies the medication)")


def _due(h: History, anchor: Entry, upto: int, settings: RuleSettings) -> datetime:
    return datetime.combine(h.supply_end(upto), time(0), CHINA_TZ)  # type: ignore[arg-type]  # the first day without


R6 = CycleRule(
    "R6",
    "health-center",
    AgencyKind.HEALTH_CENTER,
    "medication_pickup_due",
    Condition("R6", ("medication", *CARED_FOR_KINDS, "deregistration", REREGISTRATION), _on_medication_at_home, _ended),
    anchor_kind="medication",
    anchor_by_recorded=True,
    due=_due,
)


def on_due(overdue: object, h: History, responsible: Responsible) -> list[Assignment]:
    """The care team's warning when a current R6 cycle is overdue (nothing for a stale cycle)."""
    found = R6.cycle_of(h, overdue.id)  # type: ignore[attr-defined]
    if found is None:
        return []
    span, cycle = found
    owner = responsible(AgencyKind.COMMITTEE)
    if owner is None:
        return []
    oid = obligation_id(h.patient.id, "R6", span.key, "care-team-warning", cycle)
    return [
        Assignment(oid, ObligationKind.NOTICE, "R6", "medication_run_out_warning", owner, span.key, None, h.risk_level)
    ]
