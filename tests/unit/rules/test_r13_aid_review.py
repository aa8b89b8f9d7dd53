"""R13: hardship stated (低保 / 特困 / unable to pay treatment), or a hardship aid applied for:
civil affairs reviews aid eligibility."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Decisions
from domain.rules.r13_aid_review import R13
from domain.rules.settings import RuleSettings
from tests.unit.rules.story import NOW, Story, without


def stated(s: Story, days_ago: float, status: str = "extreme_poverty") -> str:
    return s.record("record_circumstances", days_ago, economic_status=status)


class TestOpens:
    @pytest.mark.parametrize("status", ["minimum_living_allowance", "extreme_poverty", "unable_to_pay_treatment"])
    def test_hardship_stated_opens_an_aid_review_for_civil_affairs(self, status: str) -> None:
        s = Story()
        key = stated(s, 5, status)
        (a,) = s.then(R13).opened
        assert (a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at) == (
            s.oid("R13", key, "civil-affairs"),
            ObligationKind.OBLIGATION,
            "review_aid_eligibility",
            "civil",
            key,
            NOW + timedelta(days=30),
        )

    def test_an_ordinary_household_opens_nothing(self) -> None:
        s = Story()
        stated(s, 5, "ordinary")
        assert s.then(R13) == Decisions()

    def test_an_application_for_a_hardship_aid_opens_it(self) -> None:
        s = Story()
        key = s.record("apply_for_aid", 5, aid_type="minimum_living_allowance")
        assert [(a.episode_key, a.action) for a in s.then(R13).opened] == [(key, "review_aid_eligibility")]

    def test_an_application_for_another_aid_opens_nothing(self) -> None:
        s = Story()
        s.record("apply_for_aid", 5, aid_type="temporary_aid")
        assert s.then(R13) == Decisions()

    def test_the_deadline_is_a_setting(self) -> None:
        s = Story(settings=RuleSettings(r13_aid_review=timedelta(days=10)))
        stated(s, 5)
        assert [a.due_at for a in s.then(R13).opened] == [NOW + timedelta(days=10)]


class TestCompletedAndCancelled:
    def test_r13_a_grant_completes_and_a_restated_hardship_after_a_decision_opens_nothing(self) -> None:
        s = Story()
        flagged = s.record("record_circumstances", 10, economic_status="extreme_poverty")
        assert [a.assignee for a in s.then(R13).opened] == ["civil"]
        granted = s.record("grant_aid", 5, aid_type="extreme_poverty_support")
        assert s.then(R13).completed == [(s.oid("R13", flagged, "civil-affairs"), granted)]
        s.record("record_circumstances", 1, economic_status="extreme_poverty")
        assert not s.then(R13).opened

    def test_a_finding_of_ineligibility_completes_it(self) -> None:
        s = Story()
        applied = s.record("apply_for_aid", 10, aid_type="extreme_poverty_support")
        found = s.record("find_ineligible_for_aid", 5, aid_type="extreme_poverty_support", reason="income")
        assert s.then(R13) == Decisions(completed=[(s.oid("R13", applied, "civil-affairs"), found)])

    def test_hardship_no_longer_stated_cancels_it(self) -> None:
        s = Story()
        key = stated(s, 10)
        ordinary = stated(s, 5, "ordinary")
        assert s.then(R13) == Decisions(
            cancelled=[(s.oid("R13", key, "civil-affairs"), "hardship is no longer stated", ordinary)]
        )

    def test_a_pending_application_keeps_it_open_when_hardship_is_no_longer_stated(self) -> None:
        s = Story()
        stated(s, 10)
        s.record("apply_for_aid", 8, aid_type="minimum_living_allowance")
        stated(s, 5, "ordinary")
        assert s.then(R13) == Decisions()

    def test_leaving_the_register_cancels_it(self) -> None:
        s = Story()
        key = stated(s, 10)
        left = s.record("deregister", 5, reason="death")
        assert s.then(R13).cancelled == [
            (s.oid("R13", key, "civil-affairs"), "the patient left the register (death)", left)
        ]


class TestFallback:
    def test_without_civil_affairs_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.CIVIL_AFFAIRS))
        key = stated(s, 5)
        assert [(a.id, a.assignee, a.action) for a in s.then(R13).opened] == [
            (s.oid("R13", key, "civil-affairs"), "gov", "assign_civil_affairs")
        ]

    def test_with_neither_on_record_nothing_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.CIVIL_AFFAIRS, AgencyKind.GOVERNANCE_CENTER))
        stated(s, 5)
        assert s.then(R13).opened == []


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_id(self) -> None:
        s = Story()
        key = stated(s, 5)
        assert [a.id for a in s.then(R13).opened] == [a.id for a in s.then(R13).opened]
        assert s.then(R13).opened[0].id == s.oid("R13", key, "civil-affairs")
