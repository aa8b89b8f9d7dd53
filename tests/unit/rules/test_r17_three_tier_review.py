"""R17: the three-tier review (三级三评): a community review calls for the township's within 7
days, and an unstable finding for the city's within 15."""

from __future__ import annotations

from datetime import timedelta

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Decisions
from domain.rules.r17_three_tier_review import R17_CITY, R17_TOWNSHIP
from domain.rules.settings import RuleSettings
from tests.unit.rules.story import NOW, Story, replay, without


def review(s: Story, days_ago: float, tier: str, level: int) -> str:
    cls = "stable" if level == 0 else "basically_stable" if level < 3 else "unstable"
    return s.record("record_review", days_ago, tier=tier, risk_level=level, risk_class=cls)


class TestTownshipReview:
    def test_a_community_review_opens_the_township_review_for_the_health_center(self) -> None:
        s = Story()
        key = review(s, 5, "community", 1)
        (a,) = s.then(R17_TOWNSHIP).opened
        assert (a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at, a.risk_level) == (
            s.oid("R17", key, "township"),
            ObligationKind.OBLIGATION,
            "township_review",
            "hc",
            key,
            NOW + timedelta(days=7),
            None,  # a review is not a risk assessment
        )

    def test_the_township_review_completes_it(self) -> None:
        s = Story()
        key = review(s, 5, "community", 1)
        township = review(s, 2, "township", 1)
        assert s.then(R17_TOWNSHIP) == Decisions(completed=[(s.oid("R17", key, "township"), township)])

    def test_a_township_review_dated_before_the_community_review_does_not_complete_it(self) -> None:
        s = Story()
        review(s, 5, "community", 1)
        review(s, 8, "township", 1)  # recorded late, dated before
        assert s.then(R17_TOWNSHIP) == Decisions()

    def test_leaving_the_register_cancels_it(self) -> None:
        s = Story()
        key = review(s, 5, "community", 1)
        left = s.record("deregister", 2, reason="death")
        assert s.then(R17_TOWNSHIP).cancelled == [
            (s.oid("R17", key, "township"), "the patient left the register (death)", left)
        ]

    def test_the_deadline_is_a_setting(self) -> None:
        s = Story(settings=RuleSettings(r17_township_review=timedelta(days=3), r17_city_review=timedelta(days=5)))
        review(s, 5, "community", 3)
        assert [a.due_at for a in s.then(R17_TOWNSHIP).opened] == [NOW + timedelta(days=3)]
        assert [a.due_at for a in s.then(R17_CITY).opened] == [NOW + timedelta(days=5)]


class TestCityReview:
    def test_r17_the_city_review_waits_for_an_unstable_finding(self) -> None:
        s = Story()
        s.record("record_review", 5, tier="community", risk_level=1, risk_class="basically_stable")
        assert not s.then(R17_CITY).opened
        township = s.record("record_review", 3, tier="township", risk_level=3, risk_class="unstable")
        (a,) = s.then(R17_CITY).opened
        assert (a.assignee, a.episode_key, a.due_at) == ("hospital", township, NOW + timedelta(days=15))

    def test_an_unstable_community_finding_opens_both_reviews_at_once(self) -> None:
        s = Story()
        key = review(s, 5, "community", 4)
        assert [(a.id, a.action, a.assignee) for a in s.then(R17_CITY).opened] == [
            (s.oid("R17", key, "city"), "city_review", "hospital")
        ]
        assert [a.action for a in s.then(R17_TOWNSHIP).opened] == ["township_review"]

    def test_the_city_review_completes_it(self) -> None:
        s = Story()
        key = review(s, 5, "community", 4)
        city = review(s, 1, "city", 3)
        assert s.then(R17_CITY) == Decisions(completed=[(s.oid("R17", key, "city"), city)])

    def test_a_township_review_that_no_longer_finds_the_patient_unstable_cancels_it(self) -> None:
        s = Story()
        key = review(s, 5, "community", 4)
        township = review(s, 2, "township", 1)
        assert s.then(R17_CITY) == Decisions(
            cancelled=[(s.oid("R17", key, "city"), "the latest review finds the patient not unstable", township)]
        )


class TestFallback:
    def test_without_a_health_center_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER))
        review(s, 5, "community", 1)
        assert [(a.assignee, a.action) for a in s.then(R17_TOWNSHIP).opened] == [("gov", "assign_health_center")]

    def test_without_a_psychiatric_hospital_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.PSYCHIATRIC_HOSPITAL))
        review(s, 5, "community", 4)
        assert [(a.assignee, a.action) for a in s.then(R17_CITY).opened] == [("gov", "assign_psychiatric_hospital")]

    def test_with_neither_on_record_nothing_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER, AgencyKind.GOVERNANCE_CENTER))
        review(s, 5, "community", 1)
        assert s.then(R17_TOWNSHIP).opened == []


class TestDeterministicIds:
    def test_each_community_review_keys_its_own_episode_and_deciding_again_gives_the_same_ids(self) -> None:
        s = Story()
        first = review(s, 30, "community", 1)
        review(s, 25, "township", 1)
        second = review(s, 5, "community", 1)
        assert [a.id for a in s.then(R17_TOWNSHIP).opened] == [s.oid("R17", second, "township")]
        assert s.oid("R17", second, "township") != s.oid("R17", first, "township")
        assert s.then(R17_TOWNSHIP) == s.then(R17_TOWNSHIP)


class TestReviewsAtTheSameTime:
    def test_a_township_review_at_the_community_reviews_time_recorded_later_completes_it(self) -> None:
        s = Story()
        key = review(s, 5, "community", 1)
        township = review(s, 5, "township", 1)
        *_, last = replay(s, R17_TOWNSHIP)
        assert last == Decisions(completed=[(s.oid("R17", key, "township"), township)])

    def test_a_second_community_review_at_the_same_time_recorded_later_keeps_the_episode(self) -> None:
        s = Story()
        review(s, 5, "community", 1)
        review(s, 5, "community", 2)
        *_, last = replay(s, R17_TOWNSHIP)
        assert last == Decisions()
