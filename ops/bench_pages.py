"""Page figures for `smd bench`: the first page of a work queue and of the oversight list, p50 and
p99 over HTTP at 32 concurrent clients, on generated stores of 100 and 10,000 patients (and on a
simulated year's store when given one).

How a store is generated: the read model's rows are written directly, through the projection's
own ``apply`` (fed stand-in ``ObligationAssigned`` / lifecycle events) and the view store's
``write`` (the follower's own SQL path), in batches of 5,000. Pages read only the view, so a view
with the shape a year of care leaves (about eight obligations and notices per patient, most
closed, the open ones the recent ones, residences across two townships) is what they need;
recording 10,000 patients' facts through the rules would take most of an hour here and measure
the rules, not the pages (that is the simulated year's figure).

The service runs in this process (uvicorn, one worker, no background followers); the clients run
in a child process (httpx, 32 connections, each sending its next request when the previous
answer arrives), so client and server do not share one interpreter lock.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid5

import psycopg
from eventsourcing.persistence import Notification
from psycopg import sql

from domain.obligation import Obligation
from projections.base import Batch

#: The clients' agencies: a police station's own queue, the governance center's oversight.
POLICE, GOVERNANCE = "police-east", "gov-willowbrook"
PATHS = {
    "work queue (open)": "/v1/work-queue",
    "work queue, status=all": "/v1/work-queue?status=all",  # a full page at every size
    "oversight": "/v1/oversight/obligations",
}
#: Residences of generated patients, with the agencies each one's facts reach (demo district).
WILLOWBROOK = {
    **{f"990101-001-v0{i}": ("police-east", "hc-north") for i in (1, 2, 3, 4)},
    "990101-001-v05": ("police-east", "hc-south"),
    "990101-001-m1": ("police-east", "hc-north"),
    **{f"990101-001-v0{i}": ("police-west", "hc-south") for i in (6, 7, 8)},
    "990101-001-v09": ("police-west", "hc-north"),
    "990101-001-m2": ("police-west", "hc-south"),
}
REEDMARSH = {f"990101-002-v0{i}": ("police-reedmarsh", "hc-reedmarsh") for i in (1, 2, 3)}
NS = UUID("5b1f0c4e-7d0a-4c7e-9a51-3d7f5a1c2b90")


@dataclass(frozen=True, slots=True)
class PageFigure:
    """One page's latencies over HTTP (ms)."""

    store: str
    page: str
    rows: int
    items: int  # on the first page
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int = 0  # answers other than 200 (not in the latencies)
    query_p50_ms: float = 0.0  # the read-model query alone, one at a time
    query_p99_ms: float = 0.0


def _notification(position: int, originator: UUID, version: int, topic: str) -> Notification:
    return Notification(id=position, originator_id=originator, originator_version=version, topic=topic, state=b"")


