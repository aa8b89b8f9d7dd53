"""R18 in the policy process: a suspected case's facts → the health center's assessment.

The subject is a ``SuspectedCase``, not a ``Patient``, so the policy process hands these
topics here (same batch, same transaction, same tracked position). Like a patient's rules it
decides from what was known at the fact's log position: the case as of the fact's version, the
registry, the rule settings and the working-day calendar as recorded up to that position.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Notification

from core.calendar_view import CalendarView, open_calendar
from core.registry import REGION_TZ
from domain.registry import AgencyKind
from domain.rules.engine import Decisions, Trigger, is_imported
from domain.rules.r18_suspected_case import SUSPECTED_CASE_TOPICS, r18_suspected_case
from domain.suspected_case import SuspectedCase

__all__ = ["SUSPECTED_CASE_TOPICS", "decide_suspected_case"]


def _calendar(process: Any) -> CalendarView:
    # the process's own view when it was given one; else one opened once, following the same log
    view = getattr(process, "calendar", None)
    if view is None:
        view = process.calendar = open_calendar(process.case_record)
    return view


def decide_suspected_case(process: Any, notification: Notification) -> tuple[Decisions, Trigger, str] | None:
    """R18's decisions for one suspected-case fact (with the trigger and the place), or None."""
    fact: Any = process.case_record.mapper.to_domain_event(notification)
    if is_imported(fact.message_id):
        return None  # a ledger's cases are history: they open nothing
    case: SuspectedCase = process.case_record.repository.get(
        notification.originator_id, version=notification.originator_version
    )
    trigger = Trigger(
        patient_id=case.id,
        message_id=fact.message_id,
        position=notification.id,
        recorded_at=fact.timestamp,
        residence=case.seen_in,
        topic=notification.topic,
        version=notification.originator_version,
    )
    on = trigger.recorded_at.astimezone(REGION_TZ).date()

    def responsible(kind: AgencyKind) -> str | None:
        return process.registry.responsible(case.seen_in, kind, on, as_of_position=notification.id)

    rules = getattr(process, "rule_settings", None)
    settings = process.settings if rules is None else rules.settings(on, as_of_position=notification.id)
    calendar = _calendar(process)

    def working_days(start: Any, n: int) -> Any:
        # Not yet: record the calendar's warning when a year has no calendar (weekdays were counted)
        return calendar.add_working_days(start, n, as_of_position=notification.id).day

    return r18_suspected_case(trigger, case, responsible, settings, working_days), trigger, case.seen_in
