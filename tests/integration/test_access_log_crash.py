"""The access log row of an answered read survives a kill -9 of `smd serve` right after the answer."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest

from core.case_record import utc_now
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope_json
from tests.support.nats_world import ROOT_DIR, WORKER
from tests.support.servers import _free_port as free_port
from tests.support.stores import open_services

READS = 15


def database_url(pg) -> str:
    user = f"{pg.user}@" if pg.user else ""
    return f"postgresql://{user}{pg.host}:{pg.port}/{pg.dbname}"


@pytest.mark.slow
def test_a_kill_9_right_after_an_answer_loses_no_access_log_row(settings, tmp_path) -> None:
    services = open_services(settings, clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    key = services.apikeys.issue("hc-north").key
    services.close()
    port = free_port()
    env = {**os.environ, "SMD_DATA_DIR": str(settings.data_dir), "SMD_PORT": str(port), "SMD_LOG_FORMAT": "json"}
    if settings.postgres is not None:
        env["SMD_DATABASE_URL"] = database_url(settings.postgres)
    with open(tmp_path / "serve.log", "wb") as log:
        serve = subprocess.Popen(
            [*WORKER, "serve"], env={**env, "PYTHONPATH": str(ROOT_DIR)}, cwd=ROOT_DIR, stdout=log, stderr=log
        )
        try:
            base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}", "X-Purpose": "care"}
            with httpx.Client(timeout=10) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get(base + "/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
                    assert time.monotonic() < deadline, "smd serve did not answer"
                    time.sleep(0.2)
                patient = uuid4()
                registration = envelope_json(
                    "hc-north",
                    "cn.smd.patient.registered.v1",
                    patient,
                    {"name": "Test Person", "residence": "990101-001-v01"},
                    occurred=datetime.now(UTC) - timedelta(hours=1),
                    actor=None,
                )
                assert client.post(base + "/v1/events", json=registration, headers=headers).status_code == 201
                for _ in range(READS):
                    assert client.get(f"{base}/v1/patients/{patient}", headers=headers).status_code == 200
                serve.send_signal(signal.SIGKILL)  # right after the last answer
        finally:
            serve.kill()
            serve.wait()
    reopened = open_services(settings, clock=utc_now)
    try:
        rows = reopened.access_log.entries(patient=patient, limit=100)
        assert [r.status for r in rows] == [200] * READS
    finally:
        reopened.close()
