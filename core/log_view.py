"""One aggregate's changes read from the global log, each with the log position it was recorded at.

The calendar and rule-settings views build on it: they answer "as recorded up to log position
P" the same way on every replay (DESIGN.md "Time, order and episodes"), like ``RegistryView``.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from typing import Any
from uuid import UUID

from eventsourcing.application import Application


class AggregateLog:
    """The events of one aggregate with the given topics, in log order, with their positions."""

    page = 500

    def __init__(self, case_record: Application[UUID], aggregate_id: UUID, topics: tuple[str, ...]) -> None:
        self.case_record = case_record
        self.aggregate_id = aggregate_id
        self.topics = topics
        self.positions: list[int] = []  # notification id of each event, ascending
        self.events: list[Any] = []
        self._scanned = 0  # every notification up to here has been looked at
        self.lock = threading.RLock()

    @property
    def position(self) -> int:
        """The log position up to which the log has been read."""
        return self._scanned

    def refresh(self) -> int:
        """Read events recorded since the last call; returns how many were new.

        One query when nothing is new. Reading stops at the maximum notification id seen at the
        start (the PostgreSQL recorder commits notification ids in order: none below can appear).
        """
        recorder = self.case_record.recorder
        with self.lock:
            top = recorder.max_notification_id() or 0
            if top <= self._scanned:
                return 0
            new, start = 0, self._scanned + 1
            while True:
                batch = recorder.select_notifications(start, self.page, stop=top, topics=self.topics)
                for notification in batch:
                    event: Any = self.case_record.mapper.to_domain_event(notification)
                    if event.originator_id == self.aggregate_id:
                        self.positions.append(notification.id)
                        self.events.append(event)
                        new += 1
                if len(batch) < self.page:
                    break
                start = batch[-1].id + 1
            self._scanned = top
            return new

    def count(self, as_of_position: int | None = None) -> int:
        """How many events were recorded up to ``as_of_position`` (default: everything)."""
        if as_of_position is None or as_of_position > self._scanned:
            self.refresh()
        with self.lock:
            if as_of_position is None:
                return len(self.events)
            return bisect_right(self.positions, as_of_position)
