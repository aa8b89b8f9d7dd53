"""R16 as stories (issue 11): a patient who becomes key-graded gets a monthly care-team contact
for the committee; a reached contact completes the cycle and opens the next; no longer key, or
off the register, cancels it; late and duplicate facts change nothing; a replay into a fresh
store decides the same. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from core.registry import load_file
from domain.obligation import obligation_id
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_coordination_engine import COMMITTEE, GOV, HC, POLICE
from tests.integration.test_rules_care import Care, deadline
from tests.support.replay import comparable, replica_of, split
from tests.support.stores import NOW

MONTH = timedelta(days=30)


@pytest.fixture
def care(services) -> Care:
    load_file(services.case_record, DEMO_DISTRICT)
    c = Care(services)
    c.register()
    return c


def circumstances(care: Care, days_ago: float, **data) -> str:
    return care.send(HC, "circumstances.recorded", data, days_ago=days_ago).key


def no_guardian(care: Care, days_ago: float, **kw) -> str:
    return care.send(COMMITTEE, "guardian.none-recorded", {}, days_ago=days_ago, **kw).key


def contact(care: Care, days_ago: float, outcome: str = "reached", **kw) -> str:
    return care.send(
        COMMITTEE,
        "care-team-contact.recorded",
        {"role": "community_worker", "mode": "visit", "outcome": outcome},
        days_ago=days_ago,
        **kw,
    ).key


def incident(care: Care, days_ago: float) -> str:
    return care.send(
        POLICE,
        "incident.reported",
        {"incident_id": str(uuid4()), "incident_kind": "minor_trouble", "severity": 1},
        days_ago=days_ago,
    ).key


def cycle(care: Care, key: str, anchor: str):
    return care.get("R16", key, "committee", care.version(anchor))


class TestR16KeyPatientContact:
    def test_a_patient_in_two_categories_becomes_key_and_the_committee_gets_a_monthly_contact(self, care) -> None:
        circumstances(care, 30, lives_alone=True)
        assert care.rows("R16") == []  # one category: on the focus list, not key
        key = no_guardian(care, 20)
        o = cycle(care, key, key)
        assert (o.assignee, o.action, o.status, o.due_at) == (
            COMMITTEE,
            "monthly_care_team_contact",
            "assigned",
            NOW - timedelta(days=20) + MONTH,
        )
        assert o.risk_level is None and len(care.rows("R16")) == 1

    def test_lost_or_an_incident_or_level_three_alone_makes_the_patient_key(self, care) -> None:
        key = incident(care, 10)
        assert cycle(care, key, key).status == "assigned"
        assert deadline(cycle(care, key, key)) < MONTH  # runs from the incident's date, not from its recording

    def test_a_reached_contact_completes_the_cycle_and_opens_the_next(self, care) -> None:
        key = incident(care, 40)
        contact(care, 20, outcome="not_reached")  # an attempt is not contact
        assert cycle(care, key, key).status == "assigned"
        reached = contact(care, 15)
        assert cycle(care, key, key).fulfilled_by == reached
        following = cycle(care, key, reached)
        assert (following.status, following.due_at) == ("assigned", NOW - timedelta(days=15) + MONTH)
        assert [r.status for r in care.rows("R16")].count("assigned") == 1

    def test_no_longer_key_cancels_it_and_becoming_key_again_is_a_new_episode(self, care) -> None:
        circumstances(care, 50, lives_alone=True)
        first = no_guardian(care, 40)
        circumstances(care, 30, lives_alone=False)
        assert cycle(care, first, first).cancel_reason == "the patient is no longer key-graded"
        second = circumstances(care, 20, can_drive=True)
        assert second != first and cycle(care, second, second).status == "assigned"
        care.deregister()
        assert "left the register (death)" in cycle(care, second, second).cancel_reason

    def test_a_late_older_contact_or_key_fact_moves_nothing(self, care) -> None:
        key = incident(care, 30)
        reached = contact(care, 10)
        contact(care, 20)  # late: older than the latest contact
        contact(care, 60)  # late: before the patient was key
        circumstances(care, 50, lives_alone=True)  # late, older: the same episode
        rows = care.rows("R16")
        assert sorted(r.status for r in rows) == ["assigned", "completed"]
        assert {r.episode_key for r in rows} == {key}
        assert cycle(care, key, reached).status == "assigned"

    def test_a_duplicate_report_opens_nothing_more(self, care) -> None:
        circumstances(care, 30, lives_alone=True)
        message = uuid4()
        key = no_guardian(care, 20, message_id=message)
        no_guardian(care, 20, message_id=message)
        contact_id = uuid4()
        reached = contact(care, 10, message_id=contact_id)
        contact(care, 10, message_id=contact_id)
        assert len(care.rows("R16")) == 2 and cycle(care, key, reached).status == "assigned"

    def test_a_month_without_contact_is_overdue_once_and_escalated(self, care) -> None:
        key = incident(care, 1)
        for scheduler in (care.scheduler(31), care.scheduler(31)):
            scheduler.run_once(force=True)
            care.services.catch_up(care.services.case_record.recorder.max_notification_id())
        (row,) = care.rows("R16")
        assert (row.overdue, row.escalated_to) == (True, GOV)
        events = list(
            care.services.case_record.events.get(
                obligation_id(care.patient, "R16", key, "committee", care.version(key))
            )
        )
        assert [type(e).TOPIC for e in events].count("smd.ObligationOverdue") == 1


DERIVED = ("smd.Obligation", "smd.Notice", "smd.LostTo")


class TestR16Replay:
    def story(self, care: Care) -> None:
        circumstances(care, 60, lives_alone=True)
        no_guardian(care, 55)
        contact(care, 40)
        circumstances(care, 35, lives_alone=False)  # no longer key
        incident(care, 30)  # key again
        contact(care, 20)
        contact(care, 25)  # late
        message = uuid4()
        contact(care, 10, message_id=message)
        contact(care, 10, message_id=message)  # duplicate
        care.send(HC, "adherence.recorded", {"adherence": "none"}, days_ago=5)

    def test_replaying_the_facts_into_a_fresh_store_decides_exactly_the_same(
        self, care, tmp_path, store_kind, request
    ) -> None:
        self.story(care)
        assert {r.status for r in care.rows("R16")} == {"assigned", "completed", "cancelled"}
        _, derived = split(care.services)
        with replica_of(care.services, store_kind, tmp_path / "replica", request) as replica:
            while replica.policies.run_once():
                pass
            _, again = split(replica)
            assert comparable(replica, again) == comparable(care.services, derived)
