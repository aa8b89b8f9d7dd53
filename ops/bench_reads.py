"""Read figures for `smd bench`: a patient's file and timeline over HTTP, p50 and p99 at 1 and 32
clients, as ratios to `GET /healthz` measured in the same serving; and file reads per second with
the access log on and off: what recording every read costs.

The store (PostgreSQL, a scratch database): ``patients`` patients registered in one of the
health center's villages, each with ``facts`` facts of care (visits, pickups, contacts,
assessments: ``ops.bench.history``), recorded through the case record's unit of work in batches;
the work-queue view gets the rows a year of care leaves for the same patient ids
(``ops.bench_pages.generate``), since the file lists the patient's open obligations from it.
The rules do not run (their cost is the other tables' figure).

The reader is the health center (it sees every field), `X-Purpose: care`; each request asks for
another patient, so no answer comes from a cache warmed by the same patient just before. Every
answer is recorded in the access log, as in service.

How it is measured: with wrk installed (Debian's package), as the pages are (``ops.bench_pages``):
the API served by `smd serve --workers 2` in its own processes, wrk at 1 and 32 connections for
``seconds`` a read after a one-second warm-up, each request for a patient drawn at random from the
generated ones (a Lua script), ``/healthz`` in the same serving; and the CPU a request cost the
service's processes and the PostgreSQL backends (utime + stime from ``/proc``, divided by the
requests answered). The access log off is a second serving whose workers append nothing. Without
wrk: one worker in this process and Python clients (httpx, in a child process), as before.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

READER = "hc-north"
VILLAGE = "990101-001-v01"  # hc-north's
SEED = 7  # the view's generator names its patients uuid5(NS, "7:<n>"): the same ids here


@dataclass(frozen=True, slots=True)
class ReadFigure:
    """One read's latencies at one concurrency, beside /healthz's in the same serving (ms)."""

    read: str
    clients: int
    p50_ms: float
    p99_ms: float
    healthz_p50_ms: float
    healthz_p99_ms: float
    requests: int
    failed: int
    service_cpu_ms: float = float("nan")  # CPU of the service's processes per request (wrk only)
    db_cpu_ms: float = float("nan")  # of the PostgreSQL backends per request


def _nothing_recorded(entry: Any) -> Future[None]:
    """A grouped access log's ``submit`` with the log off: done at once, nothing written."""
    done: Future[None] = Future()
    done.set_result(None)
    return done


def patient_ids(patients: int) -> list[UUID]:
    from ops.bench_pages import NS

    return [uuid5(NS, f"{SEED}:{p}") for p in range(patients)]


#: wrk: each request for a patient drawn at random from a file of ids (the script's arguments: the
#: file and the path after the id, "" or "/timeline"); the summary as one JSON line (seconds).
WRK_READS = """
local ids, suffix = {}, ""
init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  suffix = args[2] or ""
  math.randomseed(os.time())
end
request = function()
  return wrk.format("GET", "/v1/patients/" .. ids[math.random(#ids)] .. suffix)
end
"""


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime (clock ticks) of each process that still runs (``/proc/<pid>/stat``)."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return out


def children_of(pid: int) -> list[int]:
    """``pid`` and its child processes (the API's workers are forked by `smd serve`)."""
    import os

    out = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                continue
    return out


def backends_of(url: str) -> list[int]:
    """The PostgreSQL backends connected to the store's database (its pools' connections)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        me = c.info.backend_pid
        rows = c.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").fetchall()
    return [pid for (pid,) in rows if pid != me]


def generate(services: Any, patients: int, facts: int, batch: int = 400) -> int:
    """Register ``patients`` patients with ``facts`` facts each; returns the facts recorded."""
    from core.contract import decode_event
    from ops.bench import envelope, history
    from ops.bench_pages import generate as generate_view

    record = services.case_record
    start = datetime.now(UTC) - timedelta(days=facts + 30)
    pending: list[bytes] = []
    written = 0

    def flush() -> None:
        unit = record.unit_of_work()
        for raw in pending:
            unit.record(decode_event(raw), READER)
        unit.commit()
        pending.clear()

    for pid in patient_ids(patients):
        registered = {"name": "Bench Person", "residence": VILLAGE}
        pending.append(envelope("cn.smd.patient.registered.v1", pid, registered, start))
        pending += history(pid, start + timedelta(days=1), facts)
        written += 1 + facts
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    generate_view(services, patients, seed=SEED)
    return written


def load(urls: list[str], headers: dict[str, str], clients: int, per_client: int) -> dict[str, Any]:
    """Latencies (s) of ``clients`` concurrent clients, each asking ``per_client`` times, in a child
    process; each request the next URL of the list (clients start at different places)."""
    job = json.dumps({"urls": urls, "headers": headers, "clients": clients, "per_client": per_client})
    out = subprocess.run(
        [sys.executable, "-c", "import ops.bench_reads as b; b._client_main()"],
        input=job,  # on stdin: 10,000 URLs are too long for a command line
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode:
        raise RuntimeError(f"the clients failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def _client_main() -> None:
    """The clients' side of ``load``: one warm-up request each, then the measured ones."""
    import asyncio

    import httpx

    job = json.loads(sys.stdin.read())
    urls: list[str] = job["urls"]

    async def clients() -> dict[str, Any]:
        n = job["clients"]
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(limits=limits, headers=job["headers"], timeout=60) as client:
            failed: list[Any] = []

            async def one(url: str) -> float | None:
                t = time.perf_counter()
                try:
                    r = await client.get(url)
                except httpx.TransportError as e:
                    failed.append(type(e).__name__)
                    return None
                spent = time.perf_counter() - t
                if r.status_code != 200:
                    failed.append(r.status_code)
                    return None
                return spent

            async def client_loop(c: int) -> list[float | None]:
                at = c * 7919  # spread the clients over the patients
                await one(urls[at % len(urls)])
                return [await one(urls[(at + i + 1) % len(urls)]) for i in range(job["per_client"])]

            t0 = time.perf_counter()
            found = await asyncio.gather(*(client_loop(c) for c in range(n)))
            wall = time.perf_counter() - t0
            times = [t for each in found for t in each if t is not None]
            return {"times": times, "failed": failed, "wall_s": wall}

    print(json.dumps(asyncio.run(clients())))


