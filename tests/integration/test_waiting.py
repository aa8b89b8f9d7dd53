"""Facts that arrive before what they refer to wait, durably (issue 17), on SQLite and PostgreSQL.

A visit before its patient's registration, a review before its incident, an assessment before
its suspected case's report: each is accepted and held sealed in the waiting table, recorded in
arrival order through the full door once the record arrives, or refused with
``reference-not-found`` when the window ends (on the service's clock) and answered at
``GET /v1/events/{source}:{id}`` (and on the NATS rejection subject: test_waiting_nats.py).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.problems import status_for
from core.case_record import Recorded, utc_now
from core.intake import accept
from core.registry import load_file
from core.waiting import Arrival, message_status
from domain.errors import DuplicateMessageConflict
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from ops.logging import configure_logging
from ops.settings import Settings
from ops.workers import serving_app
from tests.integration.test_no_plaintext import MARKERS, stored_bytes
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import open_services, store_settings

HC, GOV, COMMITTEE, POLICE = "hc-north", "gov-willowbrook", "committee-north", "police-east"
VILLAGE = "990101-001-v01"  # hc-north's, police-east's, committee-north's, gov-willowbrook's
V05 = "990101-001-v05"  # hc-south's
START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def envelope(agency: str, event_type: str, subject: UUID, data: dict[str, Any], occurred: datetime) -> bytes:
    return agency_envelope(agency, f"cn.smd.{event_type}.v1", subject, data, occurred=occurred, actor=None)


def key_of(raw: bytes) -> str:
    doc = json.loads(raw)
    return f"{doc['source']}:{doc['id']}"


class Desk:
    """Agencies' systems sending through the shared door, with the waiting table, on a test clock."""

    def __init__(self, services: Services, clock: Clock) -> None:
        self.services = services
        self.clock = clock
        self.patient = uuid4()

    def raw(self, agency: str, event_type: str, data: dict[str, Any], *, subject: UUID | None = None, hours=1):
        return envelope(agency, event_type, subject or self.patient, data, self.clock.now - timedelta(hours=hours))

    def send(self, raw: bytes, agency: str = HC, door: str = "http") -> Recorded:
        s = self.services
        return accept(
            s.case_record,
            s.registry,
            raw,
            agency,
            "test",
            earliest=s.settings.earliest_time,
            waiting=s.waiting,
            arrival=Arrival(door=door),
        )

    def visit(self, level: int = 4, risk_class: str = "unstable", *, hours: float = 1) -> bytes:
        data = {"face_to_face": True, "risk_level": level, "risk_class": risk_class}
        return self.raw(HC, "visit.recorded", data, hours=hours)

    def registration(self, *, residence: str = VILLAGE) -> bytes:
        return self.raw(HC, "patient.registered", {"name": "Test Person", "residence": residence}, hours=48)

    def status(self, raw: bytes):
        return message_status(self.services.case_record, self.services.waiting, key_of(raw))

    def recorded_message_ids(self) -> list[str]:
        """The message ids of the patient's stored facts, in recorded order."""
        record = self.services.case_record
        events = [record.mapper.to_domain_event(e) for e in record.recorder.select_events(self.patient)]
        return [e.message_id for e in events if hasattr(e, "message_id")]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def desk(open_store: Callable[..., Services], clock: Clock) -> Desk:
    services = open_store(clock=clock)
    load_file(services.case_record, DEMO_DISTRICT)
    return Desk(services, clock)


