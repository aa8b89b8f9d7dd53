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
    p.add_argument(
        "--moves",
        action="store_true",
        help="add patients who move (inside the region, to a linked region B, to a region without the system)"
        " and run region B beside the township's, linked in-process",
    )
    p.add_argument("--movers", type=int, default=0, help="how many patients move (default: patients / 10, at least 20)")
    p.add_argument(
        "--region-b",
        metavar="TARGET",
        help="region B's EMPTY store with --moves: a folder (SQLite; default SMD_DATA_DIR/region-b) or a"
        " postgresql:// URL (required on PostgreSQL)",
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
    if args.moves:
        return _simulate_moves(args, settings)
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


def _region_b_settings(settings: Any, target: str | None) -> Any:
    """Region B's settings: its own region code, store and keys (generated as in development)."""
    from ops.settings import load_settings
    from ops.simulation.moves import REGION_B

    env = {"SMD_REGION": REGION_B}
    if target and target.startswith("postgresql://"):
        return load_settings({**env, "SMD_DATA_DIR": str(settings.data_dir / "region-b"), "SMD_DATABASE_URL": target})
    if target is None and settings.store_kind != "sqlite":
        raise SystemExit("smd simulate --moves: on PostgreSQL give region B's empty database with --region-b URL")
    return load_settings({**env, "SMD_DATA_DIR": str(Path(target) if target else settings.data_dir / "region-b")})


def _simulate_moves(args: argparse.Namespace, settings: Any) -> int:
    """The simulated year with moves: regions A (the township) and B, checked together."""
    from datetime import timedelta

    from ops.simulation.generator import generate
    from ops.simulation.log import read_log
    from ops.simulation.simulate import SimClock
    from ops.simulation.two_regions import pair, run_two_regions

    movers = args.movers or max(20, args.patients // 10)
    started = time.perf_counter()
    township = generate(args.seed, args.patients, days=args.days, movers=movers)
    generated = time.perf_counter() - started
    clock = SimClock(township.deliveries[0].at)
    a_services = _open(settings, clock)
    out: list[tuple[str, str]] = []
    try:
        b_settings = _region_b_settings(settings, args.region_b)
        b_services = _open(b_settings, clock)
        try:
            a, b = pair(a_services, b_services, clock)
            started = time.perf_counter()
            link = run_two_regions(
                a,
                b,
                township,
                clock,
                b_settings.data_dir / "files",
                every=timedelta(hours=args.every_hours),
                progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True),
            )
            ran = time.perf_counter() - started
            logs = {"A": list(read_log(a_services.case_record)), "B": list(read_log(b_services.case_record))}
        finally:
            b_services.close()
    finally:
        a_services.close()
    assert township.moves is not None
    out += [
        ("stores", f"A {settings.store_kind} ({settings.region}), B {b_settings.store_kind} ({b_settings.region})"),
        (
            "patients (at start + joining) / movers",
            f"{args.patients} + {township.profiles.total() - args.patients} / {movers}",
        ),
        ("messages sent (A / B)", f"{len(township.deliveries)} / {len(township.moves.in_b)}"),
        ("moves planned", ", ".join(f"{k} {v}" for k, v in sorted(township.moves.counts.items()))),
        ("link: carried", ", ".join(f"{k} {v}" for k, v in sorted(link.carried.items()))),
        ("link: received as", ", ".join(f"{k} {v}" for k, v in link.outcomes.most_common())),
        ("link: hours held while down", str(link.held_hours)),
        ("handover commands", ", ".join(f"{k} {v}" for k, v in sorted(link.commands.items()))),
        (
            "handovers escalated by deadline",
            ", ".join(f"{k} {v}" for k, v in sorted(link.deadline_escalations.items())),
        ),
    ]
    ok = not link.commands_refused
    for code, region in (("A", a), ("B", b)):
        r = region.report
        out += [
            (
                f"{code}: recorded live / imported / duplicates",
                f"{r.recorded['recorded']} / {r.recorded['imported']} / {r.duplicates}",
            ),
            (f"{code}: refused (by reason)", ", ".join(f"{k} {v}" for k, v in r.refused.most_common()) or "none"),
            (f"{code}: events in the log", str(len(logs[code]))),
        ]
        for t, c, m in r.refused_valid[:10]:
            out.append((f"{code}: valid refused (defect)", f"{t}: {c}: {m}"))
        for t, why in r.accepted_invalid[:10]:
            out.append((f"{code}: invalid accepted (defect)", f"{t}: {why}"))
        ok = ok and not r.refused_valid and not r.accepted_invalid and not r.still_waiting and not r.acts_refused
    for what, code in link.commands_refused:
        out.append(("handover command refused (defect)", f"{what}: {code}"))
    out += [("generate", f"{generated:.1f} s"), ("simulate (wall)", f"{ran:.1f} s")]
    if not args.no_check:
        from ops.simulation.invariants import check, check_regions

        started = time.perf_counter()
        findings = {
            "A": check(logs["A"], scheduler_runs=a.report.scheduler_runs),
            "B": check(logs["B"], scheduler_runs=b.report.scheduler_runs),
            "A+B": check_regions(logs["A"], logs["B"], regions=(settings.region, b_settings.region), end=township.end),
        }
        took = time.perf_counter() - started
        passed = all(f.ok for f in findings.values())
        out.append(("invariant check", f"{'pass' if passed else 'FAIL'} in {took:.1f} s"))
        moves = findings["A+B"].counts
        out.append(
            ("  moves by kind and end", ", ".join(f"{k} {v}" for k, v in sorted(moves.items()) if k.startswith("end ")))
        )
        for where, f in findings.items():
            for v in f.violations[:20]:
                out.append((f"  violation ({where})", f"{v.invariant}: {v.subject}: {v.detail}"))
        ok = ok and passed
    width = max(len(k) for k, _ in out)
    for k, v in out:
        print(f"{k:<{width}}  {v}")
    return 0 if ok else 1
