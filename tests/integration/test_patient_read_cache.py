"""A patient read for a file or a timeline: the cached patient shared without a copy, never
changed in place; a timeline's first page makes the patient from the events it read; on both
stores."""

from __future__ import annotations

import contextlib
from copy import deepcopy
from uuid import uuid4

from core.patient_read import first_events, load_reachable, timeline
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.support.stores import Agency

health_center = Agency("hc-north")


def recorded(services, visits: int):
    record, patient = services.case_record, uuid4()
    record.record(health_center.register(patient, residence="990101-001-v01"), "hc-north")
    for i in range(visits):
        record.record(health_center.visit(patient, 1 + i % 4, "unstable", joint=i % 2 == 0), "hc-north")
    return record, patient


class TestTheCachedPatient:
    def test_a_read_shares_the_cached_patient_and_a_newer_fact_replaces_it_without_changing_it(self, services) -> None:
        record, patient = recorded(services, 2)
        repository = record.repository
        repository.cache.get(patient, evict=True)  # read from the store, then cached
        first = repository.get(patient, deepcopy_from_cache=False)
        assert repository.get(patient, deepcopy_from_cache=False) is first  # nothing newer: no copy
        before = (first.version, deepcopy(first.__dict__))
        other = repository.get(patient)  # a writer's copy, changed in its own unit
        assert other is not first
        record.record(health_center.visit(patient, 4, "unstable"), "hc-north")
        repository.cache.put(patient, first)  # as another process's write would leave this cache: behind
        newer = repository.get(patient, deepcopy_from_cache=False)
        assert newer.version == before[0] + 1 and newer is not first
        assert (first.version, first.__dict__) == before  # the reader holding it saw no change
        assert repository.get(patient, deepcopy_from_cache=False) is newer  # cached in its place

    def test_the_patient_made_from_the_events_equals_the_stores(self, services) -> None:
        record, patient = recorded(services, 3)
        repository = record.repository
        events, whole = first_events(record, patient, 0, 100)
        assert whole and [e.originator_version for e in events] == [1, 2, 3, 4]
        stored = repository.get(patient)
        for cached in (None, "same", "older"):
            with contextlib.suppress(KeyError):
                repository.cache.get(patient, evict=True)
            if cached == "same":
                repository.get(patient)
            elif cached == "older":
                older = repository.get(patient, version=2)
                repository.cache.put(patient, older)
            made = repository.read_from(patient, events)
            assert made.version == 4 and made.__dict__ == stored.__dict__, cached
            assert repository.get(patient, deepcopy_from_cache=False).version == 4
        if cached == "older":
            assert older.version == 2  # brought forward as a copy


class TestTheTimelineReadsItsEventsOnce:
    def test_every_page_size_gives_the_same_facts_and_cursors_as_reading_each_page(self, services) -> None:
        load_file(services.case_record, DEMO_DISTRICT)
        services.registry.refresh()
        record, patient = recorded(services, 6)  # 7 facts
        now = record.clock()
        whole = [i["version"] for i in timeline(record, patient, "health_center", "hc-north", (), 0, 100)[0]]
        assert whole == [1, 2, 3, 4, 5, 6, 7]
        for limit in (1, 2, 3, 4, 7, 8):
            seen, after, pages = [], 0, 0
            while True:
                first, complete = first_events(record, patient, after, limit)
                assert complete == (after == 0 and len(first) < 2 * limit)
                load_reachable(
                    record, services.registry, "health_center", "hc-north", patient, now, first if complete else None
                )
                items, nxt = timeline(record, patient, "health_center", "hc-north", (), after, limit, first)
                assert (items, nxt) == timeline(record, patient, "health_center", "hc-north", (), after, limit)
                seen += [i["version"] for i in items]
                pages += 1
                if nxt is None:
                    break
                after = nxt
            assert seen == whole and pages == -(-7 // limit), limit