def generate(services: Any, patients: int, seed: int = 7) -> int:
    """Write the view rows a year of care leaves for ``patients`` patients; returns the rows."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible workload, not a secret)
    view = services.work_queue.projection
    store = services.views
    generation = store.live(view)
    start = datetime.now(UTC) - timedelta(days=365)
    units = list(WILLOWBROOK.items()) * 9 + list(REEDMARSH.items()) * 4  # most patients in Willowbrook
    # (rule, kind, action, who: 0 police, 1 health center, 2 governance)
    duties = (
        ("R1", "obligation", "take_under_management", 0),
        ("R1", "notice", "high_risk_patient_notice", 2),
        ("R4", "obligation", "follow_up_visit", 1),
        ("R4", "obligation", "follow_up_visit", 1),
        ("R4", "obligation", "follow_up_visit", 1),
        ("R2", "notice", "joint_visit_notice", 0),
        ("R5", "obligation", "medication_review", 1),
        ("R3", "obligation", "police_check", 0),
    )
    # every patient's duties spread over the year, in log order
    plan = sorted(
        (rng.random(), p, d) for p in range(patients) for d in range(len(duties)) if d < 2 or rng.random() < 0.9
    )
    batch, position, written = Batch(), 0, 0
    residence_of = {p: units[rng.randrange(len(units))] for p in range(patients)}
    for at, p, d in plan:
        rule, kind, action, who = duties[d]
        residence, (police, health_center) = residence_of[p]
        township = residence[:10]
        assignee = (police, health_center, "gov-willowbrook" if township == "990101-001" else "gov-reedmarsh")[who]
        position += 1
        obligation = uuid5(NS, f"{seed}:{p}:{d}")
        assigned_at = start + timedelta(days=365 * at)
        event = SimpleNamespace(
            originator_id=obligation,
            kind=kind,
            rule=rule,
            action=action,
            patient_id=uuid5(NS, f"{seed}:{p}"),
            episode_key=f"episode-{p}",
            assignee=assignee,
            residence=residence,
            due_at=assigned_at + timedelta(days=7) if kind == "obligation" else None,
            risk_level=rng.randrange(5),
            timestamp=assigned_at,
            trigger_message_id=f"hc-north:{p}-{d}",
        )
        view.apply(event, _notification(position, obligation, 1, Obligation.Assigned.TOPIC), batch)
        if at < 0.9 or rng.random() < 0.3:  # closed, save the recent ones
            position += 1
            topic = Obligation.Completed.TOPIC if kind == "obligation" else Obligation.Read.TOPIC
            closed = SimpleNamespace(originator_id=obligation, fulfilled_by=None, reason=None)
            view.apply(closed, _notification(position, obligation, 2, topic), batch)
        written += 1
        if len(batch.ops) >= 5000:
            store.write(view, generation, batch.ops, generation.tracking_name + "/bench", position)
            batch = Batch()
    store.write(view, generation, batch.ops, generation.tracking_name + "/bench", position)
    return written


def quiet() -> None:
    """Warnings only: the table is the output (the API would log every request)."""
    from ops.logging import configure_logging

    configure_logging(level=logging.WARNING)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(services: Any) -> Iterator[str]:
    """The HTTP API on a free local port, in a thread of this process (one worker)."""
    import uvicorn

    from api.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serving_processes(url: str, data_dir: str, workers: int) -> Iterator[str]:
    """The HTTP API as `smd serve --workers N` serves it, HTTP only (no followers: the view is
    what it is), in child processes on a free local port."""
    with served(url, data_dir, workers) as (base, _):
        yield base


@contextmanager
def served(
    url: str, data_dir: str, workers: int, module: str = "ops.bench_pages", env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``serving_processes`` with its process (the workers are its children): ``module``'s
    ``_serve_main`` serves, with ``env`` added to the environment."""
    import os

    import httpx

    port = _free_port()
    env = {
        **os.environ,
        "SMD_DATABASE_URL": url,
        "SMD_DATA_DIR": data_dir,
        "SMD_PORT": str(port),
        "SMD_NATS_URL": "",
        "SMD_LOG_FORMAT": "json",
        **(env or {}),
    }
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-c", f"import {module} as b; b._serve_main({workers})"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the API did not start within 60 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _serve_main(workers: int) -> None:
    """The served side of ``serving_processes``."""
    from ops.logging import configure_logging
    from ops.settings import load_settings
    from ops.workers import serve

    configure_logging("json", level=logging.WARNING)
    serve(load_settings(), workers=workers, followers=False)


#: wrk's summary as one JSON line (latencies in microseconds there, seconds here).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"p50": %f, "p99": %f, "requests": %d, "non2xx": %d, "errors": %d}\\n',
    latency:percentile(50) / 1e6, latency:percentile(99) / 1e6, summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_path() -> str | None:
    """wrk (Debian's package), if installed: a client in C that costs the machine far less than
    the service it measures; without it the clients are Python (httpx, in a child process)."""
    import shutil

    return shutil.which("wrk")


