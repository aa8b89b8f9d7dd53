"""R12: a patient or family refuses visits or management: the care team's committee and the
governance center are told (notices: nothing to complete or cancel)."""

from __future__ import annotations

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Decisions
from domain.rules.r12_refusal import R12_MANAGEMENT, R12_VISITS
from tests.unit.rules.story import Story, replay, without


class TestOpens:
    def test_refusing_visits_tells_the_committee_and_the_governance_center(self) -> None:
        s = Story()
        key = s.record("record_refusal", 5, refusal="visits")
        got = [(a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at) for a in s.then(R12_VISITS).opened]
        assert got == [
            (s.oid("R12", key, "committee-notice"), ObligationKind.NOTICE, "refuses_visits_notice", "committee",
             key, None),
            (s.oid("R12", key, "governance-notice"), ObligationKind.NOTICE, "refuses_visits_notice", "gov", key,
             None),
        ]  # fmt: skip

    def test_refusing_management_tells_them_too_and_each_kind_has_its_own_rule(self) -> None:
        s = Story()
        key = s.record("record_refusal", 5, refusal="management")
        assert s.then(R12_VISITS) == Decisions()
        assert [(a.action, a.episode_key) for a in s.then(R12_MANAGEMENT).opened] == [
            ("refuses_management_notice", key),
            ("refuses_management_notice", key),
        ]

    def test_the_family_refusing_admission_is_not_r12s(self) -> None:
        s = Story()
        s.record("record_refusal", 5, refusal="admission_by_family")
        assert s.then(R12_VISITS) == s.then(R12_MANAGEMENT) == Decisions()

    def test_refusing_again_while_it_holds_tells_nobody_again(self) -> None:
        s = Story()
        s.record("record_refusal", 10, refusal="visits")
        s.record("record_refusal", 5, refusal="visits")
        assert s.then(R12_VISITS) == Decisions()


class TestEnds:
    def test_the_end_of_a_refusal_closes_nothing_and_a_new_refusal_is_a_new_episode(self) -> None:
        s = Story()
        first = s.record("record_refusal", 20, refusal="visits")
        s.record("record_refusal", 10, refusal="visits", ended=True)
        assert s.then(R12_VISITS) == Decisions()  # notices are read, not done
        again = s.record("record_refusal", 5, refusal="visits")
        assert {a.episode_key for a in s.then(R12_VISITS).opened} == {again}
        assert s.oid("R12", again, "committee-notice") != s.oid("R12", first, "committee-notice")

    def test_leaving_the_register_closes_nothing(self) -> None:
        s = Story()
        s.record("record_refusal", 20, refusal="visits")
        s.record("deregister", 5, reason="death")
        assert s.then(R12_VISITS) == Decisions()


class TestNoFallback:
    def test_a_notice_goes_only_to_an_agency_on_record_the_governance_center_assigns_nothing(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE))
        s.record("record_refusal", 5, refusal="visits")
        assert [(a.assignee, a.action) for a in s.then(R12_VISITS).opened] == [("gov", "refuses_visits_notice")]


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_ids(self) -> None:
        s = Story()
        s.record("record_refusal", 5, refusal="management")
        assert s.then(R12_MANAGEMENT) == s.then(R12_MANAGEMENT)


class TestARefusalAndItsEndAtTheSameTime:
    def test_the_end_recorded_later_at_the_same_time_ends_it_and_a_refusal_recorded_later_opens_anew(self) -> None:
        s = Story()
        first = s.record("record_refusal", 10, refusal="visits")
        s.record("record_refusal", 10, refusal="visits", ended=True)
        again = s.record("record_refusal", 10, refusal="visits")
        _, opened, ended, reopened = replay(s, R12_VISITS)
        assert {a.episode_key for a in opened.opened} == {first}
        assert ended == Decisions()
        assert {a.episode_key for a in reopened.opened} == {again}
