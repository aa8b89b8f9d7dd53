"""Institutional care (集中照料救治 by civil affairs): while it lasts the patient is cared for
away from home, like a hospital stay, so the rules for patients living at home hold back."""

from __future__ import annotations

import pytest

from domain.patient_file import InvalidValue, NoInstitutionalCare
from domain.personal import SealedText
from domain.rules.engine import Decisions
from domain.rules.r02_joint_visits import R2
from domain.rules.r03_mobilise_guardian import R3
from domain.rules.r04_visit_interval import R4
from domain.rules.r06_medication_supply import R6
from tests.unit.rules.story import Story, ago, replay


def unstable(s: Story, days_ago: float) -> str:
    return s.record("record_visit", days_ago, face_to_face=True, joint=False, risk_level=3, risk_class="unstable")


def placed(s: Story, days_ago: float, care_kind: str = "homeless") -> str:
    return s.record("start_institutional_care", days_ago, place="a care home", care_kind=care_kind)


class TestTheFact:
    def test_the_place_and_the_reason_are_kept_as_sealed_text(self) -> None:
        s = Story()
        placed(s, 10)
        s.record("end_institutional_care", 2, reason="went home to the family")
        start, end = s.patient.facts["institution"]
        assert (start["started"], start["care_kind"], start["place"]) == (
            True,
            "homeless",
            SealedText(text="a care home"),
        )
        assert (end["started"], end["reason"]) == (False, SealedText(text="went home to the family"))
        assert not s.patient.in_institutional_care

    def test_the_kind_must_be_homeless_minimum_living_allowance_or_extreme_poverty(self) -> None:
        with pytest.raises(InvalidValue):
            placed(Story(), 3, care_kind="holiday")

    def test_an_end_needs_a_start_dated_at_or_before_it(self) -> None:
        s = Story()
        placed(s, 3)
        with pytest.raises(NoInstitutionalCare):
            s.record("end_institutional_care", 5)


class TestCaredForLikeAHospitalStay:
    def test_a_placement_cancels_the_joint_visits_of_an_unstable_patient_at_home(self) -> None:
        s = Story()
        opened = unstable(s, 10)
        assert s.then(R2).opened
        care = placed(s, 5)
        d = s.then(R2)
        assert d.cancelled and opened
        reasons = {(reason, by) for _, reason, by in d.cancelled}
        assert reasons == {("the patient was placed in institutional care", care)}

    def test_a_placement_completes_the_mobilisation_of_the_guardian(self) -> None:
        s = Story()
        unstable(s, 10)
        (mobilise,) = s.then(R3).opened
        care = placed(s, 5)
        assert s.then(R3).completed == [(mobilise.id, care)]

    def test_no_follow_up_visits_are_due_while_in_care_and_the_end_opens_a_new_episode(self) -> None:
        s = Story()
        placed(s, 20)
        assert s.then(R4).cancelled  # the registration's episode ends
        unstable(s, 15)
        assert s.then(R4) == Decisions()
        ended = s.record("end_institutional_care", 5)
        assert {a.episode_key for a in s.then(R4).opened} == {ended}

    def test_a_pickup_in_care_opens_nothing_and_a_placement_cancels_the_supply_follow_up(self) -> None:
        s = Story()
        picked = s.record("dispense_medication", 10, dispensed_on=ago(10).date(), days_supplied=30)
        assert s.then(R6).opened
        care = placed(s, 5)
        assert [(reason, by) for _, reason, by in s.then(R6).cancelled] == [
            ("the patient was placed in institutional care (the institution supplies the medication)", care)
        ]
        s.record("dispense_medication", 4, dispensed_on=ago(4).date(), days_supplied=30)
        assert s.then(R6) == Decisions() and picked

    def test_a_late_placement_dated_before_the_visit_still_holds_the_rules_back(self) -> None:
        s = Story()
        placed(s, 20)
        unstable(s, 10)
        assert s.then(R2) == Decisions()
        assert s.then(R3) == Decisions()

    def test_the_incremental_state_agrees_with_the_full_walk_over_a_stay(self) -> None:
        s = Story()
        unstable(s, 30)
        placed(s, 20, care_kind="extreme_poverty")
        s.record("dispense_medication", 15, dispensed_on=ago(15).date(), days_supplied=30)
        s.record("end_institutional_care", 10)
        unstable(s, 5)
        for rule in (R2, R3, R4, R6):
            replay(s, rule)
