"""Concurrent writers on one patient never lose an event (PostgreSQL, separate processes)."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from tests.support.stores import NOW, Agency, open_services, store_settings

WRITERS, EACH = 4, 25


def _writer(data_dir: str, pg_url: str, patient: str, start_at: float, n: int, results) -> None:
    services = open_services(store_settings("postgres", __import__("pathlib").Path(data_dir), pg_url))
    agency = Agency("hc-east")
    time.sleep(max(0.0, start_at - time.time()))  # all writers start together
    for i in range(n):
        level = i % 3
        event = agency.assess(
            UUID(patient), level, "basically_stable" if level else "stable", occurred=NOW - timedelta(minutes=i)
        )
        services.case_record.record(event, "hc-east")
    results.put(services.case_record.retries)
    services.close()


@pytest.mark.integration
@pytest.mark.slow
class TestConcurrentWriters:
    def test_n_processes_appending_to_one_patient_lose_no_event_and_retry_on_conflict(
        self, fresh_pg_database, tmp_path
    ) -> None:
        db = fresh_pg_database()
        settings = store_settings("postgres", tmp_path, db.url)
        services, patient = open_services(settings), uuid4()
        services.case_record.record(Agency().register(patient), "hc-east")

        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        start_at = time.time() + 3.0
        procs = [
            ctx.Process(target=_writer, args=(str(tmp_path), db.url, str(patient), start_at, EACH, results))
            for _ in range(WRITERS)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
            assert p.exitcode == 0
        retries = [results.get(timeout=5) for _ in procs]

        assert services.case_record.patient(patient).version == 1 + WRITERS * EACH
        assert sum(retries) >= 1, "writers collided at least once (otherwise the test proved nothing)"
        services.close()
