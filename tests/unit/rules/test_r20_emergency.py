"""R20: a patient dangerous to self or others now — the police respond within minutes, the
governance center coordinates, the care team is told; the response and the coordination
complete their parts."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from domain.obligation import ObligationKind
from domain.patient import Patient
from domain.patient_file import NoEmergency
from domain.personal import PersonalDetails, SealedText
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Trigger
from domain.rules.r20_emergency import emergency_id, r20_emergency
from domain.rules.settings import RuleSettings
from domain.values import Provenance
from tests.unit.rules.story import NOW, ago, responsible, without


class Scene:
    """A patient's facts as the committee, the health center and the police record them."""

    def __init__(self, agencies=None) -> None:
        self.n = 0
        self.agencies = agencies
        self.patient = Patient.register(uuid4(), self.by(300), NOW, PersonalDetails(name="Test Person"), "v-01")

    def by(self, days_ago: float) -> Provenance:
        self.n += 1
        return Provenance("x", None, ago(days_ago), f"x:{self.n}")

    def record(self, command: str, days_ago: float, **kw) -> str:
        by = self.by(days_ago)
        getattr(self.patient, command)(by, NOW, **kw)
        return by.message_id

    def report(self, minutes_ago: float = 5, danger: str = "to_others") -> str:
        return self.record("report_danger", minutes_ago / 1440, danger=danger, observed="MKSEEN shouting, a knife")

    def assess(self, level: int, minutes_ago: float = 5) -> str:
        return self.record("assess_risk", minutes_ago / 1440, risk_level=level, risk_class="unstable")

    def then(self, settings: RuleSettings | None = None) -> Decisions:
        last = self.patient.pending_events[-1]
        t = Trigger(self.patient.id, last.message_id, self.patient.version, NOW, "v-01", type(last).TOPIC, 1)
        who = responsible if self.agencies is None else self.agencies.get
        return r20_emergency(t, self.patient, who, settings or RuleSettings())


class TestOpens:
    def test_a_report_gives_the_police_thirty_minutes_and_governance_two_hours_and_tells_the_care_team(self) -> None:
        s = Scene()
        key = s.report()
        opened = {(a.assignee, a.kind, a.action): a for a in s.then().opened}
        assert set(opened) == {
            ("police", ObligationKind.OBLIGATION, "respond_to_emergency"),
            ("gov", ObligationKind.OBLIGATION, "coordinate_emergency"),
            ("committee", ObligationKind.NOTICE, "emergency_notice"),
            ("hc", ObligationKind.NOTICE, "emergency_notice"),
        }
        police = opened[("police", ObligationKind.OBLIGATION, "respond_to_emergency")]
        assert (police.id, police.due_at) == (emergency_id(s.patient.id, key, "police"), NOW + timedelta(minutes=30))
        assert opened[("gov", ObligationKind.OBLIGATION, "coordinate_emergency")].due_at == NOW + timedelta(hours=2)

    def test_the_minutes_are_a_setting(self) -> None:
        s = Scene()
        s.report()
        due = {a.action: a.due_at for a in s.then(RuleSettings(r20_police_response=timedelta(minutes=10))).opened}
        assert due["respond_to_emergency"] == NOW + timedelta(minutes=10)

    def test_an_assessment_at_level_four_at_home_opens_it_and_level_three_or_in_hospital_does_not(self) -> None:
        s = Scene()
        s.assess(3, minutes_ago=60)
        assert s.then() == Decisions()
        s.assess(4)
        assert "respond_to_emergency" in {a.action for a in s.then().opened}
        h = Scene()
        h.record("admit", 1, hospital="H", admission_kind="voluntary")
        h.assess(5)
        assert h.then() == Decisions()

    def test_what_was_seen_is_sealed_text_on_file(self) -> None:
        s = Scene()
        s.report(danger="to_self")
        (e,) = s.patient.facts["danger"]
        assert (e["danger"], e["observed"]) == ("to_self", SealedText(text="MKSEEN shouting, a knife"))

    def test_without_a_police_station_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Scene(agencies=without(AgencyKind.POLICE_STATION))
        s.report()
        assert ("gov", "assign_police_station") in {(a.assignee, a.action) for a in s.then().opened}


class TestTheSameEmergencyAndLateReports:
    def test_a_second_report_of_the_same_emergency_opens_nothing(self) -> None:
        s = Scene()
        s.report(minutes_ago=20)
        s.report(minutes_ago=10)
        assert s.then() == Decisions()
        s.assess(4, minutes_ago=5)
        assert s.then() == Decisions()

    def test_a_report_three_hours_after_an_earlier_one_is_a_new_emergency(self) -> None:
        s = Scene()
        s.report(minutes_ago=200)
        s.report(minutes_ago=10)
        assert s.then().opened

    def test_a_report_recorded_hours_after_it_occurred_dispatches_nobody(self) -> None:
        s = Scene()
        s.report(minutes_ago=7 * 60)
        assert s.then() == Decisions()


class TestAnswers:
    def test_the_police_response_completes_the_police_part_and_the_coordination_the_governance_part(self) -> None:
        s = Scene()
        key = s.report(minutes_ago=30)
        responded = s.record("respond_to_emergency", 10 / 1440, outcome="sent_for_treatment", action="taken to ward")
        assert s.then().completed == [(emergency_id(s.patient.id, key, "police"), responded)]
        coordinated = s.record("coordinate_emergency", 5 / 1440, measures="joint visit tomorrow")
        assert s.then().completed == [(emergency_id(s.patient.id, key, "governance"), coordinated)]

    def test_a_response_without_an_emergency_before_it_is_refused(self) -> None:
        s = Scene()
        with pytest.raises(NoEmergency):
            s.record("respond_to_emergency", 0.01, outcome="calmed_on_site")

    def test_leaving_the_register_cancels_what_is_still_open(self) -> None:
        s = Scene()
        key = s.report(minutes_ago=30)
        left = s.record("deregister", 10 / 1440, reason="death")
        assert s.then().cancelled == [
            (emergency_id(s.patient.id, key, role), "the patient left the register", left)
            for role in ("police", "governance")
        ]
