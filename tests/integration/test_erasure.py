"""Erasing a patient whose facts came over NATS: approved by a second agency (one an auditor),
carried out only after the cooling-off; then none of its personal or free-text values is
readable in the raw store (PostgreSQL tables or SQLite files with their -wal), the read models,
the access log or the NATS store directory (a positive control finds them before), the ID
number answers nothing, and `smd verify` passes. On both stores, with a nats-server of the
test's own."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import nats
import psycopg
import pytest

from core import restrictions
from core.erasure import erase_due, erased_subjects
from core.identity import find_by_id_number, find_by_name
from core.registry import load_file
from core.restrictions import Requester
from domain.errors import PatientNotFound
from domain.restriction import ApprovalBySameAgency, RestrictionAct, RetentionApplies
from integrations.erasure import delete_messages_about
from integrations.runner import run_intake
from integrations.streams import INTAKE_CONSUMER, names_of
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_restriction import send
from tests.support.agency_client import AgencyClient, envelope
from tests.support.nats_world import wait_for
from tests.support.stores import MovableClock, open_services, store_settings

pytestmark = pytest.mark.integration

HC, AUDITOR = "hc-north", "auditor-lantern-bay"
VILLAGE = "990101-001-v01"
ID_NUMBER = "11010519491231002X"
BORN = date(1949, 12, 31)  # the ID number's own digits
NAME, PHONE, ADDRESS = "Erasable 张测试", "13911112222", "Lane 7, Reservoir Road 水库路"
NOTE = "registered in error: the twin brother 李孪生 was meant"
VALUES = (NAME, ID_NUMBER, PHONE, ADDRESS, NOTE)
SEALED = re.compile(
    rb'\{\s*"v"\s*:\s*1\s*,\s*"alg"\s*:\s*"([^"]+)"\s*,\s*"subject"\s*:\s*"([0-9a-f-]{36})"\s*,\s*'
    rb'"type"\s*:\s*"(\w+)"\s*,\s*"nonce"\s*:\s*"([^"]+)"\s*,\s*"ct"\s*:\s*"([^"]+)"\s*\}'
)


@pytest.fixture
def world(store_kind: str, tmp_path: Path, private_nats, request: pytest.FixtureRequest) -> Iterator[tuple]:
    pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
    settings = store_settings(
        store_kind, tmp_path / "data", pg_url, SMD_NATS_URL=private_nats.url, SMD_SUBJECT_ROOT="erase"
    )
    from core.case_record import utc_now

    clock = MovableClock(utc_now())
    services = open_services(settings, clock=clock)
    load_file(services.case_record, DEMO_DISTRICT)
    yield services, clock, private_nats, pg_url
    services.close()


# -- the scans ---------------------------------------------------------------------------------------


def raw_blobs(services: Services, pg_url: str | None) -> list[bytes]:
    """Every stored byte: each text, JSON and bytea cell of every PostgreSQL table, or every file of
    the SQLite data folder (the -wal files too)."""
    if pg_url is None:
        return [p.read_bytes() for p in sorted(services.settings.data_dir.rglob("*")) if p.is_file()]
    blobs: list[bytes] = []
    with psycopg.connect(pg_url) as conn:
        columns = conn.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND data_type IN ('text', 'bytea', 'json', 'jsonb', 'character varying')"
        ).fetchall()
        for schema, table, column in columns:
            for (value,) in conn.execute(f'SELECT "{column}"::text FROM "{schema}"."{table}"'):
                if value is not None:
                    blobs.append(value.encode())
                    if value.startswith("\\x"):  # bytea as hex text: the bytes themselves too
                        blobs.append(bytes.fromhex(value[2:]))
    return blobs


def forms(value: str) -> tuple[bytes, ...]:
    """The bytes a value can be stored as: UTF-8, or JSON with non-ASCII escaped."""
    return (value.encode(), json.dumps(value)[1:-1].encode())


def plaintext_found(blobs: list[bytes]) -> set[str]:
    return {v for v in VALUES for b in blobs for f in forms(v) if f in b}


def readable_sealed(services: Services, blobs: list[bytes], patient: UUID) -> set[str]:
    """The patient's values that sealed values in the raw store still open to."""
    found: set[str] = set()
    for blob in blobs:
        for alg, subject, kind, nonce, ct in SEALED.findall(blob):
            if subject.decode() != str(patient):
                continue
            sealed = {"v": 1, "alg": alg.decode(), "subject": subject.decode(), "type": kind.decode()}
            value = services.case_record.mapper.unseal({**sealed, "nonce": nonce.decode(), "ct": ct.decode()})
            text = repr(value)
            found |= {v for v in VALUES if v in text}
    return found


