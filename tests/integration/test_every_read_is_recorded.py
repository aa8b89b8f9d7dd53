"""Every answer that reveals a patient is in the access log before it leaves: the work queue, the
oversight list, acting on an obligation and the messages the outbox publishes (the file, the
timeline and the search: test_patient_read). On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.work_queue import page
from core.case_record import utc_now
from core.registry import load_file
from integrations.outbox import OUTBOX_KEY_ID, TOPICS, OutboxHandler
from integrations.streams import names_of
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_patient_read import auth, registered

AGENCIES = ("hc-north", "police-east", "committee-north", "gov-willowbrook", "auditor-lantern-bay")
POLICE, GOV, COMMITTEE = "police-east", "gov-willowbrook", "committee-north"


@pytest.fixture
def demo(open_store):
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in AGENCIES}
    return services, keys


def rows_of(services, endpoint: str):
    return [e for e in services.access_log.entries(limit=1000) if e.endpoint == endpoint]


def no_purpose(key: str) -> dict[str, str]:
    return auth(key, None)  # today's clients send none: assigned-duty


class TestTheWorkQueue:
    async def test_a_work_queue_page_is_recorded_with_the_patients_on_it(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)  # a level-4 visit: R1 for the police
            page = await client.get("/v1/work-queue", headers={**no_purpose(keys[POLICE]), "X-Staff-Id": "p-1"})
            assert page.status_code == 200, page.text
            assert {i["patient_id"] for i in page.json()["items"]} == {str(patient)}
        [row] = rows_of(services, "GET /v1/work-queue")
        assert (row.agency_id, row.purpose, row.status, row.staff_id) == (POLICE, "assigned-duty", 200, "p-1")
        assert row.patient_ids == (patient,) and row.fields == ("obligations", "residence", "risk")

    async def test_an_empty_page_is_recorded_with_no_patient(self, demo) -> None:
        services, keys = demo
        async with AsyncTestClient(create_app(services)) as client:
            assert (await client.get("/v1/work-queue", headers=auth(keys[COMMITTEE]))).status_code == 200
        [row] = rows_of(services, "GET /v1/work-queue")
        assert (row.agency_id, row.purpose, row.patient_ids, row.fields) == (COMMITTEE, "care", (), ())

    async def test_an_unknown_purpose_is_a_400_and_is_recorded(self, demo) -> None:
        services, keys = demo
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.get("/v1/work-queue", headers=auth(keys[POLICE], "curiosity"))
            assert r.status_code == 400 and r.json()["type"].endswith("unknown-purpose")
        [row] = rows_of(services, "GET /v1/work-queue")
        assert (row.status, row.purpose, row.patient_ids) == (400, "curiosity", ())

    async def test_a_kind_that_may_not_see_risk_levels_gets_none_in_its_work_queue(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            police = (await client.get("/v1/work-queue", headers=auth(keys[POLICE]))).json()["items"]
            assert {i["risk_level"] for i in police} == {4}
            # the same rows, as a committee's page shows them
            rows = services.work_queue.for_assignee(POLICE, 0, 100, "open")
            seen, revealed = page(rows, 100, "committee")
            assert {i.risk_level for i in seen.items} == {None} and "risk" not in revealed.fields

    async def test_a_page_whose_access_log_row_cannot_be_written_is_not_answered(self, demo, monkeypatch) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)

            def broken(entries) -> None:
                raise OSError("the access log's disk is full")

            # the table's own write: PostgreSQL's log groups the reads in flight (GroupedAccessLog)
            table = getattr(services.access_log, "log", services.access_log)
            monkeypatch.setattr(table, "append_many", broken)
            r = await client.get("/v1/work-queue", headers=auth(keys[POLICE]))
            assert r.status_code == 500
            assert str(patient) not in r.text


class TestTheOversightList:
    async def test_an_oversight_page_is_recorded_and_a_refusal_too(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            page = await client.get("/v1/oversight/obligations", headers=no_purpose(keys[GOV]))
            assert page.status_code == 200 and page.json()["items"], page.text
            refused = await client.get("/v1/oversight/obligations", headers=no_purpose(keys[POLICE]))
            assert refused.status_code == 403
            audited = await client.get("/v1/oversight/obligations", headers=no_purpose(keys["auditor-lantern-bay"]))
            assert audited.status_code == 200
        rows = rows_of(services, "GET /v1/oversight/obligations")
        assert [(r.agency_id, r.purpose, r.status, r.patient_ids) for r in rows] == [
            (GOV, "assigned-duty", 200, (patient,)),
            (POLICE, "assigned-duty", 403, ()),
            ("auditor-lantern-bay", "audit", 200, (patient,)),
        ]

    async def test_an_auditor_reading_for_care_is_refused_and_recorded(self, demo) -> None:
        services, keys = demo
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.get("/v1/oversight/obligations", headers=auth(keys["auditor-lantern-bay"], "care"))
            assert r.status_code == 403
        [row] = rows_of(services, "GET /v1/oversight/obligations")
        assert (row.status, row.purpose, row.patient_ids) == (403, "care", ())


class TestActingOnAnObligation:
    async def test_acknowledging_an_obligation_is_recorded_with_its_patient(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            [item, *_] = (await client.get("/v1/work-queue", headers=auth(keys[POLICE]))).json()["items"]
            path = f"/v1/obligations/{item['obligation_id']}/acknowledge"
            done = await client.post(path, headers=no_purpose(keys[POLICE]))
            assert done.status_code == 200, done.text
            other = await client.post(path, headers=no_purpose(keys["hc-north"]))
            assert other.status_code == 403
        rows = rows_of(services, "POST /v1/obligations/{obligation_id}/acknowledge")
        assert [(r.agency_id, r.status, r.patient_ids, r.fields) for r in rows] == [
            (POLICE, 200, (patient,), ("obligations",)),
            ("hc-north", 403, (), ()),
        ]


class TestOutboundMessages:
    def test_each_recipient_of_a_batch_is_recorded_before_the_batch_is_published(self, demo) -> None:
        services, keys = demo
        patient = uuid4()

        async def story() -> None:
            async with AsyncTestClient(create_app(services)) as client:
                await registered(client, keys, patient)

        asyncio.run(story())
        handler = OutboxHandler(services.case_record, names_of(services.settings), services.access_log)
        recorded_when_published: list[set[str]] = []

        def publish(messages) -> None:  # stands in for NATS: what is in the log at that instant
            recorded_when_published.append(
                {e.agency_id for e in services.access_log.entries(limit=1000) if e.key_id == OUTBOX_KEY_ID}
            )

        handler.sync_publish = publish
        work = handler.begin()
        notifications = services.case_record.recorder.select_notifications(1, 10_000, topics=TOPICS)
        for n in notifications:
            handler.apply(work, n)
        recipients = {m.recipient for m in work.messages}
        assert POLICE in recipients and GOV in recipients
        handler.commit(work, "outbox-test", notifications[-1].id)

        assert recorded_when_published == [recipients]
        rows = [e for e in services.access_log.entries(patient=patient, limit=1000) if e.key_id == OUTBOX_KEY_ID]
        assert {r.agency_id for r in rows} == recipients
        police = [r for r in rows if r.agency_id == POLICE]
        assert all(r.purpose == "assigned-duty" and r.endpoint.startswith("NATS cn.smd.") for r in police)
        assert any("risk" in r.fields for r in police)
        assert "Test Person" not in repr(rows)