def load_wrk(url: str, key: str, clients: int, seconds: float) -> dict[str, Any]:
    """p50 and p99 (s) of ``clients`` connections, each sending its next request when the
    previous answer arrives, for ``seconds`` (wrk, one thread), after a one-second warm-up."""
    import httpx

    wrk = wrk_path()
    assert wrk is not None
    first = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    items = len(first.json()["items"]) if first.status_code == 200 else 0
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        header = ["-H", f"Authorization: Bearer {key}"]
        subprocess.run([wrk, "-t1", f"-c{clients}", "-d1s", *header, url], capture_output=True, check=True)  # noqa: S603
        out = subprocess.run(  # noqa: S603
            [wrk, "-t1", f"-c{clients}", f"-d{seconds:g}s", "-s", script.name, *header, url],
            capture_output=True,
            text=True,
            check=True,
        )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    failed = ["non-2xx"] * found["non2xx"] + ["error"] * found["errors"]
    return {"p50": found["p50"], "p99": found["p99"], "n": found["requests"], "items": items, "failed": failed}


def load(url: str, key: str, clients: int, per_client: int) -> dict[str, Any]:
    """``times``: latencies (s) of ``clients`` concurrent clients each asking ``per_client`` times
    (in a child process); ``items``: how many items the page had."""
    job = json.dumps({"url": url, "key": key, "clients": clients, "per_client": per_client})
    out = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-c", "import ops.bench_pages as b; b._client_main()", job],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode:
        raise RuntimeError(f"the clients failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout)


def _client_main() -> None:
    """The clients' side of ``load``: one warm-up request each, then the measured ones."""
    import asyncio

    import httpx

    job = json.loads(sys.argv[1])

    async def clients() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=job["clients"], max_keepalive_connections=job["clients"])
        headers = {"Authorization": f"Bearer {job['key']}"}
        async with httpx.AsyncClient(limits=limits, headers=headers, timeout=60) as client:
            items, failed = [], []

            async def one() -> float | None:
                t = time.perf_counter()
                try:
                    r = await client.get(job["url"])
                except httpx.TransportError as e:  # a connection dropped under load: counted apart
                    failed.append(type(e).__name__)
                    return None
                spent = time.perf_counter() - t
                if r.status_code != 200:  # counted apart: a refused page is no page
                    failed.append(r.status_code)
                    return None
                if not items:
                    items.append(len(r.json()["items"]))
                return spent

            async def client_loop() -> list[float | None]:
                await one()
                return [await one() for _ in range(job["per_client"])]

            found = await asyncio.gather(*(client_loop() for _ in range(job["clients"])))
            times = [t for each in found for t in each if t is not None]
            return {"times": times, "items": items[0] if items else 0, "failed": failed}

    print(json.dumps(asyncio.run(clients())))


@contextmanager
def opened(url: str, data_dir: str) -> Iterator[Any]:
    """The service's parts on a store, closed afterwards (each store's pools are open only while it
    is measured: the PostgreSQL server is shared)."""
    from ops.bootstrap import bootstrap
    from ops.settings import load_settings

    services = bootstrap(load_settings({"SMD_DATA_DIR": data_dir, "SMD_DATABASE_URL": url}))
    try:
        yield services
    finally:
        services.close()


def query_times(services: Any, page: str, n: int = 100) -> list[float]:
    """The page's read-model query alone, in this process, one at a time (s): the part of a
    request that depends on the store's size."""
    queue = services.work_queue
    if page.startswith("work queue"):
        status = "all" if "all" in page else "open"
        ask = lambda: queue.for_assignee(POLICE, 0, 100, status)  # noqa: E731
    else:
        units = services.units_within(["990101-001"])  # the governance center's jurisdiction (demo district)
        ask = lambda: queue.obligations_in(units, 0, 100, "all")  # noqa: E731
    ask()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        ask()
        out.append(time.perf_counter() - t)
    return out