class TestAFactBeforeWhatItRefersTo:
    def test_a_visit_before_its_registration_waits_and_is_recorded_when_the_registration_arrives(self, desk) -> None:
        visit = desk.visit()
        assert desk.send(visit).outcome == "waiting"
        assert desk.recorded_message_ids() == []  # nothing in the log yet
        waiting = desk.status(visit)
        assert (waiting.status, waiting.waiting_for, waiting.waiting_since) == ("waiting", "patient", START)
        assert waiting.waiting_until == START + timedelta(hours=24)
        assert desk.services.waiting.stats().waiting == 1

        registration = desk.registration()
        assert desk.send(registration).outcome == "recorded"
        assert desk.recorded_message_ids() == [key_of(registration), key_of(visit)]
        assert desk.services.case_record.patient(desk.patient).risk_level == 4
        recorded = desk.status(visit)
        assert (recorded.status, recorded.outcome, recorded.agency_id) == ("recorded", "recorded", HC)
        assert desk.services.waiting.stats().waiting == 0

    def test_two_waiting_facts_for_one_patient_are_recorded_in_the_order_they_arrived(self, desk) -> None:
        first = desk.visit(4, "unstable", hours=2)
        second = desk.visit(1, "basically_stable", hours=3)  # dated earlier, arrived later
        third = desk.raw(COMMITTEE, "circumstances.recorded", {"lives_alone": True}, hours=1)
        assert [desk.send(first).outcome, desk.send(second).outcome] == ["waiting", "waiting"]
        assert desk.send(third, COMMITTEE, door="import").outcome == "waiting"

        registration = desk.registration()
        desk.send(registration)
        assert desk.recorded_message_ids() == [key_of(r) for r in (registration, first, second, third)]
        assert desk.services.case_record.patient(desk.patient).risk_level == 4  # latest by occurred time

    def test_a_duplicate_of_a_waiting_message_answers_waiting_and_is_held_once(self, desk) -> None:
        visit = desk.visit()
        assert desk.send(visit).outcome == "waiting"
        again = desk.send(visit)
        assert (again.outcome, again.key) == ("waiting", key_of(visit))
        assert desk.services.waiting.stats().waiting == 1

        changed = json.loads(visit)
        changed["data"]["risk_level"] = 5
        with pytest.raises(DuplicateMessageConflict):  # the same key with other content
            desk.send(json.dumps(changed).encode())

        desk.send(desk.registration())
        assert desk.recorded_message_ids()[1:] == [key_of(visit)]  # recorded once
        assert desk.send(visit).outcome == "duplicate"

    def test_what_waits_survives_a_restart_and_is_released_after_it(self, open_store, clock) -> None:
        services = open_store(clock=clock)
        load_file(services.case_record, DEMO_DISTRICT)
        before = Desk(services, clock)
        visit = before.visit()
        assert before.send(visit).outcome == "waiting"
        services.close()

        after = Desk(open_store(clock=clock), clock)
        after.patient = before.patient
        assert after.status(visit).status == "waiting"
        after.send(after.registration())
        assert after.status(visit).status == "recorded"
        assert after.recorded_message_ids()[1:] == [key_of(visit)]

    def test_a_registration_recorded_by_a_writer_that_crashed_before_releasing_is_released_by_the_sweep(
        self, desk
    ) -> None:
        visit = desk.visit()
        desk.send(visit)
        s = desk.services
        accept(s.case_record, s.registry, desk.registration(), HC, "test")  # recorded, nothing released
        assert desk.status(visit).status == "waiting"

        s.waiting_sweep.run_once(force=True)
        assert desk.status(visit).status == "recorded"


class TestTheWindow:
    def test_a_fact_still_waiting_when_the_window_ends_is_refused_with_reference_not_found(self, desk, clock) -> None:
        visit = desk.visit()
        desk.send(visit)
        clock.now += timedelta(hours=23)
        desk.services.waiting_sweep.run_once(force=True)
        assert desk.status(visit).status == "waiting"
        stats = desk.services.waiting.stats()
        assert desk.services.waiting.oldest_age_seconds(stats) == 23 * 3600

        clock.now += timedelta(hours=1, seconds=1)
        assert desk.services.waiting_sweep.run_once(force=True) == 1
        refused = desk.status(visit)
        assert (refused.status, refused.reason) == ("refused", "reference-not-found")
        assert status_for(refused.reason or "") == 422
        assert refused.refused_at == clock.now
        assert f"no patient {desk.patient} was registered within 24 h" in (refused.detail or "")
        assert desk.services.waiting.stats().waiting == 0
        assert desk.services.waiting.table.get(key_of(visit)).sealed is None  # told by GET: nothing kept

        desk.send(desk.registration())  # too late for it: it stays refused
        assert desk.status(visit).status == "refused"
        assert desk.send(visit).outcome == "recorded"  # sent again, it is a new try

    def test_a_fact_refused_on_release_keeps_its_own_reason(self, desk) -> None:
        removal = desk.raw(COMMITTEE, "care-team-member.removed", {"role": "community_police"})
        assert desk.send(removal, COMMITTEE).outcome == "waiting"
        desk.send(desk.registration())
        refused = desk.status(removal)
        assert (refused.status, refused.reason) == ("refused", "care-team-role-empty")
        assert desk.recorded_message_ids() == [desk.recorded_message_ids()[0]]  # the registration only


class TestReleaseThroughTheWholeDoor:
    def test_a_visit_waiting_for_a_patient_then_registered_outside_the_senders_jurisdiction_is_refused_on_release(
        self, desk
    ) -> None:
        visit = desk.visit()  # hc-north's
        assert desk.send(visit).outcome == "waiting"
        registration = desk.raw("hc-south", "patient.registered", {"name": "Test Person", "residence": V05}, hours=48)
        assert desk.send(registration, "hc-south").outcome == "recorded"  # in hc-south's village

        refused = desk.status(visit)
        assert (refused.status, refused.reason) == ("refused", "outside-jurisdiction")
        assert status_for(refused.reason or "") == 403
        assert V05 not in (refused.detail or "") and "hc-south" not in (refused.detail or "")  # nothing on file
        assert desk.recorded_message_ids() == [key_of(registration)]


