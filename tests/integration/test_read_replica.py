"""Pages served from a PostgreSQL streaming replica (SMD_DATABASE_READ_URL), everything else from
the primary (DESIGN.md section 8: read replicas serve queries)."""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.contract import decode_event
from core.registry import load_file
from ops.bootstrap import bootstrap
from ops.data_files import DEMO_DISTRICT
from ops.settings import SettingsError, load_settings
from tests.support.agency_client import envelope as agency_envelope

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VILLAGE = "990101-001-v01"


def high_risk_patient(services) -> UUID:
    """A registration and a level-4 visit (R1 gives the police an order), rules and views run."""
    patient, at = uuid4(), datetime.now().astimezone() - timedelta(hours=2)
    for event_type, data, when in (
        ("cn.smd.patient.registered.v1", {"name": "Test Person", "residence": VILLAGE}, at),
        (
            "cn.smd.visit.recorded.v1",
            {"face_to_face": True, "joint": False, "risk_level": 4, "risk_class": "unstable"},
            at + timedelta(minutes=5),
        ),
    ):
        doc = agency_envelope("hc-north", event_type, patient, data, occurred=when, actor=None)
        recorded = services.case_record.record(decode_event(doc), "hc-north")
    assert services.catch_up(recorded.notification_id, timeout=30)
    return patient


def test_a_replica_needs_a_primary(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SMD_DATABASE_READ_URL: is a replica of SMD_DATABASE_URL"):
        load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_DATABASE_READ_URL": "postgresql://h:5432/db"})


async def test_work_queue_pages_come_from_the_replica_and_files_from_the_primary(private_postgres, tmp_path) -> None:
    url = private_postgres.create_database("smd")
    replica = private_postgres.replica()
    try:
        services = bootstrap(
            load_settings(
                {
                    "SMD_DATA_DIR": str(tmp_path / "data"),
                    "SMD_DATABASE_URL": url,
                    "SMD_DATABASE_READ_URL": replica.url("smd"),
                }
            )
        )
        try:
            load_file(services.case_record, DEMO_DISTRICT)
            keys = {a: services.apikeys.issue(a).key for a in ("police-east", "hc-north")}
            first = high_risk_patient(services)
            police = {"Authorization": f"Bearer {keys['police-east']}"}

            async with AsyncTestClient(create_app(services)) as client:

                async def orders() -> list[str]:
                    r = await client.get("/v1/work-queue?status=all", headers=police)
                    assert r.status_code == 200, r.text
                    return sorted(i["patient_id"] for i in r.json()["items"] if i["rule"] == "R1")

                deadline = time.monotonic() + 30
                while await orders() != [str(first)]:  # the replica has replayed it
                    assert time.monotonic() < deadline, "the replica never showed the first order"
                    time.sleep(0.1)

                with psycopg.connect(replica.url("smd"), autocommit=True) as r:
                    r.execute("SELECT pg_wal_replay_pause()")
                second = high_risk_patient(services)  # on the primary: rules and views caught up
                assert await orders() == [str(first)]  # the page is the replica's, paused before it
                # the file is read from the primary: the second patient is there at once
                r = await client.get(f"/v1/patients/{second}", headers={**police, "X-Purpose": "assigned-duty"})
                assert r.status_code == 200, r.text
                with psycopg.connect(replica.url("smd"), autocommit=True) as r:
                    r.execute("SELECT pg_wal_replay_resume()")
                deadline = time.monotonic() + 30
                while await orders() != sorted([str(first), str(second)]):
                    assert time.monotonic() < deadline, "the replica never caught up after resuming"
                    time.sleep(0.1)
        finally:
            services.close()
    finally:
        replica.stop("fast")
        shutil.rmtree(replica.base, ignore_errors=True)
