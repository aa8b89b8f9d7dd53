"""`smd import LEDGER --agency AGENCY`: backfill an agency's existing ledger."""

from __future__ import annotations

import argparse
from pathlib import Path


def _import(args: argparse.Namespace) -> int:
    from core.backfill import import_ledger
    from ops.bootstrap import bootstrap
    from ops.settings import load_settings

    services = bootstrap(load_settings())
    try:
        report = import_ledger(
            services.case_record,
            services.registry,
            Path(args.ledger),
            args.agency,
            earliest=services.settings.earliest_time,
            limits=services.settings.wire_limits,
            waiting=services.waiting,
        )
    finally:
        services.close()
    print(
        f"ledger {report.ledger}: {report.recorded} rows recorded, {report.duplicates} already there, "
        f"{len(report.refused)} refused, {len(report.waiting)} waiting, {len(report.patients)} patients"
    )
    if report.go_live == "joined":
        print("  joined the go-live: nothing opens for these patients until `smd golive complete`")
    elif report.go_live == "late join":
        print("  a late join (the go-live is complete): only the rules this agency's kind owns assess its patients")
    for number, code, detail in report.refused:
        print(f"  line {number}: {code}: {detail}")
    for number, key in report.waiting:
        print(f"  line {number}: waiting for what it refers to; status: GET /v1/events/{key}")
    return 1 if report.refused else 0


def _golive(args: argparse.Namespace) -> int:
    from core import go_live
    from ops.bootstrap import bootstrap
    from ops.settings import load_settings

    services = bootstrap(load_settings())
    try:
        region = services.registry.region
        if args.golive_command == "complete":
            if services.registry.agency(args.agency) is None:
                print(
                    f"unknown agency {args.agency!r}: give the agency that declares the go-live (`smd registry show`)"
                )
                return 2
            assessed = go_live.complete(services.case_record, region, args.agency)
            print(f"go-live of region {region} complete: {assessed} patients assessed once")
            return 0
        found = go_live.status(services.case_record, region)
    finally:
        services.close()
    state = "complete" if found.complete else ("open" if found.opened else "not started")
    print(f"go-live of region {found.region}: {state}; {found.waiting_patients} patients waiting for it")
    for ledger in found.ledgers:
        print(f"  ledger {ledger['ledger']} from {ledger['agency_id']}: {ledger['patients']} patients")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `smd import` and `smd golive`."""
    g = sub.add_parser(
        "golive", help="the region's go-live: status, or declare it complete (assess every patient once)"
    )
    gs = g.add_subparsers(dest="golive_command", required=True)
    gs.add_parser("status", help="ledgers joined, patients waiting, complete or not")
    c = gs.add_parser("complete", help="declare the go-live complete: each waiting patient is assessed once")
    c.add_argument("--agency", required=True, help="the agency declaring it (for example the governance center)")
    g.set_defaults(func=_golive)
    p = sub.add_parser("import", help="backfill an agency's existing ledger (JSON Lines of envelopes)")
    p.add_argument("ledger", help="path of the .jsonl file")
    p.add_argument("--agency", required=True, help="the agency whose ledger it is (each row's source)")
    p.set_defaults(func=_import)
