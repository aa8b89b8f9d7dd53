"""The monthly and quarterly reports (docs/decisions/038), computed like the indicators
from rows as recorded up to a log position — the indicators' rows and the reports view's
task-progress rows — so the same report at the same position is the same whatever was recorded
since, and ``smd report … --at-position P`` recomputes it by replaying the log.

- **Monthly** (三、保障措施, due the 25th): for an org unit, every agency of it and the tasks of
  the work plan that name its kind, each keyed to what evidences it in the system (the task's
  indicators over the agency's jurisdiction, its obligations under the task's rules due in the
  month) beside the agency's own progress entries; a department has no system evidence: its
  entries only, never a figure. The unit's indicators beside.
- **Quarterly, the health center's** (卫生院 5, 3/28 6/28 9/28 12/28): its jurisdiction's
  indicators for the quarter against the previous quarter, its obligations, its own entries.
- **Quarterly, the joint meeting's risk analysis** (四(三)): for the unit and each child,
  high-risk, lost, incidents; obligations overdue by agency; each against the previous quarter.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path
from typing import Any
from uuid import UUID

from domain.indicators import (
    DEFINITIONS_VERSION,
    QUARTER,
    REGISTERED,
    PeriodInvalid,
    ReportPeriod,
    figures,
    obligation_figures,
    parse_period,
    standings,
)
from domain.periodic_reports import (
    EVIDENCED_KINDS,
    KNOWN_RULES,
    NotAHealthCenter,
    WorkPlan,
    high_risk,
    incidents,
    overdue_by_agency,
    parse_work_plan,
    trend,
)
from domain.registry import AgencyKind
from projections.base import Batch
from projections.indicators import Narrowing, Rows, compute, definitions, scope_of, whole_region
from projections.reports import ReportRow, ReportsView


def load_work_plan(path: Path) -> WorkPlan:
    """The work plan's task table from its TOML file (``WorkPlanInvalid`` when malformed)."""
    with path.open("rb") as f:
        return parse_work_plan(tomllib.load(f), KNOWN_RULES)


def replayed_items(case_record: Any, position: int, page: int = 1000) -> list[ReportRow]:
    """The reports view's rows built by replaying the log up to ``position`` (no stored row read)."""
    view = ReportsView()
    found: dict[UUID, ReportRow] = {}
    start = 1
    while start <= position:
        batch = case_record.recorder.select_notifications(start, page, stop=position, topics=view.topics)
        work = Batch()
        for n in batch:
            view.apply(case_record.mapper.to_domain_event(n), n, work)
        for op in work.ops:
            found.setdefault(op.row["item_id"], ReportRow(**op.row))  # type: ignore[attr-defined]
        if len(batch) < page:
            break
        start = batch[-1].id + 1
    return sorted(found.values(), key=lambda r: r.position)


def progress_texts(case_record: Any, items: Iterable[ReportRow]) -> dict[UUID, str]:
    """The sealed texts of these progress records (read from the case record)."""
    loaded = case_record.load_many([i.item_id for i in items if i.what == "task_progress"])
    return {k: getattr(getattr(v, "text", None), "text", "") or "" for k, v in loaded.items()}


def _period_of(label: str, quarter: bool) -> ReportPeriod:
    period = parse_period(label)
    if quarter != bool(QUARTER.match(label)) or len(label) == 4:
        raise PeriodInvalid(label)
    return period


def _header(document: str, title: str, scope: Any, period: ReportPeriod, position: int) -> dict[str, Any]:
    return {
        "document": document,
        "title": title,
        "scope": {"kind": scope.kind, "id": scope.id, "name": scope.name, "population": scope.population},
        "period": {"label": period.label, "first": period.first.isoformat(), "last": period.last.isoformat()},
        "position": position,
        "definitions_version": DEFINITIONS_VERSION,
    }


def _entries(items: Iterable[ReportRow], texts: dict[UUID, str], agency: str, period: ReportPeriod, position: int):
    return [
        {
            "position": i.position,
            "task_number": i.task_number,
            "occurred_at": i.occurred_at.astimezone(UTC).isoformat(),
            "text": texts.get(i.item_id, ""),
        }
        for i in items
        if i.what == "task_progress"
        and i.agency_id == agency
        and i.position <= position
        and period.starts_at <= i.occurred_at < period.ends_at
    ]


