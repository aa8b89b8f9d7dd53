"""Indicators (DESIGN.md section 3, "Indicators"): what each figure counts, as data with a
version, and the pure computation of every figure from the facts recorded up to a log position.

The facts an indicator reads are a small vocabulary (``FactRow``): a registration (with the
residence), a deregistration, a visit (face to face or not, the assessed class), a risk
assessment, a missed visit (its scheduled day), an adherence record, a hospital stay fact, a
whereabouts declaration. The read model (``projections.indicators``) keeps one row per such fact
with the log position it was recorded at; so the figures "as recorded up to position P" are
those computed from the rows at or below P, whatever was recorded since, and a replay of the log
up to P gives the same rows (docs/decisions/036).

Every fact counts by its **occurred** time: a patient's standing at a period's end is what the
facts that occurred by then say (a late fact recorded after P is not in the figure at P; it is in
the "with late facts" figure, labelled). Obligations count by their own recorded times (the
system's acts: assigned, completed, cancelled).

Everything here is pure: no clock, no I/O.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID

from domain.errors import DomainError
from domain.identity import CHINA_TZ

#: The version of the definitions below; every figure carries it. Changing what a figure counts
#: means a new version (and a new entry in ``DEFINITIONS``), never a changed meaning of this one.
DEFINITIONS_VERSION = 1

#: R5's threshold, as the file shows the derived lost status (domain.lists).
LOST_AFTER_MISSES = 3
#: "Adjacent visits no more than 3 months apart" (the national norm), in days.
NORM_GAP_DAYS = 92
#: "At least 4 visits a year" (the national norm).
NORM_VISITS_A_YEAR = 4

# Period rules (what part of time a figure looks at)
AT_END = "at_end"  # the standing at the period's end
YEAR_TO_DATE = "year_to_date"  # from 1 January of the period's year to the period's end
DUE_IN_PERIOD = "due_in_period"  # obligations whose deadline falls within the period

PERIOD_RULES = {
    AT_END: "as it stood at the end of the period's last day (China time), by occurred time",
    YEAR_TO_DATE: "year to date: from 1 January of the period's year to the period's end (an annual rate"
    " shown in a monthly or quarterly report)",
    DUE_IN_PERIOD: "the obligations whose deadline falls within the period; done on time by their"
    " completion's recorded time",
}


@dataclass(frozen=True, slots=True)
class Definition:
    """What one indicator counts: its name, its Chinese label, numerator and denominator in words,
    its period rule, the unit its value is in and the version of the definitions."""

    name: str
    label: str
    numerator: str
    denominator: str | None  # None: a count
    period_rule: str
    unit: str  # "patients", "‰", "%"
    ours: bool = False  # no published national definition: ours, stated as such
    version: int = DEFINITIONS_VERSION


DEFINITIONS: tuple[Definition, ...] = (
    Definition(
        "registered",
        "在册",
        "patients registered by the period's end and not deregistered by then (lost and refusing patients stay"
        " registered)",
        None,
        AT_END,
        "patients",
    ),
    Definition(
        "reported_prevalence",
        "报告患病率",
        "registered patients",
        "the resident population of the unit (the registry's figure as of the period's end)",
        AT_END,
        "‰",
    ),
    Definition(
        "managed",
        "在管",
        "registered patients with at least one visit (each visit includes a risk assessment) in the year to"
        " date, or in hospital at the period's end",
        None,
        YEAR_TO_DATE,
        "patients",
    ),
    Definition("management_rate", "管理率", "managed patients (在管)", "registered patients", YEAR_TO_DATE, "%"),
    Definition(
        "norm_management_rate",
        "规范管理率",
        "registered patients with, in the year to date, at least ⌈4 × months elapsed ÷ 12⌉ visits (4 a year,"
        " pro rata; months elapsed: the period's last month number) and no two adjacent visits more than 92"
        " days apart",
        "registered patients",
        YEAR_TO_DATE,
        "%",
    ),
    Definition(
        "face_to_face_rate",
        "面访率",
        "registered patients with at least one face-to-face visit in the year to date",
        "registered patients",
        YEAR_TO_DATE,
        "%",
        ours=True,
    ),
    Definition(
        "medication_rate",
        "服药率",
        "registered patients whose latest adherence record by the period's end is regular or intermittent",
        "registered patients",
        AT_END,
        "%",
    ),
    Definition(
        "regular_medication_rate",
        "规律服药率",
        "registered patients whose latest adherence record by the period's end is regular",
        "registered patients",
        AT_END,
        "%",
    ),
    Definition(
        "stable_rate",
        "稳定率",
        "patients of the denominator whose latest assessment (visit or risk assessment) is stable",
        "registered patients with an assessment by the period's end who are not in hospital at its end",
        AT_END,
        "%",
    ),
    Definition(
        "lost_rate",
        "失访率",
        "registered patients lost at the period's end: an agency's latest declaration says whereabouts unknown,"
        " or 3 or more missed visits scheduled after the day of the latest visit",
        "registered patients",
        AT_END,
        "%",
    ),
    Definition(
        "obligations_on_time",
        "按时完成率",
        "obligations (not notices) due in the period and completed by their deadline (completion recorded at"
        " or before it), by agency and rule; median lateness in days over those completed late",
        "obligations due in the period and not cancelled",
        DUE_IN_PERIOD,
        "%",
    ),
)

BY_NAME = {d.name: d for d in DEFINITIONS}


# -- periods ------------------------------------------------------------------------------------------

MONTH = re.compile(r"^((?:19|20|21)\d{2})-(0[1-9]|1[0-2])$")
QUARTER = re.compile(r"^((?:19|20|21)\d{2})-Q([1-4])$")
YEAR = re.compile(r"^((?:19|20|21)\d{2})$")


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """A month (2026-05), a quarter (2026-Q2) or a year (2026): its first day and its last day."""

    label: str
    first: date
    last: date

    @property
    def starts_at(self) -> datetime:
        """The period's first instant (China time)."""
        return datetime.combine(self.first, time(0), CHINA_TZ)

    @property
    def ends_at(self) -> datetime:
        """The instant after the period's last day (China time): facts before it count."""
        return datetime.combine(self.last + timedelta(days=1), time(0), CHINA_TZ)

    @property
    def year_starts_at(self) -> datetime:
        """1 January of the period's year, 00:00 China time (the year-to-date rule)."""
        return datetime.combine(date(self.last.year, 1, 1), time(0), CHINA_TZ)

    @property
    def months_elapsed(self) -> int:
        """The period's last month number (1-12): how much of the year the year to date covers."""
        return self.last.month

    def previous(self) -> ReportPeriod:
        """The period of the same length just before (a quarter's previous quarter)."""
        if MONTH.match(self.label):
            before = self.first - timedelta(days=1)
            return parse_period(f"{before.year}-{before.month:02d}")
        if QUARTER.match(self.label):
            before = self.first - timedelta(days=1)
            return parse_period(f"{before.year}-Q{(before.month - 1) // 3 + 1}")
        return parse_period(str(self.first.year - 1))