def nats_store_found(store: Path) -> set[str]:
    blobs = [p.read_bytes() for p in store.rglob("*") if p.is_file()]
    return plaintext_found(blobs)


# -- the story ---------------------------------------------------------------------------------------


async def over_nats(services: Services, url: str, patient: UUID) -> None:
    """Registration, two visits, a refused second registration and the deregistration (in error,
    with a free-text note), over NATS through the intake worker."""
    names = names_of(services.settings)
    nc = await nats.connect(url, connect_timeout=5)
    worker = await nats.connect(url, connect_timeout=5)
    stop = asyncio.Event()
    task = asyncio.create_task(run_intake(services, worker, stop))
    try:

        async def ready() -> bool:
            try:
                await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
            except nats.js.errors.NotFoundError:
                return False
            return True

        await wait_for(ready, what="the intake consumer")
        hc = AgencyClient(nc, names, HC)
        await hc.publish(
            hc.registration(patient, VILLAGE, name=NAME, id_number=ID_NUMBER, phone=PHONE, address=ADDRESS)
        )
        await hc.publish(hc.visit(patient, 2, "basically_stable"))
        await hc.publish(hc.visit(patient, 1, "basically_stable"))
        await wait_for(lambda: _versions(services, patient) >= 3, what="the registration and visits")
        await hc.publish(hc.registration(patient, VILLAGE, name=NAME, id_number=ID_NUMBER, phone=PHONE))
        assert len(await hc.rejections(1)) == 1  # patient-already-registered: its bytes in the rejection stream
        gone = {"reason": "registered_in_error", "note": NOTE}
        await hc.publish(envelope(HC, "cn.smd.patient.deregistered.v1", patient, gone))
        await wait_for(lambda: _versions(services, patient) >= 4, what="the deregistration")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await worker.close()
        await nc.close()


def _versions(services: Services, patient: UUID) -> int:
    try:
        return services.case_record.patient(patient).version
    except PatientNotFound:
        return 0


def follow(services: Services) -> None:
    while services.policies.run_once() or services.work_queue.run_once() or services.chain.run_once():
        pass


async def delete_from_streams(url: str, services: Services) -> dict[str, list[int]]:
    nc = await nats.connect(url, connect_timeout=5)
    try:
        return await delete_messages_about(
            nc.jetstream(), names_of(services.settings), erased_subjects(services.case_record)
        )
    finally:
        await nc.close()


