"""Bytes that used to answer 500 over HTTP (or crash `smd import`), on SQLite and PostgreSQL.

Each bad-input class is a 4xx problem with its code (400 for the bytes, 415 for a body that is
not declared JSON), nothing is stored, and a valid envelope sent right after is stored.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.backfill import import_lines
from core.case_record import utc_now
from core.registry import load_file
from domain.errors import PatientNotFound
from ops.data_files import DEMO_DISTRICT

HC = "hc-north"
VILLAGE = "990101-001-v01"  # in hc-north's area
THOUSAND_DEEP = b"[" * 1000 + b"]" * 1000
STORED_WITHIN = 5.0


def envelope(event_type: str, subject: UUID, data: dict, **extra: object) -> dict:
    return {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": HC,
        "type": event_type,
        "subject": str(subject),
        "time": (datetime.now().astimezone() - timedelta(hours=1)).isoformat(),
        "data": data,
        **extra,
    }


def registration(patient: UUID, **data: object) -> bytes:
    body = {"name": "Test Person", "residence": VILLAGE, **data}
    return json.dumps(envelope("cn.smd.patient.registered.v1", patient, body)).encode()


def bad_bodies() -> dict[str, tuple[bytes, UUID | None]]:
    """Code → (bytes, the patient it would have registered)."""
    p = {code: uuid4() for code in ("deep", "utf8", "big", "dup")}
    return {
        "too-deeply-nested": (registration(p["deep"]).replace(b'"Test Person"', THOUSAND_DEEP), p["deep"]),
        "too-deeply-nested/bare": (b'{"a":' * 1000 + b"1" + b"}" * 1000, None),
        "invalid-utf8": (registration(p["utf8"]).replace(b"Test Person", b"Test \xff Person"), p["utf8"]),
        "message-too-large": (registration(p["big"], address="x" * 70_000), p["big"]),
        "duplicate-key": (
            registration(p["dup"]).replace(b'"name": "Test Person"', b'"name": "Test Person", "name": "Other"'),
            p["dup"],
        ),
    }


def registered(services, patient: UUID) -> bool:
    try:
        services.case_record.patient(patient)
    except PatientNotFound:
        return False
    return True


@pytest.fixture
def demo(open_store):
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in (HC, "police-east")}
    return services, keys


def headers(key: str, content_type: str | None = "application/json") -> dict[str, str]:
    h = {"Authorization": f"Bearer {key}"}
    if content_type is not None:
        h["Content-Type"] = content_type
    return h


class TestPostEvents:
    async def test_each_bad_input_class_is_a_400_problem_with_its_code_and_nothing_is_stored(self, demo) -> None:
        services, keys = demo
        head = services.case_record.recorder.max_notification_id()
        async with AsyncTestClient(create_app(services)) as client:
            for label, (body, patient) in bad_bodies().items():
                r = await client.post("/v1/events", content=body, headers=headers(keys[HC]))
                code = label.split("/")[0]
                assert r.status_code == 400, (label, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
                problem = r.json()
                assert problem["type"].endswith("/" + code) and problem["status"] == 400, (label, problem)
                assert "Test Person" not in r.text and "xxxx" not in r.text  # the body is not echoed
                if patient is not None:
                    assert not registered(services, patient)
            assert services.case_record.recorder.max_notification_id() == head  # nothing stored

            patient = uuid4()
            sent = time.monotonic()
            r = await client.post("/v1/events", content=registration(patient), headers=headers(keys[HC]))
            assert r.status_code == 201, r.text
            assert registered(services, patient) and time.monotonic() - sent < STORED_WITHIN

            metrics = (await client.get("/metrics")).text
        for code in ("too-deeply-nested", "invalid-utf8", "message-too-large", "duplicate-key"):
            assert f'smd_messages_rejected_total{{door="http",reason="{code}"}}' in metrics

    async def test_the_details_say_what_to_fix(self, demo) -> None:
        services, keys = demo
        bad = bad_bodies()
        async with AsyncTestClient(create_app(services)) as client:

            async def detail(label: str) -> str:
                r = await client.post("/v1/events", content=bad[label][0], headers=headers(keys[HC]))
                return r.json()["detail"]

            assert "more than 32 deep (SMD_MAX_JSON_DEPTH)" in await detail("too-deeply-nested")
            assert "not valid UTF-8 (byte " in await detail("invalid-utf8")
            assert "at most 65536 bytes per message (SMD_MAX_MESSAGE_BYTES)" in await detail("message-too-large")
            assert "member 'name' more than once" in await detail("duplicate-key")

    async def test_an_oversize_body_sent_in_chunks_is_refused_without_being_read_whole(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        body = registration(patient, address="x" * 200_000)

        sent = []

        async def chunks():  # no Content-Length: Litestar counts the bytes as they come
            for i in range(0, len(body), 4096):
                sent.append(i)
                yield body[i : i + 4096]

        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            r = await client.post("/v1/events", content=chunks(), headers=headers(keys[HC]))
        assert r.status_code == 400 and r.json()["type"].endswith("/message-too-large"), r.text
        assert not registered(services, patient)
        assert len(sent) * 4096 < 65536 + 2 * 4096  # it stopped reading just past the limit

    @pytest.mark.parametrize(
        "content_type",
        [
            None,
            "text/plain",
            "application/xml",
            "application/json; charset=latin-1",
            "application/jsonx",
            "application/json; profile=x",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
        ],
    )
    async def test_a_body_not_declared_json_is_a_415_problem(self, demo, content_type: str | None) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post("/v1/events", content=registration(patient), headers=headers(keys[HC], content_type))
        assert r.status_code == 415, r.text
        assert r.json()["type"].endswith("/unsupported-media-type")
        assert "application/json" in r.json()["detail"]
        assert not registered(services, patient)

    @pytest.mark.parametrize(
        "content_type",
        [
            "application/json",
            "application/cloudevents+json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            'application/cloudevents+json; charset="utf-8"',
        ],
    )
    async def test_json_and_cloudevents_json_are_taken(self, demo, content_type: str) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post("/v1/events", content=registration(patient), headers=headers(keys[HC], content_type))
        assert r.status_code == 201, r.text
        assert registered(services, patient)


class TestOtherJsonBodies:
    async def test_the_search_body_gets_the_same_checks_and_never_a_500(self, demo) -> None:
        services, keys = demo
        search = "/v1/patients/search"
        async with AsyncTestClient(create_app(services)) as client:
            cases = {
                "too-deeply-nested": b'{"id_number": ' + THOUSAND_DEEP + b"}",
                "invalid-utf8": b'{"id_number": "\xff"}',
                "duplicate-key": b'{"id_number": "1", "id_number": "2"}',
                "message-too-large": b'{"id_number": "' + b"1" * 70_000 + b'"}',
            }
            for code, body in cases.items():
                r = await client.post(search, content=body, headers=headers(keys[HC]))
                assert (r.status_code, r.json()["type"].split("/")[-1]) == (400, code), r.text
            r = await client.post(search, content=b'{"id_number": "1"}', headers=headers(keys[HC], "text/plain"))
            assert r.status_code == 415
            r = await client.post(search, json={"id_number": "110101199003070000"}, headers=headers(keys[HC]))
            assert r.status_code in (200, 422), r.text  # checked, then decoded as before

    async def test_an_obligation_note_gets_the_same_checks_and_a_bodiless_action_needs_no_content_type(
        self, demo
    ) -> None:
        services, keys = demo
        some = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            deep_note = b'{"note": ' + THOUSAND_DEEP + b"}"
            r = await client.post(f"/v1/obligations/{some}/complete", content=deep_note, headers=headers(keys[HC]))
            assert (r.status_code, r.json()["type"].split("/")[-1]) == (400, "too-deeply-nested"), r.text
            r = await client.post(
                f"/v1/obligations/{some}/complete", content=b'{"note": "\xc3"}', headers=headers(keys[HC])
            )
            assert (r.status_code, r.json()["type"].split("/")[-1]) == (400, "invalid-utf8"), r.text
            r = await client.post(f"/v1/obligations/{some}/acknowledge", headers=headers(keys[HC], None))
            assert r.status_code == 404, r.text  # no body, no Content-Type: not a 415


class TestImport:
    def test_bad_lines_are_refused_with_their_codes_and_the_rest_imported(self, demo) -> None:
        services, _ = demo
        bad = bad_bodies()
        good = uuid4()
        lines = [body for body, _ in bad.values()] + [registration(good)]
        report = import_lines(services.case_record, services.registry, b"\n".join(lines), HC)
        assert report.recorded == 1 and registered(services, good)
        assert sorted((n, code) for n, code, _ in report.refused) == [
            (i + 1, label.split("/")[0]) for i, label in enumerate(bad)
        ]
        for _, patient in bad.values():
            if patient is not None:
                assert not registered(services, patient)
