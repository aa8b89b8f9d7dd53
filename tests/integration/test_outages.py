"""Honest outages (issue 17), in process: the service starts and serves HTTP while NATS is down,
reports it as degraded, and connects when NATS comes. The process-level outage and crash tests
(``smd serve``, ``smd ingest``, ``smd outbox`` as subprocesses, servers stopped and killed) are
in ``test_crashes.py``."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import nats
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.registry import DEMO_DISTRICT, load_file
from integrations.streams import names_of
from tests.support.agency_client import AgencyClient
from tests.support.nats_world import stream_exists, wait_for
from tests.support.servers import PrivateNats
from tests.support.stores import open_services, store_settings

HC = "hc-north"
VILLAGE = "990101-001-v01"

pytestmark = pytest.mark.integration


def registration(patient: object) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": HC,
        "type": "cn.smd.patient.registered.v1",
        "subject": str(patient),
        "time": "2026-01-05T09:00:00+08:00",
        "data": {"name": "Test Person", "residence": VILLAGE},
    }


async def test_the_service_starts_while_nats_is_down_serves_http_and_connects_when_nats_comes(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = PrivateNats(tmp_path_factory.mktemp("nats-later"))  # its port is free: nothing listens yet
    settings = store_settings("sqlite", tmp_path / "data", SMD_NATS_URL=server.url)
    services = open_services(settings, clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    key = services.apikeys.issue(HC).key
    try:
        async with AsyncTestClient(create_app(services)) as client:  # the lifespan does not wait for NATS
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            assert (r.json()["status"], r.json()["checks"]["nats"]) == ("degraded", "not connected")
            r = await client.post("/v1/events", json=registration(uuid4()), headers={"Authorization": f"Bearer {key}"})
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
