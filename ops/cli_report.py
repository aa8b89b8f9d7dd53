"""`smd report indicators`: the indicators of a unit or agency for a period, recomputed by
replaying the log up to a position (no stored figure, no read model is read): JSON, CSV or
printable HTML, to stdout or a file."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from ops.settings import load_settings


def indicators_by_replay(
    services: Any, kind: str, ident: str, period: str, at_position: int | None, late_facts: bool
) -> dict[str, Any]:
    """The report computed from the log replayed up to the position (and to the head with
    ``late_facts``): what the endpoint answers from its read model must equal it."""
    from domain.indicators import PositionBeyondHead, parse_period
    from projections.indicators import indicator_report, replayed_rows

    head = services.case_record.recorder.max_notification_id() or 0
    position = head if at_position is None else at_position
    if position > head:
        raise PositionBeyondHead(position, head)
    later = head if late_facts and head > position else None
    rows = replayed_rows(services.case_record, later or position)
    state = services.registry.state(as_of_position=position)
    return indicator_report(rows, state, kind, ident, parse_period(period), position, later)


def render(report: dict[str, Any], fmt: str) -> str:
    """The report as JSON, CSV (with BOM) or HTML."""
    from api.indicator_documents import to_csv, to_html

    if fmt == "csv":
        return to_csv(report)
    if fmt == "html":
        return to_html(report)
    return json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n"


def _indicators(args: argparse.Namespace) -> int:
    from domain.errors import DomainError
    from ops.bootstrap import bootstrap

    if (args.unit is None) == (args.agency is None):
        print("smd report indicators: give exactly one of --unit or --agency", file=sys.stderr)
        return 2
    services = bootstrap(load_settings())
    try:
        kind, ident = ("org_unit", args.unit) if args.unit else ("agency", args.agency)
        report = indicators_by_replay(services, kind, ident, args.period, args.at_position, args.late_facts)
    except DomainError as e:
        print(f"smd report indicators: {e.detail}", file=sys.stderr)
        return 1
    finally:
        services.close()
    text = render(report, args.format)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out} (position {report['position']}, definitions v{report['definitions_version']})")
    else:
        sys.stdout.write(text)
    return 0


def periodic_documents(
    services: Any, which: str, unit: str, period: str, at_position: int | None
) -> list[tuple[str, dict]]:
    """The documents of ``smd report monthly|quarterly``, recomputed by replaying the log: the
    monthly report of the unit; or the unit's risk analysis and the quarterly report of every
    health center whose jurisdiction lies within the unit."""
    from domain.registry import AgencyKind

    reports = services.periodic_reports
    if which == "monthly":
        return [(f"monthly-{unit}-{period}", reports.document("monthly", unit, period, at_position, replay=True))]
    risk = reports.document("risk_analysis", unit, period, at_position, replay=True)
    found = [(f"risk-analysis-{unit}-{period}", risk)]
    state = services.registry.state(as_of_position=risk["position"])
    last = date.fromisoformat(risk["period"]["last"])
    area = services.units_within([unit])
    for agency_id in sorted(state.agencies):
        agency = state.agency(agency_id, last)
        if agency is not None and agency.kind == AgencyKind.HEALTH_CENTER and set(agency.jurisdiction) <= area:
            doc = reports.document("health_center_quarterly", agency_id, period, risk["position"], replay=True)
            found.append((f"quarterly-{agency_id}-{period}", doc))
    return found


def _periodic(args: argparse.Namespace) -> int:
    from api.report_documents import to_csv, to_html
    from domain.errors import DomainError
    from ops.bootstrap import bootstrap

    services = bootstrap(load_settings())
    try:
        docs = periodic_documents(services, args.report_command, args.unit, args.period, args.at_position)
    except DomainError as e:
        print(f"smd report {args.report_command}: {e.detail}", file=sys.stderr)
        return 1
    finally:
        services.close()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stem, doc in docs:
        name = f"{stem}-{doc['position']}"
        (out / f"{name}.json").write_text(render(doc, "json"), encoding="utf-8")
        (out / f"{name}.csv").write_text(to_csv(doc), encoding="utf-8")
        (out / f"{name}.html").write_text(to_html(doc), encoding="utf-8")
        print(f"wrote {out / name}.json, .csv, .html (position {doc['position']})")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register `smd report ...`."""
    report = subparsers.add_parser("report", help="indicators and reports, recomputed from the log")
    rsub = report.add_subparsers(dest="report_command", required=True)
    ind = rsub.add_parser("indicators", help="the indicators of a unit or agency for a period, at a log position")
    ind.add_argument("--unit", help="an org unit (its figures count everything under it)")
    ind.add_argument("--agency", help="an agency instead: its jurisdiction")
    ind.add_argument("--period", required=True, help="2026-06, 2026-Q2 or 2026")
    ind.add_argument("--at-position", type=int, default=None, help="replay the log up to here (default: the head)")
    ind.add_argument("--late-facts", action="store_true", help="also the figures with the facts recorded since")
    ind.add_argument("--format", choices=("json", "csv", "html"), default="json")
    ind.add_argument("--out", help="write to this file instead of stdout")
    ind.set_defaults(func=_indicators)
    for which, text in (
        ("monthly", "the monthly report of a unit (each agency's progress on the work plan's tasks)"),
        ("quarterly", "the unit's joint-meeting risk analysis and each of its health centers' quarterly reports"),
    ):
        cmd = rsub.add_parser(which, help=text + ", recomputed by replaying the log; JSON, CSV and HTML files")
        cmd.add_argument("--unit", required=True, help="an org unit")
        cmd.add_argument("--period", required=True, help="2026-06" if which == "monthly" else "2026-Q2")
        cmd.add_argument("--at-position", type=int, default=None, help="replay the log up to here (default: the head)")
        cmd.add_argument("--out-dir", default=".", help="where to write the files (default: here)")
        cmd.set_defaults(func=_periodic)
