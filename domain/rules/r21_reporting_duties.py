"""R21 — reporting duties: the reports an agency owes by a date, each period, as obligations.

Seeds: Qingyang 三、保障措施 (each department reports its progress monthly, by the 25th, to the
community-governance office that collects them; the first report was due by 12/25); Jiaobei
卫生院 5 (the health center's quarterly report on 3/28, 6/28, 9/28 and 12/28); Jiaobei 村居 2(2)
(each committee reports suspected cases to the governance group, in principle once a month).

Who owes which report is region data: rule settings with effective dates
(``RuleSettings.r21_*``; the seeds' values are the defaults). A kind listed in a duty's
``…_kinds`` setting on the day a report falls due owes it; an empty list retires the duty.

- *Opens* (the scheduler, at the start of the period, once per agency, duty and period: the
  obligation's id is fixed): ``submit_monthly_report`` for the month, due at the end (24:00
  China time) of its ``r21_monthly_report_day``-th day (the month's last day when shorter);
  ``submit_quarterly_report`` for the quarter, due at the end of the ``r21_quarterly_report_day``-th
  day of its last month; ``submit_suspected_case_report`` for the month, due at the end of its
  last day (the seed gives no day: our default). The first duty an agency owes is the first
  that falls due after it joined the system — after the region's go-live was declared
  complete, or, without a go-live, after the agency was first recorded in the registry —
  never one due before.
- *Completed by*: ``cn.smd.report.submitted.v1`` from the agency naming the duty and the
  period (a report that arrives before the scheduler opened the duty opens it and completes it).
- *Escalated*: by R15 like every obligation (the governance center covering the agency).
- Never cancelled: a duty that the settings retire later stays owed for the periods it covered.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Assignment
from domain.rules.settings import RuleSettings

RULE = "R21"
ROLE = "reporter"
REPORTER_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:reporter")


class Duty(StrEnum):
    """The reports of the seeds (``data.duty`` of ``cn.smd.report.submitted.v1``)."""

    MONTHLY_PROGRESS = "monthly_progress"  # Q 三、保障措施: 每月 25 日前报送工作进展
    QUARTERLY_REPORT = "quarterly_report"  # J 卫生院 5: 每季度工作报告
    SUSPECTED_CASES = "suspected_cases"  # J 村居 2(2): 疑似患者 原则上每月报告一次


ACTIONS = {
    Duty.MONTHLY_PROGRESS: "submit_monthly_report",
    Duty.QUARTERLY_REPORT: "submit_quarterly_report",
    Duty.SUSPECTED_CASES: "submit_suspected_case_report",
}
MONTHLY = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
QUARTERLY = re.compile(r"^(\d{4})-Q([1-4])$")


@dataclass(frozen=True, slots=True)
class Period:
    """One period of a duty: what it is called, when it opens and when its report is due."""

    duty: Duty
    label: str  # "2026-12" (a month) or "2026-Q4" (a quarter)
    opens_at: datetime  # the period's first instant (China time)
    due_at: datetime  # the end of the due day (24:00 China time)
    due_on: date  # the day named by the settings


def reporter_id(agency_id: str) -> UUID:
    """The subject of an agency's reporting duties (an obligation needs one; no patient has it)."""
    return uuid5(REPORTER_NAMESPACE, agency_id)


def duty_obligation_id(agency_id: str, duty: Duty | str, period: str) -> UUID:
    """The one obligation an agency has for a duty's period."""
    return obligation_id(reporter_id(agency_id), RULE, f"{Duty(duty)}|{period}", ROLE)


def period_label_error(duty: Duty | str, label: str) -> str | None:
    """Why ``label`` is not a period of ``duty`` (None when it is one)."""
    if Duty(duty) == Duty.QUARTERLY_REPORT:
        return None if QUARTERLY.match(label) else "a quarterly report's period is like 2026-Q4"
    return None if MONTHLY.match(label) else "a monthly report's period is like 2026-12"


def period_start(duty: Duty | str, label: str) -> datetime:
    """The first instant (China time) of a well-formed period label."""
    if Duty(duty) == Duty.QUARTERLY_REPORT:
        m = QUARTERLY.match(label)
        assert m is not None
        return _midnight(date(int(m[1]), 3 * int(m[2]) - 2, 1))
    m = MONTHLY.match(label)
    assert m is not None
    return _midnight(date(int(m[1]), int(m[2]), 1))


