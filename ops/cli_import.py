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
    for number, code, detail in report.refused:
        print(f"  line {number}: {code}: {detail}")
    for number, key in report.waiting:
        print(f"  line {number}: waiting for what it refers to; status: GET /v1/events/{key}")
    return 1 if report.refused else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `smd import`."""
    p = sub.add_parser("import", help="backfill an agency's existing ledger (JSON Lines of envelopes)")
    p.add_argument("ledger", help="path of the .jsonl file")
    p.add_argument("--agency", required=True, help="the agency whose ledger it is (each row's source)")
    p.set_defaults(func=_import)
