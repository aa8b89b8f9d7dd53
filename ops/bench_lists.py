"""List figures for `smd bench --lists`: the first page of each working list, p50 and p99 over HTTP
at 32 concurrent clients, each as a ratio to ``GET /healthz`` in the same run, and the time of a
whole list's CSV export (10,000 rows by default).

How the store is generated: each patient's facts (a registration and a visit, some with an
irregular adherence, a weak guardian or a refusal) are recorded through the case record's unit
of work, as the intake records them; then only the working lists' follower runs (the rules are
not run: their obligations are the work queue's figure, and recording 10,000 patients through
them would take most of an hour here). The lists' rows are then the rows the service would write.

The service runs in this process (uvicorn, one worker, no background followers); the clients run
in a child process (``ops.bench_reads.load``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from domain.lists import LISTS

READER = "hc-north"
VILLAGES = ("990101-001-v01", "990101-001-v02", "990101-001-v03", "990101-001-v04")  # hc-north's
NS = uuid5(NAMESPACE_URL, "smd-bench-lists")


def populate(services: Any, patients: int, batch: int = 500, weak_guardian_every: int = 5, visits: bool = True) -> int:
    """Record ``patients`` patients with a few facts each and bring the lists' view up to date;
    returns the facts recorded. Every other patient is at level 3 or more (the high-risk list
    holds half of them), every third irregular, every ``weak_guardian_every``-th has a weak
    guardian (``visits=False``: only the registration and the guardian)."""
    from core.contract import decode_event
    from ops.bench import envelope

    record = services.case_record
    start = datetime.now(UTC) - timedelta(days=3)
    pending: list[bytes] = []
    written = 0

    def flush() -> None:
        unit = record.unit_of_work()
        for raw in pending:
            unit.record(decode_event(raw), READER)
        unit.commit()
        pending.clear()

    for n in range(patients):
        pid = uuid5(NS, str(n))
        residence = VILLAGES[n % len(VILLAGES)]
        registered = {"name": f"测试 {n}, 甲", "residence": residence}
        pending.append(envelope("cn.smd.patient.registered.v1", pid, registered, start))
        written += 1
        if visits:
            level = 3 + n % 3 if n % 2 == 0 else n % 3
            klass = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
            visit = {"face_to_face": True, "joint": False, "risk_level": level, "risk_class": klass}
            pending.append(envelope("cn.smd.visit.recorded.v1", pid, visit, start + timedelta(hours=1)))
            written += 1
        if visits and n % 3 == 0:
            pending.append(
                envelope("cn.smd.adherence.recorded.v1", pid, {"adherence": "intermittent"}, start + timedelta(hours=2))
            )
            written += 1
        if n % weak_guardian_every == 0:
            guardian = {"contact": {"name": f"监护人 {n}"}, "weak": True}
            pending.append(envelope("cn.smd.guardian.assigned.v1", pid, guardian, start + timedelta(hours=3)))
            written += 1
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    head = record.recorder.max_notification_id() or 0
    while services.lists.position < head:
        services.lists.run_once()
    return written


def _p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(services: Any, clients: int, per_client: int) -> dict[str, Any]:
    """Each list's first page and /healthz at ``clients`` clients; one whole high-risk export."""
    import httpx

    from ops.bench_pages import serving
    from ops.bench_reads import load

    key = services.apikeys.issue(READER).key
    headers = {"Authorization": f"Bearer {key}", "X-Purpose": "care"}
    out: dict[str, Any] = {"pages": {}}
    with serving(services) as url:
        health = load([f"{url}/healthz"], headers, clients, per_client)["times"]
        out["healthz"] = {"p50": statistics.median(health), "p99": _p(health, 0.99)}
        for name in LISTS:
            times = load([f"{url}/v1/lists/{name}"], headers, clients, per_client)["times"]
            out["pages"][name] = {"p50": statistics.median(times), "p99": _p(times, 0.99)}
        with httpx.Client(headers={**headers, "Accept": "text/csv"}, timeout=600) as client:
            t = time.perf_counter()
            r = client.get(f"{url}/v1/lists/high-risk")
            out["export_s"] = time.perf_counter() - t
            out["export_rows"] = r.content.count(b"\r\n") - 1
    return out


