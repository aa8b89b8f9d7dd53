"""R18: a reported suspected case is assessed by the health center within 10 working days; the
assessment completes it. The subject is the case, not a patient."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID, uuid4

from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Trigger
from domain.rules.r18_suspected_case import (
    SUSPECTED_CASE_ASSESSED,
    SUSPECTED_CASE_REPORTED,
    r18_suspected_case,
    weekdays,
)
from domain.rules.settings import RuleSettings
from tests.unit.rules.story import NOW, SETTINGS, responsible, without


class Case:
    id = uuid4()


def trigger(topic: str = SUSPECTED_CASE_REPORTED, recorded_at: datetime = NOW, message_id: str = "c:1") -> Trigger:
    return Trigger(
        patient_id=Case.id,
        message_id=message_id,
        position=1,
        recorded_at=recorded_at,
        residence="v-01",
        topic=topic,
        version=1,
    )


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)


class TestWorkingDays:
    class Case:
        id = uuid4()

    def test_r18_counts_working_days_from_the_recorded_china_date_to_the_end_of_the_last_day(self) -> None:
        t = Trigger(
            patient_id=self.Case.id,
            message_id="c:1",
            position=1,
            recorded_at=NOW,
            residence="v-01",
            topic="smd.SuspectedCaseReported",
            version=1,
        )
        (a,) = r18_suspected_case(t, self.Case, responsible, SETTINGS).opened
        assert (a.assignee, a.kind, a.episode_key) == ("hc", ObligationKind.OBLIGATION, str(self.Case.id))
        assert a.due_at == datetime.combine(date(2026, 12, 5), time(0), CHINA_TZ)  # Fri 20 Nov + 10 → Fri 4 Dec

    def test_the_weekday_fallback_skips_weekends(self) -> None:
        assert weekdays(date(2026, 11, 20), 1) == date(2026, 11, 23)
        assert weekdays(date(2026, 11, 20), 10) == date(2026, 12, 4)


class TestOpens:
    def test_a_report_opens_the_assessment_for_the_health_center(self) -> None:
        (a,) = r18_suspected_case(trigger(), Case, responsible, SETTINGS).opened
        assert (a.rule, a.action, a.assignee, a.kind) == (
            "R18",
            "assess_suspected_case",
            "hc",
            ObligationKind.OBLIGATION,
        )

    def test_the_china_date_of_the_recording_counts_not_the_utc_date(self) -> None:
        late_evening_utc = datetime(2026, 11, 19, 20, 0, tzinfo=UTC)  # Friday 20 November, 04:00 in China
        (a,) = r18_suspected_case(trigger(recorded_at=late_evening_utc), Case, responsible, SETTINGS).opened
        assert a.due_at == end_of(date(2026, 12, 4))

    def test_the_region_calendar_decides_the_working_days(self) -> None:
        def every_day(start: date, n: int) -> date:
            return start + timedelta(days=n)

        (a,) = r18_suspected_case(trigger(), Case, responsible, SETTINGS, working_days=every_day).opened
        assert a.due_at == end_of(date(2026, 11, 30))

    def test_the_number_of_working_days_is_a_setting(self) -> None:
        settings = RuleSettings(r18_assess_working_days=1)
        (a,) = r18_suspected_case(trigger(), Case, responsible, settings).opened
        assert a.due_at == end_of(date(2026, 11, 23))  # Friday → Monday


class TestCompleted:
    def test_the_assessment_completes_it(self) -> None:
        d = r18_suspected_case(trigger(SUSPECTED_CASE_ASSESSED, message_id="c:2"), Case, responsible, SETTINGS)
        assert d == Decisions(completed=[(obligation_id(Case.id, "R18", str(Case.id), "health-center"), "c:2")])

    def test_registration_or_dismissal_decide_nothing_more(self) -> None:
        for topic in ("smd.SuspectedCaseRegistered", "smd.SuspectedCaseDismissed"):
            assert r18_suspected_case(trigger(topic), Case, responsible, SETTINGS) == Decisions()


class TestFallback:
    def test_without_a_health_center_on_record_the_governance_center_must_assign_one(self) -> None:
        agencies = without(AgencyKind.HEALTH_CENTER)
        (a,) = r18_suspected_case(trigger(), Case, agencies.get, SETTINGS).opened
        assert (a.assignee, a.action) == ("gov", "assign_health_center")

    def test_with_neither_on_record_nothing_opens(self) -> None:
        agencies = without(AgencyKind.HEALTH_CENTER, AgencyKind.GOVERNANCE_CENTER)
        assert r18_suspected_case(trigger(), Case, agencies.get, SETTINGS).opened == []


class TestDeterministicIds:
    def test_the_id_is_keyed_by_the_case_so_a_second_report_is_the_same_obligation(self) -> None:
        case_id = UUID("00000000-0000-4000-8000-000000000018")

        class Known:
            id = case_id

        first = r18_suspected_case(trigger(message_id="c:1"), Known, responsible, SETTINGS).opened
        again = r18_suspected_case(trigger(message_id="c:9"), Known, responsible, SETTINGS).opened
        assert (
            [a.id for a in first]
            == [a.id for a in again]
            == [obligation_id(case_id, "R18", str(case_id), "health-center")]
        )
        assert first[0].episode_key == str(case_id)
