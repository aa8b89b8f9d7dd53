"""One active process per follower, the others standing by, taking over through a PostgreSQL
advisory lock when the active one is gone (DESIGN.md section 8)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
import pytest

from core.case_record import utc_now
from core.followers.leases import AdvisoryLeases, AlwaysHeld
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_access_log_crash import database_url
from tests.support.agency_client import REGISTERED, VISITED, envelope_json
from tests.support.nats_world import ROOT_DIR, WORKER
from tests.support.servers import _free_port as free_port
from tests.support.stores import open_services, store_settings

VILLAGE = "990101-001-v01"


def leases_on(settings: Any, **kw: Any) -> AdvisoryLeases:
    conninfo = settings.postgres.conninfo()
    return AdvisoryLeases(lambda: psycopg.connect(conninfo, autocommit=True), **kw)


@pytest.fixture
def pg_settings(fresh_pg_database, tmp_path: Path) -> Any:
    return store_settings("postgres", tmp_path / "data", fresh_pg_database().url)


class TestLeases:
    def test_on_sqlite_this_process_runs_every_follower(self, tmp_path: Path) -> None:
        services = open_services(store_settings("sqlite", tmp_path / "data", None))
        try:
            assert isinstance(services.leases, AlwaysHeld)
            assert services.leases.held("policies") and services.leases.holding() == {}
        finally:
            services.close()

    @pytest.mark.integration
    def test_on_postgresql_each_follower_has_a_lease(self, pg_settings) -> None:
        services = open_services(pg_settings)
        try:
            assert isinstance(services.leases, AdvisoryLeases)
        finally:
            services.close()

    @pytest.mark.integration
    def test_a_lease_is_held_by_one_process_and_taken_over_when_it_closes(self, pg_settings) -> None:
        first, second = leases_on(pg_settings, retry_seconds=0), leases_on(pg_settings, retry_seconds=0)
        try:
            assert first.held("policies") and first.held("chain")
            assert not second.held("policies")
            assert second.holding() == {"policies": False}
            assert second.held("outbox")  # another follower's lease is free
            first.close()  # the active process stops: its locks go with its connection
            assert second.held("policies") and second.held("chain")
            assert not first.held("policies")  # a closed one never holds again
        finally:
            first.close()
            second.close()

    @pytest.mark.integration
    def test_a_process_cut_off_from_the_database_gives_its_leases_up_and_another_takes_them(self, pg_settings) -> None:
        active = leases_on(pg_settings, retry_seconds=0, check_seconds=0)
        standby = leases_on(pg_settings, retry_seconds=0)
        try:
            assert active.held("policies")
            pid = active._conn.info.backend_pid
            with psycopg.connect(pg_settings.postgres.conninfo(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert not active.held("policies")  # the check finds the connection gone: given up
            assert standby.held("policies")
            assert not active.held("policies")  # reconnected, but another process has it now
            assert active.holding() == {"policies": False}
        finally:
            active.close()
            standby.close()


def _wait(check, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _registration_and_visit(source: str, patient) -> list[dict]:
    at = datetime.now(UTC) - timedelta(hours=1)
    visit = {"face_to_face": True, "joint": False, "risk_level": 4, "risk_class": "unstable"}
    return [
        envelope_json(source, REGISTERED, patient, {"name": "Test Person", "residence": VILLAGE}, occurred=at),
        envelope_json(source, VISITED, patient, visit, occurred=at + timedelta(minutes=5)),
    ]


@pytest.mark.slow
@pytest.mark.integration
def test_a_standby_service_takes_the_followers_over_when_the_active_one_is_killed(pg_settings, tmp_path: Path) -> None:
    settings = pg_settings
    services = open_services(settings, clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in ("hc-north", "police-east")}
    services.close()
    env = {
        **os.environ,
        "SMD_DATA_DIR": str(settings.data_dir),
        "SMD_DATABASE_URL": database_url(settings.postgres),
        "SMD_LOG_FORMAT": "json",
        "SMD_NATS_URL": "",
        "PYTHONPATH": str(ROOT_DIR),
    }
    env.pop("SMD_FAULT", None)
    started: list[subprocess.Popen] = []

    def serve(name: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        log = open(tmp_path / f"{name}.log", "wb")
        proc = subprocess.Popen(
            [*WORKER, "serve"], env={**env, "SMD_PORT": str(port)}, cwd=ROOT_DIR, stdout=log, stderr=log
        )
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: proc.poll() is None and httpx.get(base + "/healthz").status_code == 200, f"{name} to serve")
        return proc, base

    def status(base: str) -> dict:
        r = httpx.get(base + "/v1/status", headers={"Authorization": f"Bearer {keys['hc-north']}"}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def r1_orders(base: str) -> list[dict]:
        r = httpx.get(
            base + "/v1/work-queue?status=all",
            headers={"Authorization": f"Bearer {keys['police-east']}"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return [i for i in r.json()["items"] if i["rule"] == "R1"]

    try:
        active, a = serve("active")
        _wait(lambda: status(a)["leases"].get("policies") == "active", "the first process to take the leases")
        _standby, b = serve("standby")
        _wait(lambda: status(b)["leases"].get("policies") == "standby", "the second process to stand by")
        seen = status(b)["leases"]
        assert set(seen.values()) == {"standby"}, seen  # every follower runs in the first process
        assert {"policies", "chain", "Scheduler"} <= set(seen)
        first = uuid4()
        for doc in _registration_and_visit("hc-north", first):
            r = httpx.post(b + "/v1/events", json=doc, headers={"Authorization": f"Bearer {keys['hc-north']}"})
            assert r.status_code == 201, r.text
        _wait(lambda: len(r1_orders(b)) == 1, "the police's R1 order for the first patient")

        active.send_signal(signal.SIGKILL)
        active.wait()
        _wait(lambda: set(status(b)["leases"].values()) == {"active"}, "the standby to take every follower over")
        second = uuid4()
        for doc in _registration_and_visit("hc-north", second):
            r = httpx.post(b + "/v1/events", json=doc, headers={"Authorization": f"Bearer {keys['hc-north']}"})
            assert r.status_code == 201, r.text
        orders = _wait(lambda: (o := r1_orders(b)) and len(o) >= 2 and o, "the second patient's R1 order")
        assert sorted(o["patient_id"] for o in orders) == sorted([str(first), str(second)])  # once each
        _wait(lambda: all(f["lag_events"] == 0 for f in status(b)["followers"]), "every follower to catch up")
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