class TestErasure:
    def test_an_erased_patient_leaves_nothing_readable_anywhere_and_the_log_still_verifies(
        self, world, monkeypatch, capsys
    ) -> None:
        services, clock, server, pg_url = world
        patient = uuid4()
        asyncio.run(over_nats(services, server.url, patient))
        follow(services)
        services.access_log.append(_read_entry(services, patient))  # a read of the file, recorded

        # the positive control: the same scans find the values before the erasure
        blobs = raw_blobs(services, pg_url)
        assert plaintext_found(blobs) == set()  # sealed at rest from the start
        assert readable_sealed(services, blobs, patient) == set(VALUES)
        assert nats_store_found(server.base / "store") == set(VALUES)
        assert find_by_id_number(services.case_record, ID_NUMBER, clock()) == [patient]
        assert find_by_name(services.case_record, NAME, BORN, clock()) == [patient]

        counted = services.work_queue.counts_by_rule()  # the aggregate behind /metrics, before
        # requested by the health center; the same agency may not approve; the auditor does
        hc, auditor = Requester(HC, "health_center", "k-hc"), Requester(AUDITOR, "auditor", "k-au")
        filed = restrictions.request(services.case_record, patient, RestrictionAct.ERASE, hc, "registered in error")
        with pytest.raises(ApprovalBySameAgency):
            restrictions.approve(services.case_record, filed.id, hc, "ok")
        restrictions.approve(services.case_record, filed.id, auditor, "checked the error", timedelta(days=30))
        assert restrictions.is_restricted(services.case_record, patient)  # processing stops at once

        # the cooling-off is enforced: nothing is erased before it has passed
        clock.now += timedelta(days=29)
        assert erase_due(services.case_record) == []
        assert readable_sealed(services, raw_blobs(services, pg_url), patient) == set(VALUES)
        clock.now += timedelta(days=2)
        done = erase_due(services.case_record)
        assert [(e.subject_id, e.markers_retired, e.key_destroyed) for e in done] == [(patient, 1, True)]
        deleted = asyncio.run(delete_from_streams(server.url, services))
        assert sum(len(s) for s in deleted.values()) >= 5  # 4 stored messages and the rejected one
        follow(services)

        assert services.work_queue.counts_by_rule() == counted  # past counts still include the patient
        # nothing readable: raw store, read models, access log, NATS store directory
        blobs = raw_blobs(services, pg_url)
        assert plaintext_found(blobs) == set()
        assert readable_sealed(services, blobs, patient) == set()
        assert nats_store_found(server.base / "store") == set()
        # the file replays with erased values; the auditor still sees the readable facts
        file = services.case_record.patient(patient)
        assert file.personal.erased and file.personal.name is None and file.deregistration_reason
        # the ID number answers nothing to search, and registers again
        assert find_by_id_number(services.case_record, ID_NUMBER, clock()) == []
        assert find_by_name(services.case_record, NAME, BORN, clock()) == []
        assert erase_due(services.case_record) == []  # done once
        again = uuid4()
        body = {"name": "Another Person", "id_number": ID_NUMBER, "residence": VILLAGE}
        send(services, HC, "cn.smd.patient.registered.v1", again, body, clock() - timedelta(hours=1))
        assert find_by_id_number(services.case_record, ID_NUMBER, clock()) == [again]

        # the chain still verifies
        from ops.cli import main
        from tests.integration.test_verifiable_log import use_settings

        use_settings(monkeypatch, services)
        assert main(["verify", "--follow"]) == 0
        assert "verify: OK" in capsys.readouterr().out

    def test_erasure_is_refused_where_a_retention_applies(self, world) -> None:
        services, clock, _, _ = world
        patient = uuid4()
        body = {"name": "Test Person", "residence": VILLAGE}
        send(services, HC, "cn.smd.patient.registered.v1", patient, body, clock() - timedelta(days=3))
        send(services, HC, "cn.smd.patient.deregistered.v1", patient, {"reason": "death"}, clock() - timedelta(days=1))
        hc = Requester(HC, "health_center", "k-hc")
        with pytest.raises(RetentionApplies):
            restrictions.request(services.case_record, patient, RestrictionAct.ERASE, hc, "family asked")


def _read_entry(services: Services, patient: UUID):
    from core.access_log import AccessEntry

    return AccessEntry(
        at=services.case_record.clock(),
        agency_id=HC,
        key_id="k-hc",
        staff_id="staff-07",
        purpose="care",
        endpoint="GET /v1/patients/{patient_id}",
        status=200,
        patient_ids=(patient,),
        fields=("name", "id_number"),
    )
