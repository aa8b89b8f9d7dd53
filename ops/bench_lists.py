"""List figures for `smd bench --lists`: the first page of each working list, p50 and p99 over HTTP
at 32 concurrent clients, each as a ratio to ``GET /healthz`` in the same run, and the time of a
whole list's CSV export (10,000 rows by default).

How the store is generated: each patient's facts (a registration and a visit, some with an
irregular adherence, a weak guardian or a refusal) are recorded through the case record's unit
of work, as the intake records them; then only the working lists' follower runs (the rules are
not run: their obligations are the work queue's figure, and recording 10,000 patients through
them would take most of an hour here). The lists' rows are then the rows the service would write.

With wrk installed (Debian's package) it measures as `smd bench --pages` does: the store is a
scratch PostgreSQL database, the API is `smd serve --workers 2` (HTTP only, no followers), wrk asks
at 32 connections for 5 s per list after a one-second warm-up, with ``/healthz`` in the same
serving; the service's CPU per request (its processes' utime+stime from /proc over the requests
wrk counted) and PostgreSQL's (the scratch database's backends, likewise) are given beside each
list. Every patient there has a weak guardian, so the no-guardian list holds all of them and its
CSV export (10,000 rows by default) is timed over HTTP against the same serving.

Without wrk: the store is SQLite, the service runs in this process (uvicorn, one worker, no
background followers) and the clients in a child process (``ops.bench_reads.load``).
"""

from __future__ import annotations

import argparse
import json
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


# -- wrk, `smd serve --workers 2`, PostgreSQL ---------------------------------------------------------


def _ticks(pids: list[int]) -> int:
    """utime+stime (clock ticks) of these processes together; a process gone since counts nothing."""
    from ops.bench_reads import cpu_ticks

    return sum(cpu_ticks(pids).values())