def _q(found: dict[str, Any], q: float) -> float:
    """A percentile (ms) of one load: wrk's own, or of the Python clients' latencies."""
    if "times" not in found:
        return found["p50" if q == 0.5 else "p99"] * 1000
    return _p(found["times"], q)


def _answered(found: dict[str, Any]) -> int:
    return len(found["times"]) if "times" in found else found["n"] - found["failed"]


def _failed(found: dict[str, Any]) -> int:
    return found["failed"] if isinstance(found["failed"], int) else len(found["failed"])


def _cpu_ms(rounds: list[dict[str, Any]], which: str, part: str) -> float:
    """CPU (ms) per request, over the rounds (NaN without wrk: not measured)."""
    requests = sum(r[which].get("n", 0) for r in rounds)
    return sum(r[which].get(part, 0.0) for r in rounds) * 1000 / requests if requests else float("nan")


def _p(times: list[float], q: float) -> float:
    ordered = sorted(times) or [float("nan")]
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


@contextmanager
def generated_store(pg: str, patients: int, facts: int) -> Iterator[tuple[str, str, int]]:
    """A scratch PostgreSQL store with the generated patients: its URL, data folder and facts."""
    from core.registry import load_file
    from ops.bench_pages import opened, scratch_database
    from ops.data_files import DEMO_DISTRICT

    with scratch_database(pg) as url, tempfile.TemporaryDirectory() as tmp:
        with opened(url, tmp) as services:
            load_file(services.case_record, DEMO_DISTRICT)
            services.registry.refresh()
            written = generate(services, patients, facts)
        import psycopg

        with psycopg.connect(url, autocommit=True) as c:
            c.execute("ANALYZE")
        yield url, tmp, written


def measure(url: str, data_dir: str, patients: int, per_client: int, rounds: int) -> dict[str, Any]:
    """Every read at 1 and 32 clients beside /healthz, ``rounds`` times in turn; and file reads per
    second at 32 clients with the access log on and off."""
    from ops.bench_pages import opened, serving

    ids = patient_ids(patients)
    out: dict[str, Any] = {"rounds": []}
    with opened(url, data_dir) as services, serving(services) as base:
        key = services.apikeys.issue(READER).key
        headers = {"Authorization": f"Bearer {key}", "X-Purpose": "care"}
        urls = {
            "GET /healthz": [f"{base}/healthz"],
            "GET /v1/patients/{id}": [f"{base}/v1/patients/{p}" for p in ids],
            "GET /v1/patients/{id}/timeline": [f"{base}/v1/patients/{p}/timeline" for p in ids],
        }
        for _ in range(rounds):
            this: dict[str, Any] = {}
            for clients in (1, 32):
                n = per_client * (8 if clients == 1 else 1)  # as many answers at 1 client as the p99 needs
                for read, targets in urls.items():
                    this[f"{read}@{clients}"] = load(targets, headers, clients, n)
            log = services.access_log
            on = load(urls["GET /v1/patients/{id}"], headers, 32, per_client)
            grouped = hasattr(log, "submit")  # PostgreSQL's grouped log: a read awaits its row's future
            log.append = lambda entry: None  # type: ignore[method-assign]  # off: nothing recorded
            if grouped:
                log.submit = _nothing_recorded
            try:
                off = load(urls["GET /v1/patients/{id}"], headers, 32, per_client)
            finally:
                del log.append  # the class's method again
                if grouped:
                    del log.submit
            this["log on"], this["log off"] = on, off
            out["rounds"].append(this)
    return out


