"""Honest outages (issue 17), in process: the service starts and serves HTTP while NATS is down,
reports it as degraded, and connects when NATS comes. The process-level outage and crash tests
(``smd serve``, ``smd ingest``, ``smd outbox`` as subprocesses, servers stopped and killed) are
in ``test_crashes.py``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import nats
import pytest
from litestar.testing import AsyncTestClient

from core.case_record import utc_now
from core.registry import load_file
from integrations.streams import Names, names_of
from ops.data_files import DEMO_DISTRICT
from ops.settings import load_settings
from ops.workers import serving_app
from tests.support.agency_client import AgencyClient
from tests.support.ledger import StoreCounts, error_lines, level_4_visit, registration
from tests.support.nats_world import ROOT_DIR, WORKER, stream_exists, wait_for
from tests.support.servers import PrivateNats, PrivatePostgres
from tests.support.servers import _free_port as free_port
from tests.support.stores import open_services, store_settings

HC = "hc-north"
VILLAGE = "990101-001-v01"
OK = (200, 201, 202)  # duplicate, recorded, waiting for its patient

pytestmark = pytest.mark.integration


async def test_the_service_starts_while_nats_is_down_serves_http_and_connects_when_nats_comes(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = PrivateNats(tmp_path_factory.mktemp("nats-later"))  # its port is free: nothing listens yet
    settings = store_settings("sqlite", tmp_path / "data", SMD_NATS_URL=server.url)
    services = open_services(settings, clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    key = services.apikeys.issue(HC).key
    try:
        async with AsyncTestClient(serving_app(services)) as client:  # the lifespan does not wait for NATS
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            assert (r.json()["status"], r.json()["checks"]["nats"]) == ("degraded", "not connected")
            headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
            r = await client.post("/v1/events", content=registration(uuid4())[1], headers=headers)
            assert r.status_code == 201, r.text

            server.start()
            await wait_for(
                lambda: services.nats is not None and services.nats.is_connected, what="NATS connected", timeout=30
            )
            nc = await nats.connect(server.url, connect_timeout=5)
            try:
                names = names_of(settings)
                hc = AgencyClient(nc, names, HC)

                await wait_for(lambda: stream_exists(nc, names.intake_stream), what="the intake stream")
                patient = uuid4()
                await hc.publish(hc.registration(patient, VILLAGE))
                await wait_for(
                    lambda: services.case_record.recorder.select_events(patient), what="the NATS registration stored"
                )
            finally:
                await nc.close()
            r = await client.get("/readyz")
            assert r.json()["checks"]["nats"] == "ok", r.text
    finally:
        services.close()
        server.stop()


# -- the whole service as a process: PostgreSQL stopped and started, NATS killed and restarted ----


@dataclass
class Probe:
    """One answer the test got: what, when (seconds into the test), status, how long it took."""

    what: str  # readyz | post
    at: float  # when the answer came
    status: int  # 0: no answer (connection refused, client timeout)
    seconds: float
    body: str = ""
    retry_after: str | None = None


@dataclass
class Load:
    """Steady traffic while servers go down and up: /readyz probes, POST /v1/events and NATS
    publishes, each with the sender's ledger."""

    base: str
    key: str
    nc: Any  # a NATS client that reconnects forever (publishes fail while NATS is down)
    names: Names
    started: float = field(default_factory=time.monotonic)
    probes: list[Probe] = field(default_factory=list)
    http_stored: list[str] = field(default_factory=list)  # 2xx: recorded (or duplicate)
    http_unsure: dict[str, bytes] = field(default_factory=dict)  # 503 / no answer: send again later
    nats_acked: list[str] = field(default_factory=list)
    nats_failed: int = 0
    paused: bool = False

    def at(self) -> float:
        return round(time.monotonic() - self.started, 2)

    async def readyz(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._get(client, "readyz", "/readyz")
            await asyncio.sleep(0.2)

    async def _get(self, client: httpx.AsyncClient, what: str, path: str) -> Probe:
        began = time.monotonic()
        try:
            r = await client.get(self.base + path, timeout=5)
            probe = Probe(what, self.at(), r.status_code, time.monotonic() - began, r.text)
        except httpx.HTTPError as e:
            probe = Probe(what, self.at(), 0, time.monotonic() - began, type(e).__name__)
        self.probes.append(probe)
        return probe

    async def post_once(self, client: httpx.AsyncClient, key: str, raw: bytes) -> Probe:
        began = time.monotonic()
        headers = {"Authorization": f"Bearer {self.key}", "content-type": "application/json"}
        try:
            r = await client.post(self.base + "/v1/events", content=raw, headers=headers, timeout=15)
            probe = Probe("post", self.at(), r.status_code, time.monotonic() - began, r.text[:300])
            probe.retry_after = r.headers.get("retry-after")
        except httpx.HTTPError as e:
            probe = Probe("post", self.at(), 0, time.monotonic() - began, type(e).__name__)
        self.probes.append(probe)
        if 200 <= probe.status < 300:
            self.http_stored.append(key)
            self.http_unsure.pop(key, None)
        else:
            self.http_unsure[key] = raw
        return probe

    async def posts(self, client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """A level-4 visit, then its patient's registration: the visit waits (202) for it."""
        while not stop.is_set():
            if not self.paused:
                patient = uuid4()
                await self.post_once(client, *level_4_visit(patient))
                await self.post_once(client, *registration(patient))
            await asyncio.sleep(0.1)

    async def publishes(self, stop: asyncio.Event) -> None:
        js = self.nc.jetstream()
        while not stop.is_set():
            if not self.paused:
                key, raw = registration(uuid4())
                try:
                    await js.publish(
                        self.names.intake(HC, "patient.registered.v1"),
                        raw,
                        headers={"Nats-Msg-Id": key},
                        stream=self.names.intake_stream,
                        timeout=1,
                    )
                    self.nats_acked.append(key)
                except (nats.errors.Error, TimeoutError, OSError):
                    self.nats_failed += 1  # not acked: the sender would send it again; not in the ledger
            await asyncio.sleep(0.1)

    def between(self, what: str, start: float, end: float) -> list[Probe]:
        """The answers to requests sent from ``start`` on that came by ``end``."""
        return [p for p in self.probes if p.what == what and start <= p.at - p.seconds and p.at <= end]


async def quiet(_: Exception) -> None:
    """The test's NATS client while the server is killed: failures are expected, not printed."""


async def until(check: Any, what: str, timeout: float) -> float:
    """Wait for ``check()`` (sync or async); returns the seconds it took."""
    began = time.monotonic()
    await wait_for(check, what=what, timeout=timeout)
    return round(time.monotonic() - began, 2)


@pytest.mark.slow
async def test_postgresql_stopped_and_nats_killed_are_answered_honestly_and_nothing_is_lost(
    private_postgres: PrivatePostgres,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    nats_server = PrivateNats(tmp_path_factory.mktemp("nats-outage"))  # started later: serve starts without it
    port = free_port()
    env = {
        "SMD_DATABASE_URL": private_postgres.create_database(),
        "SMD_NATS_URL": nats_server.url,
        "SMD_DATA_DIR": str(tmp_path / "data"),
        "SMD_SUBJECT_ROOT": "outage",
        "SMD_LOG_FORMAT": "json",
        "SMD_PORT": str(port),
        "SMD_INTAKE_ACK_WAIT_SECONDS": "2",
    }
    settings = load_settings(env)
    names = names_of(settings)
    services = open_services(settings, clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    key = services.apikeys.issue(HC).key
    counts: StoreCounts | None = None  # opened after the outages (a restart breaks a connection)
    log = open(tmp_path / "serve.log", "wb")
    serve = subprocess.Popen(
        [*WORKER, "serve"],
        env={**os.environ, **env, "PYTHONPATH": str(ROOT_DIR)},
        cwd=ROOT_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    timeline: dict[str, float] = {}
    nc = None
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        async with httpx.AsyncClient() as client:
            # 1. `smd serve` started while NATS is down: it serves HTTP, degraded, and records
            async def answers() -> bool:
                try:
                    return (await client.get(base + "/readyz", timeout=2)).status_code == 200
                except httpx.HTTPError:
                    assert serve.poll() is None, f"smd serve exited ({serve.returncode}) with NATS down"
                    return False

            timeline["serve answering with NATS down"] = await until(answers, "smd serve to answer", 60)
            ready = (await client.get(base + "/readyz")).json()
            assert (ready["status"], ready["checks"]["nats"]) == ("degraded", "not connected"), ready
            load = Load(base, key, None, names)
            first = await load.post_once(client, *registration(uuid4()))
            assert first.status == 201, first

            nats_server.start()

            async def nats_ok() -> bool:
                return (await client.get(base + "/readyz")).json()["checks"].get("nats") == "ok"

            timeline["NATS connected after it started"] = await until(nats_ok, "smd serve to connect to NATS", 30)
            nc = await nats.connect(
                nats_server.url, connect_timeout=5, max_reconnect_attempts=-1, error_cb=quiet, reconnect_time_wait=0.5
            )
            load.nc = nc
            tasks = [
                asyncio.create_task(load.readyz(client, stop)),
                asyncio.create_task(load.posts(client, stop)),
                asyncio.create_task(load.publishes(stop)),
            ]
            await asyncio.sleep(3)

            # 2. PostgreSQL restarted with no traffic: the pools' connections are all broken
            load.paused = True
            await asyncio.sleep(0.5)
            private_postgres.stop("fast")
            private_postgres.start()
            restarted = load.at()
            load.paused = False
            await asyncio.sleep(3)

            # 3. PostgreSQL stopped (as a crash: -m immediate) for 6 s, then started
            pg_down = load.at()
            private_postgres.stop("immediate")
            await asyncio.sleep(6)
            private_postgres.start()
            pg_up = load.at()

            async def store_ok() -> bool:
                return any(p.status == 200 and p.at > pg_up for p in load.probes if p.what == "readyz")

            timeline["ready after PostgreSQL started"] = await until(store_ok, "ready after the store is back", 30)
            ready_again = min(p.at for p in load.probes if p.what == "readyz" and p.status == 200 and p.at > pg_up)
            await asyncio.sleep(3)

            # 4. NATS killed (-9) for 4 s, then restarted on the same port and store
            nats_down = load.at()
            assert nats_server.proc is not None
            nats_server.proc.kill()
            nats_server.proc.wait()
            await asyncio.sleep(4)
            nats_server.start()
            nats_up = load.at()
            timeline["NATS reconnected after restart"] = await until(nats_ok, "NATS again", 30)
            await asyncio.sleep(3)
            stop.set()
            await asyncio.gather(*tasks)
            end = load.at()

            # what was unsure (503 or no answer) is sent again, as a client told Retry-After would
            for k, raw in list(load.http_unsure.items()):
                again = await load.post_once(client, k, raw)
                assert again.status in OK, again

            sent = load.http_stored + load.nats_acked
            counts = StoreCounts(settings.postgres.conninfo())  # type: ignore[union-attr]

            async def all_stored() -> bool:
                assert counts is not None
                return len(await asyncio.to_thread(counts.receipts, sent)) == len(sent)

            timeline["all stored after the load ended"] = await until(all_stored, "every envelope stored", 60)
            receipts = counts.receipts(sent)
            rejected = (await nc.jetstream().stream_info(names.rejected_stream)).state.messages
            still_waiting = (await asyncio.to_thread(services.waiting.stats)).waiting

        # -- what the test saw
        readyz = [p for p in load.probes if p.what == "readyz"]
        posts = [p for p in load.probes if p.what == "post"]
        report = {
            "readyz": len(readyz),
            "readyz_max_seconds": round(max(p.seconds for p in readyz), 3),
            "readyz_503": sum(p.status == 503 for p in readyz),
            "posts": len(posts),
            "posts_by_status": dict(Counter(p.status for p in posts)),
            "post_max_seconds": round(max(p.seconds for p in posts), 2),
            "nats_acked": len(load.nats_acked),
            "nats_publish_failed_while_down": load.nats_failed,
            "stored": len(receipts),
            "lost": sum(1 for k in sent if receipts.get(k, 0) == 0),
            "duplicated": sum(1 for n in receipts.values() if n > 1),
            "rejected": rejected,
            "still_waiting": still_waiting,
            "error_log_lines": dict(error_lines(tmp_path / "serve.log")),
            "timeline": timeline,
            "seconds": end,
        }
        print("\noutage test:", json.dumps(report))
        assert all(p.status != 500 for p in load.probes), [p for p in load.probes if p.status >= 500 != 503]
        # every probe was answered (a load balancer's probe times out after a few seconds): not a
        # speed figure — while PostgreSQL restarts an answer may take two or three seconds
        assert all(p.seconds < 5.0 for p in readyz), [p for p in readyz if p.seconds >= 5.0]
        assert all(p.status in (200, 503) for p in readyz), [p for p in readyz if p.status not in (200, 503)]
        # the quiet restart cost no request: every request after it succeeds (the pools found their
        # broken connections and replaced them); /readyz is ok again within a second or two
        after_restart = load.between("post", restarted, pg_down)
        assert after_restart, "traffic after the quiet restart"
        assert all(p.status in OK for p in after_restart), [p for p in after_restart if p.status not in OK]
        ok_again = [p.at for p in load.between("readyz", restarted, pg_down) if p.status == 200]
        assert ok_again and min(ok_again) - restarted < 2.5, load.between("readyz", restarted, pg_down)
        # the store down: /readyz 503 naming the store, requests 503 with Retry-After, nothing else
        down = load.between("readyz", pg_down + 0.5, pg_up)
        assert down and all(p.status == 503 and '"unreachable: ' in p.body for p in down), down
        failed = [p for p in load.between("post", pg_down, ready_again) if p.status not in OK]
        assert failed and all(p.status == 503 and p.retry_after for p in failed), failed
        assert all('"store-unavailable"' in p.body or "store-unavailable" in p.body for p in failed), failed
        # back: from the first ready answer on, requests succeed again; NATS down is degraded only
        settled = load.between("post", ready_again + 1, end) + load.between("readyz", ready_again + 1, end)
        assert all(p.status in OK for p in settled), [p for p in settled if p.status not in OK]
        nats_gone = load.between("readyz", nats_down + 1, nats_up)
        assert nats_gone and all(
            p.status == 200 and json.loads(p.body)["checks"]["nats"] == "not connected" for p in nats_gone
        ), nats_gone
        assert load.nats_failed > 0, "publishes failed while NATS was down (so they are not in the ledger)"
        assert (report["lost"], report["duplicated"], report["rejected"], still_waiting) == (0, 0, 0, 0), report
        assert report["posts_by_status"].get(202), "visits posted before their registration waited for it"
        assert not [e for e in report["error_log_lines"] if "restarting" in e], "an outage is no bug: no restarts"
        assert serve.poll() is None, "smd serve ran through all of it"
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        if nc is not None:
            await nc.close()
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=15)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        log.close()
        if counts is not None:
            counts.close()
        services.close()
        nats_server.stop()