def _month_end(year: int, month: int) -> date:
    return (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)


def parse_period(label: str) -> ReportPeriod:
    """A period from its label (``PeriodInvalid`` when it is none)."""
    if m := MONTH.match(label):
        y, mo = int(m[1]), int(m[2])
        return ReportPeriod(label, date(y, mo, 1), _month_end(y, mo))
    if m := QUARTER.match(label):
        y, q = int(m[1]), int(m[2])
        return ReportPeriod(label, date(y, 3 * q - 2, 1), _month_end(y, 3 * q))
    if m := YEAR.match(label):
        y = int(m[1])
        return ReportPeriod(label, date(y, 1, 1), date(y, 12, 31))
    raise PeriodInvalid(label)


# -- the facts -------------------------------------------------------------------------------------

#: The kinds of fact an indicator reads (``FactRow.kind``).
REGISTERED, DEREGISTERED, VISIT, ASSESSED, MISSED, ADHERENCE, HOSPITAL, WHEREABOUTS, INCIDENT = (
    "registered",
    "deregistered",
    "visit",
    "assessed",
    "missed",
    "adherence",
    "hospital",
    "whereabouts",
    "incident",
)
KINDS = (REGISTERED, DEREGISTERED, VISIT, ASSESSED, MISSED, ADHERENCE, HOSPITAL, WHEREABOUTS, INCIDENT)


@dataclass(frozen=True, slots=True)
class FactRow:
    """One fact an indicator reads, with the log position it was recorded at.

    ``flag``: a visit face to face; a hospital fact an admission; a whereabouts declaration
    "known" (located). ``value``: a visit's or assessment's class; an adherence; a missed visit's
    scheduled day (ISO); an incident's kind. ``residence``: on a registration, the patient's
    residence (fixed at registration; the other facts' rows leave it out). ``level``: a visit's
    or assessment's risk level (0-5), an incident's severity (1-3) (the view's version 2; the
    reports' high-risk count and incidents read it).
    """

    position: int
    patient_id: UUID
    kind: str
    occurred_at: datetime
    residence: str | None = None
    flag: bool | None = None
    value: str | None = None
    level: int | None = None


