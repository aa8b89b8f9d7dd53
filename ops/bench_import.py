"""Import and go-live figures for `smd bench --import N`: a generated ledger of N events imported
(`smd import`'s own function), the go-live declared complete (`smd golive complete`'s), then the
rules and the work queue caught up with everything (the assessment's obligations opened).

Each stage is timed on a throwaway PostgreSQL database; the total is a measured run, not an
extrapolation. The ledger is a health center's: one registration per patient, then one fact
about every 30 days (visits, now and then at high risk, medication pickups, care-team contacts
and risk assessments in turn), 50 facts a patient by default, all dated in the past.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

AGENCY = "hc-north"
GOVERNANCE = "gov-willowbrook"
VILLAGE = "990101-001-v01"
NS = UUID("0c2f6a53-3f59-4a0e-9d6c-2a4a6b1d7e11")


def ledger_lines(events: int, per_patient: int = 50, seed: int = 1) -> Iterator[bytes]:
    """``events`` envelopes (JSON, no newline): patients of ``per_patient`` facts each."""
    now = datetime.now(UTC).replace(microsecond=0)
    patients = max(1, events // per_patient)
    written = 0
    for p in range(patients):
        pid = uuid5(NS, f"{seed}:{p}")
        start = now - timedelta(days=30 * per_patient + 10)
        n = per_patient if p < patients - 1 else events - written
        for i in range(n):
            at = start + timedelta(days=30 * i, hours=p % 24)
            if i == 0:
                kind, data = "cn.smd.patient.registered.v1", {"name": "Ledger Person", "residence": VILLAGE}
            elif i % 4 == 1:
                level = 3 if i % 20 == 1 else 1
                kind = "cn.smd.visit.recorded.v1"
                cls = "unstable" if level >= 3 else "basically_stable"
                data = {"face_to_face": True, "risk_level": level, "risk_class": cls}
            elif i % 4 == 2:
                kind, data = (
                    "cn.smd.medication.dispensed.v1",
                    {"dispensed_on": at.date().isoformat(), "days_supplied": 30},
                )
            elif i % 4 == 3:
                kind = "cn.smd.care-team-contact.recorded.v1"
                data = {"role": "mental_health_staff", "mode": "phone", "outcome": "reached"}
            else:
                kind, data = "cn.smd.risk.assessed.v1", {"risk_level": 1, "risk_class": "basically_stable"}
            envelope = {
                "specversion": "1.0",
                "id": str(uuid5(NS, f"{seed}:{p}:{i}")),
                "source": AGENCY,
                "type": kind,
                "subject": str(pid),
                "time": at.isoformat(),
                "data": data,
            }
            yield json.dumps(envelope, separators=(",", ":")).encode()
            written += 1


def write_ledger(path: Path, events: int, per_patient: int = 50) -> int:
    with path.open("wb") as f:
        for line in ledger_lines(events, per_patient):
            f.write(line + b"\n")
    return path.stat().st_size


def _start_followers(url: str, data_dir: str) -> subprocess.Popen[bytes]:
    """The rules and the work queue following the log in a process of their own, as `smd serve`
    runs them while an import goes on."""
    env = {**os.environ, "SMD_DATABASE_URL": url, "SMD_DATA_DIR": data_dir, "SMD_NATS_URL": ""}
    return subprocess.Popen([sys.executable, "-c", "import ops.bench_import as b; b._follow_main()"], env=env)


def _follow_main() -> None:
    """The followers' side: the rules, then the work queue, until stopped."""
    from ops.bench_pages import quiet
    from ops.bootstrap import bootstrap
    from ops.settings import load_settings

    quiet()
    services = bootstrap(load_settings())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            if not (services.policies.run_once() + services.work_queue.run_once()):
                time.sleep(0.1)
    finally:
        services.close()


def _wait_caught_up(services: Any, follower: subprocess.Popen[bytes], timeout: float = 3600) -> None:
    """Until the rules and the work queue have handled everything (what the rules record too)."""
    names = {type(services.policies.follower).__name__, type(services.work_queue).__name__}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if follower.poll() is not None:
            raise RuntimeError("the followers' process ended")
        head = services.case_record.recorder.max_notification_id() or 0
        positions = [services.policies.follower.position, services.work_queue.position]
        if all(p >= head for p in positions):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{names} did not catch up within {timeout} s")


