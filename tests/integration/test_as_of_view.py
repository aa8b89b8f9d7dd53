"""The generic as-of view over the global log, on SQLite and on PostgreSQL.

It follows the events of some aggregates with some topics and folds them as recorded up to a
log position. Here it follows two working-day calendars ("a" and "b") and not a third ("c"),
whose events share the topic: the fold just lists what it saw.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from core.as_of import AsOfView
from domain.calendar import CALENDAR_TOPICS, CalendarYear, HolidayCalendar, calendar_id

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
A, B, C = calendar_id("a"), calendar_id("b"), calendar_id("c")
NAMES = {A: "a", B: "b", C: "c"}

Seen = tuple[tuple[str, int, str], ...]


class CountingFold:
    """A pure fold that counts its calls: (calendar, year, source) appended to a tuple."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, seen: Seen, event: Any) -> Seen:
        self.calls += 1
        return (*seen, (NAMES[event.originator_id], event.year, event.source))


class Log:
    """Records calendar years and tells the log position each was recorded at."""

    def __init__(self, services) -> None:
        self.case_record = services.case_record
        self.calendars: dict[str, HolidayCalendar] = {}

    def top(self) -> int:
        return self.case_record.recorder.max_notification_id() or 0

    def load(self, name: str, year: int, source: str) -> int:
        calendar = self.calendars.get(name) or HolidayCalendar.open(name, NOW)
        assert calendar.load(CalendarYear.of(year, [], [], source), NOW)
        self.case_record.save(calendar)
        self.calendars[name] = calendar
        return self.top()


def view_of(services, fold: CountingFold | None = None, ids: Any = (A, B), **kw: Any) -> AsOfView[Seen]:
    return AsOfView(services.case_record, ids, CALENDAR_TOPICS, (), fold or CountingFold(), **kw)


@pytest.fixture
def log(services) -> Log:
    return Log(services)


@pytest.fixture
def recorded(log: Log) -> dict[str, int]:
    """Four calendar years, one of them of a calendar not followed; the position of each."""
    return {
        "start": log.top(),
        "a1": log.load("a", 2026, "v1"),
        "c1": log.load("c", 2026, "v1"),
        "b1": log.load("b", 2026, "v1"),
        "a2": log.load("a", 2026, "v2"),
    }


class TestAnswersAsOfALogPosition:
    def test_each_position_sees_what_was_recorded_up_to_it_of_the_followed_aggregates_only(
        self, services, recorded
    ) -> None:
        view = view_of(services)
        a1, b1, a2 = ("a", 2026, "v1"), ("b", 2026, "v1"), ("a", 2026, "v2")
        expected = {
            "start": (),
            "a1": (a1,),
            "c1": (a1,),  # calendar c is not followed
            "b1": (a1, b1),
            "a2": (a1, b1, a2),
        }
        for name, position in recorded.items():
            assert view.state(position) == expected[name], name
            assert view.count(position) == len(expected[name]), name
        assert view.state() == view.state(recorded["a2"] + 1000) == (a1, b1, a2)
        assert view.count() == 3
        assert view.positions == [recorded["a1"], recorded["b1"], recorded["a2"]]
        assert view.position == recorded["a2"]

    def test_one_aggregate_id_is_enough(self, services, recorded) -> None:
        view = view_of(services, ids=B)
        assert view.aggregate_ids == frozenset({B})
        assert view.state(recorded["a1"]) == ()
        assert view.state() == (("b", 2026, "v1"),)

    def test_a_fresh_view_replaying_the_log_answers_the_same_at_every_position(self, services, recorded) -> None:
        first, second = view_of(services), view_of(services)
        first.refresh()
        for position in reversed(range(recorded["a2"] + 2)):
            assert second.state(position) == first.state(position)

    def test_asking_for_more_events_than_read_is_refused(self, services, recorded) -> None:
        view = view_of(services)
        view.refresh()
        with pytest.raises(ValueError, match="4 events asked for, 3 read"):
            view.state_after(4)


