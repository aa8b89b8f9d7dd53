"""The Patient aggregate's rules, each named after the behaviour it enforces."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from domain.errors import (
    MissedVisitNotYetDue,
    OccurredInFuture,
    OccurredWithoutTimezone,
    RiskClassInconsistentWithLevel,
    RiskLevelOutOfRange,
    UnknownDiagnosis,
)
from domain.patient import Patient
from domain.personal import PersonalDetails
from domain.values import Provenance, RiskClass

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def by(occurred_at: datetime = NOW, n: int = 1) -> Provenance:
    return Provenance(agency_id="hc-east", staff_id="s-07", occurred_at=occurred_at, message_id=f"hc-east:{n}")


def registered() -> Patient:
    return Patient.register(uuid4(), by(NOW - timedelta(days=30)), NOW, PersonalDetails(name="Test Person"), "v-01")


class TestRiskAssessment:
    @pytest.mark.parametrize("level", [-1, 6, 99])
    def test_a_risk_level_outside_zero_to_five_is_refused(self, level: int) -> None:
        with pytest.raises(RiskLevelOutOfRange, match="0-5"):
            registered().assess_risk(by(), NOW, risk_level=level, risk_class=RiskClass.UNSTABLE)

    @pytest.mark.parametrize("cls", [RiskClass.STABLE, RiskClass.BASICALLY_STABLE])
    def test_a_level_three_or_more_patient_must_be_classed_unstable(self, cls: RiskClass) -> None:
        with pytest.raises(RiskClassInconsistentWithLevel, match="level 4 the class is unstable"):
            registered().assess_risk(by(), NOW, risk_level=4, risk_class=cls)

    def test_a_level_one_or_two_patient_cannot_be_classed_stable(self) -> None:
        with pytest.raises(RiskClassInconsistentWithLevel, match="basically_stable or unstable"):
            registered().record_visit(
                by(), NOW, face_to_face=True, joint=False, risk_level=2, risk_class=RiskClass.STABLE
            )

    @pytest.mark.parametrize("cls", list(RiskClass))
    def test_a_level_zero_patient_may_have_any_class(self, cls: RiskClass) -> None:
        patient = registered()
        patient.assess_risk(by(), NOW, risk_level=0, risk_class=cls)
        assert patient.risk_class == cls

    def test_the_latest_assessment_by_occurred_time_sets_the_current_level(self) -> None:
        patient = registered()
        patient.assess_risk(by(NOW - timedelta(days=1), 2), NOW, risk_level=4, risk_class=RiskClass.UNSTABLE)
        # a report that arrives later but happened earlier does not override the newer one
        patient.assess_risk(by(NOW - timedelta(days=5), 3), NOW, risk_level=1, risk_class=RiskClass.BASICALLY_STABLE)
        assert (patient.risk_level, patient.risk_class) == (4, RiskClass.UNSTABLE)


class TestTimes:
    def test_a_visit_dated_in_the_future_beyond_the_clock_skew_is_refused(self) -> None:
        with pytest.raises(OccurredInFuture, match="after the server time"):
            registered().record_visit(
                by(NOW + timedelta(hours=1)),
                NOW,
                face_to_face=True,
                joint=False,
                risk_level=0,
                risk_class=RiskClass.STABLE,
            )

    def test_a_visit_a_little_ahead_of_our_clock_is_accepted(self) -> None:
        patient = registered()
        patient.record_visit(
            by(NOW + timedelta(minutes=2)),
            NOW,
            face_to_face=True,
            joint=False,
            risk_level=0,
            risk_class=RiskClass.STABLE,
        )
        assert patient.last_visit_at == NOW + timedelta(minutes=2)

    def test_a_time_without_utc_offset_is_refused(self) -> None:
        with pytest.raises(OccurredWithoutTimezone, match="UTC offset"):
            registered().assess_risk(by(datetime(2026, 11, 1, 9, 0)), NOW, risk_level=0, risk_class=RiskClass.STABLE)

    def test_a_visit_cannot_be_reported_missed_before_its_scheduled_day(self) -> None:
        with pytest.raises(MissedVisitNotYetDue, match="cannot be missed yet"):
            registered().record_missed_visit(by(), NOW, scheduled_on=date(2026, 11, 25))


class TestMissedVisits:
    def test_a_second_report_of_the_same_scheduled_visit_is_the_same_fact(self) -> None:
        patient = registered()
        assert patient.record_missed_visit(by(n=2), NOW, scheduled_on=date(2026, 11, 10)) is True
        assert patient.record_missed_visit(by(n=3), NOW, scheduled_on=date(2026, 11, 10)) is False
        assert patient.consecutive_missed_visits == 1

    def test_a_visit_that_took_place_ends_the_run_of_missed_visits(self) -> None:
        patient = registered()
        patient.record_missed_visit(by(n=2), NOW, scheduled_on=date(2026, 11, 1))
        patient.record_missed_visit(by(n=3), NOW, scheduled_on=date(2026, 11, 8))
        assert patient.consecutive_missed_visits == 2
        # a late report of a visit on 11-05 breaks the run: only the 11-08 miss follows it
        patient.record_visit(
            by(datetime(2026, 11, 5, 10, tzinfo=UTC), 4),
            NOW,
            face_to_face=True,
            joint=True,
            risk_level=0,
            risk_class=RiskClass.STABLE,
        )
        assert patient.consecutive_missed_visits == 1
        assert patient.last_joint_visit_at == datetime(2026, 11, 5, 10, tzinfo=UTC)


class TestRegistration:
    def test_an_unknown_diagnosis_is_refused_with_the_six_disorders_listed(self) -> None:
        with pytest.raises(UnknownDiagnosis, match="schizophrenia"):
            Patient.register(uuid4(), by(), NOW, PersonalDetails(name="X"), "v-01", diagnosis="flu")

    def test_every_event_carries_who_recorded_it_and_both_times(self) -> None:
        patient = registered()
        patient.assess_risk(by(NOW - timedelta(hours=3), 9), NOW, risk_level=0, risk_class=RiskClass.STABLE)
        event = patient.collect_events()[-1]
        assert (event.agency_id, event.staff_id, event.message_id) == ("hc-east", "s-07", "hc-east:9")
        assert event.occurred_at == NOW - timedelta(hours=3)
        assert event.recorded_at == NOW
