"""The walking skeleton over HTTP: a high-risk assessment reaches the police's work queue and
the governance center's oversight, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from ops.workers import serving_app
from tests.support.agency_client import envelope_json

VILLAGE = "990101-001-v01"  # in cluster c1: hc-north, police-east, gov-willowbrook


def envelope(event_type: str, subject, data: dict, source: str = "hc-north", **extra) -> dict:
    occurred = datetime.now(UTC) - timedelta(hours=1)
    return envelope_json(source, event_type, subject, data, occurred=occurred, actor=None) | extra


def registration(patient) -> dict:
    return envelope("cn.smd.patient.registered.v1", patient, {"name": "Test Person", "residence": VILLAGE})


def high_risk_visit(patient) -> dict:
    return envelope(
        "cn.smd.visit.recorded.v1",
        patient,
        {"face_to_face": True, "joint": False, "risk_level": 4, "risk_class": "unstable"},
    )


@pytest.fixture
def demo(open_store):
    services = open_store(clock=utc_now)  # the real clock: envelopes carry real times
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in ("hc-north", "police-east", "gov-willowbrook")}
    return services, keys


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


async def poll(fetch, until, timeout: float = 10.0):
    """Bounded poll for an effect (speed is for the benchmarks, not the tests)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fetch()
        if until(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.1)


class TestHighRiskAssessmentOverHttp:
    async def test_the_police_get_one_take_under_management_obligation_and_the_governance_center_a_notice(
        self, demo
    ) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(serving_app(services)) as client:
            r = await client.post("/v1/events", json=registration(patient), headers=auth(keys["hc-north"]))
            assert r.status_code == 201, r.text
            visit = high_risk_visit(patient)
            r = await client.post("/v1/events", json=visit, headers=auth(keys["hc-north"]))
            assert r.status_code == 201 and r.json()["outcome"] == "recorded"

            async def police_queue():
                return (await client.get("/v1/work-queue", headers=auth(keys["police-east"]))).json()["items"]

            items = await poll(police_queue, lambda items: len(items) >= 1)
            items = [i for i in items if i["rule"] == "R1"]  # R2 (issue 10) also tells the police of joint visits
            assert [(i["rule"], i["action"], i["kind"], str(i["patient_id"])) for i in items] == [
                ("R1", "take_under_management", "obligation", str(patient))
            ]
            assert items[0]["due_at"] is not None

            gov = (await client.get("/v1/work-queue", headers=auth(keys["gov-willowbrook"]))).json()["items"]
            gov = [i for i in gov if i["rule"] == "R1"]  # level 4 at home is also an emergency (R20)
            assert [(i["rule"], i["kind"], i["action"]) for i in gov] == [("R1", "notice", "high_risk_patient_notice")]
            oversight = (await client.get("/v1/oversight/obligations", headers=auth(keys["gov-willowbrook"]))).json()
            assert [i["obligation_id"] for i in oversight["items"] if i["rule"] == "R1"] == [items[0]["obligation_id"]]

            # the same envelope again changes nothing
            again = await client.post("/v1/events", json=visit, headers=auth(keys["hc-north"]))
            assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
            await asyncio.sleep(0.5)
            assert len([i for i in await police_queue() if i["rule"] == "R1"]) == 1

    async def test_read_your_writes_with_wait_returns_after_the_work_queue_has_the_obligation(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await client.post("/v1/events", json=registration(patient), headers=auth(keys["hc-north"]))
            r = await client.post("/v1/events?wait=true", json=high_risk_visit(patient), headers=auth(keys["hc-north"]))
            assert r.json()["processed"] is True
            items = (await client.get("/v1/work-queue", headers=auth(keys["police-east"]))).json()["items"]
            assert len([i for i in items if i["rule"] == "R1"]) == 1


class TestRefusals:
    async def test_a_police_key_posting_a_health_center_event_gets_a_403_problem(self, demo) -> None:
        services, keys = demo
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post(
                "/v1/events", json=registration(uuid4()) | {"source": "police-east"}, headers=auth(keys["police-east"])
            )
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "police_station, which may not record cn.smd.patient.registered.v1" in r.json()["detail"]

    async def test_no_key_gets_a_401_problem(self, demo) -> None:
        services, _ = demo
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post("/v1/events", json=registration(uuid4()))
        assert r.status_code == 401 and r.json()["type"].endswith("/unauthenticated")

    async def test_a_source_other_than_the_keys_agency_is_refused_with_what_to_set(self, demo) -> None:
        services, keys = demo
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post(
                "/v1/events", json=registration(uuid4()) | {"source": "hc-south"}, headers=auth(keys["hc-north"])
            )
        assert r.status_code == 403 and "set source to 'hc-north'" in r.json()["detail"]

    async def test_an_invalid_field_is_a_400_problem_naming_the_path(self, demo) -> None:
        services, keys = demo
        bad = high_risk_visit(uuid4())
        bad["data"]["risk_level"] = 9
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post(
                "/v1/events",
                content=json.dumps(bad),
                headers=auth(keys["hc-north"]) | {"content-type": "application/json"},
            )
        assert r.status_code == 400, r.text
        assert "$.data.risk_level" in r.json()["detail"]

    async def test_a_rule_violation_is_a_422_problem_saying_what_to_fix(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        bad = high_risk_visit(patient)
        bad["data"]["risk_class"] = "stable"
        async with AsyncTestClient(create_app(services)) as client:
            await client.post("/v1/events", json=registration(patient), headers=auth(keys["hc-north"]))
            r = await client.post("/v1/events", json=bad, headers=auth(keys["hc-north"]))
        assert r.status_code == 422 and "at level 4 the class is unstable" in r.json()["detail"]
