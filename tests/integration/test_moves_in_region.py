"""Moves inside one deployment (R8 inside the region) and the police notice (R7), through the
real intake, on SQLite and PostgreSQL (docs/decisions/042).

The patient lives in hc-north's, police-east's and gov-willowbrook's village (Willowbrook) and
moves to Reedmarsh (990101-002-v01: hc-reedmarsh, police-reedmarsh, gov-reedmarsh)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from core.registry import load_file
from core.scheduler import Scheduler
from domain.jurisdiction import OutsideJurisdiction
from domain.obligation import obligation_id
from domain.rules.engine import moved_id
from domain.rules.r07_police_notice import acknowledge_id, notify_id
from domain.rules.r08_move_in_region import answer_id
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_coordination_engine import GOV, HC, POLICE, VILLAGE
from tests.integration.test_rules_care import Care
from tests.support.replay import comparable, replica_of, split

R01 = "990101-002-v01"
HC_R, POLICE_R, GOV_R = "hc-reedmarsh", "police-reedmarsh", "gov-reedmarsh"


@pytest.fixture
def care(services) -> Care:
    load_file(services.case_record, DEMO_DISTRICT)
    c = Care(services)
    c.register()
    return c


def move(care: Care, level: int | None = None, *, days_ago: float = 1.0) -> str:
    if level is not None:
        care.visit(level, days_ago=days_ago + 1)
    move_id = str(uuid4())
    data = {"move_id": move_id, "destination_region": "990101", "destination_unit": R01, "moving_on": "2026-11-15"}
    care.send(POLICE, "move.reported", data, days_ago=days_ago)
    return move_id


def get(care: Care, oid):
    return care.services.case_record.repository.get(oid)


def run_scheduler_at(care: Care, when) -> None:
    s = care.services
    Scheduler(s.case_record, s.registry, s.work_queue, lambda: when).run_once(force=True)


class TestMovesInsideTheRegion:
    def test_a_move_gives_the_receiving_health_center_an_answer_obligation(self, care) -> None:
        move_id = move(care)
        o = get(care, answer_id(care.patient, move_id))
        assert (o.assignee, o.action, o.residence, o.due_at - o.created_on) == (
            HC_R,
            "accept_or_reject_move",
            R01,
            timedelta(days=14),
        )

    def test_acceptance_changes_the_residence_and_the_responsible_agencies(self, care) -> None:
        move_id = move(care)
        accepted = care.send(HC_R, "handover.accepted", {"move_id": move_id}, days_ago=0.5)
        assert get(care, answer_id(care.patient, move_id)).fulfilled_by == accepted.key
        patient = care.services.case_record.repository.get(care.patient)
        assert patient.residence == R01
        (change,) = patient.facts["residence"]
        assert (change["previous"], change["residence"], str(change["move_id"])) == (VILLAGE, R01, move_id)
        # the rules now ask Reedmarsh's agencies: a level-3 visit by hc-reedmarsh opens R1 for its police
        key = care.send(
            HC_R,
            "visit.recorded",
            {"face_to_face": True, "joint": False, "risk_level": 3, "risk_class": "unstable"},
            days_ago=0.2,
        ).key
        assert {r.assignee for r in care.rows("R1") if r.trigger_message_id == key} >= {POLICE_R}

    def test_after_acceptance_writes_follow_the_new_residence(self, care) -> None:
        move_id = move(care, days_ago=3)
        care.send(HC_R, "handover.accepted", {"move_id": move_id}, days_ago=2)
        visit = {"face_to_face": True, "joint": False, "risk_level": 0, "risk_class": "stable"}
        assert care.send(HC_R, "visit.recorded", visit, days_ago=0.2).is_new
        with pytest.raises(OutsideJurisdiction):  # hc-north no longer covers a visit after the acceptance
            care.send(HC, "visit.recorded", visit, days_ago=0.1)
        assert care.send(HC, "visit.recorded", visit, days_ago=4).is_new  # before the acceptance: its own work

    def test_rejection_tells_both_governance_centers_and_the_origin_stays_responsible(self, care) -> None:
        move_id = move(care)
        care.send(HC_R, "handover.rejected", {"move_id": move_id, "reason": "not living here"}, days_ago=0.5)
        assert get(care, answer_id(care.patient, move_id)).status == "completed"
        assert care.services.case_record.repository.get(care.patient).residence == VILLAGE
        rows = {(r.assignee, r.kind, r.action) for r in care.rows("R8")}
        assert {(GOV, "notice", "move_rejected"), (GOV_R, "notice", "move_rejected")} <= rows

    def test_no_answer_escalates_on_both_sides(self, care) -> None:
        move_id = move(care)
        o = get(care, answer_id(care.patient, move_id))
        run_scheduler_at(care, o.due_at + timedelta(seconds=1))
        late = get(care, answer_id(care.patient, move_id))
        assert (late.overdue, late.escalated_to) == (True, GOV_R)
        rows = {(r.assignee, r.kind, r.action) for r in care.rows("R8")}
        assert (GOV, "notice", "move_unanswered") in rows

    def test_a_move_to_another_region_opens_no_in_region_obligation(self, care) -> None:
        move_id = str(uuid4())
        data = {"move_id": move_id, "destination_region": "990202", "moving_on": "2026-11-15"}
        care.send(POLICE, "move.reported", data, days_ago=1)
        assert care.get("R8", move_id, "destination") is None


class TestR7PoliceNotice:
    def test_a_level_3_patient_leaving_gives_both_police_stations_an_obligation(self, care) -> None:
        move_id = move(care, level=3)
        notify = get(care, notify_id(care.patient, move_id))
        ack = get(care, acknowledge_id(care.patient, move_id))
        assert (notify.assignee, notify.action, notify.due_at - notify.created_on) == (
            POLICE,
            "notify_destination_police",
            timedelta(hours=24),
        )
        assert (ack.assignee, ack.action, ack.residence, ack.due_at - ack.created_on) == (
            POLICE_R,
            "acknowledge_police_notice",
            R01,
            timedelta(hours=72),
        )

    def test_a_lower_level_patient_leaving_opens_no_police_notice(self, care) -> None:
        move_id = move(care, level=2)
        assert care.get("R7", move_id, "origin-police") is None
        assert care.get("R7", move_id, "destination-police") is None

    def test_no_acknowledgement_escalates_on_both_sides(self, care) -> None:
        move_id = move(care, level=4)
        ack = get(care, acknowledge_id(care.patient, move_id))
        run_scheduler_at(care, ack.due_at + timedelta(seconds=1))
        late = get(care, acknowledge_id(care.patient, move_id))
        assert (late.overdue, late.escalated_to) == (True, GOV_R)
        notify = get(care, notify_id(care.patient, move_id))
        assert (notify.overdue, notify.escalated_to) == (True, GOV)
        rows = {(r.assignee, r.kind, r.action) for r in care.rows("R7")}
        assert {
            (POLICE, "notice", "police_notice_unacknowledged"),
            (GOV, "notice", "police_notice_unacknowledged"),
        } <= rows

    def test_the_destination_police_acknowledge_by_completing_it(self, care) -> None:
        move_id = move(care, level=3)
        s = care.services
        o = s.case_record.repository.get(acknowledge_id(care.patient, move_id))
        o.complete(o.due_at - timedelta(hours=1), fulfilled_by=None, by_agency=POLICE_R, note="acknowledged")
        s.case_record.save(o)
        assert get(care, acknowledge_id(care.patient, move_id)).status == "completed"


def level_3_and_moved(care: Care, *, accepted: bool = True):
    """A level-3 visit by hc-north (R1 open for police-east, an R4 cycle for hc-north), then a move
    to Reedmarsh that hc-reedmarsh answers. Returns (R1's id, R4's cycle id, the move id)."""
    visit = care.visit(3, days_ago=3)
    r1 = obligation_id(care.patient, "R1", visit, "police")
    r4 = obligation_id(care.patient, "R4", "registration", "visit", care.version(visit))
    move_id = move(care, days_ago=2)
    answer = "handover.accepted" if accepted else "handover.rejected"
    data = {"move_id": move_id} if accepted else {"move_id": move_id, "reason": "not living here"}
    care.send(HC_R, answer, data, days_ago=1)
    return r1, r4, move_id


class TestOpenWorkMovesWithThePatient:
    def test_the_open_obligations_are_cancelled_and_reopened_for_the_new_agencies(self, care) -> None:
        r1, r4, move_id = level_3_and_moved(care)
        for old, new_owner in ((r1, POLICE_R), (r4, HC_R)):
            before, after = get(care, old), get(care, moved_id(old, move_id))
            assert (before.status, before.cancel_reason) == ("cancelled", f"moved: now {new_owner}'s")
            assert (after.status, after.assignee, after.residence) == ("assigned", new_owner, R01)
            assert (after.rule, after.action, after.episode_key, after.due_at) == (
                before.rule,
                before.action,
                before.episode_key,
                before.due_at,
            )
        # notices stay with whom they told; R7's and R8's own obligations stay
        assert {r.assignee for r in care.rows("R1") if r.kind == "notice"} == {GOV}
        assert get(care, notify_id(care.patient, move_id)).assignee == POLICE

    def test_the_new_agencies_work_completes_the_reopened_obligations(self, care) -> None:
        r1, r4, move_id = level_3_and_moved(care)
        visit = care.send(
            HC_R,
            "visit.recorded",
            {"face_to_face": True, "joint": False, "risk_level": 3, "risk_class": "unstable"},
            days_ago=0.5,
        ).key
        cycle = get(care, moved_id(r4, move_id))
        assert (cycle.status, cycle.fulfilled_by) == ("completed", visit)
        following = get(care, obligation_id(care.patient, "R4", "registration", "visit", care.version(visit)))
        assert (following.assignee, following.status) == (HC_R, "assigned")
        managed = care.send(POLICE_R, "patient.taken-under-management", {}, days_ago=0.4).key
        taken = get(care, moved_id(r1, move_id))
        assert (taken.status, taken.fulfilled_by) == ("completed", managed)
        assert get(care, r1).status == "cancelled"  # the old one stays as it was cancelled

    def test_a_patient_under_the_old_stations_management_is_taken_under_the_new_ones(self, care) -> None:
        visit = care.visit(3, days_ago=4)
        r1 = obligation_id(care.patient, "R1", visit, "police")
        care.send(POLICE, "patient.taken-under-management", {}, days_ago=3.5)
        assert get(care, r1).status == "completed"
        move_id = move(care, days_ago=2)
        care.send(HC_R, "handover.accepted", {"move_id": move_id}, days_ago=1)
        again = get(care, moved_id(r1, move_id))
        assert (again.assignee, again.action, again.status) == (POLICE_R, "take_under_management", "assigned")
        assert again.due_at - again.created_on == timedelta(hours=24)

    def test_a_rejected_move_moves_nothing(self, care) -> None:
        r1, r4, move_id = level_3_and_moved(care, accepted=False)
        assert (get(care, r1).assignee, get(care, r1).status) == (POLICE, "assigned")
        assert (get(care, r4).assignee, get(care, r4).status) == (HC, "assigned")
        assert care.services.case_record.existing({moved_id(r1, move_id), moved_id(r4, move_id)}) == set()

    def test_a_replay_of_the_rules_decides_the_same(self, care, store_kind, tmp_path, request) -> None:
        _, _, _ = level_3_and_moved(care)
        care.send(
            HC_R,
            "visit.recorded",
            {"face_to_face": True, "joint": False, "risk_level": 3, "risk_class": "unstable"},
            days_ago=0.5,
        )
        care.send(POLICE_R, "patient.taken-under-management", {}, days_ago=0.4)
        _, derived = split(care.services)
        with replica_of(care.services, store_kind, tmp_path / "replica", request) as replica:
            while replica.policies.run_once(limit=1):  # one fact at a time: a state rebuilt at every step
                replica.policies.states.forget()
            _, again = split(replica)
            assert comparable(replica, again) == comparable(care.services, derived)