def process_tree(root: int) -> list[int]:
    """``root`` and every process under it (the API's worker processes)."""
    import os

    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def backends(url: str) -> list[int]:
    """The PostgreSQL backends connected to the database at ``url`` (the API's pools)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        rows = c.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [r[0] for r in rows]


def wrk_figure(
    url: str, headers: dict[str, str], clients: int, seconds: float, serving_pid: int, db: str
) -> dict[str, Any]:
    """p50 and p99 (s) of ``clients`` wrk connections for ``seconds`` after a one-second warm-up,
    and the CPU each request cost the API's processes and the database's backends (ms)."""
    import os
    import subprocess

    from ops.bench_pages import WRK_SCRIPT, wrk_path

    wrk = wrk_path()
    assert wrk is not None
    args = [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        subprocess.run([wrk, "-t1", f"-c{clients}", "-d1s", *args, url], capture_output=True, check=True)  # noqa: S603
        api, pg = process_tree(serving_pid), backends(db)
        before = (_ticks(api), _ticks(pg))
        out = subprocess.run(  # noqa: S603
            [wrk, "-t1", f"-c{clients}", f"-d{seconds:g}s", "-s", script.name, *args, url],
            capture_output=True,
            text=True,
            check=True,
        )
        after = (_ticks(api), _ticks(pg))
    found = json.loads(out.stdout.strip().splitlines()[-1])
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    n = max(1, found["requests"])
    found["api_cpu_ms"] = (after[0] - before[0]) * tick_ms / n
    found["pg_cpu_ms"] = (after[1] - before[1]) * tick_ms / n
    return found


def measure_wrk(pg: str, patients: int, clients: int, seconds: float, workers: int) -> dict[str, Any]:
    """The wrk figures on a generated PostgreSQL store (see the module's text)."""
    import httpx

    from core.registry import load_file
    from ops.bench_pages import opened, scratch_database, serving_processes
    from ops.data_files import DEMO_DISTRICT

    out: dict[str, Any] = {"pages": {}, "patients": patients}
    with scratch_database(pg) as url, tempfile.TemporaryDirectory() as tmp:
        with opened(url, tmp) as services:
            load_file(services.case_record, DEMO_DISTRICT)
            services.registry.refresh()
            t = time.perf_counter()
            populate(services, patients, weak_guardian_every=1)
            print(f"generated {patients:,} patients on PostgreSQL in {time.perf_counter() - t:.0f} s", flush=True)
            key = services.apikeys.issue(READER).key
        import psycopg

        with psycopg.connect(url, autocommit=True) as c:
            c.execute("ANALYZE")  # as autovacuum would have by then
        headers = {"Authorization": f"Bearer {key}", "X-Purpose": "care"}
        with serving_processes(url, tmp, workers) as base:
            serving_pid = _serving_pid(base)
            out["healthz"] = wrk_figure(f"{base}/healthz", {}, clients, seconds, serving_pid, url)
            for name in LISTS:
                page = f"{base}/v1/lists/{name}"
                first = httpx.get(page, headers=headers, timeout=30)
                figure = wrk_figure(page, headers, clients, seconds, serving_pid, url)
                figure["items"] = len(first.json()["items"]) if first.status_code == 200 else 0
                figure["status"] = first.status_code
                out["pages"][name] = figure
            with httpx.Client(headers={**headers, "Accept": "text/csv"}, timeout=600) as client:
                t = time.perf_counter()
                size = 0
                with client.stream("GET", f"{base}/v1/lists/no-guardian") as r:
                    for part in r.iter_bytes():
                        size += part.count(b"\r\n")
                out["whole_export"] = {"seconds": time.perf_counter() - t, "rows": size - 1}
    return out


def _serving_pid(base: str) -> int:
    """The process listening on ``base``'s port (the API's parent process): the parent of the
    process tree whose CPU is counted."""
    import os

    port = int(base.rsplit(":", 1)[1])
    # the serving's parent is this process's child running ops.bench_pages._serve_main
    for pid in process_tree(os.getpid())[1:]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"_serve_main" in f.read():
                    return pid
        except OSError:
            continue
    raise RuntimeError(f"no API process found for port {port}")


def table_wrk(found: dict[str, Any], clients: int, seconds: float, workers: int) -> str:
    """The wrk figures as README's table rows."""
    import os

    h = found["healthz"]
    load = os.getloadavg()
    lines = [
        f"First page of each working list (100 rows), {found['patients']:,} patients (PostgreSQL), wrk at "
        f"{clients} connections, {seconds:g} s a list, `smd serve --workers {workers}`; measured "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"on {os.cpu_count()} cores; /healthz p50 {h['p50'] * 1000:.1f} ms, p99 {h['p99'] * 1000:.1f} ms, "
        f"{h['api_cpu_ms']:.2f} ms of API CPU a request",
        "",
        "| list | items | p50 (ms) | p99 (ms) | p50 / healthz | p99 / healthz | requests (failed) "
        "| API CPU / request (ms) | PostgreSQL CPU / request (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in found["pages"].items():
        failed = f["non2xx"] + f["errors"]
        lines.append(
            f"| {name} | {f['items']} | {f['p50'] * 1000:.1f} | {f['p99'] * 1000:.1f} | {f['p50'] / h['p50']:.1f} | "
            f"{f['p99'] / h['p99']:.1f} | {f['requests']:,} ({failed}) | {f['api_cpu_ms']:.2f} | {f['pg_cpu_ms']:.2f} |"
        )
    whole = found["whole_export"]
    lines.append("")
    lines.append(
        f"CSV export of a {whole['rows']:,}-row list (no-guardian, streamed over HTTP): {whole['seconds']:.2f} s"
    )
    met = all(f["p99"] < 0.050 for f in found["pages"].values())
    lines.append(
        f"p99 < 50 ms on every list: {'met' if met else 'not met'}; export < 2 s: "
        f"{'met' if whole['seconds'] < 2 else 'not met'}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`smd bench --lists`: print the table (wrk and PostgreSQL when wrk is installed)."""
    from ops.bench_pages import quiet, wrk_path

    parser = argparse.ArgumentParser(prog="smd bench --lists")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=10, help="without wrk: requests per client (10)")
    parser.add_argument("--pg", default="host=127.0.0.1 dbname=test user=postgres")
    parser.add_argument("--workers", type=int, default=2, help="API worker processes (with wrk; 2)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per list (with wrk; 5)")
    parser.add_argument("--no-wrk", action="store_true", help="the SQLite path with Python clients")
    args = parser.parse_args(argv)
    if wrk_path() and not args.no_wrk:
        quiet()
        found = measure_wrk(args.pg, args.patients, args.clients, args.seconds, args.workers)
        print(table_wrk(found, args.clients, args.seconds, args.workers))
    else:
        print(run(args.patients, args.clients, args.per_client))
    return 0