def measure_export(rows: int) -> dict[str, Any]:
    """A ``rows``-row CSV export, streamed whole: a scratch store where every patient has a weak
    guardian (so the no-guardian list holds them all), read by one client."""
    import httpx

    from core.registry import load_file
    from ops.bench_pages import serving
    from ops.bootstrap import bootstrap
    from ops.data_files import DEMO_DISTRICT
    from ops.settings import load_settings

    with tempfile.TemporaryDirectory() as data_dir:
        services = bootstrap(load_settings({"SMD_DATA_DIR": data_dir}))
        try:
            load_file(services.case_record, DEMO_DISTRICT)
            populate(services, rows, weak_guardian_every=1, visits=False)
            key = services.apikeys.issue(READER).key
            headers = {"Authorization": f"Bearer {key}", "X-Purpose": "care", "Accept": "text/csv"}
            with serving(services) as url, httpx.Client(headers=headers, timeout=600) as client:
                t = time.perf_counter()
                size = 0
                with client.stream("GET", f"{url}/v1/lists/no-guardian") as r:
                    for part in r.iter_bytes():
                        size += part.count(b"\r\n")
                return {"seconds": time.perf_counter() - t, "rows": size - 1}
        finally:
            services.close()


def table(found: dict[str, Any], patients: int, clients: int) -> str:
    """The figures as README's table rows."""
    h = found["healthz"]
    lines = [
        f"First page of each working list (100 rows), {patients:,} patients (SQLite), {clients} clients, "
        f"one worker; /healthz p50 {h['p50'] * 1000:.1f} ms, p99 {h['p99'] * 1000:.1f} ms",
        "",
        "| list | p50 (ms) | p99 (ms) | p50 / healthz | p99 / healthz |",
        "|---|---|---|---|---|",
    ]
    for name, f in found["pages"].items():
        lines.append(
            f"| {name} | {f['p50'] * 1000:.0f} | {f['p99'] * 1000:.0f} | {f['p50'] / h['p50']:.1f} | "
            f"{f['p99'] / h['p99']:.1f} |"
        )
    lines.append("")
    lines.append(f"CSV export of the high-risk list: {found['export_rows']:,} rows in {found['export_s']:.1f} s")
    if "whole_export" in found:
        whole = found["whole_export"]
        lines.append(f"CSV export of a {whole['rows']:,}-row list (no-guardian, streamed): {whole['seconds']:.1f} s")
    return "\n".join(lines)


def run(patients: int, clients: int = 32, per_client: int = 10) -> str:
    """Generate a SQLite store of ``patients`` patients, measure, and give the table."""
    from core.registry import load_file
    from ops.bench_pages import quiet
    from ops.bootstrap import bootstrap
    from ops.data_files import DEMO_DISTRICT
    from ops.settings import load_settings

    quiet()
    with tempfile.TemporaryDirectory() as data_dir:
        services = bootstrap(load_settings({"SMD_DATA_DIR": data_dir}))
        try:
            load_file(services.case_record, DEMO_DISTRICT)
            t = time.perf_counter()
            populate(services, patients)
            print(f"generated {patients:,} patients in {time.perf_counter() - t:.0f} s", flush=True)
            found = measure(services, clients, per_client)
        finally:
            services.close()
    found["whole_export"] = measure_export(patients)
    return table(found, patients, clients)


def main(argv: list[str] | None = None) -> int:
    """`smd bench --lists`: print the table."""
    parser = argparse.ArgumentParser(prog="smd bench --lists")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=10)
    args = parser.parse_args(argv)
    print(run(args.patients, args.clients, args.per_client))
    return 0