class TestWhatElseWaits:
    def test_an_incident_review_waits_for_its_patient_then_for_its_incident(self, desk) -> None:
        incident = str(uuid4())
        review = desk.raw(GOV, "incident.reviewed", {"incident_id": incident, "outcome": "joint visit arranged"})
        assert desk.send(review, GOV).outcome == "waiting"
        desk.send(desk.registration())
        assert desk.status(review).waiting_for == "incident"  # released, then waiting for its incident

        report = {"incident_id": incident, "incident_kind": "self_harm", "severity": 3}
        desk.send(desk.raw(POLICE, "incident.reported", report, hours=2), POLICE)
        assert desk.status(review).status == "recorded"
        assert desk.services.case_record.patient(desk.patient).incident_status(UUID(incident))["reviewed"]

    def test_suspected_case_facts_wait_for_the_report_and_for_the_patient_it_becomes(self, desk) -> None:
        case = uuid4()
        assessed = desk.raw(HC, "suspected-case.assessed", {"outcome": "suspected_severe_disorder"}, subject=case)
        assert desk.send(assessed).outcome == "waiting"
        assert desk.status(assessed).waiting_for == "suspected-case"
        report = {"observed": "does not sleep", "seen_in": VILLAGE}
        desk.send(desk.raw(COMMITTEE, "suspected-case.reported", report, subject=case, hours=5), COMMITTEE)
        assert desk.status(assessed).status == "recorded"

        link = desk.raw(HC, "suspected-case.registered", {"patient_id": str(desk.patient)}, subject=case, hours=0.5)
        assert desk.send(link).outcome == "waiting"
        assert desk.status(link).waiting_for == "patient"
        desk.send(desk.registration())
        assert desk.status(link).status == "recorded"
        assert desk.services.case_record.suspected_case(case).patient_id == desk.patient


class TestSealed:
    def test_no_personal_field_of_a_waiting_fact_is_stored_or_logged_in_plaintext(self, desk, settings) -> None:
        log_buffer = io.StringIO()
        configure_logging("json", stream=log_buffer)  # our lines and the stdlib's
        try:
            confirmation = desk.raw(HC, "patient.identity-confirmed", dict(MARKERS))
            guardian = desk.raw(COMMITTEE, "guardian.assigned", {"contact": {"name": MARKERS["name"] + "g"}})
            assert desk.send(confirmation).outcome == "waiting"
            assert desk.send(guardian, COMMITTEE).outcome == "waiting"
            haystacks = {"store": stored_bytes(settings), "logs": log_buffer.getvalue().encode()}
        finally:
            configure_logging("json")  # back to stderr
        for where, data in haystacks.items():
            for field, marker in MARKERS.items():
                assert marker.encode() not in data, f"{field} of a waiting fact found in plaintext in {where}"
        assert key_of(confirmation).encode() in haystacks["store"], "the readable columns are found by the same search"
        assert key_of(guardian).encode() in haystacks["logs"], "the log capture worked"


# -- over HTTP ---------------------------------------------------------------------------------


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def http_envelope(event_type: str, subject: UUID, data: dict[str, Any], hours: float = 1) -> dict[str, Any]:
    occurred = datetime.now().astimezone() - timedelta(hours=hours)
    return json.loads(envelope(HC, event_type, subject, data, occurred))


def http_visit(patient: UUID, level: int = 4, risk_class: str = "unstable") -> dict[str, Any]:
    data = {"face_to_face": True, "risk_level": level, "risk_class": risk_class}
    return http_envelope("visit.recorded", patient, data)


def http_registration(patient: UUID) -> dict[str, Any]:
    return http_envelope("patient.registered", patient, {"name": "Test Person", "residence": VILLAGE}, 2)


@pytest.fixture
def http_settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    def make(**extra: str) -> Settings:
        pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
        return store_settings(store_kind, tmp_path / "data", pg_url, **extra)

    return make


@pytest.fixture
def http_demo(http_settings) -> Iterator[Callable[..., tuple[Services, dict[str, str]]]]:
    opened: list[Services] = []

    def make(**extra: str) -> tuple[Services, dict[str, str]]:
        services = open_services(http_settings(**extra), clock=utc_now)  # envelopes carry real times
        opened.append(services)
        load_file(services.case_record, DEMO_DISTRICT)
        return services, {a: services.apikeys.issue(a).key for a in (HC, POLICE, "hc-south")}

    yield make
    for services in opened:
        services.close()


