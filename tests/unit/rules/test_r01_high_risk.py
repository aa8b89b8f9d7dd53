"""R1: entering risk level 3 or more gives the police "take under management" (列管) and the
governance center a notice — once per episode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Trigger
from domain.rules.r01_high_risk import R1, r1_high_risk_management
from domain.rules.settings import RuleSettings
from domain.values import RiskClass
from tests.unit.rules.story import NOW as STORY_NOW
from tests.unit.rules.story import Story, replay, without

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PATIENT = uuid4()
DEMO = {AgencyKind.POLICE_STATION: "ps-north", AgencyKind.GOVERNANCE_CENTER: "gc-district"}
UNSTABLE, BASICALLY_STABLE = RiskClass.UNSTABLE, RiskClass.BASICALLY_STABLE


def trigger(message_id: str = "hc-east:m1") -> Trigger:
    return Trigger(patient_id=PATIENT, message_id=message_id, position=42, recorded_at=NOW, residence="v-01")


def decide(before, after, responsible=DEMO.get, message_id="hc-east:m1"):
    return r1_high_risk_management(trigger(message_id), before, after, responsible, RuleSettings())


def assess(s: Story, days_ago: float, level: int) -> str:
    return s.record("assess_risk", days_ago, risk_level=level, risk_class=UNSTABLE if level >= 3 else BASICALLY_STABLE)


class TestEnteringHighRisk:
    def test_entering_level_three_or_more_gives_the_police_an_obligation_with_a_deadline(self) -> None:
        police = next(a for a in decide(2, 4) if a.kind == ObligationKind.OBLIGATION)
        assert (police.assignee, police.action, police.rule) == ("ps-north", "take_under_management", "R1")
        assert police.due_at == NOW + timedelta(hours=24)
        assert police.risk_level == 4

    def test_entering_high_risk_notifies_the_governance_center_without_a_deadline(self) -> None:
        notice = next(a for a in decide(None, 3) if a.kind == ObligationKind.NOTICE)
        assert (notice.assignee, notice.action, notice.due_at) == ("gc-district", "high_risk_patient_notice", None)

    def test_staying_at_high_risk_opens_nothing_more(self) -> None:
        assert decide(4, 5) == []
        assert decide(3, 3) == []

    def test_staying_below_level_three_opens_nothing(self) -> None:
        assert decide(None, 2) == [] and decide(1, 0) == []

    def test_leaving_and_re_entering_opens_a_new_episode_keyed_by_the_re_entering_fact(self) -> None:
        first = decide(1, 4, message_id="hc-east:m1")
        assert decide(4, 1) == []
        again = decide(1, 3, message_id="hc-east:m9")
        assert {a.episode_key for a in first} == {"hc-east:m1"}
        assert {a.episode_key for a in again} == {"hc-east:m9"}
        assert {a.id for a in first}.isdisjoint({a.id for a in again})

    def test_the_obligation_id_is_the_same_when_the_same_fact_is_decided_again(self) -> None:
        assert [a.id for a in decide(2, 4)] == [a.id for a in decide(2, 4)]
        assert decide(2, 4)[0].id == obligation_id(PATIENT, "R1", "hc-east:m1", "police")

    def test_without_a_responsible_police_station_the_governance_center_must_assign_one(self) -> None:
        decided = decide(2, 4, responsible={AgencyKind.GOVERNANCE_CENTER: "gc-district"}.get)
        work = next(a for a in decided if a.kind == ObligationKind.OBLIGATION)
        assert (work.assignee, work.action) == ("gc-district", "assign_police_station")


class TestTheEpisode:
    def test_an_assessment_at_level_three_opens_the_police_obligation_and_the_governance_notice(self) -> None:
        s = Story()
        entered = assess(s, 2, 3)
        d = s.then(R1)
        assert [(a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at, a.risk_level) for a in d.opened] == [
            (
                s.oid("R1", entered, "police"),
                ObligationKind.OBLIGATION,
                "take_under_management",
                "police",
                entered,
                STORY_NOW + timedelta(hours=24),
                3,
            ),
            (
                s.oid("R1", entered, "governance-notice"),
                ObligationKind.NOTICE,
                "high_risk_patient_notice",
                "gov",
                entered,
                None,
                3,
            ),
        ]

    def test_the_deadline_is_a_setting_counted_from_when_the_service_learned_it(self) -> None:
        s = Story(settings=RuleSettings(r1_take_under_management=timedelta(hours=6)))
        assess(s, 10, 4)  # occurred ten days ago, recorded now
        (police,) = [a for a in s.then(R1).opened if a.kind == ObligationKind.OBLIGATION]
        assert police.due_at == STORY_NOW + timedelta(hours=6)

    def test_a_visit_that_assesses_level_three_opens_it_too(self) -> None:
        s = Story()
        visit = s.record("record_visit", 1, face_to_face=True, joint=False, risk_level=4, risk_class=UNSTABLE)
        assert {a.episode_key for a in s.then(R1).opened} == {visit}

    def test_a_second_high_assessment_in_the_episode_opens_nothing_more(self) -> None:
        s = Story()
        assess(s, 5, 3)
        assess(s, 2, 5)
        assert s.then(R1) == Decisions()

    def test_the_police_taking_the_patient_under_management_completes_it(self) -> None:
        s = Story()
        entered = assess(s, 5, 4)
        taken = s.record("take_under_management", 1)
        assert s.then(R1).completed == [(s.oid("R1", entered, "police"), taken)]

    def test_a_patient_already_under_police_management_has_it_completed_at_once(self) -> None:
        s = Story()
        taken = s.record("take_under_management", 30)
        entered = assess(s, 5, 3)
        d = s.then(R1)
        assert [a.action for a in d.opened] == ["take_under_management", "high_risk_patient_notice"]
        assert d.completed == [(s.oid("R1", entered, "police"), taken)]

    def test_the_level_falling_below_three_cancels_it(self) -> None:
        s = Story()
        entered = assess(s, 5, 4)
        fell = assess(s, 1, 2)
        d = s.then(R1)
        assert d.cancelled == [(s.oid("R1", entered, "police"), "the risk level fell below 3", fell)]
        assert not d.opened

    def test_leaving_the_register_cancels_it(self) -> None:
        s = Story()
        entered = assess(s, 5, 4)
        left = s.record("deregister", 1, reason="death")
        assert s.then(R1).cancelled == [(s.oid("R1", entered, "police"), "the patient left the register (death)", left)]

    def test_a_late_older_assessment_below_three_leaves_the_episode_and_its_key_alone(self) -> None:
        s = Story()
        entered = assess(s, 2, 4)
        assess(s, 10, 1)  # recorded late, dated earlier: the latest assessment is still level 4
        d = s.then(R1)
        assert (d.opened, d.cancelled) == ([], [])
        assess(s, 1, 0)
        assert [c[0] for c in s.then(R1).cancelled] == [s.oid("R1", entered, "police")]

    def test_re_entering_after_leaving_opens_a_new_episode_with_new_ids(self) -> None:
        s = Story()
        first = assess(s, 20, 3)
        assess(s, 10, 1)
        again = assess(s, 2, 5)
        d = s.then(R1)
        assert {a.episode_key for a in d.opened} == {again}
        assert s.oid("R1", again, "police") != s.oid("R1", first, "police")


class TestFallback:
    def test_without_a_police_station_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.POLICE_STATION))
        entered = assess(s, 1, 4)
        assert [(a.id, a.assignee, a.action) for a in s.then(R1).opened] == [
            (s.oid("R1", entered, "police"), "gov", "assign_police_station"),
            (s.oid("R1", entered, "governance-notice"), "gov", "high_risk_patient_notice"),
        ]

    def test_without_a_governance_center_the_police_get_the_obligation_and_nobody_a_notice(self) -> None:
        s = Story(agencies=without(AgencyKind.GOVERNANCE_CENTER))
        assess(s, 1, 4)
        assert [(a.assignee, a.action) for a in s.then(R1).opened] == [("police", "take_under_management")]

    def test_with_neither_on_record_nothing_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.POLICE_STATION, AgencyKind.GOVERNANCE_CENTER))
        assess(s, 1, 4)
        assert s.then(R1).opened == []


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_ids(self) -> None:
        s = Story()
        entered = assess(s, 1, 4)
        assert [a.id for a in s.then(R1).opened] == [a.id for a in s.then(R1).opened]
        assert [a.id for a in s.then(R1).opened] == [
            obligation_id(s.patient.id, "R1", entered, "police"),
            obligation_id(s.patient.id, "R1", entered, "governance-notice"),
        ]


class TestTwoAssessmentsAtTheSameTime:
    """Facts with the same occurred time are ordered by log position: the one recorded later decides."""

    def test_a_high_level_recorded_after_a_low_one_at_the_same_time_opens_the_episode(self) -> None:
        s = Story()
        assess(s, 3, 1)
        high = assess(s, 3, 4)  # the same occurred time, recorded later
        *_, last = replay(s, R1)
        assert [(a.action, a.episode_key) for a in last.opened] == [
            ("take_under_management", high),
            ("high_risk_patient_notice", high),
        ]
        assert s.then(R1) == last

    def test_a_low_level_recorded_after_a_high_one_at_the_same_time_cancels_it(self) -> None:
        s = Story()
        high = assess(s, 3, 4)
        low = assess(s, 3, 1)  # the same occurred time, recorded later
        *_, opened, last = replay(s, R1)
        assert {a.episode_key for a in opened.opened} == {high}
        assert last.cancelled == [(s.oid("R1", high, "police"), "the risk level fell below 3", low)]
        assert s.then(R1) == last