@dataclass(frozen=True, slots=True)
class ObligationRow:
    """An obligation or notice as the indicators read it: when assigned (log position), whose,
    which rule, its deadline, when completed or cancelled (log position and recorded time)."""

    obligation_id: UUID
    position: int
    kind: str
    rule: str
    assignee: str
    residence: str
    due_at: datetime | None
    done_at: datetime | None = None
    done_position: int | None = None
    cancelled_position: int | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """A patient's standing at a period's end, as the definitions read it."""

    patient_id: UUID
    residence: str
    registered: bool
    managed: bool
    norm_managed: bool
    face_to_face: bool
    taking_medication: bool
    regular_medication: bool
    assessed_at_home: bool
    stable: bool
    lost: bool


def counts_in_this_region(patient_facts: Sequence[FactRow]) -> bool:
    """The hook for dual management (DESIGN.md section 6): a dual-managed patient counts only in
    the residence region. No patient is dual-managed yet (no region feeds another its facts): every patient of
    this region's log lives here, so every one counts. When dual management exists, a patient
    whose residence region is another region's returns False here."""
    return True


def _day(at: datetime) -> date:
    return at.astimezone(CHINA_TZ).date()


def standing(facts: Sequence[FactRow], period: ReportPeriod) -> Standing | None:
    """The patient's standing at the period's end from its facts (already cut at a position);
    None when the patient was not registered by then (by occurred time)."""
    end = period.ends_at
    known = sorted((f for f in facts if f.occurred_at < end), key=lambda f: (f.occurred_at, f.position))
    reg = next((f for f in known if f.kind == REGISTERED), None)
    if reg is None:
        return None
    registered = not any(f.kind == DEREGISTERED for f in known)

    def latest(kind: str | tuple[str, ...]) -> FactRow | None:
        kinds = (kind,) if isinstance(kind, str) else kind
        return next((f for f in reversed(known) if f.kind in kinds), None)

    visits = [f for f in known if f.kind == VISIT]
    ytd = [f for f in visits if f.occurred_at >= period.year_starts_at]
    hospital = latest(HOSPITAL)
    in_hospital = bool(hospital and hospital.flag)
    required = max(1, math.ceil(NORM_VISITS_A_YEAR * period.months_elapsed / 12))
    days = [_day(v.occurred_at) for v in ytd]
    gaps_ok = all((b - a).days <= NORM_GAP_DAYS for a, b in pairwise(days))
    adherence = latest(ADHERENCE)
    assessment = latest((VISIT, ASSESSED))
    at_home = assessment is not None and not in_hospital
    whereabouts = latest(WHEREABOUTS)
    last_visit = _day(visits[-1].occurred_at) if visits else None
    misses = sum(
        1 for f in known if f.kind == MISSED and (last_visit is None or date.fromisoformat(f.value or "") > last_visit)
    )
    return Standing(
        patient_id=reg.patient_id,
        residence=reg.residence or "",
        registered=registered,
        managed=bool(ytd) or in_hospital,
        norm_managed=len(ytd) >= required and gaps_ok,
        face_to_face=any(v.flag for v in ytd),
        taking_medication=bool(adherence and adherence.value in ("regular", "intermittent")),
        regular_medication=bool(adherence and adherence.value == "regular"),
        assessed_at_home=at_home,
        stable=at_home and assessment is not None and assessment.value == "stable",
        lost=bool(whereabouts and whereabouts.flag is False) or misses >= LOST_AFTER_MISSES,
    )


def standings(rows: Iterable[FactRow], period: ReportPeriod, position: int) -> list[Standing]:
    """Every registered patient's standing at the period's end, from the rows recorded at or
    below ``position`` (the dual-management hook decides who counts here)."""
    by_patient: dict[UUID, list[FactRow]] = {}
    for r in rows:
        if r.position <= position:
            by_patient.setdefault(r.patient_id, []).append(r)
    found = []
    for facts in by_patient.values():
        if not counts_in_this_region(facts):
            continue
        s = standing(facts, period)
        if s is not None and s.registered:
            found.append(s)
    return sorted(found, key=lambda s: str(s.patient_id))


# -- figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    """One indicator's value: numerator, denominator (None for a count), the value in the
    definition's unit (rounded to 2 decimals; None when the denominator is 0), the log position
    it was computed at and the definition's version."""

    name: str
    label: str
    numerator: int
    denominator: int | None
    value: float | int | None
    unit: str
    position: int
    version: int = DEFINITIONS_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "value": self.value,
            "unit": self.unit,
            "position": self.position,
            "definition_version": self.version,
        }


def _rate(numerator: int, denominator: int, per: int) -> float | None:
    return None if denominator == 0 else round(numerator * per / denominator, 2)


