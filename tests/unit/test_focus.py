"""The ten focus categories (R16) from their facts, and the key grade. (R16 as a rule:
tests/unit/rules/test_r16_key_patient_contact.py.)"""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from domain.focus import (
    CAN_DRIVE,
    CATEGORIES,
    EXTREME_POVERTY,
    FAMILY_HISTORY,
    FORCED_ADMISSION,
    INCIDENT_HISTORY,
    IRREGULAR_MEDICATION,
    LIVES_ALONE,
    LOST,
    NO_OR_WEAK_GUARDIAN,
    REFUSES_VISITS,
    categories,
    grade,
    is_key,
)
from domain.identity import CHINA_TZ
from domain.personal import GuardianContact
from domain.values import RiskClass
from tests.unit.rules.story import NOW, Story


def cats(s: Story, days_later: float = 0) -> frozenset[str]:
    return categories(s.patient, NOW + timedelta(days=days_later))


class TestCategories:
    def test_a_new_patient_is_in_no_category_and_not_key(self) -> None:
        s = Story()
        assert cats(s) == frozenset()
        assert grade(s.patient, NOW) == {"categories": [], "risk_level": None, "key": False}

    @pytest.mark.parametrize("adherence, expected", [("intermittent", True), ("none", True), ("regular", False)])
    def test_irregular_or_no_medication_by_the_latest_adherence(self, adherence: str, expected: bool) -> None:
        s = Story()
        s.record("record_adherence", 30, adherence="regular" if expected else "none")
        s.record("record_adherence", 10, adherence=adherence)
        assert (IRREGULAR_MEDICATION in cats(s)) is expected

    def test_a_supply_that_ran_out_is_irregular_medication_until_the_next_pickup_or_in_hospital(self) -> None:
        s = Story()
        s.record("dispense_medication", 40, dispensed_on=(NOW - timedelta(days=40)).date(), days_supplied=30)
        run_out = (NOW - timedelta(days=10)).astimezone(CHINA_TZ)
        assert IRREGULAR_MEDICATION not in categories(s.patient, run_out - timedelta(days=2))
        assert IRREGULAR_MEDICATION in cats(s)
        s.record("dispense_medication", 1, dispensed_on=(NOW - timedelta(days=1)).date(), days_supplied=30)
        assert IRREGULAR_MEDICATION not in cats(s)
        assert IRREGULAR_MEDICATION in cats(s, days_later=31)
        s.record("admit", 0.5, hospital="h", admission_kind="voluntary")
        assert IRREGULAR_MEDICATION not in cats(s, days_later=31)  # the hospital supplies it

    def test_a_late_earlier_pickup_counts_as_if_it_had_come_in_order(self) -> None:
        in_order, late = Story(), Story()
        for s, dates in ((in_order, (60, 40, 20)), (late, (40, 20, 60))):
            for days in dates:
                s.record(
                    "dispense_medication", days, dispensed_on=(NOW - timedelta(days=days)).date(), days_supplied=25
                )
        for days_later in (0, 10, 14, 16, 20):
            assert cats(in_order, days_later) == cats(late, days_later), days_later
        assert IRREGULAR_MEDICATION not in cats(late, 14) and IRREGULAR_MEDICATION in cats(late, 16)

    def test_the_stated_circumstances_by_their_latest_statement(self) -> None:
        s = Story()
        s.record("record_circumstances", 30, lives_alone=True, can_drive=True, family_history=True)
        assert cats(s) == {LIVES_ALONE, CAN_DRIVE, FAMILY_HISTORY}
        s.record("record_circumstances", 20, lives_alone=False)  # only this one restated
        assert cats(s) == {CAN_DRIVE, FAMILY_HISTORY}
        s.record("record_circumstances", 25, can_drive=False)  # recorded late, still newer than the first
        assert cats(s) == {FAMILY_HISTORY}

    def test_no_or_weak_guardian_and_not_a_capable_or_social_one(self) -> None:
        s = Story()
        s.record("record_no_guardian", 30)
        assert cats(s) == {NO_OR_WEAK_GUARDIAN}
        s.record("designate_social_guardian", 20, designated_by="committee")
        assert cats(s) == frozenset()
        s.record("assign_guardian", 10, contact=GuardianContact(name="G"), weak=True)
        assert cats(s) == {NO_OR_WEAK_GUARDIAN}
        s.record("assign_guardian", 5, contact=GuardianContact(name="G"))
        assert cats(s) == frozenset()

    def test_lost_by_declaration_or_by_consecutive_misses_and_not_after_a_visit(self) -> None:
        s = Story()
        s.record("declare_whereabouts_unknown", 50)
        assert cats(s) == {LOST}
        s.record("declare_located", 45)
        assert cats(s) == frozenset()
        for days in (40, 30):
            s.record("record_missed_visit", days - 1, scheduled_on=(NOW - timedelta(days=days)).date())
        assert LOST not in cats(s)
        s.record("record_missed_visit", 19, scheduled_on=(NOW - timedelta(days=20)).date())
        assert cats(s) == {LOST}
        assert LOST not in categories(s.patient, NOW, lost_after=4)  # R5's threshold, as set
        s.record("record_visit", 10, face_to_face=True, joint=False, risk_level=0, risk_class=RiskClass.STABLE)
        assert cats(s) == frozenset()

    def test_refusing_visits_or_management_while_it_holds(self) -> None:
        s = Story()
        s.record("record_refusal", 30, refusal="visits")
        assert cats(s) == {REFUSES_VISITS}
        s.record("record_refusal", 20, refusal="visits", ended=True)
        assert cats(s) == frozenset()
        s.record("record_refusal", 10, refusal="management")
        assert cats(s) == {REFUSES_VISITS}
        s.record("record_refusal", 5, refusal="admission_by_family")
        assert cats(s) == {REFUSES_VISITS}

    def test_forced_admission_and_incident_history_stay_on_record(self) -> None:
        s = Story()
        s.record("admit", 60, hospital="h", admission_kind="voluntary")
        assert cats(s) == frozenset()
        s.record("admit", 40, hospital="h", admission_kind="involuntary")
        s.record("discharge", 30)
        s.record("report_incident", 20, incident_id=uuid4(), incident_kind="minor_trouble", severity=1)
        assert cats(s) == {FORCED_ADMISSION, INCIDENT_HISTORY}

    def test_extreme_poverty_stated_or_support_pending_or_granted(self) -> None:
        s = Story()
        s.record("record_circumstances", 50, economic_status="minimum_living_allowance")
        assert cats(s) == frozenset()
        s.record("record_circumstances", 40, economic_status="extreme_poverty")
        assert cats(s) == {EXTREME_POVERTY}
        s.record("record_circumstances", 35, economic_status="ordinary")
        s.record("apply_for_aid", 30, aid_type="extreme_poverty_support")
        assert cats(s) == {EXTREME_POVERTY}
        s.record("find_ineligible_for_aid", 20, aid_type="extreme_poverty_support", reason="income")
        assert cats(s) == frozenset()
        s.record("grant_aid", 10, aid_type="extreme_poverty_support")
        assert cats(s) == {EXTREME_POVERTY}

    def test_as_of_an_occurred_time_later_facts_do_not_count_and_arrival_order_does_not_matter(self) -> None:
        a, b = Story(), Story()
        a.record("record_circumstances", 30, lives_alone=True)
        a.record("record_circumstances", 10, lives_alone=False)
        b.record("record_circumstances", 10, lives_alone=False)
        b.record("record_circumstances", 30, lives_alone=True)  # late, older
        assert cats(a) == cats(b) == frozenset()
        assert categories(a.patient, NOW - timedelta(days=20)) == {LIVES_ALONE}

    def test_the_ten_categories_are_named_once(self) -> None:
        assert len(set(CATEGORIES)) == 10


class TestKeyGrade:
    @pytest.mark.parametrize(
        "categories_, level, key",
        [
            (set(), None, False),
            ({LIVES_ALONE}, 2, False),
            ({LIVES_ALONE, CAN_DRIVE}, None, True),
            ({LOST}, None, True),
            ({INCIDENT_HISTORY}, 0, True),
            (set(), 3, True),
            ({FAMILY_HISTORY}, 5, True),
        ],
    )
    def test_two_categories_or_lost_or_incident_history_or_level_three(self, categories_, level, key) -> None:
        assert is_key(categories_, level) is key

    def test_the_grade_shows_the_categories_in_order_with_the_level(self) -> None:
        s = Story()
        s.record("record_circumstances", 30, can_drive=True, lives_alone=True)
        s.record("record_visit", 5, face_to_face=True, joint=False, risk_level=1, risk_class=RiskClass.BASICALLY_STABLE)
        assert grade(s.patient, NOW) == {"categories": [LIVES_ALONE, CAN_DRIVE], "risk_level": 1, "key": True}