class TestCache:
    def test_a_state_is_folded_once_and_a_longer_prefix_folds_on_from_a_cached_shorter_one(
        self, services, recorded
    ) -> None:
        fold = CountingFold()
        view = view_of(services, fold)
        at_a1 = view.state(recorded["a1"])
        assert fold.calls == 1
        assert view.state(recorded["c1"]) is at_a1  # same count of events: the cached state
        assert fold.calls == 1
        full = view.state()
        assert fold.calls == 3  # events 2 and 3 folded on the state after event 1
        assert view.state(recorded["b1"]) == full[:2]
        assert fold.calls == 4  # one event folded on the state after event 1
        assert at_a1 == (("a", 2026, "v1"),)  # earlier states are left as they were

    def test_the_least_recently_used_state_goes_first(self, services, recorded) -> None:
        fold = CountingFold()
        view = view_of(services, fold, cache_size=2)
        view.state(recorded["a1"])  # 1 fold, cache [1]
        view.state(recorded["b1"])  # 1 fold (from 1), cache [1, 2]
        view.state(recorded["a1"])  # cached, cache [2, 1]
        view.state(recorded["a2"])  # 1 fold (from 2), cache [1, 3]: 2 is out
        assert fold.calls == 3
        view.state(recorded["a1"])
        assert fold.calls == 3
        view.state(recorded["b1"])  # folded again, from 1
        assert fold.calls == 4

    def test_no_event_is_the_initial_state(self, services, recorded) -> None:
        fold = CountingFold()
        initial: Seen = ()
        view = AsOfView(services.case_record, (A, B), CALENDAR_TOPICS, initial, fold)
        assert view.state(recorded["start"]) is initial
        assert fold.calls == 0


class TestRefresh:
    def test_refresh_reads_only_what_is_new_and_counts_the_followed_events(self, services, log, recorded) -> None:
        view = view_of(services)
        assert view.refresh() == 3
        assert view.refresh() == 0
        assert log.load("c", 2027, "v1") and view.refresh() == 0  # not followed
        assert view.position == log.top()
        position = log.load("b", 2027, "v1")
        assert view.refresh() == 1
        assert view.position == position
        assert view.state()[-1] == ("b", 2027, "v1")

    def test_asking_as_of_a_position_not_read_yet_reads_on(self, services, log, recorded) -> None:
        view = view_of(services)
        assert len(view.state()) == 3
        position = log.load("a", 2027, "v1")
        assert view.state(position)[-1] == ("a", 2027, "v1")  # a position beyond what was read
        position = log.load("a", 2028, "v1")
        assert view.count() == 5  # default: everything, read on first
        assert view.position == position

    def test_reading_stops_at_the_top_seen_at_its_start(self, services, recorded) -> None:
        """What is recorded while a refresh reads waits for the next refresh, counted once."""
        top = {"now": recorded["c1"]}
        recorder = services.case_record.recorder
        held_back = SimpleNamespace(
            max_notification_id=lambda: top["now"], select_notifications=recorder.select_notifications
        )
        view = view_of(
            SimpleNamespace(case_record=SimpleNamespace(recorder=held_back, mapper=services.case_record.mapper))
        )
        assert view.refresh() == 1
        assert view.position == recorded["c1"]
        assert view.state() == (("a", 2026, "v1"),)
        top["now"] = recorded["a2"]
        assert view.refresh() == 2
        assert view.positions == [recorded["a1"], recorded["b1"], recorded["a2"]]

    def test_readers_on_several_threads_while_events_are_recorded_agree_with_a_fresh_view(
        self, services, log, recorded
    ) -> None:
        view = view_of(services)
        answers: list[tuple[int, Seen]] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def read() -> None:
            try:
                while not stop.is_set():
                    position = view.position
                    answers.append((position, view.state(position)))
                    view.state()
            except BaseException as e:  # reported below
                failures.append(e)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        for year in range(2027, 2032):
            log.load("a" if year % 2 else "b", year, "v1")
        stop.set()
        for t in readers:
            t.join()
        assert not failures
        fresh = view_of(services)
        assert view.state() == fresh.state() and len(view.state()) == 8
        for position, seen in answers:
            assert seen == fresh.state(position)
