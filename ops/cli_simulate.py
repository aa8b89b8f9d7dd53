"""`smd simulate`: a synthetic township's year through the real engine, checked and replayed.

It writes a year of fictional records into the configured store (``SMD_DATA_DIR`` or
``SMD_DATABASE_URL``), so it refuses a store that already holds anything: point it at an empty
folder or database. Prints the figures the README's "simulated year" section quotes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any


def add_commands(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a synthetic township's year through the engine and check its invariants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--patients", type=int, default=200, help="patients on the register at the start (200)")
    p.add_argument("--days", type=int, default=365, help="simulated days (365)")
    p.add_argument("--seed", type=int, default=2026, help="the generator's seed (2026)")
    p.add_argument("--every-hours", type=float, default=1.0, help="how often the scheduler runs (1 hour)")
    p.add_argument("--no-check", action="store_true", help="skip the invariant checker")
    p.add_argument(
        "--replay-into",
        metavar="TARGET",
        help="replay the log into this EMPTY store afterwards and compare: a folder (SQLite) or a postgresql:// URL",
    )
    p.set_defaults(func=_simulate)


def _open(settings: Any, clock: Any) -> Any:
    from ops.bootstrap import bootstrap

    services = bootstrap(settings, clock=clock)
    if services.case_record.recorder.max_notification_id():
        services.close()
        where = settings.data_dir if settings.store_kind == "sqlite" else "the database"
        raise SystemExit(f"smd simulate: {where} already holds records; point it at an empty store")
    return services


def _replica_settings(settings: Any, target: str) -> Any:
    import base64

    from ops.settings import load_settings

    env = {
        "SMD_MASTER_KEY": base64.b64encode(settings.master_key).decode(),
        "SMD_MASTER_KEY_ID": settings.master_key_id,
        "SMD_BLIND_INDEX_KEY": base64.b64encode(settings.blind_index_key).decode(),
    }
    if target.startswith("postgresql://"):
        return load_settings({**env, "SMD_DATA_DIR": str(settings.data_dir / "replica"), "SMD_DATABASE_URL": target})
    return load_settings({**env, "SMD_DATA_DIR": str(Path(target))})


def _simulate(args: argparse.Namespace) -> int:
    from datetime import timedelta

    import structlog

    from ops.settings import load_settings
    from ops.simulation.generator import generate
    from ops.simulation.log import read_log
    from ops.simulation.simulate import SimClock, derived_digest, run_year

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    settings = load_settings()
    started = time.perf_counter()
    township = generate(args.seed, args.patients, days=args.days)
    generated = time.perf_counter() - started
    clock = SimClock(township.deliveries[0].at)
    services = _open(settings, clock)
    out: list[tuple[str, str]] = []
    try:
        started = time.perf_counter()
        report = run_year(
            services,
            township,
            clock,
            every=timedelta(hours=args.every_hours),
            progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True),
        )
        ran = time.perf_counter() - started
        records = list(read_log(services.case_record))
        assigned = Counter(r["rule"] for r in records if r.topic == "smd.ObligationAssigned")
        overdue = sum(r.topic == "smd.ObligationOverdue" for r in records)
        escalated = sum(r.topic == "smd.RiskEscalated" for r in records)
        out += [
            ("store", settings.store_kind),
            ("patients (at start + joining)", f"{args.patients} + {township.profiles.total() - args.patients}"),
            ("profiles", ", ".join(f"{k} {v}" for k, v in township.profiles.most_common())),
            ("messages sent", str(len(township.deliveries))),
            ("imported at go-live (ledgers)", str(report.recorded["imported"])),
            ("recorded live / second reports", f"{report.recorded['recorded']} / {report.recorded['no-change']}"),
            ("duplicates recognised", str(report.duplicates)),
            (
                "waited for what they refer to",
                f"{report.released} recorded when it came, {report.refused_after_waiting} refused"
                f" after the window, {report.still_waiting} still waiting",
            ),
            ("refused (by reason)", ", ".join(f"{k} {v}" for k, v in report.refused.most_common()) or "none"),
            ("valid messages refused (defects)", str(len(report.refused_valid))),
            ("tasks done by their owners / acts refused (defects)", f"{len(report.acts)} / {len(report.acts_refused)}"),
            ("invalid messages accepted (defects)", str(len(report.accepted_invalid))),
            ("events in the log", str(len(records))),
            ("obligations and notices by rule", ", ".join(f"{k} {v}" for k, v in sorted(assigned.items()))),
            ("marked overdue and escalated (R15)", str(overdue)),
            ("risk escalated (derived)", str(escalated)),
            ("derived events digest (sha256)", derived_digest(services)),
            ("scheduler runs", str(len(report.scheduler_runs))),
            ("generate", f"{generated:.1f} s"),
            ("simulate (wall)", f"{ran:.1f} s"),
            ("  intake / rules and views / scheduler", " / ".join(f"{report.seconds[k]:.1f} s" for k in _PHASES)),
            ("messages per second (intake+rules+scheduler)", f"{report.messages_per_second:.0f}"),
        ]
        ok = not report.refused_valid and not report.accepted_invalid and not report.still_waiting
        ok = ok and not report.acts_refused
        if not args.no_check:
            from ops.simulation.invariants import check

            started = time.perf_counter()
            findings = check(records, scheduler_runs=report.scheduler_runs)
            out.append(
                ("invariant check", f"{'pass' if findings.ok else 'FAIL'} in {time.perf_counter() - started:.1f} s")
            )
            shown = ("r1 entries", "lost episodes (misses)", "lost withdrawn", "r2 cycles", "late facts", "overdue")
            out.append(("  of which", ", ".join(f"{k} {findings.counts[k]}" for k in shown)))
            for v in findings.violations[:20]:
                out.append(("  violation", f"{v.invariant}: {v.subject}: {v.detail}"))
            ok = ok and findings.ok
        if args.replay_into:
            ok = _replay(services, settings, args.replay_into, report, out) and ok
    finally:
        services.close()
    width = max(len(k) for k, _ in out)
    for k, v in out:
        print(f"{k:<{width}}  {v}")
    return 0 if ok else 1


_PHASES = ("intake", "rules and views", "scheduler")


def _replay(services: Any, settings: Any, target: str, report: Any, out: list[tuple[str, str]]) -> bool:
    from ops.simulation.simulate import SimClock, derived_events, replay_year

    clock = SimClock(report.scheduler_runs[0])
    replica = _open(_replica_settings(settings, target), clock)
    try:
        for row in services.keystore.table.rows_wrapped_by(settings.master_key_id, 10_000_000):
            replica.keystore.table.insert_if_absent(row)
        started = time.perf_counter()
        replay_year(services, replica, clock, report.scheduler_runs, report.acts)
        took = time.perf_counter() - started

        same = derived_events(services) == derived_events(replica)
        out.append(("replay into a fresh store", f"{'identical' if same else 'DIFFERENT'} in {took:.1f} s"))
        return same
    finally:
        replica.close()
