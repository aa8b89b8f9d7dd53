"""NATS intake against the real servers: stored once, refused with reasons, safe across a crash."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import UUID, uuid4

import nats
import pytest
import pytest_asyncio
from eventsourcing.persistence import OperationalError
from litestar import Litestar
from litestar.testing import AsyncTestClient
from nats.aio.client import Client
from nats.js.api import StreamConfig

import integrations.intake
from core.case_record import CaseRecord
from core.intake import accept_batch
from domain.errors import PatientNotFound
from domain.receipt import receipt_id
from integrations.intake import H_DETAIL, H_REASON, H_SEQ, H_SUBJECT
from integrations.runner import run_intake
from integrations.streams import (
    IN_DUPLICATE_WINDOW,
    IN_MAX_AGE,
    INTAKE_ACK_WAIT,
    INTAKE_CONSUMER,
    INTAKE_MAX_ACK_PENDING,
    Names,
    ensure_consumer,
    ensure_streams,
    intake_consumer_config,
    names_of,
)
from ops.bootstrap import Services
from ops.workers import background_lifespan
from tests.support.agency_client import AgencyClient
from tests.support.nats_world import ROOT_DIR, WORKER, stream_exists, wait_for  # noqa: F401 - used by some

pytestmark = pytest.mark.integration

HC = "hc-north"  # a health center of the demo district
VILLAGE = "990101-001-v01"  # Plum Orchard Village, in hc-north's and police-east's area


# -- fixtures ---------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def intake(svc: Services, nats_url: str, nc: Client) -> AsyncIterator[None]:
    """The intake worker running in this process (as in `smd serve`)."""
    worker_nc = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()
    task = asyncio.create_task(run_intake(svc, worker_nc, stop))
    await wait_for(lambda: consumer_exists(nc, names_of(svc.settings)), what="intake consumer")
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    await worker_nc.close()


# -- helpers ----------------------------------------------------------------------------------


async def consumer_exists(nc: Client, names: Names) -> bool:
    try:
        await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
    except nats.js.errors.NotFoundError:
        return False
    return True


async def intake_settled(nc: Client, names: Names, last_seq: int) -> bool:
    """The consumer has delivered up to ``last_seq`` and holds no unacknowledged message."""
    info = await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
    return info.delivered.stream_seq >= last_seq and info.num_ack_pending == 0 and info.num_pending == 0


def registered(case_record: CaseRecord, patient: UUID) -> bool:
    try:
        case_record.patient(patient)
    except PatientNotFound:
        return False
    return True


def stored_count(case_record: CaseRecord, aggregate_id: UUID) -> int:
    return len(case_record.recorder.select_events(aggregate_id))


def key_of(raw: bytes) -> str:
    doc = json.loads(raw)
    return f"{doc['source']}:{doc['id']}"


# -- tests ------------------------------------------------------------------------------------


async def test_streams_and_the_consumer_are_declared_once_and_updated_when_their_config_drifts(
    names: Names, nc: Client, subject_root: str
) -> None:
    js = nc.jetstream()
    first = await ensure_streams(js, names)
    assert set(first.values()) == {"created"}
    assert all(name.startswith(subject_root.upper() + "_") for name in first)
    assert await ensure_streams(js, names) == dict.fromkeys(first, "unchanged")

    await js.update_stream(
        StreamConfig(name=names.intake_stream, subjects=[names.intake_all], max_age=60, duplicate_window=30)
    )
    assert (await ensure_streams(js, names))[names.intake_stream] == "updated"
    intake_config = (await js.stream_info(names.intake_stream)).config
    assert (intake_config.max_age, intake_config.duplicate_window) == (IN_MAX_AGE, IN_DUPLICATE_WINDOW)

    assert await ensure_consumer(js, names.intake_stream, intake_consumer_config()) == "created"
    stale = intake_consumer_config()
    stale.max_ack_pending = 1000  # the server default that stalls silently
    await js.add_consumer(names.intake_stream, stale)
    assert await ensure_consumer(js, names.intake_stream, intake_consumer_config()) == "updated"
    info = await js.consumer_info(names.intake_stream, INTAKE_CONSUMER)
    assert (info.config.max_ack_pending, info.config.ack_wait) == (INTAKE_MAX_ACK_PENDING, INTAKE_ACK_WAIT)


async def test_a_health_center_publishing_a_registration_and_a_level_4_visit_gets_both_recorded(
    svc: Services, names: Names, nc: Client, intake: None
) -> None:
    hc = AgencyClient(nc, names, HC)
    patient = uuid4()
    await hc.publish(hc.registration(patient, VILLAGE))
    ack = await hc.publish(hc.visit(patient, 4, "unstable"))

    await wait_for(lambda: intake_settled(nc, names, ack.seq), what="the intake to ack both")
    record = svc.case_record.patient(patient)
    assert (record.residence, record.registered_by, record.risk_level) == (VILLAGE, HC, 4)
    assert stored_count(svc.case_record, patient) == 2


async def test_the_same_envelope_published_three_times_is_stored_once(
    svc: Services, names: Names, nc: Client, intake: None
) -> None:
    hc = AgencyClient(nc, names, HC)
    patient = uuid4()
    raw = hc.registration(patient, VILLAGE)
    first = await hc.publish(raw)  # Nats-Msg-Id = <source>:<id>
    other = await hc.publish(raw, msg_id="another-id-so-jetstream-keeps-it")
    again = await hc.publish(raw)  # same Nats-Msg-Id: JetStream drops it
    assert (other.duplicate, again.duplicate, again.seq) == (None, True, first.seq)

    await wait_for(lambda: intake_settled(nc, names, other.seq), what="the intake to ack both")
    assert stored_count(svc.case_record, patient) == 1
    assert stored_count(svc.case_record, receipt_id(key_of(raw))) == 1
    rejected = await nc.jetstream().stream_info(names.rejected_stream)
    assert rejected.state.messages == 0  # the redelivery was a duplicate, not a refusal


async def test_malformed_and_wrongly_sourced_messages_are_rejected_with_reasons_and_the_rest_stored(
    svc: Services, names: Names, nc: Client, intake: None
) -> None:
    hc = AgencyClient(nc, names, HC)
    police = AgencyClient(nc, names, "police-east")
    patient = uuid4()
    malformed = b'{"specversion": "1.0", "type": "cn.smd.patient.registered.v1", "data": '
    foreign = hc.registration(uuid4(), VILLAGE, source="hc-south")  # on hc-north's subject
    not_allowed = police.visit(patient, 4, "unstable")
    bad = await hc.publish(malformed, event_type="patient.registered.v1", msg_id="hc-north:bad")
    wrong = await hc.publish(foreign)
    denied = await police.publish(not_allowed)
    await hc.publish(hc.registration(patient, VILLAGE))
    last = await hc.publish(hc.visit(patient, 4, "unstable"))

    await wait_for(lambda: intake_settled(nc, names, last.seq), what="the intake to ack all")
    assert svc.case_record.patient(patient).risk_level == 4

    got = await hc.rejections(2)
    assert [m.data for m in got] == [malformed, foreign]  # the original bytes
    by_reason = {m.headers[H_REASON]: m.headers for m in got}
    assert set(by_reason) == {"invalid-envelope", "source-mismatch"}
    assert by_reason["invalid-envelope"][H_SEQ] == str(bad.seq)
    assert "JSON" in by_reason["invalid-envelope"][H_DETAIL]
    assert by_reason["source-mismatch"][H_SEQ] == str(wrong.seq)
    assert "set source to 'hc-north'" in by_reason["source-mismatch"][H_DETAIL]
    assert by_reason["source-mismatch"][H_SUBJECT] == names.intake(HC, "patient.registered.v1")
    assert all(m.headers["Nats-Msg-Id"] == f"rejected:{m.headers[H_SEQ]}" for m in got)

    [refused] = await police.rejections(1)
    assert (refused.data, refused.headers[H_REASON]) == (not_allowed, "not-allowed-to-record")
    assert refused.headers[H_SEQ] == str(denied.seq)
    assert "Test Person" not in str(refused.headers)  # headers carry reasons, not personal data


async def test_a_store_failure_gives_the_message_back_for_later_and_never_rejects_it(
    svc: Services, names: Names, nc: Client, intake: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = []

    def store_down_once(*args: object, **kwargs: object) -> object:
        if not failures:
            failures.append(1)
            raise OperationalError("connection refused")  # what the recorder raises
        return accept_batch(*args, **kwargs)

    monkeypatch.setattr(integrations.intake, "accept_batch", store_down_once)
    hc = AgencyClient(nc, names, HC)
    patient = uuid4()
    ack = await hc.publish(hc.registration(patient, VILLAGE))

    await wait_for(lambda: intake_settled(nc, names, ack.seq), what="the retry to be acked")
    assert failures and registered(svc.case_record, patient)
    info = await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
    assert info.delivered.consumer_seq == 2  # nak'ed once, then delivered again
    assert (await nc.jetstream().stream_info(names.rejected_stream)).state.messages == 0


async def test_the_service_lifespan_runs_the_intake_in_process_and_stops_it_cleanly(
    svc: Services, names: Names, nc: Client
) -> None:
    app = Litestar(route_handlers=[], lifespan=[background_lifespan(svc)])
    async with AsyncTestClient(app=app):  # connects in the background (serves while NATS is down)
        await wait_for(lambda: svc.nats is not None and svc.nats.is_connected, what="NATS connected")
        await wait_for(lambda: consumer_exists(nc, names), what="the intake consumer")
        hc = AgencyClient(nc, names, HC)
        patient = uuid4()
        ack = await hc.publish(hc.registration(patient, VILLAGE))
        await wait_for(lambda: intake_settled(nc, names, ack.seq), what="the intake to ack")
        assert registered(svc.case_record, patient)
    assert svc.nats is None


@pytest.mark.slow
async def test_an_intake_killed_between_commit_and_ack_stores_the_message_once_after_restart(
    svc: Services,
    names: Names,
    nc: Client,
    workers: Callable[..., subprocess.Popen],
    tmp_path: Path,
) -> None:
    crashing = workers("ingest", SMD_FAULT="intake-kill-after-commit")
    await wait_for(lambda: consumer_exists(nc, names), what="the intake consumer")
    hc = AgencyClient(nc, names, HC)
    patient = uuid4()
    raw = hc.registration(patient, VILLAGE)
    ack = await hc.publish(raw)

    await wait_for(lambda: crashing.poll() is not None, what="the intake to kill itself")
    assert crashing.returncode == -signal.SIGKILL
    assert registered(svc.case_record, patient)  # committed ...
    info = await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
    assert info.num_ack_pending == 1  # ... but never acked

    workers("ingest")  # redelivery comes after AckWait (30 s)
    await wait_for(lambda: intake_settled(nc, names, ack.seq), what="the redelivery to be acked", timeout=60)
    assert stored_count(svc.case_record, patient) == 1
    assert stored_count(svc.case_record, receipt_id(key_of(raw))) == 1
    info = await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
    assert info.num_ack_pending == 0
    lines = [json.loads(line) for line in (tmp_path / "ingest-1.log").read_text().splitlines() if line.startswith("{")]
    [line] = [x for x in lines if x.get("event") == "intake"]  # one line per message
    assert (line["seq"], line["outcome"], line["correlation_id"]) == (ack.seq, "duplicate", key_of(raw))
    logged = (tmp_path / "ingest-0.log").read_text() + (tmp_path / "ingest-1.log").read_text()
    assert "Test Person" not in logged  # ids and outcomes, never bodies


@pytest.mark.slow
async def test_two_intake_processes_on_one_durable_consumer_store_every_message_once(
    svc: Services, names: Names, nc: Client, workers: Callable[..., subprocess.Popen]
) -> None:
    # Two `smd ingest` processes take batches from the same consumer: the same patients' facts
    # land in both, so their batches collide (optimistic concurrency) and visits may overtake
    # their registration into the other process (they wait for it).
    first, second = workers("ingest"), workers("ingest")
    await wait_for(lambda: consumer_exists(nc, names), what="the intake consumer")
    hc = AgencyClient(nc, names, HC)
    patients = [uuid4() for _ in range(80)]
    ledger: dict[str, int] = {}  # what the stream acknowledged to the sender: key → sequence
    for p in patients:
        for raw in (hc.registration(p, VILLAGE), *(hc.visit(p, 1 + i % 2, "basically_stable") for i in range(5))):
            ledger[key_of(raw)] = (await hc.publish(raw)).seq

    last = max(ledger.values())
    await wait_for(lambda: intake_settled(nc, names, last), what="every message acked", timeout=180)
    assert first.poll() is None and second.poll() is None, "both intakes still running"
    lost = [k for k in ledger if stored_count(svc.case_record, receipt_id(k)) == 0]
    doubled = [k for k in ledger if stored_count(svc.case_record, receipt_id(k)) > 1]
    assert (lost, doubled) == ([], [])
    assert [stored_count(svc.case_record, p) for p in patients] == [6] * len(patients)
    assert (await nc.jetstream().stream_info(names.rejected_stream)).state.messages == 0
    assert svc.waiting.stats().waiting == 0
