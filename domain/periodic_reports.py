"""The monthly and quarterly reports (docs/decisions/038): the work plan's task table as
data with a version, and the pure figures the quarterly joint meeting's risk analysis adds to the
indicators (high-risk patients, incidents, obligations overdue by agency, trends against the
previous quarter).

Everything here is pure: the rows come in already cut at a log position
(``domain.indicators``' rows), the registry's answers as plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.errors import DomainError
from domain.indicators import (
    ASSESSED,
    BY_NAME,
    INCIDENT,
    VISIT,
    FactRow,
    ObligationRow,
    ReportPeriod,
    Standing,
)
from domain.registry import AgencyKind
from domain.values import HIGH_RISK_LEVEL

#: Agency kinds whose work the system records (facts, obligations): their progress on a task is
#: evidenced by figures. A ``department`` records only its own progress entries.
EVIDENCED_KINDS = frozenset(k.value for k in AgencyKind) - {AgencyKind.DEPARTMENT.value, AgencyKind.AUDITOR.value}


@dataclass(frozen=True, slots=True)
class PlanTask:
    """One task of the work plan: number, action, text, who leads and who is responsible (agency
    kinds), the offices meant by ``department``, and what evidences it in the system."""

    number: int
    action: str
    text: str
    upper_lead: str
    lead: str
    responsible: tuple[str, ...]
    departments: tuple[str, ...]
    indicators: tuple[str, ...]
    rules: tuple[str, ...]

    @property
    def kinds(self) -> frozenset[str]:
        """Every agency kind the task names (lead or responsible)."""
        return frozenset((self.lead, *self.responsible))

    @property
    def evidenced(self) -> bool:
        """Whether anything recorded in the system evidences the task."""
        return bool(self.indicators or self.rules)


@dataclass(frozen=True, slots=True)
class WorkPlan:
    """The task table, with its version (a changed table is a new version)."""

    version: int
    title: str
    source: str
    tasks: tuple[PlanTask, ...]

    def for_kind(self, kind: str) -> list[PlanTask]:
        """The tasks naming this agency kind."""
        return [t for t in self.tasks if kind in t.kinds]

    def task(self, number: int) -> PlanTask | None:
        return next((t for t in self.tasks if t.number == number), None)


class WorkPlanInvalid(DomainError):
    """The work plan file names only known kinds, indicators and rules, each task once."""

    code = "work-plan-invalid"


def parse_work_plan(doc: Mapping[str, Any], known_rules: Iterable[str]) -> WorkPlan:
    """The work plan from its file's content (``WorkPlanInvalid`` naming the first problem)."""
    kinds = {k.value for k in AgencyKind}
    rules = set(known_rules)
    tasks = []
    seen: set[int] = set()
    for raw in doc.get("tasks", []):
        try:
            t = PlanTask(
                number=int(raw["number"]),
                action=str(raw["action"]),
                text=str(raw["text"]),
                upper_lead=str(raw.get("upper_lead", "")),
                lead=str(raw["lead"]),
                responsible=tuple(raw.get("responsible", ())),
                departments=tuple(raw.get("departments", ())),
                indicators=tuple(raw.get("indicators", ())),
                rules=tuple(raw.get("rules", ())),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise WorkPlanInvalid(f"task {raw.get('number', '?')}: {e!r}") from e
        if t.number in seen:
            raise WorkPlanInvalid(f"task {t.number} is listed twice")
        seen.add(t.number)
        if bad := sorted(t.kinds - kinds):
            raise WorkPlanInvalid(f"task {t.number}: unknown agency kinds {bad}")
        if bad := sorted(set(t.indicators) - set(BY_NAME)):
            raise WorkPlanInvalid(f"task {t.number}: unknown indicators {bad}")
        if bad := sorted(set(t.rules) - rules):
            raise WorkPlanInvalid(f"task {t.number}: unknown rules {bad}")
        tasks.append(t)
    if not tasks:
        raise WorkPlanInvalid("the work plan has no task")
    return WorkPlan(int(doc["version"]), str(doc.get("title", "")), str(doc.get("source", "")), tuple(tasks))


# -- the quarterly joint meeting's risk analysis --------------------------------------------------


def high_risk(facts: Iterable[FactRow], people: Sequence[Standing], period: ReportPeriod) -> set[UUID]:
    """The registered patients (``people``) whose latest risk level by the period's end (a visit's
    or an assessment's, by occurred time) is high (R1's threshold, level 3 or more)."""
    wanted = {s.patient_id for s in people}
    latest: dict[UUID, FactRow] = {}
    for f in facts:
        if f.kind not in (VISIT, ASSESSED) or f.patient_id not in wanted or f.occurred_at >= period.ends_at:
            continue
        held = latest.get(f.patient_id)
        if held is None or (f.occurred_at, f.position) > (held.occurred_at, held.position):
            latest[f.patient_id] = f
    return {p for p, f in latest.items() if f.level is not None and f.level >= HIGH_RISK_LEVEL}


def incidents(facts: Iterable[FactRow], residence_of: Mapping[UUID, str], units: frozenset[str], period: ReportPeriod):
    """The incidents that occurred within the period, of patients living in ``units``: how many,
    by kind, and how many of severity 3."""
    found = [
        f
        for f in facts
        if f.kind == INCIDENT
        and period.starts_at <= f.occurred_at < period.ends_at
        and residence_of.get(f.patient_id) in units
    ]
    by_kind: dict[str, int] = {}
    for f in found:
        by_kind[f.value or ""] = by_kind.get(f.value or "", 0) + 1
    return {"count": len(found), "severe": sum(1 for f in found if (f.level or 0) >= 3), "by_kind": by_kind}


def overdue_by_agency(
    rows: Iterable[ObligationRow], period: ReportPeriod, position: int, residences: frozenset[str]
) -> list[dict[str, Any]]:
    """By agency: the obligations (not notices) due by the period's end still open at its end
    (as recorded up to ``position``: completion recorded after the end, or not at all), and those
    due within the period that were completed late."""
    found: dict[str, dict[str, int]] = {}
    for o in rows:
        if o.position > position or o.kind != "obligation" or o.due_at is None or o.residence not in residences:
            continue
        if o.cancelled_position is not None and o.cancelled_position <= position:
            continue
        done = o.done_position is not None and o.done_position <= position and o.done_at is not None
        row = found.setdefault(o.assignee, {"overdue_open": 0, "due_in_period": 0, "late_in_period": 0})
        if o.due_at < period.ends_at and not (done and o.done_at < period.ends_at):  # type: ignore[operator]
            row["overdue_open"] += 1
        if period.starts_at <= o.due_at < period.ends_at:
            row["due_in_period"] += 1
            if done and o.done_at > o.due_at:  # type: ignore[operator]
                row["late_in_period"] += 1
    return [{"assignee": a, **v} for a, v in sorted(found.items()) if any(v.values())]


def trend(now: int | float | None, before: int | float | None) -> dict[str, Any]:
    """A figure against the previous period: both, the change, and its direction."""
    change = None if now is None or before is None else round(now - before, 2)
    direction = None if change is None else ("up" if change > 0 else "down" if change < 0 else "same")
    return {"value": now, "previous": before, "change": change, "direction": direction}


#: The rules an obligation's row may name (the coordination rules, and TASK for the governance
#: center's tasks): what a work plan's ``rules`` may list.
KNOWN_RULES = frozenset({f"R{n}" for n in range(1, 23)} - {"R7", "R8"} | {"TASK"})


class NotAHealthCenter(DomainError):
    """The quarterly report (卫生院 5) is a health center's."""

    code = "not-a-health-center"

    def __init__(self, agency_id: str) -> None:
        super().__init__(f"{agency_id} is not a health center: the quarterly report is a health center's")
