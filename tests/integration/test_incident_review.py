"""The incident review, on SQLite and PostgreSQL (issue 23): for the days before an incident, what
each agency recorded, was asked to do (with lateness and escalation, checked against a
hand-computed expectation) and read; JSON and a printable Chinese page for auditors only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from core.demo_keys import ensure_demo_keys
from core.incident_review import IncidentNotFound, review
from core.intake import accept
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from ops.workers import serving_app
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import MovableClock

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
HIGH = T0 + timedelta(days=1)  # a level-3 visit: the police have 24 h to take the patient under management
INCIDENT = T0 + timedelta(days=5)  # the police never did: 3 days past their deadline at the incident
HC, POLICE, GOV, VILLAGE = "hc-north", "police-east", "gov-willowbrook", "990101-001-v01"


def send(s, clock: MovableClock, type_: str, subject, data: dict, occurred: datetime, source: str = HC) -> None:
    clock.now = occurred + timedelta(minutes=10)
    body = agency_envelope(source, type_, subject, data, occurred=occurred, actor=None)
    accept(s.case_record, s.registry, body, source, "test")
    s.catch_up(s.case_record.recorder.max_notification_id())


@pytest.fixture
def story(open_store):
    clock = MovableClock(T0 - timedelta(days=1))
    s = open_store(clock=clock)
    load_file(s.case_record, DEMO_DISTRICT)
    s.registry.refresh()
    patient, incident = uuid4(), uuid4()
    send(s, clock, "cn.smd.patient.registered.v1", patient, {"name": "Test Person", "residence": VILLAGE}, T0)
    visit = {"face_to_face": True, "joint": False, "risk_level": 3, "risk_class": "unstable"}
    send(s, clock, "cn.smd.visit.recorded.v1", patient, visit, HIGH)
    clock.now = HIGH + timedelta(days=2)
    s.scheduler.run_once(force=True)  # R15: the police's deadline passed
    s.catch_up(s.case_record.recorder.max_notification_id())
    data = {"incident_id": str(incident), "incident_kind": "causing_trouble", "severity": 2}
    send(s, clock, "cn.smd.incident.reported.v1", patient, data, INCIDENT, source=POLICE)
    return s, clock, patient, incident


def the_review(s, patient, incident, days: int = 30):
    ids = [r.obligation_id for r in s.patient_obligations(patient)]
    return review(s.case_record, s.access_log, incident, ids, days)


class TestTheReview:
    def test_incident_review_shows_the_police_late_by_three_days_and_escalated(self, story) -> None:
        s, _, patient, incident = story
        r = the_review(s, patient, incident)
        assert r.patient_id == patient and r.incident["occurred_at"] == INCIDENT
        police = next(o for o in r.obligations if o["action"] == "take_under_management")
        assert police["assignee"] == POLICE
        assert police["due_at"] == HIGH + timedelta(minutes=10) + timedelta(hours=24)  # recorded + 24 h
        assert police["status_at_incident"] == "assigned" and police["closed"] is None
        # hand-computed: incident (T0+5d) minus deadline (T0+1d+10min+24h) = 3 days minus 10 minutes
        assert police["late_seconds"] == (timedelta(days=3) - timedelta(minutes=10)).total_seconds()
        assert police["escalated_to"] == GOV and police["overdue_marked_at"] == HIGH + timedelta(days=2)
        assert r.by_agency[POLICE]["late"] == 1

    def test_incident_review_lists_what_each_agency_recorded_with_its_times(self, story) -> None:
        s, _, patient, incident = story
        r = the_review(s, patient, incident)
        assert [(f["agency_id"], f["type"]) for f in r.facts] == [
            (HC, "smd.PatientRegistered"),
            (HC, "smd.VisitRecorded"),
            (POLICE, "smd.IncidentReported"),
        ]
        assert all(f["recorded_after"] == 600.0 for f in r.facts)

    def test_incident_review_window_leaves_out_what_came_before_it(self, story) -> None:
        s, _, patient, incident = story
        r = the_review(s, patient, incident, days=2)  # from T0+3d: the registration and the visit are outside
        assert [f["type"] for f in r.facts] == ["smd.IncidentReported"]
        assert any(o["assignee"] == POLICE for o in r.obligations)  # still open in the window

    def test_incident_review_of_an_unknown_incident_is_not_found(self, story) -> None:
        s, _, patient, _ = story
        with pytest.raises(IncidentNotFound):
            the_review(s, patient, uuid4())


class TestOverHttp:
    async def test_incident_review_is_for_auditors_as_json_and_a_printable_page_and_is_logged(self, story) -> None:
        s, clock, patient, incident = story
        keys = {k.agency_id: k.key for k in ensure_demo_keys(s.apikeys, s.registry, s.settings.data_dir)}
        auditor = {"Authorization": f"Bearer {keys['auditor-lantern-bay']}"}
        url = f"/v1/audit/incidents/{incident}/review"
        async with AsyncTestClient(serving_app(s)) as client:
            clock.now = INCIDENT - timedelta(hours=1)  # the health center read the file before the incident
            await client.get(
                f"/v1/patients/{patient}", headers={"Authorization": f"Bearer {keys[HC]}", "X-Purpose": "assigned-duty"}
            )
            clock.now = INCIDENT + timedelta(days=1)
            r = await client.get(url, headers=auditor)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["incident"]["incident_kind"] == "causing_trouble"
            assert [e["agency_id"] for e in body["reads"]] == [HC]
            page = await client.get(url, params={"format": "html"}, headers=auditor)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            html = page.text
            assert "事件回溯审查" in html and "肇事" in html and POLICE in html and "Test Person" not in html
            assert "http://" not in html and "https://" not in html  # no external asset
            assert (await client.get(url, headers={"Authorization": f"Bearer {keys[HC]}"})).status_code == 403
            assert (await client.get(f"/v1/audit/incidents/{uuid4()}/review", headers=auditor)).status_code == 404
        logged = [e.endpoint for e in s.access_log.entries(patient=patient, limit=500)]
        assert "GET /v1/audit/incidents/{incident_id}/review" in logged
