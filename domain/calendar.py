"""Working days: holidays and make-up working days (调休) per year, and deadlines counted in them.

A year's calendar is data (``ops/calendars/<year>.toml``), recorded in the global log as
``CalendarYearLoaded`` so a replay counts with the calendar known at the trigger's position.
A year with no calendar falls back to plain weekdays (Monday to Friday) and says so: every
deadline that touches such a year carries a ``CalendarWarning`` (DESIGN.md "Values seen…").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError

#: Namespace of calendar ids; never change it (stored calendars would stop matching).
CALENDAR_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:calendar")

#: The national calendar (the State Council sets holidays for the whole country).
NATIONAL = "CN"

SATURDAY = 5


def calendar_id(name: str = NATIONAL) -> UUID:
    """The id of a calendar aggregate (one per calendar name, not per region)."""
    return uuid5(CALENDAR_NAMESPACE, name)


class CalendarInvalid(DomainError):
    """A calendar year's data is inconsistent; nothing was recorded."""

    code = "calendar-invalid"

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class Holiday:
    """A day off of a public holiday (weekend days inside the break included)."""

    on: date
    name: str


@dataclass(frozen=True, slots=True)
class CalendarYear:
    """One year's holidays and make-up working days (weekend days that are working days)."""

    year: int
    holidays: tuple[Holiday, ...]
    make_up_days: tuple[date, ...]
    source: str = ""

    @classmethod
    def of(
        cls, year: int, holidays: Iterable[tuple[date, str]], make_up_days: Iterable[date], source: str = ""
    ) -> CalendarYear:
        """A validated year, its days sorted; CalendarInvalid says what is wrong."""
        where = f"calendar {year}"
        days = sorted(holidays)
        make_up = sorted(make_up_days)
        for d in [d for d, _ in days] + make_up:
            if d.year != year:
                raise CalendarInvalid(where, f"{d.isoformat()} is not in {year}")
        if len({d for d, _ in days}) != len(days) or len(set(make_up)) != len(make_up):
            raise CalendarInvalid(where, "a date is listed twice; list each date once")
        for d, name in days:
            if not name.strip():
                raise CalendarInvalid(where, f"holiday {d.isoformat()} has no name")
        both = {d for d, _ in days} & set(make_up)
        if both:
            raise CalendarInvalid(where, f"{min(both).isoformat()} is both a holiday and a make-up day")
        for d in make_up:
            if d.weekday() < SATURDAY:
                raise CalendarInvalid(where, f"make-up day {d.isoformat()} is a weekday; list weekend days only")
        return cls(year, tuple(Holiday(d, n) for d, n in days), tuple(make_up), source)

    def record(self) -> dict[str, Any]:
        """The year as stored in an event: ISO dates, readable JSON."""
        return {
            "year": self.year,
            "holidays": [[h.on.isoformat(), h.name] for h in self.holidays],
            "make_up_days": [d.isoformat() for d in self.make_up_days],
            "source": self.source,
        }


def parse_calendar_year(doc: Mapping[str, Any], where: str = "calendar file") -> CalendarYear:
    """A calendar year from a parsed TOML file (``year``, ``source``, ``make_up_days``, ``[[holidays]]``)."""
    try:
        year = int(doc["year"])
        holidays = [(_day(h["date"]), str(h["name"])) for h in doc.get("holidays", [])]
        make_up = [_day(d) for d in doc.get("make_up_days", [])]
    except (KeyError, TypeError, ValueError) as e:
        raise CalendarInvalid(where, f"expected year, make_up_days and [[holidays]] date/name ({e})") from None
    return CalendarYear.of(year, holidays, make_up, str(doc.get("source", "")))


def _day(value: Any) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValueError(f"{value!r} is not a date")
    return value


class CalendarWarning(NamedTuple):
    """A deadline was counted through a year with no calendar: plain weekdays were used."""

    year: int

    @property
    def message(self) -> str:
        return (
            f"no working-day calendar for {self.year}: counted Monday to Friday without holidays; "
            f"load it with `smd calendar load --year {self.year}`"
        )


