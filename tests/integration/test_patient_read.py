"""Reading a patient's file and timeline over HTTP, each read in the access log, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope_json

VILLAGE = "990101-001-v01"  # cluster c1: hc-north, police-east, committee-north, gov-willowbrook
AGENCIES = ("hc-north", "hc-south", "police-east", "committee-north", "gov-willowbrook", "hospital-lantern-bay")


def envelope(event_type: str, subject, data: dict, source: str = "hc-north") -> dict:
    return envelope_json(source, event_type, subject, data, occurred=datetime.now(UTC) - timedelta(hours=1))


@pytest.fixture
def demo(open_store):
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in AGENCIES}
    return services, keys


def auth(key: str, purpose: str | None = "care") -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    if purpose:
        headers["X-Purpose"] = purpose
    return headers


async def registered(client, keys, patient) -> None:
    body = {
        "name": "Test Person",
        "id_number": "11010519491231002X",
        "residence": VILLAGE,
        "diagnosis": "schizophrenia",
    }
    r = await client.post(
        "/v1/events", json=envelope("cn.smd.patient.registered.v1", patient, body), headers=auth(keys["hc-north"])
    )
    assert r.status_code == 201, r.text
    visit = {"face_to_face": True, "joint": False, "risk_level": 4, "risk_class": "unstable"}
    r = await client.post(
        "/v1/events?wait=true",
        json=envelope("cn.smd.visit.recorded.v1", patient, visit),
        headers=auth(keys["hc-north"]),
    )
    assert r.status_code == 201, r.text


class TestTheFileAsEachKindSeesIt:
    async def test_the_health_center_sees_the_diagnosis_and_the_police_see_the_risk_but_not_the_diagnosis(
        self, demo
    ) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            hc = (await client.get(f"/v1/patients/{patient}", headers=auth(keys["hc-north"]))).json()
            assert hc["diagnosis"] == "schizophrenia" and hc["risk"] == {"level": 4, "class": "unstable"}
            assert hc["name"] == "Test Person"
            police = await client.get(f"/v1/patients/{patient}", headers=auth(keys["police-east"]))
            assert police.status_code == 200, police.text
            body = police.json()
            assert "diagnosis" not in body and "medication" not in body
            assert body["risk"] == {"level": 4, "class": "unstable"}
            assert [o["rule"] for o in body["obligations"]] and {o["assignee"] for o in body["obligations"]} == {
                "police-east"
            }
            committee = (await client.get(f"/v1/patients/{patient}", headers=auth(keys["committee-north"]))).json()
            assert committee["id_number"] == "110*************2X" and "risk" not in committee

    async def test_a_patient_outside_the_callers_reach_is_a_404_like_an_unknown_id(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            outside = await client.get(f"/v1/patients/{patient}", headers=auth(keys["hc-south"]))
            unknown = await client.get(f"/v1/patients/{uuid4()}", headers=auth(keys["hc-south"]))
            assert outside.status_code == unknown.status_code == 404
            assert outside.headers["content-type"].startswith("application/problem+json")
            strip = lambda b: {k: v for k, v in b.items() if k != "instance"}  # noqa: E731
            assert strip(outside.json()) == strip(unknown.json())
            # a hospital reads only its own patients
            hospital = await client.get(f"/v1/patients/{patient}", headers=auth(keys["hospital-lantern-bay"]))
            assert hospital.status_code == 404

    async def test_the_timeline_lists_facts_in_order_and_leaves_out_the_types_a_kind_may_not_see(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            hc = (await client.get(f"/v1/patients/{patient}/timeline", headers=auth(keys["hc-north"]))).json()
            assert [i["type"] for i in hc["items"]] == ["PatientRegistered", "VisitRecorded"]
            assert hc["items"][0]["recorded_by"] == "hc-north"
            assert hc["items"][0]["asserted_staff_id"] == "staff-07"
            first = (
                await client.get(f"/v1/patients/{patient}/timeline?limit=1", headers=auth(keys["hc-north"]))
            ).json()
            assert len(first["items"]) == 1 and first["next"] is not None
            rest = (
                await client.get(
                    f"/v1/patients/{patient}/timeline?limit=1&after={first['next']}", headers=auth(keys["hc-north"])
                )
            ).json()
            assert [i["type"] for i in rest["items"]] == ["VisitRecorded"] and rest["next"] is None
            # the visit opened R1 for the police: they see its risk level and their own obligations on it
            police = (await client.get(f"/v1/patients/{patient}/timeline", headers=auth(keys["police-east"]))).json()
            assert [i["type"] for i in police["items"]] == ["PatientRegistered", "VisitRecorded"]
            assert police["items"][1]["data"] == {"risk_level": 4, "risk_class": "unstable"}
            assert "R1" in [o["rule"] for o in police["items"][1]["obligations"]]
            assert all(o["assignee"] == "police-east" for o in police["items"][1]["obligations"])
            assert "R1" in [o["rule"] for o in hc["items"][1]["obligations"]]
            gov = (await client.get(f"/v1/patients/{patient}/timeline", headers=auth(keys["gov-willowbrook"]))).json()
            assert [i["type"] for i in gov["items"]] == ["PatientRegistered", "VisitRecorded"]
            assert gov["items"][0]["data"] == {"name": "Test Person", "residence": VILLAGE, "household_region": None}


class TestEveryReadIsRecorded:
    async def test_each_read_appends_one_entry_without_personal_data(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            before = len(services.access_log.entries(patient=patient))
            await client.get(f"/v1/patients/{patient}", headers={**auth(keys["police-east"]), "X-Staff-Id": "p-9"})
            await client.get(f"/v1/patients/{patient}/timeline", headers=auth(keys["hc-north"]))
            entries = services.access_log.entries(patient=patient)[before:]
            assert [(e.agency_id, e.endpoint, e.status, e.purpose) for e in entries] == [
                ("police-east", "GET /v1/patients/{patient_id}", 200, "care"),
                ("hc-north", "GET /v1/patients/{patient_id}/timeline", 200, "care"),
            ]
            assert entries[0].staff_id == "p-9" and entries[0].key_id and entries[0].patient_ids == (patient,)
            assert "risk" in entries[0].fields and "diagnosis" not in entries[0].fields
            assert "Test Person" not in repr(entries) and "11010519491231002X" not in repr(entries)

    async def test_a_refused_read_is_recorded_too(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            r404 = await client.get(f"/v1/patients/{patient}", headers=auth(keys["hc-south"]))
            r403 = await client.get(f"/v1/patients/{patient}", headers=auth(keys["hc-north"], "audit"))
            r400 = await client.get(f"/v1/patients/{patient}/timeline", headers=auth(keys["hc-north"], None))
            assert (r404.status_code, r403.status_code, r400.status_code) == (404, 403, 400)
            entries = services.access_log.entries(patient=patient)
            assert [(e.agency_id, e.status, e.fields) for e in entries] == [
                ("hc-south", 404, ()),
                ("hc-north", 403, ()),
                ("hc-north", 400, ()),
            ]

    async def test_the_access_log_refuses_updates_and_deletes(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            await client.get(f"/v1/patients/{patient}", headers=auth(keys["hc-north"]))
        log = services.access_log
        with pytest.raises(Exception, match="append-only"):
            with log._tx() as c:
                c.execute(f"DELETE FROM {log.table}")
        with pytest.raises(Exception, match="append-only"):
            with log._tx() as c:
                c.execute(f"UPDATE {log.table} SET purpose = 'x'")
        assert len(log.entries(patient=patient)) == 1


class TestASearchIsRecorded:
    async def test_a_search_by_id_number_records_the_patient_it_revealed_and_never_the_number(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            found = await client.post(
                "/v1/patients/search",
                json={"id_number": "11010519491231002X"},
                headers={"Authorization": f"Bearer {keys['police-east']}"},  # no purpose: assigned-duty
            )
            assert found.status_code == 200 and found.json()["patients"] == [{"patient_id": str(patient)}]
            refused = await client.post(
                "/v1/patients/search", json={"id_number": "11010519491231002X"}, headers=auth(keys["committee-north"])
            )
            assert refused.status_code == 403
        rows = [e for e in services.access_log.entries(limit=500) if e.endpoint == "POST /v1/patients/search"]
        assert [(e.agency_id, e.purpose, e.status, e.patient_ids) for e in rows] == [
            ("police-east", "assigned-duty", 200, (patient,)),
            ("committee-north", "care", 403, ()),
        ]
        assert "11010519491231002X" not in repr(rows)


class TestTheAuditorReadsTheAccessLog:
    async def test_an_auditor_lists_the_reads_of_a_patient_and_the_listing_is_itself_recorded(self, open_store) -> None:
        services = open_store(clock=utc_now)
        load_file(services.case_record, DEMO_DISTRICT)
        keys = {a: services.apikeys.issue(a).key for a in ("hc-north", "police-east", "auditor-lantern-bay")}
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered(client, keys, patient)
            await client.get(f"/v1/patients/{patient}", headers=auth(keys["police-east"]))
            refused = await client.get(f"/v1/audit/access?patient={patient}", headers=auth(keys["hc-north"]))
            assert refused.status_code == 403
            page = await client.get(
                f"/v1/audit/access?patient={patient}&from=2000-01-01T00:00:00Z",
                headers=auth(keys["auditor-lantern-bay"]),
            )
            assert page.status_code == 200, page.text
            assert [(i["agency_id"], i["endpoint"], i["status"]) for i in page.json()["items"]] == [
                ("police-east", "GET /v1/patients/{patient_id}", 200)
            ]
            later = await client.get(
                "/v1/audit/access?from=2999-01-01T00:00:00Z", headers=auth(keys["auditor-lantern-bay"])
            )
            assert later.json()["items"] == []
        own = services.access_log.entries(agency="auditor-lantern-bay")
        assert (own[0].endpoint, own[0].patient_ids) == ("GET /v1/audit/access", (patient,))
        assert [
            e.status for e in services.access_log.entries(agency="hc-north") if e.endpoint == "GET /v1/audit/access"
        ] == [403]


class TestCursors:
    async def test_a_cursor_beyond_64_bits_is_a_400_problem_not_a_server_error(self, demo) -> None:
        services, keys = demo
        async with AsyncTestClient(create_app(services)) as client:
            for path in (f"/v1/patients/{uuid4()}/timeline?after={2**70}", f"/v1/audit/access?after={2**70}"):
                r = await client.get(path, headers=auth(keys["hc-north"]))
                assert r.status_code == 400, (path, r.text)
