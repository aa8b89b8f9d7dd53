"""R1: entering risk level 3 or more gives the police "take under management" and the
governance center a notice — once per episode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Trigger
from domain.rules.r01_high_risk import r1_high_risk_management
from domain.rules.settings import RuleSettings

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PATIENT = uuid4()
DEMO = {AgencyKind.POLICE_STATION: "ps-north", AgencyKind.GOVERNANCE_CENTER: "gc-district"}


def trigger(message_id: str = "hc-east:m1") -> Trigger:
    return Trigger(patient_id=PATIENT, message_id=message_id, position=42, recorded_at=NOW, residence="v-01")


def decide(before, after, responsible=DEMO.get, message_id="hc-east:m1"):
    return r1_high_risk_management(trigger(message_id), before, after, responsible, RuleSettings())


class TestEnteringHighRisk:
    def test_entering_level_three_or_more_gives_the_police_an_obligation_with_a_deadline(self) -> None:
        police = next(a for a in decide(2, 4) if a.kind == ObligationKind.OBLIGATION)
        assert (police.assignee, police.action, police.rule) == ("ps-north", "take_under_management", "R1")
        assert police.due_at == NOW + timedelta(hours=24)
        assert police.risk_level == 4

    def test_entering_high_risk_notifies_the_governance_center_without_a_deadline(self) -> None:
        notice = next(a for a in decide(None, 3) if a.kind == ObligationKind.NOTICE)
        assert (notice.assignee, notice.action, notice.due_at) == ("gc-district", "high_risk_patient_notice", None)

    def test_staying_at_high_risk_opens_nothing_more(self) -> None:
        assert decide(4, 5) == []
        assert decide(3, 3) == []

    def test_staying_below_level_three_opens_nothing(self) -> None:
        assert decide(None, 2) == [] and decide(1, 0) == []

    def test_leaving_and_re_entering_opens_a_new_episode_keyed_by_the_re_entering_fact(self) -> None:
        first = decide(1, 4, message_id="hc-east:m1")
        assert decide(4, 1) == []
        again = decide(1, 3, message_id="hc-east:m9")
        assert {a.episode_key for a in first} == {"hc-east:m1"}
        assert {a.episode_key for a in again} == {"hc-east:m9"}
        assert {a.id for a in first}.isdisjoint({a.id for a in again})

    def test_the_obligation_id_is_the_same_when_the_same_fact_is_decided_again(self) -> None:
        assert [a.id for a in decide(2, 4)] == [a.id for a in decide(2, 4)]
        assert decide(2, 4)[0].id == obligation_id(PATIENT, "R1", "hc-east:m1", "police")

    def test_without_a_responsible_police_station_the_governance_center_must_assign_one(self) -> None:
        decided = decide(2, 4, responsible={AgencyKind.GOVERNANCE_CENTER: "gc-district"}.get)
        work = next(a for a in decided if a.kind == ObligationKind.OBLIGATION)
        assert (work.assignee, work.action) == ("gc-district", "assign_police_station")