def monthly_report(
    rows: Rows,
    items: list[ReportRow],
    texts: dict[UUID, str],
    state: Any,
    unit: str,
    period_label: str,
    position: int,
    plan: WorkPlan,
) -> dict[str, Any]:
    """The monthly report of an org unit as recorded up to ``position`` (see the module)."""
    period = _period_of(period_label, quarter=False)
    scope = scope_of(state, "org_unit", unit, period.last)
    people = standings(rows.facts, period, position)
    obligations = obligation_figures(rows.obligations, period, position)
    agencies = []
    for agency_id in sorted(state.agencies):
        agency = state.agency(agency_id, period.last)
        if agency is None or agency.kind == AgencyKind.AUDITOR or not set(agency.jurisdiction) <= scope.units:
            continue
        own = scope_of(state, "agency", agency_id, period.last)
        figs = {f.name: f.as_dict() for f in figures([s for s in people if s.residence in own.units], 0, position)}
        mine = {o.rule: o.as_dict() for o in obligations if o.assignee == agency_id}
        entries = _entries(items, texts, agency_id, period, position)
        numbers = {t.number for t in plan.for_kind(agency.kind)} | {e["task_number"] for e in entries}
        evidenced = agency.kind in EVIDENCED_KINDS
        tasks = []
        for number in sorted(numbers):
            task = plan.task(number)
            own_entries = [e for e in entries if e["task_number"] == number]
            evidence = None
            if evidenced and task is not None and task.evidenced:
                evidence = {
                    "indicators": [figs[n] for n in task.indicators if n != "reported_prevalence"],
                    "obligations": [
                        mine.get(r, {"assignee": agency_id, "rule": r, "due": 0, "on_time": 0, "late": 0, "open": 0})
                        for r in task.rules
                    ],
                }
            basis = "system" if evidence is not None else "own_entries" if own_entries else "none"
            tasks.append({"number": number, "basis": basis, "evidence": evidence, "entries": own_entries})
        agencies.append(
            {
                "id": agency_id,
                "name": agency.name,
                "kind": agency.kind,
                "system_evidence": evidenced,
                "tasks": tasks,
            }
        )
    return {
        **_header("monthly", "严重精神障碍患者管理救助专项行动 月度工作进展", scope, period, position),
        "work_plan": {"version": plan.version, "title": plan.title, "source": plan.source},
        "tasks": [
            {
                "number": t.number,
                "action": t.action,
                "text": t.text,
                "upper_lead": t.upper_lead,
                "lead": t.lead,
                "responsible": list(t.responsible),
                "departments": list(t.departments),
                "indicators": list(t.indicators),
                "rules": list(t.rules),
            }
            for t in plan.tasks
        ],
        "agencies": agencies,
        "indicators": compute(rows, scope, period, position),
        "definitions": definitions(),
    }


