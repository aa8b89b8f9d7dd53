"""R8 inside the region told as stories: a move to another township's village opens the receiving
health center's answer obligation there; the answer completes it; a rejection tells both
governance centers; an acceptance changes the residence once (docs/decisions/042)."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

from domain.registry import AgencyKind
from domain.rules.r08_move_in_region import ANSWER, REJECTED, answer_id, r08_move_in_region
from tests.unit.rules.story import NOW, Story

REGION = "990101"
THERE = {AgencyKind.HEALTH_CENTER: "hc-2", AgencyKind.GOVERNANCE_CENTER: "gov-2"}


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
