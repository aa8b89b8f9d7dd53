"""Moves to a region without this system: a handover with a manual counterpart (R8, decision 042),
through the real intake, on SQLite and PostgreSQL.

The patient lives in hc-north's and gov-willowbrook's village and moves to region 990303, which
runs no such system: hc-north records its contact with that region's health commission and the
answer relayed from it."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from core.registry import load_file
from domain.patient_file import NoHandoverContact, NotAManualHandover
from domain.rules.r08_move_out_manual import obtain_id
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_coordination_engine import GOV, HC, POLICE
from tests.integration.test_moves_in_region import R01, get, run_scheduler_at
from tests.integration.test_rules_care import Care

ELSEWHERE = "990303"


@pytest.fixture
def care(services) -> Care:
    load_file(services.case_record, DEMO_DISTRICT)
    c = Care(services)
    c.register()
    return c


def move_elsewhere(care: Care, *, days_ago: float = 5.0) -> str:
    move_id = str(uuid4())
    data = {"move_id": move_id, "destination_region": ELSEWHERE, "moving_on": "2026-11-15"}
    care.send(POLICE, "move.reported", data, days_ago=days_ago)
    return move_id


def contact(care: Care, move_id: str, *, days_ago: float = 4.0, agency: str = HC):
    data = {"move_id": move_id, "contacted_on": "2026-11-16", "channel": "letter", "reference": "WJW-2026-0312"}
    return care.send(agency, "handover.contact-recorded", data, days_ago=days_ago)


def answer(care: Care, move_id: str, accepted: bool, *, days_ago: float = 1.0):
    data = {"move_id": move_id, "accepted": accepted, "answered_on": "2026-11-20", "evidence": "reply letter 88/2026"}
    if not accepted:
        data["reason"] = "no residence registered there"
    return care.send(HC, "handover.answer-received", data, days_ago=days_ago)


def patient(care: Care):
    return care.services.case_record.repository.get(care.patient)


class TestMovesToARegionWithoutTheSystem:
    def test_the_contact_is_recorded_and_the_origin_owes_the_answer_by_the_deadline(self, care) -> None:
        move_id = move_elsewhere(care)
        contact(care, move_id)
        (entry,) = patient(care).facts["handover_contact"]
        assert (str(entry["move_id"]), str(entry["contacted_on"]), entry["channel"]) == (
            move_id,
            "2026-11-16",
            "letter",
        )
        assert entry["reference"].text == "WJW-2026-0312"
        o = get(care, obtain_id(care.patient, move_id))
        assert (o.assignee, o.action, o.status, o.due_at - o.created_on) == (
            HC,
            "obtain_handover_answer",
            "assigned",
            timedelta(days=30),
        )
        assert patient(care).deregistered_at is None  # the origin stays responsible

    def test_a_second_contact_keeps_the_first_deadline(self, care) -> None:
        move_id = move_elsewhere(care)
        contact(care, move_id, days_ago=4)
        due = get(care, obtain_id(care.patient, move_id)).due_at
        contact(care, move_id, days_ago=2)
        assert len(patient(care).facts["handover_contact"]) == 2
        assert get(care, obtain_id(care.patient, move_id)).due_at == due

    def test_acceptance_deregisters_the_patient_as_moved_out(self, care) -> None:
        move_id = move_elsewhere(care)
        contact(care, move_id)
        accepted = answer(care, move_id, True)
        p = patient(care)
        (dereg,) = p.facts["deregistration"]
        assert (dereg["reason"], dereg["key"]) == ("moved_out", f"{accepted.key}:moved-out")
        (relayed,) = p.facts["handover"]
        assert (relayed["accepted"], str(relayed["answered_on"]), relayed["evidence"].text) == (
            True,
            "2026-11-20",
            "reply letter 88/2026",
        )
        o = get(care, obtain_id(care.patient, move_id))
        assert (o.status, o.fulfilled_by) == ("completed", accepted.key)
        answer(care, move_id, True, days_ago=0.5)  # the same answer again records nothing
        assert len(patient(care).facts["handover"]) == 1

    def test_rejection_keeps_the_patient_and_tells_the_governance_center(self, care) -> None:
        move_id = move_elsewhere(care)
        contact(care, move_id)
        answer(care, move_id, False)
        assert patient(care).deregistered_at is None
        assert patient(care).move_status == "rejected"
        assert get(care, obtain_id(care.patient, move_id)).status == "completed"
        rows = {(r.assignee, r.kind, r.action) for r in care.rows("R8")}
        assert (GOV, "notice", "manual_move_rejected") in rows

    def test_no_answer_by_the_deadline_escalates_to_the_governance_center(self, care) -> None:
        move_id = move_elsewhere(care)
        contact(care, move_id)
        o = get(care, obtain_id(care.patient, move_id))
        run_scheduler_at(care, o.due_at + timedelta(seconds=1))
        late = get(care, obtain_id(care.patient, move_id))
        assert (late.status, late.overdue, late.escalated_to) == ("assigned", True, GOV)

    def test_an_answer_needs_the_contact_first(self, care) -> None:
        move_id = move_elsewhere(care)
        with pytest.raises(NoHandoverContact):
            answer(care, move_id, True)

    def test_a_move_inside_the_region_has_no_manual_counterpart(self, care) -> None:
        move_id = str(uuid4())
        data = {"move_id": move_id, "destination_region": "990101", "destination_unit": R01, "moving_on": "2026-11-15"}
        care.send(POLICE, "move.reported", data, days_ago=2)
        with pytest.raises(NotAManualHandover):
            contact(care, move_id, days_ago=1)
