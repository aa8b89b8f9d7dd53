"""The indicators' per-unit path against the full read (docs/decisions/036): every figure of every
scope and period computed from the rows the store narrowed, and from every row, side by side."""

from __future__ import annotations

from typing import Any

from domain.indicators import parse_period
from domain.registry import AgencyKind
from projections.indicators import indicator_report, narrowing_of, scope_of, whole_region
from projections.periodic_reports import (
    document_narrowing,
    health_center_quarterly,
    monthly_report,
    risk_analysis,
)


def scopes(state: Any, on: Any) -> list[tuple[str, str]]:
    """Every org unit and every agency (not the auditor) of the registry on a day."""
    found = [("org_unit", u) for u in sorted(state.org_units) if state.org_unit(u, on) is not None]
    for a in sorted(state.agencies):
        agency = state.agency(a, on)
        if agency is not None and agency.kind != AgencyKind.AUDITOR:
            found.append(("agency", a))
    return found


def compare_figures(services: Any, position: int, periods: list[str]) -> int:
    """Assert the per-unit path gives every figure of every scope and period that the full read
    gives, at ``position``; returns how many reports were compared."""
    proj = services.indicators
    full = proj.rows(position)
    state = services.registry.state(as_of_position=position)
    compared = 0
    for label in periods:
        period = parse_period(label)
        for kind, ident in scopes(state, period.last):
            scope = scope_of(state, kind, ident, period.last)
            narrowed = proj.rows_within(
                position, narrowing_of([scope], [period], whole_region(state, scope, period.last))
            )
            assert len(narrowed.facts) <= len(full.facts)
            ours = indicator_report(narrowed, state, kind, ident, period, position)
            theirs = indicator_report(full, state, kind, ident, period, position)
            assert ours == theirs, (kind, ident, label)
            compared += 1
    return compared


def compare_documents(services: Any, position: int, months: list[str], quarters: list[str], plan: Any) -> int:
    """Assert the monthly report, the risk analysis and the health centers' quarterly reports
    computed from the rows of ``document_narrowing`` equal those from every row."""
    proj = services.indicators
    full = proj.rows(position)
    state = services.registry.state(as_of_position=position)
    compared = 0

    def narrowed(name: str, ident: str, label: str) -> Any:
        return proj.rows_within(position, document_narrowing(name, state, ident, label))

    for label in months:
        last = parse_period(label).last
        for kind, unit in scopes(state, last):
            if kind == "org_unit":
                ours = monthly_report(narrowed("monthly", unit, label), [], {}, state, unit, label, position, plan)
                assert ours == monthly_report(full, [], {}, state, unit, label, position, plan), (unit, label)
                compared += 1
    for label in quarters:
        last = parse_period(label).last
        for kind, ident in scopes(state, last):
            if kind == "org_unit":
                ours = risk_analysis(narrowed("risk_analysis", ident, label), state, ident, label, position)
                assert ours == risk_analysis(full, state, ident, label, position), (ident, label)
                compared += 1
            elif state.agency(ident, last).kind == AgencyKind.HEALTH_CENTER:
                rows = narrowed("health_center_quarterly", ident, label)
                ours = health_center_quarterly(rows, [], {}, state, ident, label, position)
                assert ours == health_center_quarterly(full, [], {}, state, ident, label, position), (ident, label)
                compared += 1
    return compared
