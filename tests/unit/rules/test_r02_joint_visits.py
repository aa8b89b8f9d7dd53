"""R2: an unstable patient at home is visited jointly (health staff, care team, community police)
at least every 14 days; the committee and the police are told, and the guardian is told of the
legal duty."""

from __future__ import annotations

from datetime import timedelta

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.r02_joint_visits import R2
from domain.rules.settings import RuleSettings
from domain.values import RiskClass
from tests.unit.rules.story import NOW, Story, ago, without

UNSTABLE, STABLE = RiskClass.UNSTABLE, RiskClass.STABLE


def unstable(s: Story, days_ago: float) -> str:
    return s.record("assess_risk", days_ago, risk_level=3, risk_class=UNSTABLE)


def joint_visit(s: Story, days_ago: float, level: int = 3, cls: RiskClass = UNSTABLE) -> str:
    return s.record("record_visit", days_ago, face_to_face=True, joint=True, risk_level=level, risk_class=cls)


class TestOpens:
    def test_an_unstable_patient_at_home_opens_a_fortnightly_joint_visit_and_tells_who_must_know(self) -> None:
        s = Story()
        key = unstable(s, 3)
        v = s.version_of(key)
        got = [(a.id, a.kind, a.action, a.assignee, a.due_at) for a in s.then(R2).opened]
        assert got == [
            (s.oid("R2", key, "committee-notice"), ObligationKind.NOTICE, "joint_visits_every_14_days_notice",
             "committee", None),
            (s.oid("R2", key, "police-notice"), ObligationKind.NOTICE, "joint_visits_every_14_days_notice",
             "police", None),
            (s.oid("R2", key, "legal-duty"), ObligationKind.OBLIGATION, "tell_guardian_of_legal_duty",
             "committee", NOW + timedelta(days=14)),
            (s.oid("R2", key, "joint-visit", v), ObligationKind.OBLIGATION, "joint_visit", "hc",
             ago(3) + timedelta(days=14)),
        ]  # fmt: skip

    def test_the_interval_is_a_setting(self) -> None:
        s = Story(settings=RuleSettings(r2_joint_visit_every=timedelta(days=10)))
        unstable(s, 3)
        visit = next(a for a in s.then(R2).opened if a.action == "joint_visit")
        assert visit.due_at == ago(3) + timedelta(days=10)

    def test_a_basically_stable_or_stable_patient_opens_nothing(self) -> None:
        s = Story()
        s.record("assess_risk", 3, risk_level=1, risk_class=RiskClass.BASICALLY_STABLE)
        assert not s.then(R2).opened
        s.record("assess_risk", 2, risk_level=0, risk_class=STABLE)
        assert not s.then(R2).opened

    def test_an_unstable_patient_in_hospital_opens_nothing_until_discharged(self) -> None:
        s = Story()
        s.record("admit", 10, hospital="H", admission_kind="involuntary")
        unstable(s, 5)
        assert not s.then(R2).opened
        discharged = s.record("discharge", 2)
        assert {a.episode_key for a in s.then(R2).opened} == {discharged}


class TestCycles:
    def test_a_joint_visit_completes_the_fortnight_and_opens_the_next_from_the_visit(self) -> None:
        s = Story()
        key = unstable(s, 20)
        visit = joint_visit(s, 8)
        d = s.then(R2)
        assert d.completed == [(s.oid("R2", key, "joint-visit", s.version_of(key)), visit)]
        assert [(a.id, a.due_at) for a in d.opened] == [
            (s.oid("R2", key, "joint-visit", s.version_of(visit)), ago(8) + timedelta(days=14))
        ]

    def test_a_visit_that_is_not_joint_does_not_count(self) -> None:
        s = Story()
        unstable(s, 20)
        s.record("record_visit", 8, face_to_face=True, joint=False, risk_level=3, risk_class=UNSTABLE)
        d = s.then(R2)
        assert (d.opened, d.completed, d.cancelled) == ([], [], [])

    def test_a_joint_visit_that_finds_the_patient_stable_completes_the_fortnight_and_ends_the_episode(self) -> None:
        s = Story()
        key = unstable(s, 20)
        visit = joint_visit(s, 8, level=0, cls=STABLE)
        d = s.then(R2)
        assert d.completed == [(s.oid("R2", key, "joint-visit", s.version_of(key)), visit)]
        assert d.cancelled == [(s.oid("R2", key, "legal-duty"), "the patient is no longer unstable", visit)]
        assert not d.opened


