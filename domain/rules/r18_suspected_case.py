"""R18 — a reported suspected case is assessed by the health center within 10 working days.

Seed: Jiaobei 村居 2 and 措施 (三) (10 working days); owner: the health center covering the
place the person was seen (none on record: the governance center, ``assign_health_center``);
deadline: the end (24:00 China time) of the ``RuleSettings.r18_assess_working_days``-th working
day after the report was recorded, by the region's working-day calendar.

The subject is the case, not a patient: the obligation's ``patient_id`` is the case id. A case
is reported once, so the episode key is the case id. Registration and dismissal need an
assessment first, so nothing cancels it; the assessment completes it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from domain.identity import CHINA_TZ
from domain.obligation import obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Responsible, Trigger, obligation
from domain.rules.settings import RuleSettings
from domain.suspected_case import SuspectedCase

SUSPECTED_CASE_REPORTED, SUSPECTED_CASE_ASSESSED = SuspectedCase.Reported.TOPIC, SuspectedCase.Assessed.TOPIC

#: The suspected-case facts R18 reacts to.
SUSPECTED_CASE_TOPICS = frozenset({SUSPECTED_CASE_REPORTED, SUSPECTED_CASE_ASSESSED})

#: ``working_days(start, n)`` → the n-th working day after ``start`` (the start day not counted).
WorkingDays = Callable[[date, int], date]


def weekdays(start: date, n: int) -> date:
    """Monday to Friday without holidays: the fallback when no working-day calendar is given."""
    day = start
    while n:
        day += timedelta(days=1)
        n -= day.weekday() < 5
    return day


def r18_suspected_case(
    trigger: Trigger, case: Any, responsible: Responsible, settings: RuleSettings, working_days: WorkingDays = weekdays
) -> Decisions:
    """R18's decisions for one fact of a suspected case (module docstring)."""
    d = Decisions()
    key = str(case.id)
    if trigger.topic == SUSPECTED_CASE_REPORTED:
        day = working_days(trigger.recorded_at.astimezone(CHINA_TZ).date(), settings.r18_assess_working_days)
        due = datetime.combine(day + timedelta(days=1), time(0), CHINA_TZ)  # the end of that working day
        d.opened += obligation(
            trigger,
            responsible,
            AgencyKind.HEALTH_CENTER,
            rule="R18",
            key=key,
            role="health-center",
            action="assess_suspected_case",
            due_at=due,
            subject=case.id,
        )
    elif trigger.topic == SUSPECTED_CASE_ASSESSED:
        d.completed.append((obligation_id(case.id, "R18", key, "health-center"), trigger.message_id))
    return d
