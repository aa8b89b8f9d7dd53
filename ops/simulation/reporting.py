"""The year's reports (R21) and progress on the work plan's tasks, on random streams of their own.

Each agency that owes a report by the seeds' defaults (decision 023: the departments, health
centers, police stations and civil affairs monthly by the 25th; the health centers quarterly on
the 28th of a quarter's last month; the committees their suspected cases by the month's end)
submits most on time, some a few days late and a few never, so R21 opens, completes, marks
overdue and escalates in the year. Agencies a governance center does not cover (region-wide
ones) owe nothing and send nothing. The departments also record progress on the work plan's
tasks now and then (it completes nothing). The figures are the generator's, not the engine's:
the checker recomputes what R21 must have done from the log alone.
"""

from __future__ import annotations

import calendar
import random
from datetime import date, datetime, time, timedelta
from typing import Any

from domain.registry import AgencyKind

#: The seeds' defaults (decision 023), written again here: the generator does not ask the engine.
MONTHLY = {"department", "health_center", "police_station", "civil_affairs", "disabled_persons_federation"}
QUARTERLY = {"health_center"}
SUSPECTED = {"committee"}
ON_TIME, LATE = 0.80, 0.12  # the rest never submit


def add_reporting(year: Any, seed: int) -> None:
    """Reports and task progress for the year (``year``: the generator's ``_Year``)."""
    rng = random.Random(f"{seed}/reporting")  # noqa: S311 - a reproducible fiction
    state, start = year.places.state, year.start
    with year.drawing_from(rng):  # ids and staff from this stream: every other message stays as it was
        for agency_id in sorted(state.agencies):
            agency = state.agency(agency_id, start)
            if agency is None or not _covered(state, agency, start):
                continue
            kind = str(agency.kind)
            for duty, label, opens, due in _periods(kind, start, year.days):
                _submit(year, rng, agency_id, duty, label, opens, due)
            if kind == AgencyKind.DEPARTMENT:
                _progress(year, rng, agency_id)


def _covered(state: Any, agency: Any, on: date) -> bool:
    unit = sorted(agency.jurisdiction)[0]
    return state.responsible(unit, AgencyKind.GOVERNANCE_CENTER, on) is not None


def _periods(kind: str, start: date, days: int) -> list[tuple[str, str, date, date]]:
    """(duty, period, first day, due day) of every period that begins within the year."""
    found = []
    end = start + timedelta(days=days)
    year, month = start.year, start.month
    while date(year, month, 1) < end:
        length = calendar.monthrange(year, month)[1]
        if kind in MONTHLY:
            found.append(
                ("monthly_progress", f"{year}-{month:02d}", date(year, month, 1), date(year, month, min(25, length)))
            )
        if kind in SUSPECTED:
            found.append(("suspected_cases", f"{year}-{month:02d}", date(year, month, 1), date(year, month, length)))
        if kind in QUARTERLY and month % 3 == 1:
            quarter = (month - 1) // 3 + 1
            found.append(("quarterly_report", f"{year}-Q{quarter}", date(year, month, 1), date(year, month + 2, 28)))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return found


def _submit(year: Any, rng: random.Random, agency: str, duty: str, label: str, opens: date, due: date) -> None:
    draw = rng.random()
    if draw >= ON_TIME + LATE:
        return  # never submitted: R21 stays open, R15 escalates it
    if draw < ON_TIME:
        day = max(opens, due - timedelta(days=rng.randint(0, 6)))
    else:
        day = due + timedelta(days=rng.randint(1, 10))
    occurred = datetime.combine(day, time(rng.randint(9, 17), rng.randint(0, 59)), year.go_live.tzinfo)
    subject = _uuid(rng)
    data = {"duty": duty, "period": label, "reference": f"report {label}, filed as doc {rng.randint(1, 400)}"}
    year.send(agency, "report.submitted", subject, data, occurred)  # delivered as the agency delivers


def _progress(year: Any, rng: random.Random, agency: str) -> None:
    for _ in range(rng.randint(2, 6)):
        day = year.start + timedelta(days=rng.randint(1, year.days - 2))
        occurred = datetime.combine(day, time(rng.randint(9, 17)), year.go_live.tzinfo)
        data = {"task_number": rng.randint(1, 25), "text": "progress on the work plan's task"}
        year.send(agency, "task-progress.recorded", _uuid(rng), data, occurred)


def _uuid(rng: random.Random) -> Any:
    from uuid import UUID

    return UUID(int=rng.getrandbits(128), version=4)
