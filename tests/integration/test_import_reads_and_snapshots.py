"""What makes a large import fast changes nothing stored: a snapshot taken from the aggregate just
saved is the one a replay from the store would give, and a batch's patients read together (their
latest snapshot and the events after it) are the patients read one by one."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import psycopg
from eventsourcing.domain import Snapshot

from core.backfill import import_lines
from core.case_record import mutate_all
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_backfill import HC, VILLAGE, complete_go_live, envelope, visit

EVERY = 5  # a snapshot every 5 events: the import below crosses many, at every place in a batch


def ledger(patients: list[UUID], facts: int) -> bytes:
    rows = [
        envelope(pid, "patient.registered", {"name": "Ledger Person", "residence": VILLAGE}, 400) for pid in patients
    ]
    for i in range(facts):
        for pid in patients:  # interleaved: a patient's snapshot falls anywhere in a batch
            if i % 2:
                rows.append(visit(pid, 3 if i % 7 == 1 else 1, 300 - i))
            else:
                data = {"risk_level": 1, "risk_class": "basically_stable"}
                rows.append(envelope(pid, "risk.assessed", data, 300 - i))
    return "\n".join(json.dumps(r) for r in rows).encode()


def replayed(services, pid: UUID, version: int | None = None):
    """The patient from its events alone (no snapshot, no cache)."""
    return mutate_all(None, services.case_record.events.get(pid, lte=version))


def as_stored(services, aggregate) -> dict:
    """A snapshot of ``aggregate`` as reading it back from the store gives it."""
    mapper = services.case_record.mapper
    return mapper.to_domain_event(mapper.to_stored_event(Snapshot.take(aggregate))).state


def test_every_snapshot_an_import_takes_is_the_state_its_events_replay_to(open_store) -> None:
    services = open_store(snapshot_every=EVERY)
    load_file(services.case_record, DEMO_DISTRICT)
    patients = [uuid4() for _ in range(3)]
    report = import_lines(services.case_record, services.registry, ledger(patients, 23), HC, batch=7)
    assert (report.recorded, report.refused) == (3 * 24, [])
    assert complete_go_live(services) == 3

    taken = 0
    for pid in patients:
        for snapshot in services.case_record.snapshots.get(pid):
            assert snapshot.originator_version % EVERY == 0
            assert snapshot.state == as_stored(services, replayed(services, pid, snapshot.originator_version))
            taken += 1
    assert taken == 3 * (26 // EVERY)  # registration, 23 facts, joined, assessed: 26 events each


def test_a_batch_reads_its_uncached_patients_as_the_record_reads_them_one_by_one(open_store) -> None:
    services = open_store(snapshot_every=EVERY)
    load_file(services.case_record, DEMO_DISTRICT)
    patients = [uuid4() for _ in range(4)]
    import_lines(services.case_record, services.registry, ledger(patients, 7), HC, batch=5)
    import_lines(services.case_record, services.registry, ledger(patients[:2], 3), HC)  # two with more events

    fresh = services.case_record.read_fresh([*patients, uuid4()])  # one never recorded
    assert fresh is not None and set(fresh) == set(patients)
    for pid in patients:
        assert fresh[pid].version == replayed(services, pid).version
        assert vars(fresh[pid]) == vars(services.case_record.repository.get(pid))


def test_the_go_live_assesses_patients_that_are_no_longer_cached(open_store) -> None:
    services = open_store(snapshot_every=EVERY)
    load_file(services.case_record, DEMO_DISTRICT)
    patients = [uuid4() for _ in range(4)]
    import_lines(services.case_record, services.registry, ledger(patients, 6), HC, batch=5)
    services.case_record.repository.cache.clear()  # as after many more patients than it holds
    assert complete_go_live(services) == 4
    for pid in patients:
        assert not services.case_record.patient(pid).awaiting_go_live
        assert services.case_record.patient(pid).version == replayed(services, pid).version


def test_the_case_records_connections_do_not_jit_compile_on_postgresql(open_store, store_kind) -> None:
    services = open_store()
    datastore = getattr(services.case_record.recorder, "datastore", None)
    if store_kind != "postgres" or not hasattr(datastore, "pool"):
        return  # SQLite has no JIT
    options = {k: v for k, v in datastore.pool.kwargs.items() if k != "row_factory"}
    with psycopg.connect(**options) as conn:  # as the pool makes its connections
        assert conn.execute("SHOW jit").fetchone() == ("off",)
    assert services.case_record.events_after({uuid4(): 0}) == {}  # the query turns it off itself too
