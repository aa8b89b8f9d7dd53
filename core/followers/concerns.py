"""Which patient an event in the global log concerns: the key parking holds events by.

A patient's own facts concern the patient; an obligation, a lost episode, a receipt or an
identity marker concerns the patient it is about; a suspected case concerns itself and, once
registered, the patient it became (R18's obligations name the case). Registry, calendar and
rule-settings facts concern no single patient: ``None`` (a follower stops at them rather than
park them, so that a replay decides exactly as the live run did).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Notification

from domain.calendar import HolidayCalendar
from domain.identity import IdNumberMarker, NameMarker
from domain.receipt import Receipt
from domain.registry import Registry
from domain.rule_settings import RegionRuleSettings


def _nested_topics(*aggregates: type) -> frozenset[str]:
    found = set()
    for aggregate in aggregates:
        found.add(aggregate.TOPIC)  # type: ignore[attr-defined]
        for value in vars(aggregate).values():
            topic = getattr(value, "TOPIC", None)
            if isinstance(value, type) and isinstance(topic, str):
                found.add(topic)
    return frozenset(found)


#: Facts that concern the whole region, not one patient (only operators' commands record them).
GLOBAL_TOPICS = _nested_topics(Registry, HolidayCalendar, RegionRuleSettings)
#: Bookkeeping beside a fact (the idempotency receipt, the ID-number and name markers): decided by nobody,
#: so never held behind a parked patient (holding them would only bury the facts in noise).
BOOKKEEPING_TOPICS = _nested_topics(Receipt, IdNumberMarker, NameMarker)


class Concerns:
    """Resolves a notification to the ids it concerns (strings), or None for a global fact."""

    def __init__(self, case_record: Any, cache_size: int = 20_000) -> None:
        self.case_record = case_record
        self._owner: OrderedDict[UUID, str] = OrderedDict()  # aggregate id → patient id
        self.cache_size = cache_size

    def keys(self, notification: Notification) -> frozenset[str] | None:
        """The ids the event concerns; None when it concerns no single patient."""
        if notification.topic in GLOBAL_TOPICS:
            return None
        if notification.topic in BOOKKEEPING_TOPICS:
            return frozenset()
        event: Any = self.case_record.mapper.to_domain_event(notification)
        found = {str(notification.originator_id)}
        for attr in ("patient_id", "subject"):  # an obligation's first event, a receipt, a case registered
            value = getattr(event, attr, None)
            if value:
                found.add(str(value))
        owner = self._patient_of(notification.originator_id)
        if owner:
            found.add(owner)
        return frozenset(found)

    def _patient_of(self, aggregate_id: UUID) -> str | None:
        cached = self._owner.get(aggregate_id)
        if cached is not None:
            return cached
        try:
            aggregate = self.case_record.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        patient = getattr(aggregate, "patient_id", None)
        if patient is None:
            return None  # a patient itself, or a suspected case not (yet) registered: not cached
        self._owner[aggregate_id] = str(patient)
        if len(self._owner) > self.cache_size:
            self._owner.popitem(last=False)
        return str(patient)