class TestLegalDuty:
    def test_telling_the_guardian_on_or_after_the_day_the_episode_began_completes_it(self) -> None:
        s = Story()
        key = unstable(s, 20)
        told = s.record("give_legal_duty_notice", 10, given_on=ago(10).date())
        assert s.then(R2).completed == [(s.oid("R2", key, "legal-duty"), told)]

    def test_a_legal_duty_notice_from_before_the_episode_does_not_count(self) -> None:
        s = Story()
        s.record("give_legal_duty_notice", 40, given_on=ago(40).date())
        unstable(s, 20)
        assert not s.then(R2).completed


class TestCancelled:
    def test_an_admission_cancels_the_fortnight_and_the_legal_duty(self) -> None:
        s = Story()
        key = unstable(s, 20)
        admitted = s.record("admit", 5, hospital="H", admission_kind="voluntary")
        reason = "the patient was admitted to hospital"
        assert s.then(R2).cancelled == [
            (s.oid("R2", key, "joint-visit", s.version_of(key)), reason, admitted),
            (s.oid("R2", key, "legal-duty"), reason, admitted),
        ]

    def test_an_assessment_that_is_no_longer_unstable_cancels_them(self) -> None:
        s = Story()
        key = unstable(s, 20)
        better = s.record("assess_risk", 5, risk_level=1, risk_class=RiskClass.BASICALLY_STABLE)
        reason = "the patient is no longer unstable"
        assert s.then(R2).cancelled == [
            (s.oid("R2", key, "joint-visit", s.version_of(key)), reason, better),
            (s.oid("R2", key, "legal-duty"), reason, better),
        ]

    def test_leaving_the_register_cancels_them(self) -> None:
        s = Story()
        key = unstable(s, 20)
        left = s.record("deregister", 5, reason="death")
        reason = "the patient left the register (death)"
        assert s.then(R2).cancelled == [
            (s.oid("R2", key, "joint-visit", s.version_of(key)), reason, left),
            (s.oid("R2", key, "legal-duty"), reason, left),
        ]


class TestFallback:
    def test_without_a_health_center_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER))
        unstable(s, 3)
        visit = s.then(R2).opened[-1]
        assert (visit.assignee, visit.action) == ("gov", "assign_health_center")

    def test_without_a_committee_the_governance_center_must_find_one_for_the_guardian_and_nobody_is_told(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE))
        unstable(s, 3)
        assert [(a.assignee, a.action) for a in s.then(R2).opened] == [
            ("police", "joint_visits_every_14_days_notice"),
            ("gov", "assign_committee"),
            ("hc", "joint_visit"),
        ]


class TestDeterministicIds:
    def test_the_cycle_is_numbered_by_its_anchors_stream_version(self) -> None:
        s = Story()
        key = unstable(s, 20)
        visit = joint_visit(s, 8)
        assert [a.id for a in s.then(R2).opened] == [s.oid("R2", key, "joint-visit", s.version_of(visit))]
        assert s.then(R2) == s.then(R2)


class TestLegalDutyAlreadyGiven:
    def test_a_notice_already_given_on_or_after_the_day_the_episode_began_completes_it_as_it_opens(self) -> None:
        s = Story()
        told = s.record("give_legal_duty_notice", 5, given_on=ago(5).date())
        key = unstable(s, 8)  # recorded after the notice, dated before it
        d = s.then(R2)
        assert s.oid("R2", key, "legal-duty") in {a.id for a in d.opened}
        assert d.completed == [(s.oid("R2", key, "legal-duty"), told)]