class TestOverHttp:
    async def test_a_visit_before_its_registration_is_202_with_location_then_waiting_then_recorded(
        self, http_demo
    ) -> None:
        services, keys = http_demo()
        patient = uuid4()
        visit = http_visit(patient)
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post("/v1/events", json=visit, headers=auth(keys[HC]))
            assert r.status_code == 202, r.text
            assert r.json() == {"key": f"{HC}:{visit['id']}", "outcome": "waiting", "position": None, "processed": None}
            location = r.headers["location"]
            assert location == f"/v1/events/{HC}:{visit['id']}"

            again = await client.post("/v1/events", json=visit, headers=auth(keys[HC]))
            assert (again.status_code, again.headers["location"]) == (202, location)

            waiting = (await client.get(location, headers=auth(keys[HC]))).json()
            assert (waiting["status"], waiting["waiting_for"], waiting["type"]) == (
                "waiting",
                "patient",
                "cn.smd.visit.recorded.v1",
            )
            status = (await client.get("/v1/status", headers=auth(keys[HC]))).json()
            assert status["waiting"]["count"] == 1 and status["waiting"]["window_seconds"] == 86400
            assert status["waiting"]["oldest_age_seconds"] >= 0
            metrics = (await client.get("/metrics")).text
            assert "smd_waiting_messages 1.0" in metrics
            assert 'smd_messages_accepted_total{door="http",outcome="waiting"} 2.0' in metrics

            registration = http_registration(patient)
            assert (await client.post("/v1/events", json=registration, headers=auth(keys[HC]))).status_code == 201
            recorded = await client.get(location, headers=auth(keys[HC]))
            assert recorded.status_code == 200
            assert (recorded.json()["status"], recorded.json()["outcome"]) == ("recorded", "recorded")
            assert services.case_record.patient(patient).risk_level == 4
            metrics = (await client.get("/metrics")).text
            assert "smd_waiting_messages 0.0" in metrics

    async def test_a_visit_whose_registration_never_comes_is_refused_when_the_window_ends_and_get_says_why(
        self, http_demo
    ) -> None:
        services, keys = http_demo(SMD_WAITING_WINDOW_SECONDS="2")
        patient = uuid4()
        visit = http_visit(patient, 0, "stable")
        async with AsyncTestClient(serving_app(services)) as client:  # the background sweep runs
            r = await client.post("/v1/events", json=visit, headers=auth(keys[HC]))
            assert r.status_code == 202
            location = r.headers["location"]

            async def refused() -> dict[str, Any] | None:
                body = (await client.get(location, headers=auth(keys[HC]))).json()
                return body if body["status"] == "refused" else None

            body = None
            for _ in range(150):
                body = await refused()
                if body:
                    break
                await asyncio.sleep(0.1)
            assert body is not None, "refused within 15 s"
            problem = body["problem"]
            assert problem["type"].endswith("/reference-not-found") and problem["status"] == 422
            assert f"no patient {patient} was registered within 2 s" in problem["detail"]
            metrics = (await client.get("/metrics")).text
            assert 'smd_messages_rejected_total{door="http",reason="reference-not-found"} 1.0' in metrics

    async def test_a_visit_refused_on_release_outside_jurisdiction_is_answered_by_get_with_the_403_problem(
        self, http_demo
    ) -> None:
        services, keys = http_demo()
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            location = (await client.post("/v1/events", json=http_visit(patient), headers=auth(keys[HC]))).headers[
                "location"
            ]
            registration = http_registration(patient) | {"source": "hc-south"}
            registration["data"]["residence"] = V05
            r = await client.post("/v1/events", json=registration, headers=auth(keys["hc-south"]))
            assert r.status_code == 201, r.text
            body = (await client.get(location, headers=auth(keys[HC]))).json()
        assert body["status"] == "refused"
        assert body["problem"]["type"].endswith("/outside-jurisdiction") and body["problem"]["status"] == 403
        assert V05 not in body["problem"]["detail"]

    async def test_only_the_sending_agency_reads_a_messages_status_and_an_unknown_one_is_404(self, http_demo) -> None:
        services, keys = http_demo()
        visit = http_visit(uuid4(), 0, "stable")
        async with AsyncTestClient(create_app(services)) as client:
            location = (await client.post("/v1/events", json=visit, headers=auth(keys[HC]))).headers["location"]
            other = await client.get(location, headers=auth(keys["hc-south"]))
            assert other.status_code == 403 and other.json()["type"].endswith("/not-your-message")
            assert HC not in other.text  # names no other agency
            unknown = await client.get(f"/v1/events/{HC}:{uuid4()}", headers=auth(keys[HC]))
            assert unknown.status_code == 404 and unknown.json()["type"].endswith("/message-not-found")
            assert (await client.get(location)).status_code == 401
