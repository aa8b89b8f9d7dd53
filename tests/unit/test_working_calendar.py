"""Working days: the shipped calendars, deadlines across the Spring Festival, and the fallback."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.calendar_view import read_year_file
from domain.calendar import CalendarInvalid, CalendarWarning, CalendarYear, HolidayCalendar, WorkingCalendar
from ops.data_files import shipped_years, year_file

NOW = datetime(2026, 11, 20, tzinfo=UTC)
SHIPPED = WorkingCalendar(read_year_file(year_file(y)) for y in shipped_years())


class TestShippedCalendars:
    def test_the_years_2024_to_2026_are_shipped_and_valid(self) -> None:
        assert SHIPPED.years == (2024, 2025, 2026)

    def test_the_spring_festival_2026_is_off_and_its_make_up_saturdays_work(self) -> None:
        assert SHIPPED.holiday(date(2026, 2, 16)) == "Spring Festival"
        assert not SHIPPED.is_working_day(date(2026, 2, 23))  # a Monday inside the break
        assert SHIPPED.is_working_day(date(2026, 2, 14))  # Saturday before the break
        assert SHIPPED.is_working_day(date(2026, 2, 28))  # Saturday after the break
        assert not SHIPPED.is_working_day(date(2026, 3, 1))  # an ordinary Sunday

    def test_the_make_up_days_of_2026_are_the_six_of_the_state_council_notice(self) -> None:
        year = SHIPPED.year(2026)
        assert year is not None
        assert [d.isoformat() for d in year.make_up_days] == [
            "2026-01-04",
            "2026-02-14",
            "2026-02-28",
            "2026-05-09",
            "2026-09-20",
            "2026-10-10",
        ]


class TestDeadlinesInWorkingDays:
    def test_ten_working_days_across_the_spring_festival_2026_land_on_march_2(self) -> None:
        # Tue 10 Feb: 11, 12, 13, Sat 14 (make-up), break 15-23, 24, 25, 26, 27, Sat 28 (make-up), Mon 2 Mar
        deadline = SHIPPED.add_working_days(date(2026, 2, 10), 10)
        assert deadline == (date(2026, 3, 2), ())
        assert not deadline.fallback

    def test_plain_weekdays_would_have_given_february_24(self) -> None:
        assert WorkingCalendar().add_working_days(date(2026, 2, 10), 10).day == date(2026, 2, 24)

    def test_the_start_day_is_not_counted_even_when_it_is_a_holiday(self) -> None:
        assert SHIPPED.add_working_days(date(2026, 2, 15), 1).day == date(2026, 2, 24)
        assert SHIPPED.add_working_days(date(2026, 2, 15), 0).day == date(2026, 2, 15)

    def test_a_negative_count_is_refused(self) -> None:
        with pytest.raises(ValueError):
            SHIPPED.add_working_days(date(2026, 2, 15), -1)

    def test_a_year_with_no_calendar_counts_weekdays_and_warns(self) -> None:
        deadline = SHIPPED.add_working_days(date(2027, 2, 1), 10)  # Mon; 2027 not shipped
        assert deadline.day == date(2027, 2, 15)
        assert deadline.warnings == (CalendarWarning(2027),) and deadline.fallback
        assert "smd calendar load --year 2027" in deadline.warnings[0].message
        assert not SHIPPED.covers(2027)

    def test_a_deadline_that_runs_into_an_uncovered_year_warns_for_that_year_only(self) -> None:
        deadline = SHIPPED.add_working_days(date(2026, 12, 28), 5)
        assert deadline.day == date(2027, 1, 4)
        assert [w.year for w in deadline.warnings] == [2027]


class TestCalendarData:
    def test_a_make_up_day_on_a_weekday_is_refused(self) -> None:
        with pytest.raises(CalendarInvalid, match="weekend days only"):
            CalendarYear.of(2026, [], [date(2026, 2, 16)])

    def test_a_date_outside_the_year_is_refused(self) -> None:
        with pytest.raises(CalendarInvalid, match="not in 2026"):
            CalendarYear.of(2026, [(date(2027, 1, 1), "New Year's Day")], [])

    def test_a_day_both_off_and_working_is_refused(self) -> None:
        with pytest.raises(CalendarInvalid, match="both"):
            CalendarYear.of(2026, [(date(2026, 2, 14), "Spring Festival")], [date(2026, 2, 14)])

    def test_recording_the_same_year_twice_records_one_event(self) -> None:
        year = read_year_file(year_file(2026))
        calendar = HolidayCalendar.open("CN", NOW)
        assert calendar.load(year, NOW) and not calendar.load(year, NOW)
        assert [type(e).__name__ for e in calendar.collect_events()] == ["Opened", "CalendarYearLoaded"]

    def test_a_recorded_year_reads_back_as_it_was_loaded(self) -> None:
        year = read_year_file(year_file(2025))
        calendar = HolidayCalendar.open("CN", NOW)
        calendar.load(year, NOW)
        loaded = calendar.collect_events()[-1]
        assert loaded.calendar_year() == year


class TestFoldingYears:
    """What the calendar view folds: each loaded year onto the calendar before it."""

    def test_a_year_is_added_and_the_calendar_it_was_added_to_is_left_as_it_was(self) -> None:
        before = WorkingCalendar([read_year_file(year_file(2025))])
        after = before.with_year(read_year_file(year_file(2026)))
        assert (before.years, after.years) == ((2025,), (2025, 2026))
        assert before.is_working_day(date(2026, 2, 16)) and not after.is_working_day(date(2026, 2, 16))

    def test_a_later_load_of_a_year_replaces_it(self) -> None:
        published = read_year_file(year_file(2026))
        corrected = CalendarYear.of(
            2026,
            [(h.on, h.name) for h in published.holidays],
            [d for d in published.make_up_days if d != date(2026, 2, 28)],
            "corrected",
        )
        calendar = SHIPPED.with_year(corrected)
        assert calendar.years == SHIPPED.years
        assert calendar.year(2026) == corrected and SHIPPED.year(2026) == published
        assert not calendar.is_working_day(date(2026, 2, 28)) and SHIPPED.is_working_day(date(2026, 2, 28))
