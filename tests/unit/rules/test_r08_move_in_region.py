"""R8 inside the region told as stories: a move to another township's village opens the receiving
health center's answer obligation there; the answer completes it; a rejection tells both
governance centers; an acceptance changes the residence once (docs/decisions/042)."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import Moved
from domain.rules.open_work import open_after
from domain.rules.r01_high_risk import R1
from domain.rules.r08_move_in_region import ANSWER, REJECTED, answer_id, moved_with_the_patient, r08_move_in_region
from domain.rules.state import entries_at
from domain.values import Provenance
from tests.unit.rules.story import AGENCIES, NOW, Story

REGION = "990101"
DAY = date(2026, 12, 1)
THERE = {
    AgencyKind.HEALTH_CENTER: "hc-2",
    AgencyKind.GOVERNANCE_CENTER: "gov-2",
    AgencyKind.POLICE_STATION: "police-2",
    AgencyKind.COMMITTEE: "committee-2",
}


def at(unit: str, kind: AgencyKind) -> str | None:
    return THERE.get(kind) if unit == "v-02" else None


def decide(s: Story):
    return r08_move_in_region(s.trigger(), s.patient, REGION, s.responsible, at, s.settings)


def moved(region: str = REGION) -> tuple[Story, object]:
    s = Story()
    move_id = uuid4()
    s.record(
        "report_move",
        2,
        move_id=move_id,
        destination_region=region,
        destination_unit="v-02",
        moving_on=date(2026, 12, 1),
    )
    return s, move_id


class TestR8InsideTheRegion:
    def test_a_move_opens_the_receiving_health_centers_answer_there(self) -> None:
        s, move_id = moved()
        (a,) = decide(s).opened
        assert (a.id, a.assignee, a.action, a.residence, a.due_at) == (
            answer_id(s.patient.id, move_id),
            "hc-2",
            ANSWER,
            "v-02",
            NOW + timedelta(days=14),
        )

    def test_a_move_to_another_region_is_the_handovers(self) -> None:
        s, _ = moved("990202")
        assert decide(s).opened == []

    def test_acceptance_completes_it_and_changes_the_residence_once(self) -> None:
        s, move_id = moved()
        key = s.record("answer_handover", 1, move_id=move_id, accepted=True, region=REGION)
        assert s.patient.residence == "v-02"
        s.record("answer_handover", 0.5, move_id=move_id, accepted=True, region=REGION)
        assert len(s.patient.facts["residence"]) == 1
        assert [f["previous"] for f in s.patient.facts["residence"]] == ["v-01"]
        assert key

    def test_rejection_tells_both_governance_centers_and_keeps_the_residence(self) -> None:
        s, move_id = moved()
        s.record("answer_handover", 1, move_id=move_id, accepted=False, reason="not here", region=REGION)
        d = decide(s)
        assert s.patient.residence == "v-01"
        assert [i for i, _ in d.completed] == [answer_id(s.patient.id, move_id)]
        assert {(a.assignee, a.action) for a in d.opened} == {("gov", REJECTED), ("gov-2", REJECTED)}

    def test_an_answer_without_the_region_changes_no_residence(self) -> None:
        s, move_id = moved()
        s.record("answer_handover", 1, move_id=move_id, accepted=True)  # as stored before 042
        assert s.patient.residence == "v-01"


def level_3_then(s: Story, *, managed: bool = False) -> tuple[str, object]:
    """A level-3 visit (R1 and R4 open), perhaps the police's management, then a move to v-02
    (another township: ``THERE``) that is accepted. Returns (the visit's key, the move id)."""
    visit = s.record("record_visit", 5, face_to_face=True, joint=False, risk_level=3, risk_class="unstable")
    if managed:
        s.record("take_under_management", 4)
    move_id = uuid4()
    s.record(
        "report_move",
        3,
        move_id=move_id,
        destination_region=REGION,
        destination_unit="v-02",
        moving_on=date(2026, 12, 1),
    )
    s.record("answer_handover", 2, move_id=move_id, accepted=True, region=REGION)
    s.agencies = {**AGENCIES, **THERE}  # the rules now ask the new residence's agencies
    return visit, move_id


def open_before_the_change(s: Story):
    return open_after(s.patient.pending_events[:-1], s.settings)


class TestOpenWorkMovesWithThePatient:
    def test_the_open_obligations_about_the_home_move_to_the_same_kind_there(self) -> None:
        s = Story()
        visit, move_id = level_3_then(s)
        open_now = open_before_the_change(s)
        r1, r4 = s.oid("R1", visit, "police"), s.oid("R4", "registration", "visit", s.version_of(visit))
        assert {r1, r4} <= {a.id for a in open_now}
        d = moved_with_the_patient(s.trigger(), s.patient, open_now, at)
        moved = {m.old: m for m in d.moved}
        assert moved[r1] == Moved(r1, str(move_id), "police-2", "take_under_management", "v-02")
        assert moved[r4] == Moved(r4, str(move_id), "hc-2", "follow_up_visit", "v-02")
        notices = {a.id for a in open_now if a.kind == ObligationKind.NOTICE}
        assert notices and not notices & moved.keys()  # notices stay with whom they told

    def test_an_agency_kind_missing_there_gives_it_to_the_governance_center_to_assign(self) -> None:
        s = Story()
        visit, _ = level_3_then(s)

        def no_police(unit: str, kind: AgencyKind) -> str | None:
            return None if kind == AgencyKind.POLICE_STATION else at(unit, kind)

        d = moved_with_the_patient(s.trigger(), s.patient, open_before_the_change(s), no_police)
        (m,) = [m for m in d.moved if m.old == s.oid("R1", visit, "police")]
        assert (m.assignee, m.action) == ("gov-2", "assign_police_station")

    def test_a_move_that_is_not_accepted_moves_nothing(self) -> None:
        s, move_id = moved()
        s.record("answer_handover", 1, move_id=move_id, accepted=False, reason="not here", region=REGION)
        assert (
            moved_with_the_patient(s.trigger(), s.patient, open_after(s.patient.pending_events, s.settings), at).moved
            == []
        )

    def test_r1_takes_the_patient_under_the_new_stations_management(self) -> None:
        s = Story()
        visit, move_id = level_3_then(s, managed=True)
        (m,) = s.then(R1).moved
        assert (m.old, m.move_id, m.assignee, m.action, m.due_at) == (
            s.oid("R1", visit, "police"),
            str(move_id),
            "police-2",
            "take_under_management",
            NOW + s.settings.r1_take_under_management,
        )

    def test_r1_opens_nothing_when_the_new_station_manages_the_patient_already(self) -> None:
        s = Story()
        s.record("record_visit", 5, face_to_face=True, joint=False, risk_level=3, risk_class="unstable")
        s.patient.take_under_management(Provenance("police-2", None, NOW - timedelta(days=4), "p:1"), NOW)
        s.state.fold(s.patient.version, entries_at(s.patient, s.patient.version))
        move_id = uuid4()
        s.record(
            "report_move",
            3,
            move_id=move_id,
            destination_region=REGION,
            destination_unit="v-02",
            moving_on=date(2026, 12, 1),
        )
        s.record("answer_handover", 2, move_id=move_id, accepted=True, region=REGION)
        s.agencies = {**AGENCIES, **THERE}
        assert s.then(R1).moved == []

    def test_r1_below_level_3_moves_nothing(self) -> None:
        s = Story()
        s.record("record_visit", 5, face_to_face=True, joint=False, risk_level=1, risk_class="basically_stable")
        move_id = uuid4()
        s.record(
            "report_move",
            3,
            move_id=move_id,
            destination_region=REGION,
            destination_unit="v-02",
            moving_on=date(2026, 12, 1),
        )
        s.record("answer_handover", 2, move_id=move_id, accepted=True, region=REGION)
        assert s.then(R1).moved == []
