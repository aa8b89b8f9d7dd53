"""R3: an unstable or basically stable patient at home: the care team mobilises the guardian to
take the patient for treatment."""

from __future__ import annotations

from datetime import timedelta

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Decisions
from domain.rules.r03_mobilise_guardian import R3
from domain.rules.settings import RuleSettings
from domain.values import RiskClass
from tests.unit.rules.story import NOW, Story, without

BASICALLY_STABLE = RiskClass.BASICALLY_STABLE


def assess(s: Story, days_ago: float, level: int) -> str:
    cls = RiskClass.STABLE if level == 0 else BASICALLY_STABLE if level < 3 else RiskClass.UNSTABLE
    return s.record("assess_risk", days_ago, risk_level=level, risk_class=cls)


def contact(s: Story, days_ago: float, outcome: str = "reached") -> str:
    return s.record("record_care_team_contact", days_ago, role="community_worker", mode="visit", outcome=outcome)


class TestOpens:
    def test_a_basically_stable_patient_at_home_opens_the_committees_mobilisation(self) -> None:
        s = Story()
        key = assess(s, 3, 1)
        (a,) = s.then(R3).opened
        assert (a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at, a.risk_level) == (
            s.oid("R3", key, "committee"),
            ObligationKind.OBLIGATION,
            "mobilise_guardian_for_treatment",
            "committee",
            key,
            NOW + timedelta(days=7),
            1,
        )

    def test_an_unstable_patient_opens_it_too_and_worsening_within_the_episode_opens_nothing_more(self) -> None:
        s = Story()
        key = assess(s, 5, 4)
        assert {a.episode_key for a in s.then(R3).opened} == {key}
        assess(s, 3, 1)
        assert s.then(R3) == Decisions()

    def test_a_stable_patient_or_one_in_hospital_opens_nothing(self) -> None:
        s = Story()
        assess(s, 10, 0)
        assert s.then(R3) == Decisions()
        s.record("admit", 8, hospital="H", admission_kind="voluntary")
        assess(s, 5, 2)
        assert s.then(R3) == Decisions()

    def test_the_deadline_is_a_setting(self) -> None:
        s = Story(settings=RuleSettings(r3_mobilise_guardian=timedelta(days=3)))
        assess(s, 3, 2)
        assert [a.due_at for a in s.then(R3).opened] == [NOW + timedelta(days=3)]


class TestCompleted:
    def test_the_care_team_reaching_the_family_completes_it(self) -> None:
        s = Story()
        key = assess(s, 10, 2)
        reached = contact(s, 5)
        assert s.then(R3).completed == [(s.oid("R3", key, "committee"), reached)]

    def test_a_contact_that_did_not_reach_anyone_does_not(self) -> None:
        s = Story()
        assess(s, 10, 2)
        contact(s, 5, outcome="not_reached")
        assert s.then(R3) == Decisions()

    def test_a_contact_dated_before_the_episode_began_does_not(self) -> None:
        s = Story()
        assess(s, 10, 2)
        contact(s, 20)  # recorded late, dated before the episode
        assert s.then(R3) == Decisions()

    def test_an_admission_completes_it(self) -> None:
        s = Story()
        key = assess(s, 10, 3)
        admitted = s.record("admit", 5, hospital="H", admission_kind="voluntary")
        assert s.then(R3) == Decisions(completed=[(s.oid("R3", key, "committee"), admitted)])


class TestCancelled:
    def test_a_stable_assessment_cancels_it(self) -> None:
        s = Story()
        key = assess(s, 10, 2)
        stable = assess(s, 5, 0)
        assert s.then(R3) == Decisions(cancelled=[(s.oid("R3", key, "committee"), "the patient is stable", stable)])

    def test_leaving_the_register_cancels_it(self) -> None:
        s = Story()
        key = assess(s, 10, 2)
        left = s.record("deregister", 5, reason="other")
        assert s.then(R3).cancelled == [(s.oid("R3", key, "committee"), "the patient left the register (other)", left)]


class TestFallback:
    def test_without_a_committee_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE))
        key = assess(s, 3, 2)
        assert [(a.id, a.assignee, a.action) for a in s.then(R3).opened] == [
            (s.oid("R3", key, "committee"), "gov", "assign_committee")
        ]

    def test_with_neither_on_record_nothing_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE, AgencyKind.GOVERNANCE_CENTER))
        assess(s, 3, 2)
        assert s.then(R3).opened == []


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_id(self) -> None:
        s = Story()
        key = assess(s, 3, 2)
        assert [a.id for a in s.then(R3).opened] == [a.id for a in s.then(R3).opened] == [s.oid("R3", key, "committee")]


class TestFulfilledAsItOpens:
    def test_a_reached_contact_already_on_record_dated_after_the_episode_began_completes_it_as_it_opens(self) -> None:
        s = Story()
        reached = contact(s, 5)
        key = assess(s, 8, 2)  # recorded after the contact, dated before it
        d = s.then(R3)
        assert [a.id for a in d.opened] == [s.oid("R3", key, "committee")]
        assert d.completed == [(s.oid("R3", key, "committee"), reached)]
