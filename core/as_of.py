"""State as recorded up to a log position, folded from a few aggregates' events in the global log.

``AsOfView`` follows the case record's notification log for some topics, keeps the events of
the aggregates it follows with the log position each was recorded at, and answers "the state as
recorded up to log position P" by folding a prefix of them. So a policy that looks something up
at its trigger's position decides the same on every replay (DESIGN.md "Time, order and
episodes"). The registry, the working-day calendar and the rule settings are such views.

The fold is a pure function ``(state, event) -> state`` that never changes the state it is given:
folded states are cached by the number of events folded (least recently used first out), and a
prefix not in the cache is folded on from the longest cached one before it.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import Application

S = TypeVar("S")


class AsOfView(Generic[S]):
    """The events of some aggregates with some topics, in log order, folded as of a log position."""

    page = 500

    def __init__(
        self,
        case_record: Application[UUID],
        aggregate_ids: UUID | Iterable[UUID],
        topics: Iterable[str],
        initial: S,
        fold: Callable[[S, Any], S],
        *,
        cache_size: int = 16,
    ) -> None:
        self.case_record = case_record
        self.aggregate_ids = frozenset([aggregate_ids] if isinstance(aggregate_ids, UUID) else aggregate_ids)
        self.topics = tuple(topics)
        self.initial = initial  # the state before any event (never changed: the fold is pure)
        self.fold = fold
        self.positions: list[int] = []  # notification id of each event, ascending (append only)
        self.events: list[Any] = []
        self._scanned = 0  # every notification up to here has been looked at
        self._states: OrderedDict[int, S] = OrderedDict()  # by number of events folded
        self._cache_size = cache_size
        self.lock = threading.RLock()

    @property
    def position(self) -> int:
        """The log position up to which the view has read."""
        return self._scanned

    def refresh(self) -> int:
        """Read events recorded since the last call; returns how many were new.

        One query when nothing is new. Reading stops at the maximum notification id seen at the
        start, so the scan never repeats over other aggregates' events (the PostgreSQL recorder
        commits notification ids in order: nothing below that id can still appear).
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
                    if event.originator_id in self.aggregate_ids:
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

    def state(self, as_of_position: int | None = None) -> S:
        """The state as recorded up to ``as_of_position`` (default: everything). Read only."""
        return self.state_after(self.count(as_of_position))

    def state_after(self, count: int) -> S:
        """The state after the first ``count`` events (at most as many as read). Read only."""
        with self.lock:
            if not 0 <= count <= len(self.events):
                raise ValueError(f"{count} events asked for, {len(self.events)} read")
            if count in self._states:
                self._states.move_to_end(count)
                return self._states[count]
            done = max((c for c in self._states if c < count), default=0)
            found = self._states[done] if done else self.initial
            for event in self.events[done:count]:
                found = self.fold(found, event)
            self._states[count] = found
            if len(self._states) > self._cache_size:
                self._states.popitem(last=False)
            return found
