"""R19: a patient the psychiatric hospital registers or diagnoses is taken over by the health
center (a first follow-up) within 10 working days; the governance center is told, and the
police too at level 3 or more."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from uuid import uuid4

from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind
from domain.patient import Patient
from domain.personal import PersonalDetails
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Trigger
from domain.rules.r19_hospital_new_patient import r19_hospital_new_patient, take_over_id
from domain.rules.settings import RuleSettings
from domain.values import Provenance
from tests.unit.rules.story import NOW, ago, responsible, without

KINDS = {"hc": "health_center", "hospital": "psychiatric_hospital", "police": "police_station"}


def kind_of(agency_id: str) -> str | None:
    return KINDS.get(agency_id)


class Hospital:
    """A patient's facts as the hospital and the health center record them; R19 asked of each."""

    def __init__(self, registered_by: str = "hospital", **kw) -> None:
        self.n = 0
        self.agencies = kw.get("agencies")
        self.patient = Patient.register(
            uuid4(), self.by(registered_by, 30), NOW, PersonalDetails(name="Test Person"), "v-01"
        )

    def by(self, agency: str, days_ago: float, key: str | None = None) -> Provenance:
        self.n += 1
        return Provenance(agency, None, ago(days_ago), key or f"{agency}:{self.n}")

    def record(self, agency: str, command: str, days_ago: float, key: str | None = None, **kw) -> str:
        by = self.by(agency, days_ago, key)
        getattr(self.patient, command)(by, NOW, **kw)
        return by.message_id

    def then(self, recorded_at: datetime = NOW, settings: RuleSettings | None = None) -> Decisions:
        last = self.patient.pending_events[-1]
        t = Trigger(
            patient_id=self.patient.id,
            message_id=last.message_id,
            position=self.patient.version,
            recorded_at=recorded_at,
            residence="v-01",
            topic=type(last).TOPIC,
            version=self.patient.version,
        )
        who = responsible if self.agencies is None else self.agencies.get
        return r19_hospital_new_patient(t, self.patient, kind_of, who, settings or RuleSettings())

    def visit(self, days_ago: float, level: int = 1) -> str:
        cls = "unstable" if level >= 3 else "basically_stable"
        return self.record(
            "hc", "record_visit", days_ago, face_to_face=True, joint=False, risk_level=level, risk_class=cls
        )


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)


class TestOpens:
    def test_the_hospitals_registration_gives_the_health_center_ten_working_days_and_tells_governance(self) -> None:
        h = Hospital()
        opened = h.then(recorded_at=datetime(2026, 11, 20, 2, 0, tzinfo=CHINA_TZ)).opened  # a Friday
        take_over, told = opened
        assert (take_over.id, take_over.kind, take_over.assignee, take_over.action, take_over.due_at) == (
            take_over_id(h.patient.id),
            ObligationKind.OBLIGATION,
            "hc",
            "take_over_from_hospital",
            end_of(date(2026, 12, 4)),  # ten weekdays after the Friday
        )
        assert (told.kind, told.assignee, told.action) == (
            ObligationKind.NOTICE,
            "gov",
            "hospital_new_patient_notice",
        )

    def test_a_diagnosis_pushed_by_the_hospital_opens_it_for_a_patient_the_health_center_registered(self) -> None:
        h = Hospital(registered_by="hc")
        assert h.then() == Decisions()
        h.record("hospital", "record_diagnosis", 2, diagnosis="schizophrenia")
        assert [a.action for a in h.then().opened] == ["take_over_from_hospital", "hospital_new_patient_notice"]

    def test_at_level_three_or_more_the_police_are_told_too(self) -> None:
        h = Hospital(registered_by="hc")
        h.record("hospital", "assess_risk", 3, risk_level=4, risk_class="unstable")
        h.record("hospital", "record_diagnosis", 2, diagnosis="schizophrenia")
        assert sorted(a.assignee for a in h.then().opened if a.kind == ObligationKind.NOTICE) == ["gov", "police"]

    def test_a_diagnosis_by_the_health_center_or_for_a_patient_already_visited_opens_nothing(self) -> None:
        h = Hospital(registered_by="hc")
        h.record("hc", "record_diagnosis", 2, diagnosis="schizophrenia")
        assert h.then() == Decisions()
        h.visit(1)
        h.record("hospital", "record_diagnosis", 0.5, diagnosis="schizophrenia")
        assert h.then() == Decisions()

    def test_without_a_health_center_on_record_the_governance_center_must_assign_one(self) -> None:
        h = Hospital(agencies=without(AgencyKind.HEALTH_CENTER))
        first = h.then().opened[0]
        assert (first.assignee, first.action) == ("gov", "assign_health_center")

    def test_the_working_days_come_from_the_calendar_given(self) -> None:
        h = Hospital()
        last = h.patient.pending_events[-1]
        t = Trigger(h.patient.id, last.message_id, 1, NOW, "v-01", type(last).TOPIC, 1)
        d = r19_hospital_new_patient(
            t,
            h.patient,
            kind_of,
            responsible,
            RuleSettings(r19_take_over_working_days=3),
            lambda s, n: s + timedelta(days=3 * n),
        )
        assert d.opened[0].due_at == end_of(NOW.astimezone(CHINA_TZ).date() + timedelta(days=9))


class TestCompletedAndCancelled:
    def test_the_first_visit_after_the_hospitals_fact_completes_it(self) -> None:
        h = Hospital()
        visited = h.visit(2)
        assert h.then().completed == [(take_over_id(h.patient.id), visited)]
        h.visit(1)
        assert h.then() == Decisions()  # only the first visit completes

    def test_a_late_visit_dated_before_the_hospitals_fact_does_not_complete_it(self) -> None:
        h = Hospital(registered_by="hc")
        h.record("hospital", "record_diagnosis", 5, diagnosis="schizophrenia")
        h.visit(10)
        assert h.then() == Decisions()

    def test_a_revoked_diagnosis_or_leaving_the_register_cancels_it(self) -> None:
        h = Hospital()
        revoked = h.record("hospital", "revoke_diagnosis", 2, reason="review")
        assert h.then().cancelled == [(take_over_id(h.patient.id), "the diagnosis was revoked", revoked)]
        h2 = Hospital()
        left = h2.record("hc", "deregister", 2, reason="death")
        assert h2.then().cancelled == [(take_over_id(h2.patient.id), "the patient left the register", left)]


class TestDuplicates:
    def test_a_second_push_names_the_same_obligation_so_nothing_new_opens(self) -> None:
        h = Hospital()
        first = {a.id for a in h.then().opened}
        h.record("hospital", "record_diagnosis", 1, diagnosis="schizophrenia")
        assert {a.id for a in h.then().opened} == first
