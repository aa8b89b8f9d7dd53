"""`POST /v1/events/batch` on SQLite and PostgreSQL: many envelopes, one result each, live facts.

Each envelope passes every check of `POST /v1/events`; a bad one is refused alone with its
problem while the others are recorded; the facts are live (a level-4 visit gives the police
their R1 at once, unlike a backfill import); NDJSON and a JSON array are both taken.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.registry import load_file
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from ops.settings import Settings
from tests.support.agency_client import envelope_json

HC, POLICE = "hc-north", "police-east"
VILLAGE = "990101-001-v01"  # hc-north's and police-east's


def envelope(event_type: str, subject: UUID, data: dict[str, Any], source: str = HC) -> dict[str, Any]:
    occurred = utc_now() - timedelta(hours=1)
    return envelope_json(source, f"cn.smd.{event_type}.v1", subject, data, occurred=occurred, actor=None)


def registration(patient: UUID, residence: str = VILLAGE) -> dict[str, Any]:
    return envelope("patient.registered", patient, {"name": "Test Person", "residence": residence})


def visit(patient: UUID, level: int = 4, risk_class: str = "unstable") -> dict[str, Any]:
    return envelope("visit.recorded", patient, {"face_to_face": True, "risk_level": level, "risk_class": risk_class})


def ndjson(*lines: dict[str, Any] | bytes) -> bytes:
    return b"\n".join(x if isinstance(x, bytes) else json.dumps(x).encode() for x in lines) + b"\n"


@pytest.fixture
def demo(open_store: Any) -> tuple[Services, dict[str, str]]:
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    return services, {a: services.apikeys.issue(a).key for a in (HC, POLICE)}


def auth(key: str, content_type: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": content_type}


class TestABatchOfEnvelopes:
    async def test_a_batch_with_one_bad_message_records_the_others_and_refuses_the_bad_one_with_its_reason(
        self, demo: tuple[Services, dict[str, str]]
    ) -> None:
        services, keys = demo
        first, second = uuid4(), uuid4()
        bad = registration(uuid4(), residence="990101-009-v99")  # an org unit the registry does not know
        body = ndjson(
            registration(first), visit(first), bad, registration(second), visit(second, 1, "basically_stable")
        )
        async with AsyncTestClient(create_app(services)) as client:
            response = await client.post(
                "/v1/events/batch", content=body, headers=auth(keys[HC], "application/x-ndjson")
            )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        results = [json.loads(line) for line in response.text.splitlines()]
        assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
        assert [r["outcome"] for r in results] == ["recorded", "recorded", "refused", "recorded", "recorded"]
        problem = results[2]["problem"]
        assert problem["type"].endswith("/unknown-org-unit") and problem["status"] == 422
        assert "990101-009-v99" in problem["detail"]
        assert results[2]["key"] == f"{HC}:{bad['id']}"
        assert [r["position"] for r in results if "position" in r] == sorted(
            r["position"] for r in results if "position" in r
        )
        assert services.case_record.patient(first).risk_level == 4
        assert services.case_record.patient(second).risk_level == 1

    async def test_a_json_array_is_answered_with_a_json_array_and_sent_again_it_is_all_duplicates(
        self, demo: tuple[Services, dict[str, str]]
    ) -> None:
        services, keys = demo
        patient = uuid4()
        batch = [registration(patient), visit(patient)]
        async with AsyncTestClient(create_app(services)) as client:
            first = await client.post("/v1/events/batch", json=batch, headers=auth(keys[HC], "application/json"))
            again = await client.post("/v1/events/batch", json=batch, headers=auth(keys[HC], "application/json"))
        assert [r["outcome"] for r in first.json()] == ["recorded", "recorded"]
        assert [r["outcome"] for r in again.json()] == ["duplicate", "duplicate"]
        assert len(services.case_record.recorder.select_events(patient)) == 2

    async def test_each_envelope_gets_the_checks_of_post_v1_events(self, demo: tuple[Services, dict[str, str]]) -> None:
        services, keys = demo
        patient = uuid4()
        not_utf8 = b'{"specversion": "1.0", "id": "\xff"}'
        another_source = registration(uuid4()) | {"source": POLICE}
        unknown_field = visit(patient) | {
            "data": {"face_to_face": True, "risk_level": 1, "risk_class": "basically_stable", "mood": "x"}
        }
        waits = visit(uuid4())  # its patient is not registered (yet)
        body = ndjson(registration(patient), not_utf8, another_source, unknown_field, waits)
        async with AsyncTestClient(create_app(services)) as client:
            response = await client.post(
                "/v1/events/batch", content=body, headers=auth(keys[HC], "application/x-ndjson")
            )
        results = [json.loads(line) for line in response.text.splitlines()]
        codes = [r["problem"]["type"].rsplit("/", 1)[1] if "problem" in r else r["outcome"] for r in results]
        assert codes[:3] == ["recorded", "invalid-utf8", codes[2]] and codes[2] != "recorded"
        assert codes[3] == "invalid-envelope" and "mood" in results[3]["problem"]["detail"]
        assert codes[4] == "waiting" and results[4]["key"] == f"{HC}:{waits['id']}"

    async def test_the_facts_are_live_a_level_4_visit_gives_the_police_their_r1(
        self, demo: tuple[Services, dict[str, str]]
    ) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            response = await client.post(
                "/v1/events/batch?wait=true",
                json=[registration(patient), visit(patient, 4)],
                headers=auth(keys[HC], "application/json"),
            )
            assert [r["outcome"] for r in response.json()] == ["recorded", "recorded"]
            queue = await client.get("/v1/work-queue", headers={"Authorization": f"Bearer {keys[POLICE]}"})
        assert [(i["rule"], i["patient_id"]) for i in queue.json()["items"] if i["rule"] == "R1"] == [
            ("R1", str(patient))
        ]

    async def test_a_batch_over_the_limit_is_refused_whole_and_a_body_that_is_no_array_says_so(
        self, open_store: Any, settings: Settings
    ) -> None:
        services = open_store(clock=utc_now)
        services.settings = msgspec.structs.replace(settings, batch_limit=2)
        load_file(services.case_record, DEMO_DISTRICT)
        key = services.apikeys.issue(HC).key
        async with AsyncTestClient(create_app(services)) as client:
            too_many = await client.post(
                "/v1/events/batch",
                json=[registration(uuid4()) for _ in range(3)],
                headers=auth(key, "application/json"),
            )
            not_an_array = await client.post(
                "/v1/events/batch", json=registration(uuid4()), headers=auth(key, "application/json")
            )
            text = await client.post("/v1/events/batch", content=b"x", headers=auth(key, "text/plain"))
        assert too_many.status_code == 413 and too_many.json()["type"].endswith("/batch-too-large")
        assert not_an_array.status_code == 400 and not_an_array.json()["type"].endswith("/invalid-batch")
        assert text.status_code == 415

    async def test_the_openapi_document_describes_both_body_formats(
        self, demo: tuple[Services, dict[str, str]]
    ) -> None:
        services, _ = demo
        async with AsyncTestClient(create_app(services)) as client:
            doc = (await client.get("/schema/openapi.json")).json()
        operation = doc["paths"]["/v1/events/batch"]["post"]
        assert operation["operationId"] == "recordEventBatch"
        assert set(operation["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}


class TestRequestsInFlightAreRecordedTogether:
    async def test_concurrent_posts_are_each_answered_with_their_own_outcome_after_their_commit(
        self, demo: tuple[Services, dict[str, str]]
    ) -> None:
        services, keys = demo
        patients = [uuid4() for _ in range(12)]
        same = visit(patients[0])
        bodies = [registration(p) for p in patients] + [registration(uuid4(), residence="990101-009-v99"), same, same]
        async with AsyncTestClient(create_app(services)) as client:
            answers = await asyncio.gather(
                *(client.post("/v1/events", json=b, headers=auth(keys[HC], "application/json")) for b in bodies)
            )
        statuses = [a.status_code for a in answers]
        assert statuses[:12] == [201] * 12
        assert statuses[12] == 422 and answers[12].json()["type"].endswith("/unknown-org-unit")
        # the same visit twice at once: recorded once, or waiting once (before its registration)
        assert sorted(a.json()["outcome"] for a in answers[13:]) in (["duplicate", "recorded"], ["waiting", "waiting"])
        for p in patients:
            assert services.case_record.patient(p).personal.name == "Test Person"
        assert len({a.json()["position"] for a in answers[:12]}) == 12
