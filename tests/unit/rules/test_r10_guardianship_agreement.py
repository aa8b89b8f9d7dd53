"""R10: the family refuses admission of a level ≥ 3 patient: the committee, the guardian and the
care team sign a guardianship agreement; the governance center is told and the health center
visits more often."""

from __future__ import annotations

from datetime import timedelta

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Decisions
from domain.rules.r10_guardianship_agreement import R10
from domain.rules.settings import RuleSettings
from domain.values import RiskClass
from tests.unit.rules.story import NOW, Story, ago, without


def assess(s: Story, days_ago: float, level: int) -> str:
    cls = RiskClass.UNSTABLE if level >= 3 else RiskClass.BASICALLY_STABLE
    return s.record("assess_risk", days_ago, risk_level=level, risk_class=cls)


def refuses(s: Story, days_ago: float, ended: bool = False) -> str:
    return s.record("record_refusal", days_ago, refusal="admission_by_family", ended=ended)


class TestOpens:
    def test_a_family_refusing_admission_at_level_three_opens_the_agreement_and_tells_who_must_know(self) -> None:
        s = Story()
        assess(s, 10, 4)
        key = refuses(s, 5)
        got = [(a.id, a.kind, a.action, a.assignee, a.due_at, a.risk_level) for a in s.then(R10).opened]
        assert got == [
            (s.oid("R10", key, "committee"), ObligationKind.OBLIGATION, "sign_guardianship_agreement", "committee",
             NOW + timedelta(days=7), 4),
            (s.oid("R10", key, "governance-notice"), ObligationKind.NOTICE, "family_refuses_admission_notice", "gov",
             None, 4),
            (s.oid("R10", key, "health-center-notice"), ObligationKind.NOTICE, "visit_more_often_notice", "hc",
             None, 4),
        ]  # fmt: skip

    def test_a_refusal_below_level_three_opens_nothing_until_the_level_rises(self) -> None:
        s = Story()
        assess(s, 10, 2)
        refuses(s, 8)
        assert s.then(R10) == Decisions()
        risen = assess(s, 5, 3)
        assert {a.episode_key for a in s.then(R10).opened} == {risen}

    def test_an_agreement_signed_before_the_refusal_began_does_not_stand_for_it(self) -> None:
        s = Story()
        s.record("sign_guardianship_agreement", 30, signed_on=ago(30).date())
        assess(s, 10, 4)
        key = refuses(s, 5)
        assert {a.episode_key for a in s.then(R10).opened} == {key}

    def test_an_agreement_already_signed_since_the_refusal_began_leaves_nothing_to_open(self) -> None:
        s = Story()
        refuses(s, 10)
        s.record("sign_guardianship_agreement", 8, signed_on=ago(8).date())
        assess(s, 5, 4)
        assert s.then(R10) == Decisions()

    def test_the_deadline_is_a_setting(self) -> None:
        s = Story(settings=RuleSettings(r10_sign_agreement=timedelta(days=2)))
        assess(s, 10, 4)
        refuses(s, 5)
        assert [a.due_at for a in s.then(R10).opened if a.kind == ObligationKind.OBLIGATION] == [
            NOW + timedelta(days=2)
        ]


class TestCompletedAndCancelled:
    def test_the_agreement_signed_completes_it(self) -> None:
        s = Story()
        assess(s, 10, 4)
        key = refuses(s, 8)
        signed = s.record("sign_guardianship_agreement", 5, signed_on=ago(5).date())
        assert s.then(R10) == Decisions(completed=[(s.oid("R10", key, "committee"), signed)])

    def test_the_family_no_longer_refusing_cancels_it(self) -> None:
        s = Story()
        assess(s, 10, 4)
        key = refuses(s, 8)
        ended = refuses(s, 5, ended=True)
        assert s.then(R10) == Decisions(
            cancelled=[(s.oid("R10", key, "committee"), "the family no longer refuses admission", ended)]
        )

    def test_the_level_falling_below_three_cancels_it(self) -> None:
        s = Story()
        assess(s, 10, 4)
        key = refuses(s, 8)
        fell = assess(s, 5, 2)
        reason = "the risk level fell below 3"
        assert s.then(R10) == Decisions(cancelled=[(s.oid("R10", key, "committee"), reason, fell)])

    def test_leaving_the_register_cancels_it(self) -> None:
        s = Story()
        assess(s, 10, 4)
        key = refuses(s, 8)
        left = s.record("deregister", 5, reason="death")
        assert s.then(R10).cancelled == [
            (s.oid("R10", key, "committee"), "the patient left the register (death)", left)
        ]


class TestFallback:
    def test_without_a_committee_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE))
        assess(s, 10, 4)
        key = refuses(s, 5)
        work = s.then(R10).opened[0]
        assert (work.id, work.assignee, work.action) == (s.oid("R10", key, "committee"), "gov", "assign_committee")

    def test_without_a_health_center_nobody_is_told_to_visit_more_often(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER))
        assess(s, 10, 4)
        refuses(s, 5)
        assert [a.action for a in s.then(R10).opened] == [
            "sign_guardianship_agreement",
            "family_refuses_admission_notice",
        ]


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_ids(self) -> None:
        s = Story()
        assess(s, 10, 4)
        refuses(s, 5)
        assert s.then(R10) == s.then(R10)
