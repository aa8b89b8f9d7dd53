"""R9: a patient with no guardian, or a weak one, gets a social guardian designated by civil
affairs; the committee is told."""

from __future__ import annotations

from datetime import timedelta

from domain.obligation import ObligationKind
from domain.personal import GuardianContact
from domain.registry import AgencyKind
from domain.rules.engine import Decisions
from domain.rules.r09_social_guardian import R9
from domain.rules.settings import RuleSettings
from tests.unit.rules.story import NOW, Story, replay, without

CAPABLE = GuardianContact(name="A Guardian")


class TestOpens:
    def test_no_guardian_on_record_opens_a_designation_for_civil_affairs_and_tells_the_committee(self) -> None:
        s = Story()
        none = s.record("record_no_guardian", 3)
        work, told = s.then(R9).opened
        assert (work.id, work.kind, work.action, work.assignee, work.episode_key, work.due_at) == (
            s.oid("R9", none, "civil-affairs"),
            ObligationKind.OBLIGATION,
            "designate_social_guardian",
            "civil",
            none,
            NOW + timedelta(days=30),
        )
        assert (told.id, told.kind, told.action, told.assignee, told.episode_key, told.due_at) == (
            s.oid("R9", none, "committee-notice"),
            ObligationKind.NOTICE,
            "no_or_weak_guardian_notice",
            "committee",
            none,
            None,
        )

    def test_a_weak_guardian_opens_it_too(self) -> None:
        s = Story()
        weak = s.record("assign_guardian", 3, contact=CAPABLE, weak=True)
        assert {a.episode_key for a in s.then(R9).opened} == {weak}

    def test_a_capable_guardian_opens_nothing(self) -> None:
        s = Story()
        s.record("assign_guardian", 3, contact=CAPABLE)
        assert s.then(R9) == Decisions()

    def test_the_deadline_is_a_setting_counted_from_when_the_service_learned_it(self) -> None:
        s = Story(settings=RuleSettings(r9_designate_social_guardian=timedelta(days=10)))
        s.record("record_no_guardian", 40)
        (work,) = [a for a in s.then(R9).opened if a.kind == ObligationKind.OBLIGATION]
        assert work.due_at == NOW + timedelta(days=10)

    def test_no_guardian_after_a_weak_one_is_the_same_episode(self) -> None:
        s = Story()
        s.record("assign_guardian", 5, contact=CAPABLE, weak=True)
        s.record("record_no_guardian", 3)
        assert s.then(R9) == Decisions()


class TestCompletedAndCancelled:
    def test_a_social_guardian_designated_completes_it(self) -> None:
        s = Story()
        none = s.record("record_no_guardian", 10)
        social = s.record("designate_social_guardian", 2, designated_by="civil")
        assert s.then(R9) == Decisions(completed=[(s.oid("R9", none, "civil-affairs"), social)])

    def test_a_capable_guardian_assigned_cancels_it(self) -> None:
        s = Story()
        none = s.record("record_no_guardian", 10)
        capable = s.record("assign_guardian", 2, contact=CAPABLE)
        assert s.then(R9) == Decisions(
            cancelled=[(s.oid("R9", none, "civil-affairs"), "a capable guardian was assigned", capable)]
        )

    def test_leaving_the_register_cancels_it(self) -> None:
        s = Story()
        none = s.record("record_no_guardian", 10)
        left = s.record("deregister", 2, reason="death")
        assert s.then(R9).cancelled == [
            (s.oid("R9", none, "civil-affairs"), "the patient left the register (death)", left)
        ]

    def test_a_late_older_capable_guardian_changes_nothing(self) -> None:
        s = Story()
        s.record("record_no_guardian", 10)
        s.record("assign_guardian", 20, contact=CAPABLE)  # recorded late, dated before the "none"
        assert s.then(R9) == Decisions()

    def test_a_guardian_lost_again_opens_a_new_episode(self) -> None:
        s = Story()
        first = s.record("record_no_guardian", 30)
        s.record("assign_guardian", 20, contact=CAPABLE)
        again = s.record("assign_guardian", 5, contact=CAPABLE, weak=True)
        d = s.then(R9)
        assert {a.episode_key for a in d.opened} == {again}
        assert s.oid("R9", again, "civil-affairs") != s.oid("R9", first, "civil-affairs")


