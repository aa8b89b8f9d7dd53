"""R11 — a discharged patient gets a first follow-up visit (no 出院即失管).

Seed: Qingyang Q-26 (出院即失管); owner: the health center covering the residence (none on
record: the governance center, ``assign_health_center``); deadline:
``RuleSettings.r11_first_follow_up`` (7 days, our default).

- *Episode*: on the register, the latest hospital fact is a discharge, and no visit took place
  after it.
- *Opens*: the health center → ``first_follow_up_after_discharge``.
- *Completed by*: the first visit after the discharge. *Cancelled by*: a new admission, or the
  patient leaves the register.
"""

from __future__ import annotations

from domain.registry import AgencyKind
from domain.rules.engine import (
    Assignment,
    Closing,
    Condition,
    EpisodeRule,
    History,
    Responsible,
    Span,
    Trigger,
    left_register,
    obligation,
)
from domain.rules.entries import REREGISTRATION, Entry, deregistration, earliest, in_hospital, latest, of, order
from domain.rules.settings import RuleSettings


def _discharged_unvisited(known: list[Entry]) -> bool:
    stay = latest(known, "hospital")
    if deregistration(known) or stay is None or stay["admitted"]:
        return False
    visit = latest(known, "visit")
    return visit is None or order(visit) < order(stay)  # a visit at the discharge's time, recorded after it, counts


def _ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if in_hospital(known):
        return Closing(reason="the patient was admitted to hospital again")
    stay = latest(known, "hospital")
    first = earliest(e for e in of(known, "visit") if order(e) > order(stay))  # type: ignore[arg-type]
    return Closing(completed_by=first["key"])  # type: ignore[index]


def _assign(t: Trigger, s: Span, h: History, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    return obligation(
        t,
        responsible,
        AgencyKind.HEALTH_CENTER,
        rule="R11",
        key=s.key,
        role="health-center",
        action="first_follow_up_after_discharge",
        due_at=t.recorded_at + settings.r11_first_follow_up,
        risk_level=h.risk_level,
    )


R11 = EpisodeRule(
    "R11",
    AgencyKind.HEALTH_CENTER,
    Condition("R11", ("hospital", "visit", "deregistration", REREGISTRATION), _discharged_unvisited, _ended),
    _assign,
    closes=("health-center",),
)
