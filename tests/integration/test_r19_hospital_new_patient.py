"""R19 on SQLite and PostgreSQL: the psychiatric hospital's new patient, taken over by the
health center within 10 working days (by the region's calendar), the governance center told;
the first visit completes it; a duplicate push opens nothing more; it escalates when late."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID, uuid4

import pytest

from core.calendar_view import load_year_file
from core.intake import accept
from core.registry import load_file
from core.scheduler import Scheduler
from domain.identity import CHINA_TZ
from domain.rules.r19_hospital_new_patient import take_over_id
from ops.data_files import DEMO_DISTRICT, year_file
from tests.integration.test_coordination_engine import GOV, HC, POLICE, VILLAGE
from tests.support.agency_client import envelope as agency_envelope

HOSPITAL = "hospital-lantern-bay"
MONDAY = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)  # China time 10:00, before National Day


class Ward:
    def __init__(self, services, patient: UUID) -> None:
        self.services, self.patient = services, patient

    def send(self, agency: str, event_type: str, data: dict, *, at: datetime, message: UUID | None = None):
        doc = agency_envelope(
            agency, f"cn.smd.{event_type}.v1", self.patient, data, occurred=at, message_id=message, actor=None
        )
        recorded = accept(self.services.case_record, self.services.registry, doc, agency, "t")
        self.services.catch_up(recorded.notification_id or 0)
        return recorded

    def take_over(self):
        return self.services.case_record.repository.get(take_over_id(self.patient))

    def rows(self):
        rows = self.services.work_queue.select("rule = ?", ["R19"], 0, 100)
        return sorted((r.assignee, r.kind, r.action) for r in rows if r.patient_id == self.patient)


@pytest.fixture
def ward(open_store) -> Ward:
    services = open_store(clock=lambda: MONDAY)
    load_file(services.case_record, DEMO_DISTRICT)
    load_year_file(services.case_record, year_file(2026))
    return Ward(services, uuid4())


REGISTRATION = {"name": "Test Person", "residence": VILLAGE, "diagnosis": "schizophrenia"}


class TestR19:
    def test_the_hospitals_registration_is_taken_over_within_ten_working_days_by_the_calendar(self, ward) -> None:
        message = uuid4()
        ward.send(HOSPITAL, "patient.registered", REGISTRATION, at=MONDAY - timedelta(hours=1), message=message)
        ward.send(HOSPITAL, "patient.registered", REGISTRATION, at=MONDAY - timedelta(hours=1), message=message)
        o = ward.take_over()
        # 29, 30 Sep; 1-7 Oct off; 8, 9, 10 (make-up Saturday), 12, 13, 14, 15, 16 Oct
        assert (o.assignee, o.action, o.due_at) == (
            HC,
            "take_over_from_hospital",
            datetime.combine(date(2026, 10, 17), time(0), CHINA_TZ),
        )
        ward.services.catch_up(ward.services.case_record.recorder.max_notification_id())
        assert ward.rows() == [
            (GOV, "notice", "hospital_new_patient_notice"),
            (HC, "obligation", "take_over_from_hospital"),
        ]

    def test_a_high_risk_patient_is_told_to_the_police_and_the_first_visit_completes_it(self, ward) -> None:
        ward.send(HC, "patient.registered", REGISTRATION, at=MONDAY - timedelta(days=3))
        ward.send(HC, "risk.assessed", {"risk_level": 3, "risk_class": "unstable"}, at=MONDAY - timedelta(days=2))
        ward.send(HOSPITAL, "diagnosis.recorded", {"diagnosis": "schizophrenia"}, at=MONDAY - timedelta(days=1))
        ward.services.catch_up(ward.services.case_record.recorder.max_notification_id())
        assert (POLICE, "notice", "hospital_new_patient_notice") in ward.rows()
        visit = {"face_to_face": True, "risk_level": 3, "risk_class": "unstable"}
        visited = ward.send(HC, "visit.recorded", visit, at=MONDAY - timedelta(hours=2))
        assert ward.take_over().fulfilled_by == visited.key

    def test_undone_after_its_deadline_it_is_overdue_and_escalated(self, ward) -> None:
        ward.send(HOSPITAL, "patient.registered", REGISTRATION, at=MONDAY - timedelta(hours=1))
        s = ward.services
        Scheduler(s.case_record, s.registry, s.work_queue, lambda: datetime(2026, 10, 18, tzinfo=UTC)).run_once(
            force=True
        )
        o = ward.take_over()
        assert (o.overdue, o.escalated_to) == (True, GOV)