def _figure_trends(now: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    prev = {f["name"]: f for f in before}
    return [
        {"name": f["name"], "label": f["label"], "unit": f["unit"], **trend(f["value"], prev[f["name"]]["value"])}
        for f in now
    ]


def health_center_quarterly(
    rows: Rows,
    items: list[ReportRow],
    texts: dict[UUID, str],
    state: Any,
    agency_id: str,
    period_label: str,
    position: int,
) -> dict[str, Any]:
    """The health center's quarterly report as recorded up to ``position``."""
    period = _period_of(period_label, quarter=True)
    scope = scope_of(state, "agency", agency_id, period.last)
    agency = state.agency(agency_id, period.last)
    if agency.kind != AgencyKind.HEALTH_CENTER:
        raise NotAHealthCenter(agency_id)
    now = compute(rows, scope, period, position)
    before = compute(rows, scope, period.previous(), position)
    return {
        **_header("health_center_quarterly", "严重精神障碍患者管理治疗服务 季度工作报告", scope, period, position),
        "previous_period": period.previous().label,
        **now,
        "trends": _figure_trends(now["figures"], before["figures"]),
        "entries": _entries(items, texts, agency_id, period, position),
        "definitions": definitions(),
    }


def _risk(rows: Rows, people: list[Any], units: frozenset[str], period: ReportPeriod, residence_of: dict) -> dict:
    within = [s for s in people if s.residence in units]
    return {
        "registered": len(within),
        "high_risk": len(high_risk(rows.facts, within, period)),
        "lost": sum(s.lost for s in within),
        "incidents": incidents(rows.facts, residence_of, units, period),
    }


def risk_analysis(rows: Rows, state: Any, unit: str, period_label: str, position: int) -> dict[str, Any]:
    """The joint meeting's quarterly risk analysis of an org unit as recorded up to ``position``."""
    period = _period_of(period_label, quarter=True)
    previous = period.previous()
    scope = scope_of(state, "org_unit", unit, period.last)
    residence_of = {f.patient_id: f.residence or "" for f in rows.facts if f.kind == REGISTERED}
    people, people_before = standings(rows.facts, period, position), standings(rows.facts, previous, position)

    def compare(units: frozenset[str]) -> dict[str, Any]:
        now, before = (
            _risk(rows, people, units, period, residence_of),
            _risk(rows, people_before, units, previous, residence_of),
        )
        out = {k: trend(now[k], before[k]) for k in ("registered", "high_risk", "lost")}
        out["incidents"] = {
            **trend(now["incidents"]["count"], before["incidents"]["count"]),
            "severe": now["incidents"]["severe"],
            "by_kind": now["incidents"]["by_kind"],
        }
        return out

    overdue_now = {o["assignee"]: o for o in overdue_by_agency(rows.obligations, period, position, scope.units)}
    overdue_before = {o["assignee"]: o for o in overdue_by_agency(rows.obligations, previous, position, scope.units)}
    overdue = []
    for a in sorted(set(overdue_now) | set(overdue_before)):
        n, b = overdue_now.get(a, {}), overdue_before.get(a, {})
        overdue.append(
            {
                "assignee": a,
                "overdue_open": trend(n.get("overdue_open", 0), b.get("overdue_open", 0)),
                "due_in_period": n.get("due_in_period", 0),
                "late_in_period": n.get("late_in_period", 0),
            }
        )
    return {
        **_header("risk_analysis", "严重精神障碍患者联席会议 季度风险隐患分析", scope, period, position),
        "previous_period": previous.label,
        "high_risk_rule": "latest risk level (visit or risk assessment, by occurred time) of 3 or more at the"
        " period's end, over the registered patients",
        "overdue_rule": "obligations due by the period's end and not completed by then, as recorded up to the"
        " position; late: due within the period and completed after the deadline",
        "area": compare(scope.units),
        "children": [{"id": cid, "name": cname, **compare(cunits)} for cid, cname, cunits, _ in scope.children],
        "overdue_by_agency": overdue,
    }


def document_narrowing(name: str, state: Any, scope_id: str, period_label: str) -> Narrowing:
    """The rows the document ``name`` of a scope and period reads (the per-unit path,
    docs/decisions/036): the scope's patients' facts occurred by the period's end and the
    obligations it looks at — the monthly report's due in the month (every agency of the unit,
    whatever the residence), the health center's due in the quarter or the one before and
    assigned to it, the risk analysis's due by the quarter's end about the unit's residences.
    The same errors as the document for a period or scope that is none."""
    if name == "monthly":
        period = _period_of(period_label, quarter=False)
        scope = scope_of(state, "org_unit", scope_id, period.last)
        units = None if whole_region(state, scope, period.last) else scope.units
        return Narrowing(units, period.ends_at, period.starts_at, period.ends_at)
    period = _period_of(period_label, quarter=True)
    if name == "health_center_quarterly":
        scope = scope_of(state, "agency", scope_id, period.last)
        return Narrowing(scope.units, period.ends_at, period.previous().starts_at, period.ends_at, assignee=scope_id)
    scope = scope_of(state, "org_unit", scope_id, period.last)
    units = None if whole_region(state, scope, period.last) else scope.units
    return Narrowing(units, period.ends_at, None, period.ends_at, residences=scope.units)


#: The documents, by name: (needs the reports view's rows, scope kind).
DOCUMENTS = {"monthly": "org_unit", "health_center_quarterly": "agency", "risk_analysis": "org_unit"}


class PeriodicReports:
    """The monthly and quarterly reports from the stored rows (``replay=True``: from the log
    replayed up to the position instead, no stored row read)."""

    def __init__(self, case_record: Any, registry: Any, indicators: Any, reports: Any, plan: WorkPlan) -> None:
        self.case_record = case_record
        self.registry = registry
        self.indicators = indicators
        self.reports = reports
        self.plan = plan

    def head(self) -> int:
        return self.case_record.recorder.max_notification_id() or 0

    def document(
        self, name: str, scope_id: str, period: str, at_position: int | None = None, replay: bool = False
    ) -> dict[str, Any]:
        """The document ``name`` (``DOCUMENTS``) of a scope and period at a position (default: the head)."""
        from domain.indicators import PositionBeyondHead
        from projections.indicators import replayed_rows

        head = self.head()
        position = head if at_position is None else at_position
        if position > head or position < 0:
            raise PositionBeyondHead(position, head)
        parse_period(period)
        state = self.registry.state(as_of_position=position)
        if replay:
            rows = replayed_rows(self.case_record, position)
        else:  # the per-unit path: the store reads the document's rows only
            rows = self.indicators.rows_within(position, document_narrowing(name, state, scope_id, period))
        if name == "risk_analysis":
            return risk_analysis(rows, state, scope_id, period, position)
        items = replayed_items(self.case_record, position) if replay else self.reports.items_up_to(position)
        texts = progress_texts(self.case_record, items)
        if name == "monthly":
            return monthly_report(rows, items, texts, state, scope_id, period, position, self.plan)
        return health_center_quarterly(rows, items, texts, state, scope_id, period, position)
