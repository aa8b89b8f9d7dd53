"""The working-day calendar as the service sees it: loaded from year files, read from the global log.

``CalendarView`` answers with the calendar as recorded up to a log position, so a policy that
counts a deadline in working days counts the same on every replay. ``load_year_file`` records a
year only when it differs from the recorded one (a corrected file records a new version; the
later log position wins for decisions after it).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from core.as_of import AsOfView
from domain.calendar import (
    CALENDAR_TOPICS,
    NATIONAL,
    CalendarInvalid,
    CalendarYear,
    Deadline,
    HolidayCalendar,
    WorkingCalendar,
    calendar_id,
    parse_calendar_year,
)


class CalendarWriteConflict(Exception):
    """Other writers kept changing the calendar while a year was being loaded."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"the calendar changed under us {attempts} times; load the file again")


class CalendarView:
    """Calendar years read from the global log, queried as of a log position."""

    def __init__(self, case_record: Application[UUID], calendar: str = NATIONAL, cache_size: int = 16) -> None:
        self.calendar_name = calendar
        self.log: AsOfView[WorkingCalendar] = AsOfView(
            case_record, calendar_id(calendar), CALENDAR_TOPICS, WorkingCalendar(), _with_year, cache_size=cache_size
        )

    @property
    def position(self) -> int:
        """The log position up to which the view has read."""
        return self.log.position

    def refresh(self) -> int:
        """Read calendar years recorded since the last call; returns how many were new."""
        return self.log.refresh()

    def calendar(self, as_of_position: int | None = None) -> WorkingCalendar:
        """The calendar as recorded up to ``as_of_position`` (default: everything)."""
        return self.log.state(as_of_position)

    def add_working_days(self, start: date, n: int, as_of_position: int | None = None) -> Deadline:
        """``n`` working days after ``start``, with the calendar as recorded then."""
        return self.calendar(as_of_position).add_working_days(start, n)


def _with_year(calendar: WorkingCalendar, event: HolidayCalendar.CalendarYearLoaded) -> WorkingCalendar:
    return calendar.with_year(event.calendar_year())  # a later load of a year replaces it


def open_calendar(case_record: Application[UUID], calendar: str = NATIONAL) -> CalendarView:
    """A calendar view caught up with the log."""
    view = CalendarView(case_record, calendar)
    view.refresh()
    return view


def read_year_file(path: Path) -> CalendarYear:
    """Parse a year file; CalendarInvalid says where it is wrong."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise CalendarInvalid(str(path), "no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise CalendarInvalid(str(path), f"not valid TOML: {e}") from None
    return parse_calendar_year(doc, str(path))


def load_year(case_record: Application[UUID], year: CalendarYear, calendar: str = NATIONAL, attempts: int = 5) -> bool:
    """Record the year unless recorded exactly so already; True when something was recorded."""
    clock: Callable[[], datetime] = getattr(case_record, "clock", lambda: datetime.now(UTC))
    for _ in range(attempts):
        try:
            aggregate: HolidayCalendar = case_record.repository.get(calendar_id(calendar))
        except AggregateNotFoundError:
            aggregate = HolidayCalendar.open(calendar, clock())
        if not aggregate.load(year, clock()):
            return False
        try:
            case_record.save(aggregate)
        except IntegrityError:
            continue  # another load got there first: reload and compare again
        return True
    raise CalendarWriteConflict(attempts)


def load_year_file(case_record: Application[UUID], path: Path, calendar: str = NATIONAL) -> tuple[CalendarYear, bool]:
    """Read a year file and record it if it changed; returns the year and whether it was recorded."""
    year = read_year_file(path)
    return year, load_year(case_record, year, calendar)
