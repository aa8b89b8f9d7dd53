"""The ten focus categories (十类重点患者) and the key grade (重点), DESIGN.md R16 (Q-2).

Pure: a patient's facts in, categories out; no I/O, no clock ("on" is given). Every category
is derived from facts by occurred time (at the same occurred time, the fact recorded later wins):

- ``irregular_medication``: the latest assessed adherence is intermittent or none, or the patient
  is on medication at home and the supply ran out (the first day without medication, 00:00 China
  time, is on or before ``on``: R6's deadline passed, derived from the pickups alone);
- ``lives_alone``, ``family_history``, ``can_drive``: the latest statement of each says so;
- ``no_or_weak_guardian``: the latest guardian status is none or weak (a designated social
  guardian is a guardian; nothing recorded is not a category);
- ``lost``: an agency's latest declaration says whereabouts unknown, or the consecutive missed
  visits reach R5's threshold (the same conditions as R5: ``domain.rules.r05_lost_to_follow_up``);
- ``refuses_visits``: the latest report of a refusal of visits, or of management (which refuses
  the visits too), says it holds;
- ``forced_admission``: any involuntary admission on record;
- ``incident_history``: any incident on record;
- ``extreme_poverty``: the latest stated economic status is extreme poverty (特困), or 特困 support
  is pending or granted.

Key (重点): two or more categories, or lost, or incident history, or risk level 3 or more.

The conditions are written over *entries* (``domain.rules.entries``) so that the R16 rule can ask
them after each recorded fact (``domain.rules.r16_key_patient_contact``); ``categories(patient, on)`` asks them over
the whole file. This module imports no rule module (the rules import it).
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from domain.identity import CHINA_TZ
from domain.patient_care import AidType
from domain.patient_file import Adherence, AdmissionKind, EconomicStatus, GuardianStatus, RefusalKind
from domain.rules.entries import Entry, Known, cared_for, latest, of, order, risk_level
from domain.values import HIGH_RISK_LEVEL

IRREGULAR_MEDICATION = "irregular_medication"
LIVES_ALONE = "lives_alone"
NO_OR_WEAK_GUARDIAN = "no_or_weak_guardian"
LOST = "lost"
REFUSES_VISITS = "refuses_visits"
FORCED_ADMISSION = "forced_admission"
INCIDENT_HISTORY = "incident_history"
FAMILY_HISTORY = "family_history"
EXTREME_POVERTY = "extreme_poverty"
CAN_DRIVE = "can_drive"

#: The ten categories, in DESIGN.md's order (stable names: read models and reports show them).
CATEGORIES = (
    IRREGULAR_MEDICATION,
    LIVES_ALONE,
    NO_OR_WEAK_GUARDIAN,
    LOST,
    REFUSES_VISITS,
    FORCED_ADMISSION,
    INCIDENT_HISTORY,
    FAMILY_HISTORY,
    EXTREME_POVERTY,
    CAN_DRIVE,
)

#: Categories that make a patient key on their own.
KEY_ALONE = frozenset({LOST, INCIDENT_HISTORY})

_IRREGULAR = (Adherence.INTERMITTENT, Adherence.NONE)
_NO_OR_WEAK = (GuardianStatus.NONE, GuardianStatus.WEAK)
_REFUSALS = (RefusalKind.VISITS, RefusalKind.MANAGEMENT)
_AID_STEPS = {"aid_applied": True, "aid_granted": True, "aid_found_ineligible": False, "aid_revoked": False}
_DEFAULT_LOST_AFTER = 3  # RuleSettings.r5_misses_that_mean_lost's default (R5)


def entries(patient: Any) -> list[Entry]:
    """Every fact of the patient as an entry tagged with its kind (a visit: a visit and an
    assessment entry with one stream version)."""
    out = [{**e, "kind": "visit"} for e in patient.visits]
    out += [{**e, "kind": "assessment"} for e in patient.assessments]
    out += [{**e, "kind": "missed"} for e in patient.missed]
    for kind, found in patient.facts.items():
        out += [{**e, "kind": kind} for e in found]
    return out


def supply_runs_out_on(pickups: Iterable[Entry]) -> date | None:
    """The first day without medication: pickups by date, leftover supply carried over."""
    end: date | None = None
    for e in sorted(pickups, key=lambda e: (e["dispensed_on"], e["key"])):
        start = e["dispensed_on"] if end is None or end < e["dispensed_on"] else end
        end = start + timedelta(days=e["days_supplied"])
    return end


def supply_ran_out(known: list[Entry], on: datetime) -> bool:
    """On medication at home and the supply ran out by ``on`` (R6's deadline passed)."""
    end = supply_runs_out_on(of(known, "medication"))
    return end is not None and not cared_for(known) and on >= datetime.combine(end, time(0), CHINA_TZ)


class _Running:
    """What the categories read, folded entry by entry (the walk asks after every fact: each
    step costs the facts it adds, not the whole history). "Latest" is by occurred time, the
    message id breaking ties, as everywhere."""

    def __init__(self) -> None:
        self.seen = 0
        self.stated: dict[str, Entry] = {}  # circumstance → latest statement of it
        self.refusals: dict[str, Entry] = {}  # refusal kind → latest report
        self.poverty_aid: Entry | None = None  # latest 特困 step
        self.forced = self.incident = False
        self.missed: list[date] = []  # scheduled dates, sorted
        self.pickups: list[Entry] = []  # by date
        self.supply_end: date | None = None

    def add(self, e: Entry) -> None:
        kind = e.get("kind")
        if kind == "circumstances":
            for name in ("lives_alone", "can_drive", "family_history", "economic_status"):
                if e[name] is not None and _later(e, self.stated.get(name)):
                    self.stated[name] = e
        elif kind == "refusal" and _later(e, self.refusals.get(e["refusal"])):
            self.refusals[e["refusal"]] = e
        elif kind in _AID_STEPS and e["aid_type"] == AidType.EXTREME_POVERTY_SUPPORT and _later(e, self.poverty_aid):
            self.poverty_aid = e
        elif kind == "hospital":
            self.forced = self.forced or (e["admitted"] and e["admission_kind"] == AdmissionKind.INVOLUNTARY)
        elif kind == "incident":
            self.incident = True
        elif kind == "missed":
            insort(self.missed, e["scheduled_on"])
        elif kind == "medication":
            order = (e["dispensed_on"], e["key"])
            if self.pickups and order < (self.pickups[-1]["dispensed_on"], self.pickups[-1]["key"]):
                self.pickups.append(e)  # dated before the last one: fold again
                self.pickups.sort(key=lambda p: (p["dispensed_on"], p["key"]))
                self.supply_end = supply_runs_out_on(self.pickups)
            else:  # the usual case: the next pickup by date carries the leftover supply on
                self.pickups.append(e)
                start = (
                    e["dispensed_on"]
                    if self.supply_end is None or self.supply_end < e["dispensed_on"]
                    else self.supply_end
                )
                self.supply_end = start + timedelta(days=e["days_supplied"])

    def catch_up(self, known: list[Entry]) -> _Running:
        for e in known[self.seen :]:
            self.add(e)
        self.seen = len(known)
        return self

    def says(self, name: str) -> Any:
        found = self.stated.get(name)
        return None if found is None else found[name]

    def misses_since(self, last_visit: Entry | None) -> int:
        if last_visit is None:
            return len(self.missed)
        return len(self.missed) - bisect_right(self.missed, last_visit["at"].date())


def _later(e: Entry, than: Entry | None) -> bool:
    return than is None or order(e) > order(than)


def _running(known: list[Entry]) -> _Running:
    if isinstance(known, Known):  # the walk's known entries only grow: keep the fold with them
        return known.__dict__.setdefault("_focus", _Running()).catch_up(known)
    return _Running().catch_up(known)


def categories_of(known: list[Entry], on: datetime, lost_after: int = _DEFAULT_LOST_AFTER) -> frozenset[str]:
    """The focus categories over ``known`` entries (module doc), with the supply judged on ``on``."""
    r = _running(known)
    found = set()
    adherence = latest(known, "adherence")
    ran_out = (
        r.supply_end is not None and not cared_for(known) and on >= datetime.combine(r.supply_end, time(0), CHINA_TZ)
    )
    if (adherence is not None and adherence["adherence"] in _IRREGULAR) or ran_out:
        found.add(IRREGULAR_MEDICATION)
    if r.says("lives_alone"):
        found.add(LIVES_ALONE)
    guardian = latest(known, "guardian")
    if guardian is not None and guardian["status"] in _NO_OR_WEAK:
        found.add(NO_OR_WEAK_GUARDIAN)
    whereabouts = latest(known, "whereabouts")
    if (whereabouts is not None and not whereabouts["known"]) or r.misses_since(latest(known, "visit")) >= lost_after:
        found.add(LOST)
    if any(not r.refusals[k]["ended"] for k in _REFUSALS if k in r.refusals):
        found.add(REFUSES_VISITS)
    if r.forced:
        found.add(FORCED_ADMISSION)
    if r.incident:
        found.add(INCIDENT_HISTORY)
    if r.says("family_history"):
        found.add(FAMILY_HISTORY)
    if r.says("economic_status") == EconomicStatus.EXTREME_POVERTY or (
        r.poverty_aid is not None and _AID_STEPS[r.poverty_aid["kind"]]
    ):
        found.add(EXTREME_POVERTY)
    if r.says("can_drive"):
        found.add(CAN_DRIVE)
    return frozenset(found)


def is_key(categories: Iterable[str], level: int | None) -> bool:
    """The key grade (重点): 2+ categories, or lost, or incident history, or level ≥ 3."""
    cats = frozenset(categories)
    return len(cats) >= 2 or bool(cats & KEY_ALONE) or (level is not None and level >= HIGH_RISK_LEVEL)


def key_graded(known: list[Entry], on: datetime, lost_after: int = _DEFAULT_LOST_AFTER) -> bool:
    """The key grade over ``known`` entries."""
    return is_key(categories_of(known, on, lost_after), risk_level(known))


def _known(patient: Any, on: datetime) -> Known:
    known = Known()
    known.add([e for e in entries(patient) if e["at"] <= on])
    return known


def categories(patient: Any, on: datetime, lost_after: int = _DEFAULT_LOST_AFTER) -> frozenset[str]:
    """The patient's focus categories as of ``on`` (facts dated on or before it)."""
    return categories_of(_known(patient, on), on, lost_after)


def grade_holds(patient: Any, on: datetime) -> tuple[datetime, datetime | None]:
    """A span ``[since, until)`` holding ``on`` over which ``grade(patient, t)`` is the same as on
    ``on`` (``until`` None: for good), for the patient as it is (a new fact ends it): the grade
    reads time only through the facts dated on or before it and the day the medication ran out,
    so it holds from the latest fact (or the supply's end, if that came later and ``on`` is past
    it) until the supply's end (when ``on`` is before it). A fact dated after ``on``: the span is
    ``on`` alone."""
    found = entries(patient)
    latest_at = max((e["at"] for e in found), default=on)
    if latest_at > on:
        return on, on + timedelta(microseconds=1)
    end = supply_runs_out_on(e for e in found if e["kind"] == "medication")
    if end is None:
        return latest_at, None
    runs_out = datetime.combine(end, time(0), CHINA_TZ)
    if on >= runs_out:
        return max(latest_at, runs_out), None
    return latest_at, runs_out


def grade(patient: Any, on: datetime, lost_after: int = _DEFAULT_LOST_AFTER) -> dict[str, Any]:
    """What a focus list shows: the categories (in DESIGN.md's order), the level and the key grade."""
    known = _known(patient, on)
    cats = categories_of(known, on, lost_after)
    level = risk_level(known)
    return {"categories": [c for c in CATEGORIES if c in cats], "risk_level": level, "key": is_key(cats, level)}