class Deadline(NamedTuple):
    """A day counted in working days, and the years it had to count without a calendar."""

    day: date
    warnings: tuple[CalendarWarning, ...] = ()

    @property
    def fallback(self) -> bool:
        """True when some day was judged by weekday only."""
        return bool(self.warnings)


class WorkingCalendar:
    """Working days from the years it knows; plain weekdays (with a warning) for the others."""

    def __init__(self, years: Iterable[CalendarYear] = ()) -> None:
        self._years = {y.year: y for y in years}
        self._holidays = {h.on: h.name for y in self._years.values() for h in y.holidays}
        self._make_up = {d for y in self._years.values() for d in y.make_up_days}

    def with_year(self, year: CalendarYear) -> WorkingCalendar:
        """A calendar where ``year`` replaces the year's data (kept in its place), or is added."""
        return WorkingCalendar({**self._years, year.year: year}.values())

    @property
    def years(self) -> tuple[int, ...]:
        """The years with a calendar, ascending."""
        return tuple(sorted(self._years))

    def covers(self, year: int) -> bool:
        """True when the year's holidays and make-up days are known."""
        return year in self._years

    def year(self, year: int) -> CalendarYear | None:
        """The year's data, or None."""
        return self._years.get(year)

    def holiday(self, d: date) -> str | None:
        """The holiday's name when ``d`` is a day off of one."""
        return self._holidays.get(d)

    def is_working_day(self, d: date) -> bool:
        """A make-up day works; a holiday does not; otherwise Monday to Friday."""
        if d in self._make_up:
            return True
        return d not in self._holidays and d.weekday() < SATURDAY

    def add_working_days(self, start: date, n: int) -> Deadline:
        """The day ``n`` working days after ``start`` (the start day not counted)."""
        if n < 0:
            raise ValueError("n must be 0 or more working days")
        day, left, missing = start, n, set()
        while left:
            day += timedelta(days=1)
            if day.year not in self._years:
                missing.add(day.year)
            if self.is_working_day(day):
                left -= 1
        return Deadline(day, tuple(CalendarWarning(y) for y in sorted(missing)))


# -- the aggregate ---------------------------------------------------------------------------


class HolidayCalendar(Aggregate):
    """A calendar's years, each load of a changed year an event in the global log."""

    TOPIC = "smd.HolidayCalendar"

    class Opened(Aggregate.Created):
        """CalendarOpened: the calendar exists (no years yet)."""

        TOPIC = "smd.CalendarOpened"
        calendar: str

    class CalendarYearLoaded(Aggregate.Event):
        """CalendarYearLoaded: a year's holidays and make-up days; a later load replaces it."""

        TOPIC = "smd.CalendarYearLoaded"
        year: int
        holidays: list[list[str]]  # [ISO date, name], sorted
        make_up_days: list[str]  # ISO dates, sorted
        source: str

        def calendar_year(self) -> CalendarYear:
            """The year this event records (as recorded: not validated again)."""
            return CalendarYear(
                self.year,
                tuple(Holiday(date.fromisoformat(d), n) for d, n in self.holidays),
                tuple(date.fromisoformat(d) for d in self.make_up_days),
                self.source,
            )

        def apply(self, aggregate: HolidayCalendar) -> None:
            aggregate.years[self.year] = self.calendar_year()

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.HolidayCalendar.Created"

    def __init__(self, calendar: str) -> None:
        self.calendar = calendar
        self.years: dict[int, CalendarYear] = {}

    @classmethod
    def open(cls, calendar: str, now: datetime) -> HolidayCalendar:
        """A new calendar with no years."""
        return cls._create(cls.Opened, id=calendar_id(calendar), timestamp=now, calendar=calendar)

    def load(self, year: CalendarYear, now: datetime) -> bool:
        """Record the year unless it is recorded exactly so already; True when recorded."""
        if self.years.get(year.year) == year:
            return False
        self.trigger_event(self.CalendarYearLoaded, timestamp=now, **year.record())
        return True


#: Topic of the events that change a calendar (what a calendar follower selects).
CALENDAR_TOPICS = (HolidayCalendar.CalendarYearLoaded.TOPIC,)
