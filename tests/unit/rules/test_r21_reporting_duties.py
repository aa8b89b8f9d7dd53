"""R21: reports owed by a date each period (Qingyang 三、保障措施: monthly by the 25th; Jiaobei
卫生院 5: quarterly on 3/28, 6/28, 9/28, 12/28; Jiaobei 村居 2(2): the committees' monthly
suspected-case report). Not about a patient: the scheduler opens each period's duty, a report
completes it. The first duty owed falls due after the agency joined, never before."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time

import pytest

from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind
from domain.rule_settings import RuleSettingsState, decode
from domain.rules.r21_reporting_duties import (
    RULE,
    Duty,
    duty_obligation_id,
    owed,
    owes,
    period_label_error,
    period_start,
)
from domain.rules.settings import RuleSettings


def at(y: int, m: int, d: int, hour: int = 0) -> datetime:
    return datetime.combine(date(y, m, d), time(hour), CHINA_TZ)


def defaults(_day: date) -> RuleSettings:
    return RuleSettings()


def labels(found: list) -> list[tuple[str, str, datetime]]:
    return [(str(p.duty), p.label, p.due_at) for p, _ in found]


class TestTheMonthlyProgressReport:
    def test_r21_a_department_owes_its_progress_report_by_the_end_of_the_25th(self) -> None:
        found = owed("dept-1", "department", defaults, since=at(2026, 11, 29), until=at(2026, 12, 1))
        assert labels(found) == [("monthly_progress", "2026-12", at(2026, 12, 26))]
        period, a = found[0]
        assert period.opens_at == at(2026, 12, 1)
        assert (a.rule, a.action, a.assignee, a.kind) == (
            RULE,
            "submit_monthly_report",
            "dept-1",
            ObligationKind.OBLIGATION,
        )
        assert a.id == duty_obligation_id("dept-1", Duty.MONTHLY_PROGRESS, "2026-12")

    def test_r21_nothing_opens_before_its_period_begins(self) -> None:
        assert owed("dept-1", "department", defaults, since=at(2026, 11, 29), until=at(2026, 11, 30, 23)) == []

    def test_r21_the_first_duty_falls_due_after_the_agency_joined_never_before(self) -> None:
        # joined on 11-26: November's report was due by the end of 11-25, before it joined
        found = owed("dept-1", "department", defaults, since=at(2026, 11, 26), until=at(2026, 11, 30))
        assert found == []
        # joined on 11-25 in the morning: November's report is still owed, by the end of that day
        found = owed("dept-1", "department", defaults, since=at(2026, 11, 25, 9), until=at(2026, 11, 30))
        assert labels(found) == [("monthly_progress", "2026-11", at(2026, 11, 26))]

    def test_r21_every_period_since_joining_is_owed_once_each(self) -> None:
        found = owed("police-1", "police_station", defaults, since=at(2026, 1, 10), until=at(2026, 4, 2))
        assert [label for _, label, _ in labels(found)] == ["2026-01", "2026-02", "2026-03", "2026-04"]
        assert len({a.id for _, a in found}) == 4

    def test_r21_the_day_is_the_months_last_when_the_month_is_shorter(self) -> None:
        settings = replace(RuleSettings(), r21_monthly_report_day=31)
        found = owed("dept-1", "department", lambda _d: settings, since=at(2027, 2, 1), until=at(2027, 2, 2))
        assert labels(found) == [("monthly_progress", "2027-02", at(2027, 3, 1))]


class TestTheQuarterlyReport:
    def test_r21_the_health_center_owes_its_quarterly_report_on_the_28th_of_the_quarters_last_month(self) -> None:
        found = owed("hc-1", "health_center", defaults, since=at(2026, 11, 29), until=at(2026, 12, 1))
        assert ("quarterly_report", "2026-Q4", at(2026, 12, 29)) in labels(found)
        assert ("monthly_progress", "2026-12", at(2026, 12, 26)) in labels(found)

    def test_r21_a_quarter_opens_on_its_first_day(self) -> None:
        found = owed("hc-1", "health_center", defaults, since=at(2026, 12, 30), until=at(2027, 1, 1))
        quarterly = [(p.label, p.opens_at, p.due_at) for p, _ in found if p.duty == Duty.QUARTERLY_REPORT]
        assert quarterly == [("2027-Q1", at(2027, 1, 1), at(2027, 3, 29))]


class TestTheCommitteesSuspectedCaseReport:
    def test_r21_a_committee_owes_a_suspected_case_report_each_month_by_its_last_day(self) -> None:
        found = owed("committee-1", "committee", defaults, since=at(2026, 11, 29), until=at(2027, 1, 1))
        assert labels(found) == [
            ("suspected_cases", "2026-11", at(2026, 12, 1)),
            ("suspected_cases", "2026-12", at(2027, 1, 1)),
            ("suspected_cases", "2027-01", at(2027, 2, 1)),
        ]


class TestWhoOwesWhat:
    @pytest.mark.parametrize("kind", ["governance_center", "psychiatric_hospital", "auditor"])
    def test_r21_kinds_the_settings_do_not_name_owe_nothing(self, kind: str) -> None:
        assert owed("x", kind, defaults, since=at(2026, 1, 1), until=at(2026, 12, 31)) == []

    def test_r21_a_duty_named_in_the_settings_from_a_date_is_owed_from_the_first_due_date_on_or_after_it(self) -> None:
        state = RuleSettingsState("990101")
        state.apply(date(2027, 2, 1), {"r21_monthly_report_kinds": "department,governance_center"})
        found = owed("gov-1", "governance_center", state.settings, since=at(2026, 12, 1), until=at(2027, 3, 1))
        assert [label for _, label, _ in labels(found)] == ["2027-02", "2027-03"]

    def test_r21_an_empty_list_retires_the_duty(self) -> None:
        settings = replace(RuleSettings(), r21_suspected_case_report_kinds="")
        assert owed("committee-1", "committee", lambda _d: settings, since=at(2026, 1, 1), until=at(2026, 6, 1)) == []

    def test_r21_a_settings_file_naming_an_unknown_kind_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown agency kinds"):
            decode("r21_monthly_report_kinds", "department,township_office")
        with pytest.raises(ValueError, match="day of the month"):
            decode("r21_monthly_report_day", 40)


class TestReports:
    def test_r21_a_report_names_the_period_of_its_duty(self) -> None:
        assert period_label_error(Duty.MONTHLY_PROGRESS, "2026-12") is None
        assert period_label_error(Duty.MONTHLY_PROGRESS, "2026-Q4") is not None
        assert period_label_error(Duty.QUARTERLY_REPORT, "2026-Q4") is None
        assert period_label_error(Duty.QUARTERLY_REPORT, "2026-12") is not None
        assert period_start(Duty.QUARTERLY_REPORT, "2026-Q4") == at(2026, 10, 1)

    def test_r21_a_report_for_an_owed_period_names_the_same_obligation_the_scheduler_opens(self) -> None:
        found = owes("dept-1", "department", Duty.MONTHLY_PROGRESS, "2026-12", defaults, since=at(2026, 11, 29))
        assert found is not None
        _, a = found
        ((_, scheduled),) = owed("dept-1", "department", defaults, since=at(2026, 11, 29), until=at(2026, 12, 2))
        assert a == scheduled

    def test_r21_a_report_for_a_period_due_before_joining_or_not_owed_completes_nothing(self) -> None:
        assert owes("dept-1", "department", Duty.MONTHLY_PROGRESS, "2026-11", defaults, since=at(2026, 11, 29)) is None
        assert owes("dept-1", "department", Duty.QUARTERLY_REPORT, "2026-Q4", defaults, since=at(2026, 11, 1)) is None
        assert (
            owes("hc-1", "health_center", Duty.QUARTERLY_REPORT, "2026-Q4", defaults, since=at(2026, 11, 1)) is not None
        )

    def test_r21_one_obligation_per_agency_duty_and_period(self) -> None:
        ids = {
            duty_obligation_id(agency, duty, label)
            for agency in ("a", "b")
            for duty in Duty
            for label in ("2026-11", "2026-12")
        }
        assert len(ids) == 2 * len(Duty) * 2
        assert duty_obligation_id("a", Duty.MONTHLY_PROGRESS, "2026-11") == duty_obligation_id(
            "a", "monthly_progress", "2026-11"
        )