def measure_once(
    url: str, data_dir: str, clients: int, per_client: int, workers: int = 1, seconds: float = 5.0
) -> dict[str, dict[str, Any]]:
    """Every page's latencies (s) on a store, one serving of the API, and its query's alone.

    With wrk installed the API is served by ``workers`` processes (`smd serve --workers`) and
    wrk asks for ``seconds``; without it, by one worker in this process and Python clients."""
    out = {}
    with opened(url, data_dir) as services:
        keys = {POLICE: services.apikeys.issue(POLICE).key, GOVERNANCE: services.apikeys.issue(GOVERNANCE).key}
        with serving_processes(url, data_dir, workers) if wrk_path() else serving(services) as base:
            for page, path in PATHS.items():
                key = keys[POLICE if page.startswith("work queue") else GOVERNANCE]
                if wrk_path():
                    out[page] = load_wrk(base + path, key, clients, seconds)
                else:
                    out[page] = load(base + path, key, clients, per_client)
                out[page]["query"] = query_times(services, page)
    return out


def figures_of(label: str, rows: int, rounds: list[dict[str, dict[str, Any]]]) -> list[PageFigure]:
    """p50 and p99 of each round, then the median over the rounds (the machine is shared)."""
    out = []
    for page in PATHS:
        p50s, p99s = [], []
        for r in rounds:
            if "p99" in r[page]:  # wrk's own percentiles
                p50s.append(r[page]["p50"] * 1000)
                p99s.append(r[page]["p99"] * 1000)
                continue
            times = sorted(r[page]["times"]) or [float("nan")]
            p50s.append(statistics.median(times) * 1000)
            p99s.append(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000)
        n = sum(r[page]["n"] if "n" in r[page] else len(r[page]["times"]) for r in rounds)
        failed = sum(len(r[page]["failed"]) for r in rounds)
        items = max(r[page]["items"] for r in rounds)
        p50, p99 = statistics.median(p50s), statistics.median(p99s)
        query = sorted(t for r in rounds for t in r[page]["query"])
        q50, q99 = statistics.median(query) * 1000, query[int(len(query) * 0.99)] * 1000
        out.append(PageFigure(label, page, rows, items, p50, p99, n, failed, q50, q99))
    return out


