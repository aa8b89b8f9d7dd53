"""R6: the medication supply runs out with no new pickup: the health center follows up the
pickup, and the care team is warned when it has run out."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from uuid import uuid4

from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, moved_id
from domain.rules.entries import supply_ends_on
from domain.rules.r06_medication_supply import R6, on_due
from domain.rules.settings import RuleSettings
from tests.unit.rules.story import NOW, Story, ago, responsible, without


def pickup(s: Story, days_ago: int, days: int = 30) -> str:
    return s.record("dispense_medication", days_ago, dispensed_on=ago(days_ago).date(), days_supplied=days)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), CHINA_TZ)


class TestOpens:
    def test_a_pickup_opens_a_follow_up_due_on_the_first_day_without_medication(self) -> None:
        s = Story()
        key = pickup(s, 10)
        (a,) = s.then(R6).opened
        assert (a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at) == (
            s.oid("R6", key, "health-center", s.version_of(key)),
            ObligationKind.OBLIGATION,
            "medication_pickup_due",
            "hc",
            key,
            midnight(ago(10).date() + timedelta(days=30)),
        )

    def test_a_pickup_in_hospital_opens_nothing_until_the_discharge(self) -> None:
        s = Story()
        s.record("admit", 20, hospital="H", admission_kind="voluntary")
        pickup(s, 15)
        assert s.then(R6) == Decisions()
        discharged = s.record("discharge", 5)
        assert {a.episode_key for a in s.then(R6).opened} == {discharged}


class TestCycles:
    def test_r6_the_supply_carries_over_and_a_run_out_warns_the_care_team(self) -> None:
        pickups = [
            {"dispensed_on": date(2026, 10, 1), "days_supplied": 30, "key": "a"},
            {"dispensed_on": date(2026, 10, 20), "days_supplied": 30, "key": "b"},
        ]
        assert supply_ends_on(pickups) == date(2026, 11, 30)
        s = Story()
        picked = s.record("dispense_medication", 40, dispensed_on=(NOW - timedelta(days=40)).date(), days_supplied=30)
        (due,) = s.then(R6).opened

        class Overdue:
            rule, id = "R6", due.id

        (warning,) = on_due(Overdue, s.history(), responsible)
        assert (warning.assignee, warning.kind, warning.id) == (
            "committee",
            ObligationKind.NOTICE,
            s.oid("R6", picked, "care-team-warning", s.patient.version),
        )
        s.record("dispense_medication", 1, dispensed_on=(NOW - timedelta(days=1)).date(), days_supplied=30)
        assert on_due(Overdue, s.history(), responsible) == []  # stale: a new pickup started a new cycle

    def test_a_cycle_moved_with_the_patient_still_warns_the_care_team_when_overdue(self) -> None:
        s = Story()
        picked = s.record("dispense_medication", 40, dispensed_on=(NOW - timedelta(days=40)).date(), days_supplied=30)
        (due,) = s.then(R6).opened
        move_id = uuid4()
        s.record(
            "report_move",
            3,
            move_id=move_id,
            destination_region="990101",
            destination_unit="v-02",
            moving_on=NOW.date(),
        )
        s.record("answer_handover", 2, move_id=move_id, accepted=True, region="990101")

        class Overdue:  # reopened for the new residence's health center (docs/decisions/042)
            rule, id = "R6", moved_id(due.id, str(move_id))

        (warning,) = on_due(Overdue, s.history(), responsible)
        assert warning.id == s.oid("R6", picked, "care-team-warning", s.version_of(picked))

    def test_the_next_pickup_completes_the_cycle_and_the_next_is_due_when_the_carried_over_supply_ends(self) -> None:
        s = Story()
        first = pickup(s, 20)
        second = pickup(s, 10)
        d = s.then(R6)
        assert d.completed == [(s.oid("R6", first, "health-center", s.version_of(first)), second)]
        assert [(a.id, a.due_at) for a in d.opened] == [
            (s.oid("R6", first, "health-center", s.version_of(second)), midnight(ago(20).date() + timedelta(days=60)))
        ]

    def test_a_late_earlier_pickup_is_the_new_anchor_and_moves_the_deadline(self) -> None:
        s = Story()
        first = pickup(s, 10)
        late = pickup(s, 40)  # recorded late, dispensed earlier: by recorded order it anchors the next cycle
        d = s.then(R6)
        assert d.completed == [(s.oid("R6", first, "health-center", s.version_of(first)), late)]
        assert [a.due_at for a in d.opened] == [midnight(ago(10).date() + timedelta(days=30))]


class TestCancelled:
    def test_an_admission_cancels_the_cycle(self) -> None:
        s = Story()
        key = pickup(s, 10)
        admitted = s.record("admit", 5, hospital="H", admission_kind="voluntary")
        assert s.then(R6) == Decisions(
            cancelled=[
                (
                    s.oid("R6", key, "health-center", s.version_of(key)),
                    "the patient was admitted to hospital (the hospital supplies the medication)",
                    admitted,
                )
            ]
        )

    def test_leaving_the_register_cancels_the_cycle(self) -> None:
        s = Story()
        key = pickup(s, 10)
        left = s.record("deregister", 5, reason="death")
        assert s.then(R6).cancelled == [
            (s.oid("R6", key, "health-center", s.version_of(key)), "the patient left the register (death)", left)
        ]


class TestFallback:
    def test_without_a_health_center_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER))
        pickup(s, 10)
        assert [(a.assignee, a.action) for a in s.then(R6).opened] == [("gov", "assign_health_center")]

    def test_with_neither_on_record_nothing_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER, AgencyKind.GOVERNANCE_CENTER))
        pickup(s, 10)
        assert s.then(R6).opened == []


class TestDeterministicIds:
    def test_the_cycle_is_numbered_by_the_pickups_stream_version(self) -> None:
        s = Story(settings=RuleSettings())
        first = pickup(s, 20)
        second = pickup(s, 10)
        assert [a.id for a in s.then(R6).opened] == [s.oid("R6", first, "health-center", s.version_of(second))]
        assert s.then(R6) == s.then(R6)
