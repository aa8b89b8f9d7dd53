"""`smd verify`: recompute the verifiable log from the stored rows (docs/decisions/017).

Exit code 0 when everything verifies, 1 with the first problem named (its kind, notification
id, leaf and what the tree recorded there).
"""

from __future__ import annotations

import argparse
import base64
from typing import Any


class AuditView:
    """What verify needs and nothing else: the events table and the tree's tables. It reads no
    event (a tampered row must not stop the auditor the way it may stop the service) and runs no
    follower."""

    def __init__(self) -> None:
        from core.audit.store import PostgresChainStore, SQLiteChainStore
        from core.case_record import CaseRecord
        from ops.bootstrap import VLOG_FILE, build_keystore, eventsourcing_env
        from ops.settings import load_settings

        self.settings = load_settings()
        self.keystore = build_keystore(self.settings)
        self.case_record = CaseRecord(
            env=eventsourcing_env(self.settings), keystore=self.keystore, digest_key=self.settings.blind_index_key
        )
        pg = self.settings.postgres
        self.chain_store = (
            SQLiteChainStore(self.settings.data_dir / VLOG_FILE) if pg is None else PostgresChainStore(pg.conninfo())
        )

    def close(self) -> None:
        self.chain_store.close()
        self.case_record.close()
        self.keystore.close()


def _services() -> Any:
    from ops.bootstrap import bootstrap
    from ops.settings import load_settings

    return bootstrap(load_settings())


def print_report(report: Any) -> int:
    """Print a verify report; returns the exit code."""
    print(
        f"verify: tree of {report.leaves} leaves ({report.algorithm}), root {base64.b64encode(report.root).decode()};"
        f" {report.rows} stored rows, {report.pending} not yet chained; {report.checkpoints} checkpoints"
        + (f"; {report.against} outside checkpoints" if report.against else "")
    )
    if report.ok:
        print("verify: OK")
        return 0
    print(f"verify: FAILED: {report.first}")
    for f in report.findings[1:]:
        print(f"  also: {f}")
    return 1


def _verify(args: argparse.Namespace) -> int:
    from core.audit.verify import verify

    if args.follow:
        services = _services()
        try:
            while services.chain.run_once():
                pass
        finally:
            services.close()
    view = AuditView()
    try:
        report = verify(view.case_record.recorder, view.chain_store, stop_after=args.max_findings)
    finally:
        view.close()
    return print_report(report)


def add_commands(sub: Any) -> None:
    """Register `smd verify`."""
    v = sub.add_parser("verify", help="recompute the verifiable log from the stored rows; name the first problem")
    v.add_argument("--follow", action="store_true", help="first chain the rows not chained yet")
    v.add_argument("--max-findings", type=int, default=1, help="how many row problems to list (default 1)")
    v.set_defaults(func=_verify)
