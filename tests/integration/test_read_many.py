"""``CaseRecord.read_many``: the cached patients as they are, the others read in one query and
kept in the cache, each the state the repository itself would read, on both stores."""

from __future__ import annotations

from uuid import uuid4, uuid5

from api.lists import row_file
from core.case_record import utc_now
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT


def test_patients_not_cached_are_read_whole_and_kept_in_the_cache(open_store) -> None:
    from ops.bench_lists import NS, populate

    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    populate(services, 6)
    record = services.case_record
    ids = [uuid5(NS, str(n)) for n in range(6)]
    cache = record.repository.cache
    if cache is not None:
        cache.clear()
    record.read_many(ids[:2])  # two cached, four not
    found = record.read_many([*ids, uuid4()])  # and one never recorded
    assert list(found) == ids
    now = utc_now()
    for pid, patient in found.items():
        fresh = record.repository.get(pid)  # a copy, read by the repository itself
        assert patient.version == fresh.version
        assert row_file(patient, now) == row_file(fresh, now)
        if cache is not None:
            assert cache.get(pid) is patient  # kept: the next page reads it from the cache
    assert record.read_many(ids) == found


def test_preloaded_keys_are_the_keys_and_a_destroyed_one_stays_erased(open_store) -> None:
    from ops.bench_lists import NS, populate

    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    populate(services, 4)
    keystore = services.case_record.mapper.keystore
    ids = [uuid5(NS, str(n)) for n in range(4)]
    expected = {i: keystore.existing_data_key(i) for i in ids}
    assert keystore.destroy(ids[0])
    keystore._cache.clear()
    keystore.preload([*ids, uuid4()])
    assert ids[0] not in keystore._cache  # destroyed: not brought back
    assert {i: keystore._cache.get(i) for i in ids[1:]} == {i: expected[i] for i in ids[1:]}
    assert keystore.existing_data_key(ids[0]) is None
