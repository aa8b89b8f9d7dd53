"""R11: a discharged patient gets a first follow-up visit from the health center (no 出院即失管)."""

from __future__ import annotations

from datetime import timedelta

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Decisions
from domain.rules.r11_after_discharge import R11
from domain.rules.settings import RuleSettings
from domain.values import RiskClass
from tests.unit.rules.story import NOW, Story, replay, without


def stay(s: Story, admitted: float, discharged: float) -> str:
    s.record("admit", admitted, hospital="H", admission_kind="voluntary")
    return s.record("discharge", discharged)


class TestOpens:
    def test_a_discharge_opens_the_first_follow_up_for_the_health_center(self) -> None:
        s = Story()
        key = stay(s, 20, 5)
        (a,) = s.then(R11).opened
        assert (a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at) == (
            s.oid("R11", key, "health-center"),
            ObligationKind.OBLIGATION,
            "first_follow_up_after_discharge",
            "hc",
            key,
            NOW + timedelta(days=7),
        )

    def test_the_deadline_is_a_setting(self) -> None:
        s = Story(settings=RuleSettings(r11_first_follow_up=timedelta(days=3)))
        stay(s, 20, 5)
        assert [a.due_at for a in s.then(R11).opened] == [NOW + timedelta(days=3)]


class TestCompleted:
    def test_r11_opens_on_a_discharge_completes_on_a_later_visit_and_ignores_an_older_one(self) -> None:
        s = Story()
        s.record("admit", 20, hospital="H", admission_kind="voluntary")
        discharged = s.record("discharge", 5)
        d = s.then(R11)
        assert [(a.rule, a.assignee, a.due_at) for a in d.opened] == [("R11", "hc", NOW + timedelta(days=7))]
        s.record("record_visit", 8, face_to_face=True, joint=False, risk_level=1, risk_class=RiskClass.BASICALLY_STABLE)
        assert not s.then(R11).completed
        visit = s.record(
            "record_visit", 1, face_to_face=True, joint=False, risk_level=1, risk_class=RiskClass.BASICALLY_STABLE
        )
        assert s.then(R11).completed == [(s.oid("R11", discharged, "health-center"), visit)]


class TestCancelled:
    def test_a_new_admission_cancels_it(self) -> None:
        s = Story()
        key = stay(s, 20, 10)
        again = s.record("admit", 5, hospital="H", admission_kind="involuntary")
        assert s.then(R11) == Decisions(
            cancelled=[(s.oid("R11", key, "health-center"), "the patient was admitted to hospital again", again)]
        )

    def test_leaving_the_register_cancels_it(self) -> None:
        s = Story()
        key = stay(s, 20, 10)
        left = s.record("deregister", 5, reason="death")
        assert s.then(R11).cancelled == [
            (s.oid("R11", key, "health-center"), "the patient left the register (death)", left)
        ]


class TestFallback:
    def test_without_a_health_center_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER))
        key = stay(s, 20, 5)
        assert [(a.id, a.assignee, a.action) for a in s.then(R11).opened] == [
            (s.oid("R11", key, "health-center"), "gov", "assign_health_center")
        ]

    def test_with_neither_on_record_nothing_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER, AgencyKind.GOVERNANCE_CENTER))
        stay(s, 20, 5)
        assert s.then(R11).opened == []


class TestDeterministicIds:
    def test_each_stay_has_its_own_id_and_deciding_again_gives_the_same(self) -> None:
        s = Story()
        first = stay(s, 40, 30)
        s.record("record_visit", 25, face_to_face=True, joint=False, risk_level=0, risk_class=RiskClass.STABLE)
        second = stay(s, 20, 10)
        assert [a.id for a in s.then(R11).opened] == [s.oid("R11", second, "health-center")]
        assert s.oid("R11", first, "health-center") != s.oid("R11", second, "health-center")
        assert s.then(R11) == s.then(R11)


class TestAVisitAtTheSameTimeAsTheDischarge:
    """At the same occurred time, the fact recorded later is the later one."""

    def test_a_visit_recorded_before_the_discharge_at_the_same_time_is_not_after_it(self) -> None:
        s = Story()
        s.record("admit", 20, hospital="H", admission_kind="voluntary")
        s.record("record_visit", 5, face_to_face=True, joint=False, risk_level=0, risk_class=RiskClass.STABLE)
        discharged = s.record("discharge", 5)
        *_, last = replay(s, R11)
        assert [a.episode_key for a in last.opened] == [discharged]

    def test_a_visit_recorded_after_the_discharge_at_the_same_time_completes_it(self) -> None:
        s = Story()
        s.record("admit", 20, hospital="H", admission_kind="voluntary")
        discharged = s.record("discharge", 5)
        visit = s.record("record_visit", 5, face_to_face=True, joint=False, risk_level=0, risk_class=RiskClass.STABLE)
        *_, last = replay(s, R11)
        assert last == Decisions(completed=[(s.oid("R11", discharged, "health-center"), visit)])