def run(pg: str, events: int, per_patient: int = 50, concurrent: bool = True) -> dict[str, Any]:
    """Generate, import, complete the go-live, catch the rules and the work queue up; seconds
    per stage and the counts (a throwaway database). ``concurrent``: the followers run in a
    process of their own from the start (as beside `smd serve`); else here, after the go-live."""
    from core import go_live
    from core.backfill import import_ledger
    from core.registry import load_file
    from ops.bench_pages import opened, scratch_database
    from ops.data_files import DEMO_DISTRICT

    out: dict[str, Any] = {"events": events, "per_patient": per_patient, "concurrent": concurrent}
    with scratch_database(pg) as url, tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.jsonl"
        t = time.perf_counter()
        out["ledger_bytes"] = write_ledger(ledger, events, per_patient)
        out["generate_s"] = time.perf_counter() - t
        with opened(url, tmp) as services:
            load_file(services.case_record, DEMO_DISTRICT)
            services.registry.refresh()
            follower = _start_followers(url, tmp) if concurrent else None
            t0 = time.perf_counter()
            report = import_ledger(
                services.case_record,
                services.registry,
                ledger,
                AGENCY,
                earliest=services.settings.earliest_time,
                limits=services.settings.wire_limits,
                waiting=services.waiting,
            )
            t1 = time.perf_counter()
            assessed = go_live.complete(services.case_record, services.registry.region, GOVERNANCE)
            t2 = time.perf_counter()
            try:
                if follower is None:
                    while services.policies.run_once() or services.work_queue.run_once():
                        pass
                else:
                    _wait_caught_up(services, follower)
                t3 = time.perf_counter()
            finally:
                if follower is not None:
                    follower.terminate()
                    follower.wait(30)
            rows = sum(services.views.count(services.work_queue.projection, "rows", ("kind",)).values())
        out.update(
            recorded=report.recorded,
            refused=len(report.refused),
            waiting=len(report.waiting),
            patients=len(report.patients),
            assessed=assessed,
            obligations_and_notices=rows,
            import_s=t1 - t0,
            golive_s=t2 - t1,
            follow_s=t3 - t2,
            total_s=t3 - t0,
            load_average=os.getloadavg(),
        )
    return out


def table(figures: dict[str, Any]) -> str:
    f = figures
    return "\n".join(
        [
            "| stage | seconds | rate |",
            "|---|---:|---:|",
            f"| import of {f['events']:,} events ({f['patients']:,} patients; {f['refused']} refused)"
            f" | {f['import_s']:.1f} | {f['events'] / f['import_s']:,.0f} events/s |",
            f"| go-live complete ({f['assessed']:,} patients assessed once) | {f['golive_s']:.1f}"
            f" | {f['assessed'] / max(f['golive_s'], 1e-9):,.0f} patients/s |",
            f"| rules and work queue caught up ({f['obligations_and_notices']:,} obligations and notices;"
            f" {'beside the import, in a process of their own' if f['concurrent'] else 'after the go-live'}):"
            f" after the go-live | {f['follow_s']:.1f} | |",
            f"| **imported and assessed** | **{f['total_s']:.1f}** ({f['total_s'] / 60:.1f} min) | |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """`smd bench --import N`: only the import and go-live figures."""
    import argparse

    ap = argparse.ArgumentParser(prog="smd bench --import")
    ap.add_argument("events", type=int, help="events in the generated ledger (e.g. 1000000)")
    ap.add_argument("--per-patient", type=int, default=50, help="facts per patient (50)")
    ap.add_argument("--pg", default="host=127.0.0.1 dbname=test user=postgres")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON here")
    ap.add_argument("--after", action="store_true", help="run the followers after the go-live, not beside the import")
    a = ap.parse_args(argv)
    from ops.bench_pages import quiet

    quiet()
    figures = run(a.pg, a.events, a.per_patient, concurrent=not a.after)
    load = figures["load_average"]
    print(
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, PostgreSQL, load average {load[0]:.1f} / {load[1]:.1f}"
        f" / {load[2]:.1f} on {os.cpu_count()} cores\n"
    )
    print(table(figures))
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0
