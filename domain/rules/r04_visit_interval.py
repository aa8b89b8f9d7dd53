"""R4 — a registered patient at home is visited at the interval the risk class asks.

Seed: the national service norm (unstable every 2 weeks, basically stable monthly, stable every
3 months); owner: the health center covering the residence (none on record: the governance
center, ``assign_health_center``); intervals: ``RuleSettings.r4_unstable``,
``r4_basically_stable``, ``r4_stable``, and ``r4_first_visit`` when no class is known yet.

- *Episode*: on the register and not in hospital or institutional care; the first opens with the
  registration, and one opens with a re-registration (a move back, first-visit interval).
- *Cycles*: each a ``follow_up_visit`` obligation due one interval after its anchor: the latest
  visit dated at or after the episode opened (else the fact that opened it); the interval is
  the class the anchoring visit recorded (at the opening, the latest class known). The next
  visit completes the cycle and opens the next; a late one is marked overdue by R15.
- *Cancelled by*: an admission to hospital or a placement in institutional care, or the patient leaves the register.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.registry import AgencyKind
from domain.rules.engine import Closing, Condition, CycleRule, History, left_register
from domain.rules.entries import (
    CARED_FOR_KINDS,
    REREGISTRATION,
    Entry,
    cared_for,
    cared_for_reason,
    deregistration,
    fact_of,
)
from domain.rules.settings import RuleSettings
from domain.values import RiskClass


def _registered_at_home(known: list[Entry]) -> bool:
    return deregistration(known) is None and not cared_for(known)


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    return Closing(reason=cared_for_reason(known))


def interval(h: History, anchor: Entry, upto: int, settings: RuleSettings) -> timedelta:
    """The interval the anchoring visit's class asks (at the opening: the latest class known; at a
    re-registration none is: the class assessed before the patient left is not this episode's)."""
    if fact_of(h.patient, REREGISTRATION, anchor["key"]) is not None:
        return settings.r4_first_visit
    found = h.assessment(anchor["key"], upto) or h.latest_assessment(upto)
    cls = None if found is None else found["class"]
    return {
        RiskClass.UNSTABLE: settings.r4_unstable,
        RiskClass.BASICALLY_STABLE: settings.r4_basically_stable,
        RiskClass.STABLE: settings.r4_stable,
    }.get(cls, settings.r4_first_visit)  # type: ignore[arg-type]


def _due(h: History, anchor: Entry, upto: int, settings: RuleSettings) -> datetime:
    return anchor["at"] + interval(h, anchor, upto, settings)


R4 = CycleRule(
    "R4",
    "visit",
    AgencyKind.HEALTH_CENTER,
    "follow_up_visit",
    Condition("R4", ("registration", *CARED_FOR_KINDS, "deregistration", REREGISTRATION), _registered_at_home, _ended),
    anchor_kind="visit",
    due=_due,
)
