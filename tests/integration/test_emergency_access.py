"""Break the glass on SQLite and PostgreSQL: an agency outside a patient's reach asks for
emergency access with a reason and reads the file, with its own kind's field filter, until the
grant expires; the grants per agency per day are capped; every read under a grant is marked in
the access log; the governance center must review each grant (R22), R15 escalates it when late;
auditors and the governance center list the grants."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.access_log import ACCESS_LOG_FILE, PostgresAccessLog, SQLiteAccessLog
from core.calendar_view import load_year_file
from core.emergency_access import grant
from core.registry import load_file
from core.scheduler import Scheduler
from domain.emergency_access import EmergencyAccessCapReached
from domain.identity import CHINA_TZ
from domain.rules.r22_emergency_access_review import review_id
from domain.rules.settings import RuleSettings
from ops.data_files import DEMO_DISTRICT, year_file
from tests.integration.test_no_plaintext import stored_bytes
from tests.support.agency_client import envelope_json
from tests.support.stores import MovableClock

VILLAGE = "990101-001-v01"  # hc-north, police-east, committee-north, gov-willowbrook
OUTSIDE_POLICE = "police-reedmarsh"  # Reedmarsh Township: not the patient's village
GOV, OTHER_GOV = "gov-willowbrook", "gov-reedmarsh"
AUDITOR = "auditor-lantern-bay"
AGENCIES = (
    "hc-north",
    "hc-south",
    "police-east",
    OUTSIDE_POLICE,
    "committee-reedmarsh",
    GOV,
    OTHER_GOV,
    AUDITOR,
    "dept-reedmarsh-health",
)
MONDAY = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)  # 10:00 China time
REASON = "found confused at the Reedmarsh bus station, asking for his medicine"


def envelope(event_type: str, subject: UUID, data: dict, source: str, at: datetime) -> dict:
    return envelope_json(source, event_type, subject, data, occurred=at)


def auth(key: str, purpose: str | None = "emergency-response", staff: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    if purpose:
        headers["X-Purpose"] = purpose
    if staff:
        headers["X-Staff-Id"] = staff
    return headers


class Town:
    """The demo district on a movable clock, with a key per agency."""

    def __init__(self, services, clock: MovableClock) -> None:
        self.services, self.clock = services, clock
        self.keys = {a: services.apikeys.issue(a).key for a in AGENCIES}

    async def register(self, client, patient: UUID) -> None:
        body = {"name": "Test Person", "residence": VILLAGE}
        body["diagnosis"] = "schizophrenia"
        at = self.clock.now - timedelta(days=1)
        r = await client.post(
            "/v1/events?wait=true",
            json=envelope("cn.smd.patient.registered.v1", patient, body, "hc-north", at),
            headers=auth(self.keys["hc-north"]),
        )
        assert r.status_code == 201, r.text
        visit = {"face_to_face": True, "joint": False, "risk_level": 2, "risk_class": "basically_stable"}
        r = await client.post(
            "/v1/events?wait=true",
            json=envelope("cn.smd.visit.recorded.v1", patient, visit, "hc-north", at + timedelta(hours=1)),
            headers=auth(self.keys["hc-north"]),
        )
        assert r.status_code == 201, r.text

    async def grant(self, client, patient: UUID, agency: str = OUTSIDE_POLICE, **body):
        return await client.post(
            f"/v1/patients/{patient}/emergency-access",
            json={"reason": REASON, **body},
            headers=auth(self.keys[agency], purpose=None, staff="officer-12"),
        )

    async def review(self, client, patient: UUID, grant: str, outcome: str, agency: str = GOV):
        data = {"grant_id": grant, "outcome": outcome, "remarks": "the station had no other way to reach the family"}
        return await client.post(
            "/v1/events?wait=true",
            json=envelope("cn.smd.emergency-access.reviewed.v1", patient, data, agency, self.clock.now),
            headers=auth(self.keys[agency]),
        )

    def catch_up(self) -> None:
        self.services.catch_up(self.services.case_record.recorder.max_notification_id() or 0)


@pytest.fixture
def town(open_store) -> Town:
    clock = MovableClock(MONDAY)
    services = open_store(clock=clock)
    load_file(services.case_record, DEMO_DISTRICT)
    load_year_file(services.case_record, year_file(2026))
    return Town(services, clock)


class TestGrantingEmergencyAccess:
    async def test_an_agency_outside_the_jurisdiction_is_granted_access_with_a_reason(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            before = await client.get(f"/v1/patients/{patient}", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert before.status_code == 404
            r = await town.grant(client, patient)
            assert r.status_code == 201, r.text
            body = r.json()
            assert body["agency_id"] == OUTSIDE_POLICE and body["staff_id"] == "officer-12"
            assert body["patient_id"] == str(patient) and body["key_id"]
            granted_at = datetime.fromisoformat(body["granted_at"])
            # the default length: 3 hours
            assert datetime.fromisoformat(body["expires_at"]) - granted_at == timedelta(hours=3)
            after = await client.get(f"/v1/patients/{patient}", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert after.status_code == 200, after.text

    async def test_a_grant_without_a_reason_is_refused_naming_the_field(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            missing = await client.post(
                f"/v1/patients/{patient}/emergency-access", json={}, headers=auth(town.keys[OUTSIDE_POLICE])
            )
            assert missing.status_code == 400 and "reason" in missing.json()["detail"]
            blank = await town.grant(client, patient, reason="   ")
            assert blank.status_code == 422
            assert blank.json()["type"].endswith("/emergency-access-needs-a-reason")
            assert "reason" in blank.json()["detail"]
            still = await client.get(f"/v1/patients/{patient}", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert still.status_code == 404

    async def test_refusals_unknown_patient_kind_already_in_reach_and_too_long(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            unknown = await town.grant(client, uuid4())
            assert unknown.status_code == 404 and unknown.json()["type"].endswith("/patient-not-found")
            department = await town.grant(client, patient, agency="dept-reedmarsh-health")
            assert department.status_code == 403
            assert department.json()["type"].endswith("/emergency-access-not-for-kind")
            auditor = await town.grant(client, patient, agency=AUDITOR)
            assert auditor.status_code == 403
            in_reach = await town.grant(client, patient, agency="police-east")
            assert in_reach.status_code == 409
            assert in_reach.json()["type"].endswith("/emergency-access-not-needed")
            too_long = await town.grant(client, patient, hours=13)
            assert too_long.status_code == 422 and "hours" in too_long.json()["detail"]
            shorter = await town.grant(client, patient, hours=1.5)
            assert shorter.status_code == 201
            body = shorter.json()
            length = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["granted_at"])
            assert length == timedelta(hours=1, minutes=30)


class TestReadingUnderAGrant:
    async def test_the_field_filter_still_applies_the_police_see_no_diagnosis(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            assert (await town.grant(client, patient)).status_code == 201
            police = (await client.get(f"/v1/patients/{patient}", headers=auth(town.keys[OUTSIDE_POLICE]))).json()
            assert police["name"] == "Test Person" and police["risk"] == {"level": 2, "class": "basically_stable"}
            assert "diagnosis" not in police and "medication" not in police and "visit_schedule" not in police
            timeline = await client.get(f"/v1/patients/{patient}/timeline", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert timeline.status_code == 200
            registered = timeline.json()["items"][0]
            assert registered["type"] == "PatientRegistered" and "diagnosis" not in registered["data"]

    async def test_after_expiry_the_patient_is_out_of_reach_again(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            assert (await town.grant(client, patient)).status_code == 201
            town.clock.now = MONDAY + timedelta(hours=2, minutes=59)
            inside = await client.get(f"/v1/patients/{patient}", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert inside.status_code == 200
            town.clock.now = MONDAY + timedelta(hours=3)
            expired = await client.get(f"/v1/patients/{patient}", headers=auth(town.keys[OUTSIDE_POLICE]))
            unknown = await client.get(f"/v1/patients/{uuid4()}", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert expired.status_code == unknown.status_code == 404
            strip = lambda b: {k: v for k, v in b.items() if k != "instance"}  # noqa: E731
            assert strip(expired.json()) == strip(unknown.json())

    async def test_a_grant_opens_only_its_patient_to_only_its_agency(self, town) -> None:
        patient, other = uuid4(), uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            await town.register(client, other)
            assert (await town.grant(client, patient)).status_code == 201
            not_granted = await client.get(f"/v1/patients/{other}", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert not_granted.status_code == 404
            another_agency = await client.get(f"/v1/patients/{patient}", headers=auth(town.keys["hc-south"]))
            assert another_agency.status_code == 404

    async def test_reads_under_a_grant_are_marked_in_the_access_log(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            grant = (await town.grant(client, patient)).json()["grant_id"]
            await client.get(f"/v1/patients/{patient}", headers=auth(town.keys[OUTSIDE_POLICE]))
            await client.get(f"/v1/patients/{patient}/timeline", headers=auth(town.keys[OUTSIDE_POLICE]))
            await client.get(f"/v1/patients/{patient}", headers=auth(town.keys["police-east"]))
            rows = town.services.access_log.entries(patient=patient, limit=100)
            marked = {(r.agency_id, r.endpoint, str(r.emergency_grant)) for r in rows if r.emergency_grant}
            assert marked == {
                (OUTSIDE_POLICE, "POST /v1/patients/{patient_id}/emergency-access", grant),
                (OUTSIDE_POLICE, "GET /v1/patients/{patient_id}", grant),
                (OUTSIDE_POLICE, "GET /v1/patients/{patient_id}/timeline", grant),
            }
            own_reach = [r for r in rows if r.agency_id == "police-east"]
            assert [r.emergency_grant for r in own_reach] == [None]
            assert town.services.access_log.chain_findings() == []
            audit = await client.get(f"/v1/audit/access?patient={patient}", headers=auth(town.keys[AUDITOR], "audit"))
            assert grant in [i["emergency_grant"] for i in audit.json()["items"]]


class TestTheCap:
    async def test_five_grants_a_day_then_429_and_the_next_day_again(self, town) -> None:
        patients = [uuid4() for _ in range(6)]
        async with AsyncTestClient(create_app(town.services)) as client:
            for p in patients:
                await town.register(client, p)
            for p in patients[:5]:
                assert (await town.grant(client, p)).status_code == 201
            sixth = await town.grant(client, patients[5])
            assert sixth.status_code == 429
            assert sixth.json()["type"].endswith("/emergency-access-cap-reached")
            assert "5" in sixth.json()["detail"]
            # another agency has its own cap
            assert (await town.grant(client, patients[5], agency="committee-reedmarsh")).status_code == 201
            # the next day (China time)
            town.clock.now = MONDAY + timedelta(days=1)
            assert (await town.grant(client, patients[5])).status_code == 201

    async def test_two_grants_racing_for_the_last_slot_give_one_grant_and_one_refusal(self, town) -> None:
        patients = [uuid4(), uuid4()]
        async with AsyncTestClient(create_app(town.services)) as client:
            for p in patients:
                await town.register(client, p)
        one_a_day = RuleSettings(r22_emergency_access_per_agency_per_day=1)
        start = threading.Barrier(2)

        def ask(patient: UUID):
            start.wait()
            try:
                return grant(
                    town.services.case_record,
                    town.services.registry,
                    one_a_day,
                    kind="police_station",
                    agency_id=OUTSIDE_POLICE,
                    key_id="k",
                    staff_id=None,
                    patient_id=patient,
                    reason=REASON,
                )
            except EmergencyAccessCapReached as e:
                return e

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(ask, patients))
        assert sorted(type(r).__name__ for r in results) == ["EmergencyAccessCapReached", "Grant"]


class TestTheReview:
    async def test_the_governance_center_must_review_each_grant_within_five_working_days(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            grant = (await town.grant(client, patient)).json()["grant_id"]
            town.catch_up()
            o = town.services.case_record.repository.get(review_id(patient, grant))
            # Monday 16 Nov: Tue, Wed, Thu, Fri, Mon 23 Nov; due at its end
            assert (o.assignee, o.rule, o.action, o.kind) == (GOV, "R22", "review_emergency_access", "obligation")
            assert o.due_at == datetime.combine(date(2026, 11, 24), time(0), CHINA_TZ)
            r = await town.review(client, patient, grant, "justified")
            assert r.status_code == 201, r.text
            town.catch_up()
            done = town.services.case_record.repository.get(review_id(patient, grant))
            assert done.status == "completed" and done.fulfilled_by == r.json()["key"]

    async def test_only_the_governance_center_reviews_and_only_a_granted_id(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            grant = (await town.grant(client, patient)).json()["grant_id"]
            police = await town.review(client, patient, grant, "justified", agency="police-east")
            assert police.status_code == 403
            unknown = await town.review(client, patient, str(uuid4()), "justified")
            assert unknown.status_code == 404 and unknown.json()["type"].endswith("/unknown-emergency-access")

    async def test_an_unreviewed_grant_is_overdue_and_escalated_by_r15(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            grant = (await town.grant(client, patient)).json()["grant_id"]
        town.catch_up()
        s = town.services
        late = datetime(2026, 11, 24, 1, tzinfo=UTC)  # 09:00 China time on Tuesday 24 Nov
        Scheduler(s.case_record, s.registry, s.work_queue, lambda: late).run_once(force=True)
        o = s.case_record.repository.get(review_id(patient, grant))
        assert (o.overdue, o.escalated_to) == (True, GOV)


class TestTheAuditListing:
    async def test_auditor_and_the_patients_governance_center_list_grants_with_reasons(self, town) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            grant = (await town.grant(client, patient)).json()["grant_id"]
            town.catch_up()
            await town.review(client, patient, grant, "not_justified")
            town.catch_up()
            auditor = await client.get("/v1/audit/emergency-access", headers=auth(town.keys[AUDITOR], "audit"))
            assert auditor.status_code == 200, auditor.text
            [item] = auditor.json()["items"]
            assert (item["grant_id"], item["patient_id"], item["agency_id"]) == (grant, str(patient), OUTSIDE_POLICE)
            assert item["staff_id"] == "officer-12" and item["reason"] == REASON and item["key_id"]
            assert item["review"]["outcome"] == "not_justified" and item["review"]["reviewer"] == GOV
            assert item["review"]["remarks"] == "the station had no other way to reach the family"
            gov = await client.get("/v1/audit/emergency-access", headers=auth(town.keys[GOV], "assigned-duty"))
            assert [i["reason"] for i in gov.json()["items"]] == [REASON]
            other = await client.get("/v1/audit/emergency-access", headers=auth(town.keys[OTHER_GOV], None))
            assert other.status_code == 200 and other.json()["items"] == []
            police = await client.get("/v1/audit/emergency-access", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert police.status_code == 403
            assert police.json()["type"].endswith("/emergency-access-list-not-allowed")
            rows = town.services.access_log.entries(limit=500)
            listed = [
                (r.agency_id, r.status, r.patient_ids) for r in rows if r.endpoint.endswith("/audit/emergency-access")
            ]
            assert listed == [
                (AUDITOR, 200, (patient,)),
                (GOV, 200, (patient,)),
                (OTHER_GOV, 200, ()),
                (OUTSIDE_POLICE, 403, ()),
            ]

    async def test_the_listing_pages_by_cursor(self, town) -> None:
        patients = [uuid4() for _ in range(3)]
        async with AsyncTestClient(create_app(town.services)) as client:
            for p in patients:
                await town.register(client, p)
                assert (await town.grant(client, p)).status_code == 201
            headers = auth(town.keys[AUDITOR], "audit")
            first = (await client.get("/v1/audit/emergency-access?limit=2", headers=headers)).json()
            rest = (await client.get(f"/v1/audit/emergency-access?after={first['next']}", headers=headers)).json()
            assert [i["patient_id"] for i in first["items"] + rest["items"]] == [str(p) for p in patients]
            assert rest["next"] is None


class TestARestrictedPatient:
    async def test_a_restricted_patient_is_read_and_granted_by_nobody_and_listed_to_the_auditor_only(
        self, town
    ) -> None:
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            assert (await town.grant(client, patient)).status_code == 201
            gone = {"reason": "death"}
            at = town.clock.now - timedelta(minutes=30)
            r = await client.post(
                "/v1/events?wait=true",
                json=envelope("cn.smd.patient.deregistered.v1", patient, gone, "hc-north", at),
                headers=auth(town.keys["hc-north"]),
            )
            assert r.status_code == 201, r.text
            why = {"reason": "the family asked, PIPL art. 44"}
            r = await client.post(
                f"/v1/audit/patients/{patient}/restriction-requests", json=why, headers=auth(town.keys["hc-north"])
            )
            assert r.status_code == 201, r.text
            approval = f"/v1/audit/restriction-requests/{r.json()['request_id']}/approval"
            assert (await client.post(approval, json=why, headers=auth(town.keys[AUDITOR], "audit"))).status_code == 200
            read = await client.get(f"/v1/patients/{patient}", headers=auth(town.keys[OUTSIDE_POLICE]))
            assert read.status_code == 404
            again = await town.grant(client, patient, agency="committee-reedmarsh")
            assert again.status_code == 404 and again.json()["type"].endswith("/patient-not-found")
            gov = await client.get("/v1/audit/emergency-access", headers=auth(town.keys[GOV], "assigned-duty"))
            assert gov.json()["items"] == []
            auditor = await client.get("/v1/audit/emergency-access", headers=auth(town.keys[AUDITOR], "audit"))
            assert [i["patient_id"] for i in auditor.json()["items"]] == [str(patient)]


class TestTheReasonIsSealed:
    async def test_the_reason_and_the_remarks_are_in_no_table_in_plaintext(self, town, settings) -> None:
        reason, remarks = "MKGLASSREASONq7", "MKGLASSREMARKq8"
        patient = uuid4()
        async with AsyncTestClient(create_app(town.services)) as client:
            await town.register(client, patient)
            grant = (await town.grant(client, patient, reason=reason)).json()["grant_id"]
            data = {"grant_id": grant, "outcome": "justified", "remarks": remarks}
            r = await client.post(
                "/v1/events?wait=true",
                json=envelope("cn.smd.emergency-access.reviewed.v1", patient, data, GOV, town.clock.now),
                headers=auth(town.keys[GOV]),
            )
            assert r.status_code == 201, r.text
            listed = (await client.get("/v1/audit/emergency-access", headers=auth(town.keys[AUDITOR], "audit"))).json()
            assert (listed["items"][0]["reason"], listed["items"][0]["review"]["remarks"]) == (reason, remarks)
        stored = stored_bytes(settings)
        assert reason.encode() not in stored and remarks.encode() not in stored
        assert grant.encode() in stored, "the positive control is found by the same search"


class TestExistingAccessLogsKeepWorking:
    def test_a_table_created_before_the_mark_gets_the_column_and_its_chain_still_verifies(self, settings) -> None:
        old = (
            "CREATE TABLE smd_access_log (position {serial} PRIMARY KEY, at {ts} NOT NULL, agency_id TEXT NOT NULL,"
            " key_id TEXT NOT NULL, staff_id TEXT, purpose TEXT NOT NULL, endpoint TEXT NOT NULL,"
            " status INTEGER NOT NULL, patient_ids TEXT NOT NULL, fields TEXT NOT NULL, correlation_id TEXT)"
        )
        row = (
            "INSERT INTO smd_access_log (at, agency_id, key_id, staff_id, purpose, endpoint, status, patient_ids,"
            " fields, correlation_id) VALUES ('2026-11-01T00:00:00+00:00', 'hc-north', 'k1', NULL, 'care',"
            " 'GET /v1/patients/{patient_id}', 200, '[]', '[]', NULL)"
        )
        if settings.store_kind == "sqlite":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            path = settings.data_dir / ACCESS_LOG_FILE
            with sqlite3.connect(path) as c:
                c.execute(old.format(serial="INTEGER", ts="TEXT").replace("PRIMARY KEY", "PRIMARY KEY AUTOINCREMENT"))
                c.execute(row)
            log = SQLiteAccessLog(path)
        else:
            import psycopg

            conninfo = settings.postgres.conninfo()
            with psycopg.connect(conninfo, autocommit=True) as c:
                c.execute(old.format(serial="BIGSERIAL", ts="TIMESTAMPTZ"))
                c.execute(row)
            log = PostgresAccessLog(conninfo)
        try:
            [before] = log.entries()
            assert before.emergency_grant is None
            grant = uuid4()
            log.append(before.__class__(**{**_fields(before), "position": None, "emergency_grant": grant}))
            assert [e.emergency_grant for e in log.entries()] == [None, grant]
            assert log.chain_findings() == []
        finally:
            log.close()


def _fields(entry) -> dict:
    return {f: getattr(entry, f) for f in entry.__dataclass_fields__}
