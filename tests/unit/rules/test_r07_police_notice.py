"""R7 told as stories: a level ≥ 3 patient reported moving to another station's village inside
the region gives the origin police a notify obligation and the destination police an
acknowledge obligation; lower levels, other regions and one station on both sides open nothing."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

from domain.patient import RiskClass
from domain.registry import AgencyKind
from domain.rules.r07_police_notice import ACKNOWLEDGE, NOTIFY, acknowledge_id, notify_id, r07_police_notice
from tests.unit.rules.story import NOW, Story

REGION = "990101"
ELSEWHERE = {AgencyKind.POLICE_STATION: "police-2", AgencyKind.GOVERNANCE_CENTER: "gov-2"}


def at_destination(unit: str, kind: AgencyKind) -> str | None:
    if unit == "v-01":  # the residence's own village: the same agencies
        return Story().responsible(kind)
    return ELSEWHERE.get(kind) if unit == "v-02" else None


def moving(level: int, region: str = REGION, unit: str = "v-02"):
    s = Story()
    s.record("record_visit", 3, face_to_face=True, joint=False, risk_level=level, risk_class=RiskClass.UNSTABLE)
    move_id = uuid4()
    s.record(
        "report_move",
        1,
        move_id=move_id,
        destination_region=region,
        destination_unit=unit,
        moving_on=date(2026, 11, 25),
    )
    return s, move_id, r07_police_notice(s.trigger(), s.patient, REGION, s.responsible, at_destination, s.settings)


class TestR7:
    def test_level_3_leaving_gives_origin_police_notify_and_destination_police_acknowledge(self) -> None:
        s, move_id, d = moving(3)
        got = {(a.id, a.assignee, a.action, a.residence, a.due_at) for a in d.opened}
        assert got == {
            (notify_id(s.patient.id, move_id), "police", NOTIFY, None, NOW + timedelta(hours=24)),
            (acknowledge_id(s.patient.id, move_id), "police-2", ACKNOWLEDGE, "v-02", NOW + timedelta(hours=72)),
        }

    def test_level_2_leaving_opens_nothing(self) -> None:
        assert moving(2)[2].opened == []

    def test_a_move_to_another_region_is_not_this_rule_yet(self) -> None:
        assert moving(4, region="990202")[2].opened == []

    def test_one_station_on_both_sides_has_nobody_else_to_tell(self) -> None:
        assert moving(4, unit="v-01")[2].opened == []

    def test_deregistration_cancels_both(self) -> None:
        s, move_id, _ = moving(3)
        s.record("deregister", 0.5, reason="death")
        d = r07_police_notice(s.trigger(), s.patient, REGION, s.responsible, at_destination, s.settings)
        assert {i for i, _, _ in d.cancelled} == {
            notify_id(s.patient.id, move_id),
            acknowledge_id(s.patient.id, move_id),
        }