@contextmanager
def scratch_database(pg: str) -> Iterator[str]:
    """An empty PostgreSQL database, dropped afterwards; yields its URL."""
    dbname = f"smd_bench_{secrets.token_hex(4)}"
    with psycopg.connect(pg, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{dbname}"
    finally:
        with psycopg.connect(pg, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


@contextmanager
def generated_store(pg: str, patients: int) -> Iterator[tuple[str, str, int]]:
    """A generated PostgreSQL store of ``patients`` patients: its URL, data folder and view rows."""
    from core.registry import load_file
    from ops.data_files import DEMO_DISTRICT

    with scratch_database(pg) as url, tempfile.TemporaryDirectory() as tmp:
        with opened(url, tmp) as services:
            load_file(services.case_record, DEMO_DISTRICT)
            services.registry.refresh()
            rows = generate(services, patients)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute("ANALYZE")  # as autovacuum would have by then
        yield url, tmp, rows


@contextmanager
def existing_store(url: str, data_dir: str | None = None) -> Iterator[tuple[str, str, int]]:
    """An existing store (a simulated year's database): its URL, data folder and view rows."""
    with tempfile.TemporaryDirectory() as tmp:
        with opened(url, data_dir or tmp) as services:
            while services.work_queue.run_once():  # a new view version is built from the log first
                pass
            rows = sum(services.views.count(services.work_queue.projection, "rows", ("kind",)).values())
        yield url, data_dir or tmp, rows


def describe(clients: int, workers: int, seconds: float) -> str:
    """Which client measured, against how many API processes, and the load average."""
    import os

    load = os.getloadavg()
    if wrk_path():
        how = f"wrk (one thread, {clients} connections, {seconds:g} s a page and round)"
        how += f", `smd serve --workers {workers}`"
    else:
        how = f"Python clients (httpx, {clients} in a child process), one API worker in the bench process"
    return (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, PostgreSQL; clients: {how}; load average"
        f" {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores\n"
    )


def table(figures: list[PageFigure]) -> str:
    """Markdown: one line per store and page (medians of the rounds' p50 and p99), then the ratio
    of the largest generated store's p99 to the smallest's for each page (and of the query's
    p50 alone: its p99 over a few hundred calls on a shared machine is one stall)."""
    lines = [
        "| store | page | rows in the view | items on the page | p50 (ms) | p99 (ms) | requests (failed)"
        " | query alone p50 / p99 (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.store} | {f.page} | {f.rows:,} | {f.items} | {f.p50_ms:.1f} | {f.p99_ms:.1f}"
            f" | {f.requests:,} ({f.failed}) | {f.query_p50_ms:.2f} / {f.query_p99_ms:.2f} |"
        )
    gen = [f for f in figures if f.store.startswith("generated")]
    for page in PATHS:
        mine = sorted((f for f in gen if f.page == page), key=lambda f: f.rows)
        if len(mine) >= 2:
            small, large = mine[0], mine[-1]
            lines.append(
                f"| p99 ratio, {large.store.removeprefix('generated, ')} / {small.store.removeprefix('generated, ')}"
                f" | {page} | | | | {large.p99_ms / small.p99_ms:.2f}× | |"
                f" p50 {large.query_p50_ms / small.query_p50_ms:.2f}× |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`smd bench --pages`: only the page figures."""
    import argparse

    ap = argparse.ArgumentParser(prog="smd bench --pages")
    ap.add_argument("--pg", default="host=127.0.0.1 dbname=test user=postgres")
    ap.add_argument("--sizes", default="100,10000", help="generated stores, in patients (100,10000)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--per-client", type=int, default=40, help="requests per client per page and round (40)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each store measured once per round (3)")
    ap.add_argument("--year", metavar="URL", help="also measure an existing store (e.g. a simulated year's database)")
    ap.add_argument("--year-data-dir", metavar="DIR", help="that store's SMD_DATA_DIR (its key files)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON here")
    ap.add_argument("--workers", type=int, default=2, help="API worker processes (with wrk; 2)")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per page and round (with wrk; 5)")
    a = ap.parse_args(argv)
    quiet()
    sizes = [int(s) for s in a.sizes.split(",")]
    figures = run(
        a.pg, sizes, a.clients, a.per_client, a.year, a.rounds, a.year_data_dir, workers=a.workers, seconds=a.seconds
    )
    print(describe(a.clients, a.workers, a.seconds))
    print(table(figures))
    if a.json:
        with open(a.json, "w") as f:
            json.dump([dataclasses.asdict(f) for f in figures], f, indent=1)
    return 0


def run(
    pg: str,
    sizes: list[int],
    clients: int,
    per_client: int,
    year: str | None = None,
    rounds: int = 3,
    year_data_dir: str | None = None,
    workers: int = 2,
    seconds: float = 5.0,
) -> list[PageFigure]:
    """Every page figure: the generated stores (and the simulated year), measured in turn in
    each of ``rounds`` rounds so that the machine's other load falls on all of them alike."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        stores = [(f"generated, {n:,} patients", *stack.enter_context(generated_store(pg, n))) for n in sizes]
        if year:
            stores.append(("simulated year", *stack.enter_context(existing_store(year, year_data_dir))))
        measured: list[list[dict[str, dict[str, Any]]]] = [[] for _ in stores]
        for _ in range(rounds):
            for i, (_, url, data_dir, _) in enumerate(stores):
                measured[i].append(measure_once(url, data_dir, clients, per_client, workers, seconds))
        return [f for (label, *_, rows), m in zip(stores, measured, strict=True) for f in figures_of(label, rows, m)]