def _serve_main(workers: int) -> None:
    """The served side of the wrk measure: `smd serve --workers`, HTTP only; with
    ``SMD_BENCH_ACCESS_LOG=off`` every access log appends nothing (the cost of the log)."""
    import os

    from ops.bench_pages import _serve_main as serve_pages

    if os.environ.get("SMD_BENCH_ACCESS_LOG") == "off":
        from core.access_log import PostgresAccessLog
        from core.intake import GroupedAccessLog

        GroupedAccessLog.append = lambda self, entry: None  # type: ignore[method-assign]
        GroupedAccessLog.submit = lambda self, entry: _nothing_recorded(entry)  # type: ignore[method-assign]
        PostgresAccessLog.append = lambda self, entry: None  # type: ignore[method-assign]
    serve_pages(workers)


def load_wrk(
    base: str, path: str, key: str, clients: int, seconds: float, ids_file: str | None, cpu_of: list[int], url: str
) -> dict[str, Any]:
    """wrk at ``clients`` connections for ``seconds`` after a one-second warm-up: p50 and p99
    (s), requests and failures, and the CPU (s) the measured requests cost the service's
    processes (``cpu_of``) and the store's PostgreSQL backends. ``ids_file``: each request for
    a random patient of the file, ``path`` after its id; None: ``path`` itself."""
    import os

    from ops.bench_pages import WRK_SCRIPT, wrk_path

    wrk = wrk_path()
    assert wrk is not None
    headers = ["-H", f"Authorization: Bearer {key}", "-H", "X-Purpose: care"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write((WRK_READS if ids_file else "") + WRK_SCRIPT)
        script.flush()
        args = ["--", ids_file, path] if ids_file else []
        target = base + "/" if ids_file else base + path
        command = [wrk, "-t1", f"-c{clients}", "-s", script.name, *headers, target, *args]
        subprocess.run([*command[:3], "-d1s", *command[3:]], capture_output=True, check=True)  # noqa: S603
        backends = backends_of(url)
        before = cpu_ticks(cpu_of), cpu_ticks(backends)
        measured = [*command[:3], f"-d{seconds:g}s", *command[3:]]
        out = subprocess.run(measured, capture_output=True, text=True, check=True)  # noqa: S603
        after = cpu_ticks(cpu_of), cpu_ticks(backends_of(url))
    found = json.loads(out.stdout.strip().splitlines()[-1])
    tick = os.sysconf("SC_CLK_TCK")
    spent = [sum(t - b.get(pid, 0) for pid, t in a.items()) / tick for b, a in zip(before, after, strict=True)]
    return {
        "p50": found["p50"],
        "p99": found["p99"],
        "n": found["requests"],
        "failed": found["non2xx"] + found["errors"],
        "wall_s": seconds,
        "service_cpu_s": spent[0],
        "db_cpu_s": spent[1],
    }


def measure_wrk(url: str, data_dir: str, patients: int, rounds: int, workers: int, seconds: float) -> dict[str, Any]:
    """``measure`` with wrk against `smd serve --workers` (``ops.bench_pages.served``)."""
    from ops.bench_pages import opened, served

    out: dict[str, Any] = {"rounds": [], "client": "wrk", "workers": workers, "seconds": seconds}
    with opened(url, data_dir) as services:
        key = services.apikeys.issue(READER).key
    reads = {"GET /v1/patients/{id}": "", "GET /v1/patients/{id}/timeline": "/timeline"}
    with tempfile.NamedTemporaryFile("w", suffix=".ids") as ids:
        ids.write("".join(f"{p}\n" for p in patient_ids(patients)))
        ids.flush()
        for _ in range(rounds):
            this: dict[str, Any] = {}
            with served(url, data_dir, workers, module="ops.bench_reads") as (base, proc):
                pids = children_of(proc.pid)
                for clients in (1, 32):
                    this[f"GET /healthz@{clients}"] = load_wrk(base, "/healthz", key, clients, seconds, None, pids, url)
                    for read, suffix in reads.items():
                        this[f"{read}@{clients}"] = load_wrk(base, suffix, key, clients, seconds, ids.name, pids, url)
                this["log on"] = this["GET /v1/patients/{id}@32"]
            env = {"SMD_BENCH_ACCESS_LOG": "off"}
            with served(url, data_dir, workers, module="ops.bench_reads", env=env) as (base, proc):
                pids = children_of(proc.pid)
                this["log off"] = load_wrk(base, "", key, 32, seconds, ids.name, pids, url)
            out["rounds"].append(this)
    return out


def figures(measured: dict[str, Any]) -> tuple[list[ReadFigure], dict[str, float]]:
    """Medians over the rounds of each p50 and p99; reads per second with the log on and off."""
    rounds = measured["rounds"]
    out = []
    for read in ("GET /v1/patients/{id}", "GET /v1/patients/{id}/timeline"):
        for clients in (1, 32):

            def med(name: str, q: float, c: int = clients) -> float:
                return statistics.median(_q(r[f"{name}@{c}"], q) for r in rounds)

            out.append(
                ReadFigure(
                    read,
                    clients,
                    med(read, 0.5),
                    med(read, 0.99),
                    med("GET /healthz", 0.5),
                    med("GET /healthz", 0.99),
                    sum(_answered(r[f"{read}@{clients}"]) for r in rounds),
                    sum(_failed(r[f"{read}@{clients}"]) for r in rounds),
                    _cpu_ms(rounds, f"{read}@{clients}", "service_cpu_s"),
                    _cpu_ms(rounds, f"{read}@{clients}", "db_cpu_s"),
                )
            )

    def per_s(which: str) -> float:
        return statistics.median(_answered(r[which]) / r[which]["wall_s"] for r in rounds)

    return out, {"on": per_s("log on"), "off": per_s("log off")}


def table(found: list[ReadFigure], throughput: dict[str, float], patients: int, facts: int) -> str:
    """Markdown: each read's p50 and p99 at 1 and 32 clients, as ratios to /healthz's, and the
    CPU a request cost the service and PostgreSQL (with wrk)."""
    lines = [
        f"Reads on a generated store of {patients:,} patients ({facts} facts each), PostgreSQL; "
        "ratios to GET /healthz in the same serving",
        "",
        "| read | clients | p50 (ms) | p99 (ms) | /healthz p50 / p99 (ms) | p50 ratio | p99 ratio"
        " | requests (failed) | CPU per request, service / PostgreSQL (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in found:
        cpu = "" if f.service_cpu_ms != f.service_cpu_ms else f"{f.service_cpu_ms:.2f} / {f.db_cpu_ms:.2f}"
        lines.append(
            f"| {f.read} | {f.clients} | {f.p50_ms:.1f} | {f.p99_ms:.1f} | {f.healthz_p50_ms:.1f} / "
            f"{f.healthz_p99_ms:.1f} | {f.p50_ms / f.healthz_p50_ms:.1f} | {f.p99_ms / f.healthz_p99_ms:.1f} | "
            f"{f.requests:,} ({f.failed}) | {cpu} |"
        )
    on, off = throughput["on"], throughput["off"]
    lines.append(
        f"| file reads per second at 32 clients, access log on / off | 32 | {on:,.0f} | {off:,.0f} | | "
        f"{on / off:.2f} | | | |"
    )
    return "\n".join(lines)


def describe(measured: dict[str, Any]) -> str:
    """Which client measured, against how many API processes, and the load average now."""
    import os

    load = os.getloadavg()
    if measured.get("client") == "wrk":
        how = (
            f"wrk (one thread, {measured['seconds']:g} s a read and concurrency after a 1 s warm-up),"
            f" `smd serve --workers {measured['workers']}`"
        )
    else:
        how = "Python clients (httpx, in a child process), one API worker in the bench process"
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; clients: {how}; load average"
        f" {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores"
    )


def run(
    pg: str, patients: int, facts: int, per_client: int, rounds: int, workers: int = 2, seconds: float = 5.0
) -> str:
    """Generate the store, measure (with wrk when installed), and return the table."""
    from ops.bench_pages import wrk_path

    with generated_store(pg, patients, facts) as (url, data_dir, _):
        if wrk_path():
            measured = measure_wrk(url, data_dir, patients, rounds, workers, seconds)
        else:
            measured = measure(url, data_dir, patients, per_client, rounds)
    found, throughput = figures(measured)
    return describe(measured) + "\n\n" + table(found, throughput, patients, facts)


def main(argv: list[str] | None = None) -> int:
    """`smd bench --reads`: only the read figures."""
    import argparse

    from ops.bench_pages import quiet

    ap = argparse.ArgumentParser(prog="smd bench --reads")
    ap.add_argument("--pg", default="host=127.0.0.1 dbname=test user=postgres")
    ap.add_argument("--patients", type=int, default=10_000, help="patients in the generated store (10,000)")
    ap.add_argument("--facts", type=int, default=12, help="facts of care per patient (12)")
    ap.add_argument("--per-client", type=int, default=25, help="requests per client at 32 clients (25; 8× at 1)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="API worker processes (with wrk; 2)")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per read and concurrency (with wrk; 5)")
    a = ap.parse_args(argv)
    quiet()
    started = time.monotonic()
    print(run(a.pg, a.patients, a.facts, a.per_client, a.rounds, a.workers, a.seconds))
    print(f"\n({time.monotonic() - started:.0f} s in all, the store's generation included)")
    return 0
