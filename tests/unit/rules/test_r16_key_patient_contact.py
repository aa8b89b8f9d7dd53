"""R16: a key-graded patient (重点: two focus categories, or lost, or incident history, or level
≥ 3) gets a monthly care-team contact. (The focus categories themselves: tests/unit/test_focus.py.)"""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from domain.obligation import ObligationKind
from domain.personal import GuardianContact
from domain.registry import AgencyKind
from domain.rules import decide_from_file
from domain.rules.engine import IMPORTED, Decisions
from domain.rules.entries import FullHistory
from domain.rules.r16_key_patient_contact import R16
from domain.rules.settings import RuleSettings
from tests.unit.rules.story import NOW, SETTINGS, Story, ago, responsible, without


def contact(s: Story, days_ago: float, outcome: str = "reached") -> str:
    return s.record("record_care_team_contact", days_ago, role="community_worker", mode="visit", outcome=outcome)


def key_patient(s: Story) -> str:
    """Two categories (lives alone, no guardian): key-graded by the second fact; its message id."""
    s.record("record_circumstances", 30, lives_alone=True)
    return s.record("record_no_guardian", 20)


class TestOpens:
    def test_becoming_key_opens_a_monthly_contact_for_the_committee(self) -> None:
        s = Story()
        s.record("record_circumstances", 30, lives_alone=True)
        assert not s.then(R16).opened
        key = s.record("record_no_guardian", 20)
        (a,) = s.then(R16).opened
        assert (a.id, a.assignee, a.action, a.due_at) == (
            s.oid("R16", key, "committee", s.patient.version),
            "committee",
            "monthly_care_team_contact",
            NOW - timedelta(days=20) + timedelta(days=30),
        )
        assert (a.kind, a.episode_key) == (ObligationKind.OBLIGATION, key)

    def test_the_interval_is_a_setting(self) -> None:
        s = Story()
        s.record("report_incident", 10, incident_id=uuid4(), incident_kind="self_harm", severity=1)
        settings = RuleSettings(r16_contact_every=timedelta(days=14))
        (a,) = R16(s.trigger(), FullHistory(s.patient, s.patient.version), lambda k: "x", settings).opened
        assert a.due_at == NOW - timedelta(days=10) + timedelta(days=14)
        assert SETTINGS.r16_contact_every == timedelta(days=30)

    def test_one_category_alone_is_not_key_unless_it_is_lost_or_incident_history(self) -> None:
        s = Story()
        s.record("record_circumstances", 30, can_drive=True)
        assert s.then(R16) == Decisions()
        declared = s.record("declare_whereabouts_unknown", 20)
        assert [a.episode_key for a in s.then(R16).opened] == [declared]

    def test_the_lost_category_follows_r5s_threshold(self) -> None:
        two = Story(settings=RuleSettings(r5_misses_that_mean_lost=2))
        three = Story()
        for s in (two, three):
            for days in (60, 45):
                s.record("record_missed_visit", days - 1, scheduled_on=ago(days).date())
        assert [a.action for a in two.then(R16).opened] == ["monthly_care_team_contact"]
        assert three.then(R16) == Decisions()

    def test_after_a_backfill_a_key_patient_has_one_cycle_from_the_latest_imported_contact(self) -> None:
        s = Story()
        s.record("record_circumstances", 90, key="ledger:hc:1", lives_alone=True)
        key = s.record("record_no_guardian", 80, key="ledger:hc:2")
        s.record(
            "record_care_team_contact", 40, key="ledger:hc:3", role="community_worker", mode="visit", outcome="reached"
        )
        contacted = s.record(
            "record_care_team_contact", 20, key="ledger:hc:4", role="community_worker", mode="visit", outcome="reached"
        )
        assert not decide_from_file(s.trigger(), s.patient, responsible, SETTINGS).opened  # imported: decides nothing
        s.record("mark_history_imported", 0, key="import:x", ledger="x", rows=4)
        d = s.then(R16, IMPORTED)
        (a,) = d.opened
        version = next(e["v"] for e in s.patient.facts["care_team_contact"] if e["key"] == contacted)
        assert (a.id, a.due_at) == (
            s.oid("R16", key, "committee", version),
            NOW - timedelta(days=20) + timedelta(days=30),
        )
        assert s.oid("R16", key, "committee", version) not in {oid for oid, _ in d.completed}


class TestCycles:
    def test_a_contact_that_reached_the_family_completes_the_month_and_opens_the_next(self) -> None:
        s = Story()
        key = key_patient(s)
        reached = contact(s, 5)
        d = s.then(R16)
        assert d.completed == [(s.oid("R16", key, "committee", s.version_of(key)), reached)]
        assert [(a.id, a.due_at) for a in d.opened] == [
            (s.oid("R16", key, "committee", s.version_of(reached)), ago(5) + timedelta(days=30))
        ]

    def test_a_contact_that_reached_nobody_does_not_count(self) -> None:
        s = Story()
        key_patient(s)
        contact(s, 5, outcome="not_reached")
        assert s.then(R16) == Decisions()


class TestCancelled:
    def test_no_longer_key_cancels_the_month(self) -> None:
        s = Story()
        key = key_patient(s)
        capable = s.record("assign_guardian", 10, contact=GuardianContact(name="A Guardian"))
        assert s.then(R16) == Decisions(
            cancelled=[
                (s.oid("R16", key, "committee", s.version_of(key)), "the patient is no longer key-graded", capable)
            ]
        )

    def test_leaving_the_register_cancels_the_month(self) -> None:
        s = Story()
        key = key_patient(s)
        left = s.record("deregister", 5, reason="death")
        assert s.then(R16).cancelled == [
            (s.oid("R16", key, "committee", s.version_of(key)), "the patient left the register (death)", left)
        ]


class TestFallback:
    def test_without_a_committee_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE))
        key = key_patient(s)
        assert [(a.id, a.assignee, a.action) for a in s.then(R16).opened] == [
            (s.oid("R16", key, "committee", s.version_of(key)), "gov", "assign_committee")
        ]

    def test_with_neither_on_record_nothing_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE, AgencyKind.GOVERNANCE_CENTER))
        key_patient(s)
        assert s.then(R16).opened == []


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_id(self) -> None:
        s = Story()
        key_patient(s)
        assert s.then(R16) == s.then(R16)
