"""R5: a patient lost to follow-up (失访) — three consecutive missed visits, or whereabouts
declared unknown — is located by the police; the governance center is told."""

from __future__ import annotations

from datetime import timedelta

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Decisions
from domain.rules.r05_lost_to_follow_up import R5
from domain.rules.settings import RuleSettings
from domain.values import RiskClass
from tests.unit.rules.story import NOW, Story, ago, replay, without


def miss(s: Story, days_ago: int) -> str:
    return s.record("record_missed_visit", days_ago - 1, scheduled_on=ago(days_ago).date())


def visit(s: Story, days_ago: float) -> str:
    return s.record("record_visit", days_ago, face_to_face=True, joint=False, risk_level=0, risk_class=RiskClass.STABLE)


def lost(s: Story, *days: int) -> str:
    """Misses on these days; the message id of the last."""
    return [miss(s, d) for d in days][-1]


class TestDerivedFromMisses:
    def test_the_third_consecutive_miss_makes_the_patient_lost_and_opens_the_search(self) -> None:
        s = Story()
        lost(s, 60, 45)
        assert s.then(R5) == Decisions()
        key = miss(s, 30)
        d = s.then(R5)
        assert d.lost == [("derived", s.oid("R5", key, "lost"), key)]
        assert [(a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at) for a in d.opened] == [
            (s.oid("R5", key, "police"), ObligationKind.OBLIGATION, "locate_patient", "police", key,
             NOW + timedelta(days=3)),
            (s.oid("R5", key, "governance-notice"), ObligationKind.NOTICE, "lost_to_follow_up_notice", "gov", key,
             None),
        ]  # fmt: skip

    def test_the_threshold_and_the_deadline_are_settings(self) -> None:
        s = Story(settings=RuleSettings(r5_misses_that_mean_lost=2, r5_locate=timedelta(days=1)))
        miss(s, 60)
        key = miss(s, 45)
        d = s.then(R5)
        assert {a.episode_key for a in d.opened} == {key}
        assert [a.due_at for a in d.opened if a.kind == ObligationKind.OBLIGATION] == [NOW + timedelta(days=1)]

    def test_misses_before_the_latest_visit_do_not_count(self) -> None:
        s = Story()
        lost(s, 90, 80)
        visit(s, 70)
        lost(s, 60, 45)
        assert s.then(R5) == Decisions()

    def test_a_fourth_miss_opens_nothing_more(self) -> None:
        s = Story()
        lost(s, 60, 45, 30)
        miss(s, 15)
        assert s.then(R5) == Decisions()

    def test_a_visit_after_the_misses_ends_the_episode_and_completes_the_search(self) -> None:
        s = Story()
        key = lost(s, 60, 45, 30)
        seen = visit(s, 5)
        d = s.then(R5)
        assert d.lost == [("ended", s.oid("R5", key, "lost"), seen)]
        assert d.completed == [(s.oid("R5", key, "police"), seen)]

    def test_a_late_visit_between_the_misses_withdraws_the_lost_status_and_cancels_the_search(self) -> None:
        s = Story()
        key = lost(s, 60, 45, 30)
        late = visit(s, 50)  # recorded late: the misses were not consecutive
        d = s.then(R5)
        assert d.lost == [("withdrawn", s.oid("R5", key, "lost"), late)]
        assert d.cancelled == [
            (s.oid("R5", key, "police"), "a late report shows the missed visits were not consecutive", late)
        ]

    def test_located_by_declaration_completes_a_search_that_began_with_misses(self) -> None:
        s = Story()
        key = lost(s, 60, 45, 30)
        located = s.record("declare_located", 5)
        assert s.then(R5).completed == [(s.oid("R5", key, "police"), located)]


class TestDeclared:
    def test_whereabouts_declared_unknown_opens_the_search(self) -> None:
        s = Story()
        key = s.record("declare_whereabouts_unknown", 5)
        d = s.then(R5)
        assert [(a.id, a.action) for a in d.opened] == [
            (s.oid("R5", key, "police"), "locate_patient"),
            (s.oid("R5", key, "governance-notice"), "lost_to_follow_up_notice"),
        ]
        assert d.lost == []  # the declaration is the agency's fact; nothing is derived

    def test_declared_located_completes_it(self) -> None:
        s = Story()
        key = s.record("declare_whereabouts_unknown", 10)
        located = s.record("declare_located", 5)
        assert s.then(R5) == Decisions(completed=[(s.oid("R5", key, "police"), located)])

    def test_a_late_older_located_declaration_changes_nothing(self) -> None:
        s = Story()
        s.record("declare_whereabouts_unknown", 10)
        s.record("declare_located", 20)
        assert s.then(R5) == Decisions()


class TestCancelled:
    def test_leaving_the_register_cancels_both_searches(self) -> None:
        s = Story()
        misses = lost(s, 60, 45, 30)
        declared = s.record("declare_whereabouts_unknown", 10)
        left = s.record("deregister", 5, reason="death")
        reason = "the patient left the register (death)"
        assert s.then(R5).cancelled == [
            (s.oid("R5", misses, "police"), reason, left),
            (s.oid("R5", declared, "police"), reason, left),
        ]


class TestFallback:
    def test_without_a_police_station_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.POLICE_STATION))
        key = s.record("declare_whereabouts_unknown", 5)
        assert [(a.id, a.assignee, a.action) for a in s.then(R5).opened] == [
            (s.oid("R5", key, "police"), "gov", "assign_police_station"),
            (s.oid("R5", key, "governance-notice"), "gov", "lost_to_follow_up_notice"),
        ]

    def test_with_neither_on_record_nothing_opens_but_the_lost_status_is_still_derived(self) -> None:
        s = Story(agencies=without(AgencyKind.POLICE_STATION, AgencyKind.GOVERNANCE_CENTER))
        key = lost(s, 60, 45, 30)
        d = s.then(R5)
        assert (d.opened, d.lost) == ([], [("derived", s.oid("R5", key, "lost"), key)])


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_ids(self) -> None:
        s = Story()
        lost(s, 60, 45, 30)
        assert s.then(R5) == s.then(R5)


class TestDeclarationsAtTheSameTime:
    """At the same occurred time, the declaration recorded later is the latest."""

    def test_located_recorded_after_unknown_at_the_same_time_completes_the_search(self) -> None:
        s = Story()
        unknown = s.record("declare_whereabouts_unknown", 5)
        located = s.record("declare_located", 5)
        *_, opened, last = replay(s, R5)
        assert {a.episode_key for a in opened.opened} == {unknown}
        assert last == Decisions(completed=[(s.oid("R5", unknown, "police"), located)])

    def test_unknown_recorded_after_located_at_the_same_time_opens_the_search(self) -> None:
        s = Story()
        s.record("declare_located", 5)
        unknown = s.record("declare_whereabouts_unknown", 5)
        *_, last = replay(s, R5)
        assert [(a.action, a.episode_key) for a in last.opened] == [
            ("locate_patient", unknown),
            ("lost_to_follow_up_notice", unknown),
        ]