class TestFallback:
    def test_without_civil_affairs_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.CIVIL_AFFAIRS))
        none = s.record("record_no_guardian", 3)
        assert [(a.id, a.assignee, a.action) for a in s.then(R9).opened] == [
            (s.oid("R9", none, "civil-affairs"), "gov", "assign_civil_affairs"),
            (s.oid("R9", none, "committee-notice"), "committee", "no_or_weak_guardian_notice"),
        ]

    def test_without_a_committee_nobody_is_told_and_the_designation_still_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE))
        s.record("record_no_guardian", 3)
        assert [(a.assignee, a.action) for a in s.then(R9).opened] == [("civil", "designate_social_guardian")]

    def test_with_neither_civil_affairs_nor_a_governance_center_only_the_committee_is_told(self) -> None:
        s = Story(agencies=without(AgencyKind.CIVIL_AFFAIRS, AgencyKind.GOVERNANCE_CENTER))
        s.record("record_no_guardian", 3)
        assert [(a.assignee, a.action) for a in s.then(R9).opened] == [("committee", "no_or_weak_guardian_notice")]


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_ids(self) -> None:
        s = Story()
        s.record("record_no_guardian", 3)
        assert s.then(R9) == s.then(R9)
        assert [a.id for a in replay(s, R9)[-1].opened] == [a.id for a in s.then(R9).opened]


class TestFactsAtTheSameOccurredTime:
    """After "no guardian" at time T, facts dated T too are ordered by log position: the one
    recorded later is the later one. Each case is decided from the whole file and from the
    rule state folded fact by fact, with the same answer."""

    T = 7  # days ago

    def test_a_social_designation_at_the_same_time_recorded_later_completes_it(self) -> None:
        s = Story()
        none = s.record("record_no_guardian", self.T)
        social = s.record("designate_social_guardian", self.T, designated_by="civil")
        _, opened, last = replay(s, R9)
        assert [a.id for a in opened.opened] == [
            s.oid("R9", none, "civil-affairs"),
            s.oid("R9", none, "committee-notice"),
        ]
        assert last == Decisions(completed=[(s.oid("R9", none, "civil-affairs"), social)])
        assert s.then(R9) == last

    def test_a_capable_guardian_at_the_same_time_recorded_later_cancels_it(self) -> None:
        s = Story()
        none = s.record("record_no_guardian", self.T)
        capable = s.record("assign_guardian", self.T, contact=CAPABLE)
        *_, last = replay(s, R9)
        assert last == Decisions(
            cancelled=[(s.oid("R9", none, "civil-affairs"), "a capable guardian was assigned", capable)]
        )
        assert s.then(R9) == last

    def test_no_guardian_recorded_after_a_social_designation_at_the_same_time_opens_it(self) -> None:
        s = Story()
        s.record("designate_social_guardian", self.T, designated_by="civil")
        none = s.record("record_no_guardian", self.T)  # the same occurred time, recorded later: the latest
        _, designated, last = replay(s, R9)
        assert designated == Decisions()
        assert [(a.action, a.assignee, a.episode_key) for a in last.opened] == [
            ("designate_social_guardian", "civil", none),
            ("no_or_weak_guardian_notice", "committee", none),
        ]
        assert (last.completed, last.cancelled) == ([], [])
        assert s.then(R9) == last

    def test_a_capable_guardian_recorded_before_no_guardian_at_the_same_time_leaves_it_open(self) -> None:
        s = Story()
        s.record("assign_guardian", self.T, contact=CAPABLE)
        none = s.record("record_no_guardian", self.T)
        *_, last = replay(s, R9)
        assert {a.episode_key for a in last.opened} == {none}
        assert (last.completed, last.cancelled) == ([], [])
