"""`smd sources load KIND FILE --agency A`, `smd sources purge`, `smd reconcile run`, `smd reconcile report`,
`smd concern run [--rules FILE]`."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from ops.settings import load_settings


def _services() -> Any:
    from ops.bootstrap import bootstrap

    return bootstrap(load_settings())


def _load(args: argparse.Namespace) -> int:
    from core.reconciliation import load_list
    from domain.errors import DomainError
    from domain.sources import list_kind

    services = _services()
    try:
        now = services.case_record.clock()
        retention = timedelta(days=services.settings.source_retention_days)
        text = Path(args.file).read_text(encoding="utf-8-sig")
        try:
            up = load_list(
                services.sources,
                services.case_record,
                services.registry,
                list_kind(args.kind),
                text,
                args.agency,
                now,
                retention,
            )
        except DomainError as e:
            print(f"sources load: refused ({e.code}): {e}", file=sys.stderr)
            return 1
    finally:
        services.close()
    until = f"{up.expires_at:%Y-%m-%d %H:%M} UTC"
    print(f"sources load: {up.rows} {up.kind} row(s) from {args.agency}, upload {up.upload_id}, kept until {until}")
    return 0


def _purge(args: argparse.Namespace) -> int:
    services = _services()
    try:
        deleted = services.sources.purge(services.case_record.clock())
    finally:
        services.close()
    print(f"sources purge: {deleted} row(s) past their retention deleted, their uploads' keys destroyed")
    return 0


def _run(args: argparse.Namespace) -> int:
    from core.reconciliation import run

    services = _services()
    try:
        result = run(services.sources, services.case_record, services.registry, services.case_record.clock())
    finally:
        services.close()
    print(
        f"reconcile: {result.rows} live row(s) ({result.purged} purged); {len(result.planned)} finding(s), "
        f"{len(result.created)} new"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    import json

    from core.reconciliation import all_findings, report, report_csv, report_html

    services = _services()
    try:
        counts = report(all_findings(services.case_record))
        now = services.case_record.clock()
    finally:
        services.close()
    if args.format == "csv":
        sys.stdout.write(report_csv(counts))
    elif args.format == "html":
        sys.stdout.write(report_html(counts, now))
    else:
        print(json.dumps(counts, ensure_ascii=False, indent=2))
    return 0


def _concern_run(args: argparse.Namespace) -> int:
    from core.concern import run
    from core.registry import REGION_TZ
    from domain.concern import parse_rule_versions, rules_in_force
    from domain.errors import DomainError

    services = _services()
    try:
        now = services.case_record.clock()
        today = now.astimezone(REGION_TZ).date()
        try:
            if args.rules:
                rules = rules_in_force(parse_rule_versions(Path(args.rules).read_text(encoding="utf-8")), today)
            else:
                rules = services.concern_rules(today)
        except DomainError as e:
            print(f"concern run: refused ({e.code}): {e}", file=sys.stderr)
            return 1
        r = run(services.sources, services.case_record, rules, now)
    finally:
        services.close()
    print(
        f"concern run: rules v{r.rules_version}; {r.rows} live incident/dispute row(s) ({r.purged} purged); "
        f"{r.on_list} on the list: {len(r.listed)} listed, {len(r.revised)} revised, {len(r.taken_off)} taken off"
    )
    return 0


def add_commands(subparsers: Any) -> None:
    """Register `smd sources ...` and `smd reconcile ...`."""
    sources = subparsers.add_parser("sources", help="source lists for the reconciliation (kept sealed, briefly)")
    ssub = sources.add_subparsers(dest="sources_command", required=True)
    load = ssub.add_parser("load", help="load a source list (CSV) as the agency that keeps it")
    load.add_argument(
        "kind",
        help="police-key-persons, national-system, pharmacy-purchases, special-outpatient, "
        "reimbursements, grid-platform, incident-records or dispute-records",
    )
    load.add_argument("file", help="the CSV file (UTF-8, a header row)")
    load.add_argument("--agency", required=True, help="the uploading agency's id (of the list's uploader kind)")
    load.set_defaults(func=_load)
    purge = ssub.add_parser("purge", help="delete the rows whose retention ended (each run does it too)")
    purge.set_defaults(func=_purge)
    recon = subparsers.add_parser(
        "reconcile", help="the reconciliation (三网比对) of the source lists and the register"
    )
    rsub = recon.add_subparsers(dest="reconcile_command", required=True)
    rsub.add_parser("run", help="match the live rows, record each new finding (nothing twice)").set_defaults(func=_run)
    rep = rsub.add_parser("report", help="counts per category and org unit of every finding")
    rep.add_argument("--format", choices=("json", "csv", "html"), default="json")
    rep.set_defaults(func=_report)
    concern = subparsers.add_parser("concern", help="people of concern: incident and dispute records vs the register")
    csub = concern.add_subparsers(dest="concern_command", required=True)
    crun = csub.add_parser("run", help="collide the live records under the rules in force; record what changed")
    crun.add_argument("--rules", help="a collision-rules file (JSON list of versions) instead of the shipped one")
    crun.set_defaults(func=_concern_run)