def kinds_owing(duty: Duty, settings: RuleSettings) -> frozenset[str]:
    """The agency kinds that owe ``duty`` under these settings."""
    raw = {
        Duty.MONTHLY_PROGRESS: settings.r21_monthly_report_kinds,
        Duty.QUARTERLY_REPORT: settings.r21_quarterly_report_kinds,
        Duty.SUSPECTED_CASES: settings.r21_suspected_case_report_kinds,
    }[duty]
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


def check_kinds(text: str) -> None:
    """ValueError unless ``text`` is a comma-separated list of agency kinds (empty: nobody)."""
    known = {k.value for k in AgencyKind}
    unknown = [k.strip() for k in text.split(",") if k.strip() and k.strip() not in known]
    if unknown:
        raise ValueError(f"unknown agency kinds {unknown}; known: {', '.join(sorted(known))}")


def periods(
    duty: Duty,
    settings_on: Callable[[date], RuleSettings],
    since: datetime,
    until: datetime,
    after: datetime | None = None,
) -> Iterator[Period]:
    """The duty's periods that open at or before ``until`` (and after ``after``: the ones a
    previous look saw are skipped) and fall due after ``since``, in order."""
    first = max(since, after or since).astimezone(CHINA_TZ).date()
    last = until.astimezone(CHINA_TZ).date()
    step = 3 if duty == Duty.QUARTERLY_REPORT else 1
    year, month = first.year, first.month
    if step == 3:
        month -= (month - 1) % 3
    while (year, month) <= (last.year, last.month):
        p = _period(duty, year, month, settings_on)
        if p.due_at > since and p.opens_at <= until and (after is None or p.opens_at > after):
            yield p
        month += step
        if month > 12:
            year, month = year + 1, month - 12


def owed(
    agency_id: str,
    kind: str,
    settings_on: Callable[[date], RuleSettings],
    since: datetime,
    until: datetime,
    after: datetime | None = None,
) -> list[tuple[Period, Assignment]]:
    """Every duty period the agency owes that has opened by ``until`` (after ``after``, when
    given) and falls due after ``since`` (when it joined the system), with its obligation."""
    found = []
    for duty in Duty:
        for p in periods(duty, settings_on, since, until, after):
            if kind in kinds_owing(duty, settings_on(p.due_on)):
                found.append((p, assignment(agency_id, p)))
    return sorted(found, key=lambda f: (f[0].opens_at, f[0].due_at, f[0].duty))


def owes(
    agency_id: str, kind: str, duty: Duty, label: str, settings_on: Callable[[date], RuleSettings], since: datetime
) -> tuple[Period, Assignment] | None:
    """The period ``label`` of ``duty`` with its obligation, when the agency owes it (else None)."""
    start = period_start(duty, label)
    p = _period(duty, start.year, start.month, settings_on)
    if p.due_at <= since or kind not in kinds_owing(duty, settings_on(p.due_on)):
        return None
    return p, assignment(agency_id, p)


def assignment(agency_id: str, p: Period) -> Assignment:
    """The obligation of ``agency_id`` for period ``p``."""
    return Assignment(
        id=duty_obligation_id(agency_id, p.duty, p.label),
        kind=ObligationKind.OBLIGATION,
        rule=RULE,
        action=ACTIONS[p.duty],
        assignee=agency_id,
        episode_key=f"{p.duty}|{p.label}",
        due_at=p.due_at,
        risk_level=None,
    )


def _period(duty: Duty, year: int, month: int, settings_on: Callable[[date], RuleSettings]) -> Period:
    if duty == Duty.QUARTERLY_REPORT:
        quarter = (month - 1) // 3 + 1
        last_month = 3 * quarter
        length = calendar.monthrange(year, last_month)[1]
        settings = settings_on(date(year, last_month, length))
        due_on = date(year, last_month, min(settings.r21_quarterly_report_day, length))
        return Period(duty, f"{year}-Q{quarter}", _midnight(date(year, 3 * quarter - 2, 1)), _end_of(due_on), due_on)
    length = calendar.monthrange(year, month)[1]
    if duty == Duty.MONTHLY_PROGRESS:
        day = settings_on(date(year, month, length)).r21_monthly_report_day
        due_on = date(year, month, min(day, length))
    else:
        due_on = date(year, month, length)
    return Period(duty, f"{year}-{month:02d}", _midnight(date(year, month, 1)), _end_of(due_on), due_on)


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), CHINA_TZ)


def _end_of(d: date) -> datetime:
    return _midnight(d) + timedelta(days=1)