def figures(people: Sequence[Standing], population: int, position: int) -> list[Figure]:
    """The patient indicators over these standings (every registered patient of a scope)."""
    registered = len(people)
    counts = {
        "managed": sum(s.managed for s in people),
        "norm_management_rate": sum(s.norm_managed for s in people),
        "face_to_face_rate": sum(s.face_to_face for s in people),
        "medication_rate": sum(s.taking_medication for s in people),
        "regular_medication_rate": sum(s.regular_medication for s in people),
        "lost_rate": sum(s.lost for s in people),
    }
    assessed = sum(s.assessed_at_home for s in people)
    stable = sum(s.stable for s in people)

    def fig(name: str, num: int, den: int | None, per: int = 100) -> Figure:
        d = BY_NAME[name]
        value = num if den is None else _rate(num, den, per)  # a count is a whole number
        return Figure(d.name, d.label, num, den, value, d.unit, position)

    return [
        fig("registered", registered, None),
        fig("reported_prevalence", registered, population, 1000),
        fig("managed", counts["managed"], None),
        fig("management_rate", counts["managed"], registered),
        fig("norm_management_rate", counts["norm_management_rate"], registered),
        fig("face_to_face_rate", counts["face_to_face_rate"], registered),
        fig("medication_rate", counts["medication_rate"], registered),
        fig("regular_medication_rate", counts["regular_medication_rate"], registered),
        fig("stable_rate", stable, assessed),
        fig("lost_rate", counts["lost_rate"], registered),
    ]


@dataclass(frozen=True, slots=True)
class ObligationFigure:
    """Obligations of one agency under one rule due in the period: how many, how many done on
    time, how many done late, how many still open (at the position), the on-time rate in %,
    the median lateness in days (1 decimal) of those done late."""

    assignee: str
    rule: str
    due: int
    on_time: int
    late: int
    open: int
    rate: float | None
    median_lateness_days: float | None
    position: int
    version: int = DEFINITIONS_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "assignee": self.assignee,
            "rule": self.rule,
            "due": self.due,
            "on_time": self.on_time,
            "late": self.late,
            "open": self.open,
            "rate": self.rate,
            "median_lateness_days": self.median_lateness_days,
            "position": self.position,
            "definition_version": self.version,
        }


def obligation_figures(
    rows: Iterable[ObligationRow], period: ReportPeriod, position: int, residences: set[str] | None = None
) -> list[ObligationFigure]:
    """Obligations due in the period, as recorded up to ``position``, by assignee and rule
    (``residences``: only those about patients or reporters living there; None: all)."""
    groups: dict[tuple[str, str], list[ObligationRow]] = {}
    for o in rows:
        if o.position > position or o.kind != "obligation" or o.due_at is None:
            continue
        if o.cancelled_position is not None and o.cancelled_position <= position:
            continue
        if not period.starts_at <= o.due_at < period.ends_at:
            continue
        if residences is not None and o.residence not in residences:
            continue
        groups.setdefault((o.assignee, o.rule), []).append(o)
    found = []
    for (assignee, rule), items in sorted(groups.items()):
        done = [o for o in items if o.done_position is not None and o.done_position <= position]
        on_time = [o for o in done if o.done_at is not None and o.due_at is not None and o.done_at <= o.due_at]
        late = [o for o in done if o not in on_time]
        lateness = [(o.done_at - o.due_at).total_seconds() / 86400 for o in late if o.done_at and o.due_at]
        found.append(
            ObligationFigure(
                assignee=assignee,
                rule=rule,
                due=len(items),
                on_time=len(on_time),
                late=len(late),
                open=len(items) - len(done),
                rate=_rate(len(on_time), len(items), 100),
                median_lateness_days=round(statistics.median(lateness), 1) if lateness else None,
                position=position,
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose figures: an org unit (and everything under it) or an agency (its jurisdiction)."""

    kind: str  # "org_unit" | "agency"
    id: str
    name: str
    units: frozenset[str]
    population: int
    children: tuple[tuple[str, str, frozenset[str], int], ...] = field(default=())  # (id, name, units, population)


class PeriodInvalid(DomainError):
    """A period is a month (2026-05), a quarter (2026-Q2) or a year (2026)."""

    code = "period-invalid"

    def __init__(self, label: str) -> None:
        super().__init__(f"period {label!r} is not a month (2026-05), a quarter (2026-Q2) or a year (2026)")


class UnknownScope(DomainError):
    """A report is about an org unit or agency of the region's registry."""

    code = "unknown-scope"

    def __init__(self, kind: str, ident: str, on: date) -> None:
        what = "org unit" if kind == "org_unit" else "agency"
        super().__init__(f"no {what} {ident!r} in the registry on {on.isoformat()} (the period's last day)")


class PositionBeyondHead(DomainError):
    """A report is computed at a log position that exists."""

    code = "position-beyond-head"

    def __init__(self, position: int, head: int) -> None:
        super().__init__(f"at_position {position} is beyond the log's last position {head}")
