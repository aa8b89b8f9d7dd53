"""Bytes that used to crash or stall the NATS intake, against the real servers, on both stores.

Each is rejected at once with its reason on the sender's rejection subject (original bytes,
``Smd-Reason``), acked, never redelivered as an internal error, nothing stored; valid messages
published right after are stored within 5 s.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from uuid import UUID, uuid4

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from core.registry import load_file
from domain.errors import PatientNotFound
from integrations.intake import H_DETAIL, H_REASON, H_SEQ
from integrations.runner import run_intake
from integrations.streams import INTAKE_CONSUMER, Names, names_of
from ops.bootstrap import Services, bootstrap
from ops.data_files import DEMO_DISTRICT
from ops.settings import load_settings
from tests.support.agency_client import AgencyClient
from tests.support.nats_world import wait_for
from tests.support.servers import PgDatabase

pytestmark = pytest.mark.integration

HC = "hc-north"
VILLAGE = "990101-001-v01"  # in hc-north's area
STORED_WITHIN = 5.0  # seconds: valid messages after bad ones


# -- fixtures: the module's services on the parametrised store (tests.support.nats_world's names
# -- and nc fixtures use them) ----------------------------------------------------------------


@pytest.fixture
def nats_env(store_kind: str, tmp_path: Path, nats_url: str, subject_root: str, request: pytest.FixtureRequest):
    env = {
        "SMD_NATS_URL": nats_url,
        "SMD_SUBJECT_ROOT": f"{subject_root}_{secrets.token_hex(3)}",
        "SMD_DATA_DIR": str(tmp_path / "data"),
        "SMD_LOG_FORMAT": "json",
    }
    if store_kind == "postgres":
        make: Callable[[], PgDatabase] = request.getfixturevalue("fresh_pg_database")
        env["SMD_DATABASE_URL"] = make().url
    return env


@pytest.fixture
def svc(nats_env: dict[str, str]) -> Iterator[Services]:
    services = bootstrap(load_settings(nats_env))
    load_file(services.case_record, DEMO_DISTRICT)
    yield services
    services.close()


@pytest_asyncio.fixture
async def intake(svc: Services, nats_url: str, nc: Client) -> AsyncIterator[None]:
    """The intake worker in this process, as `smd serve` runs it."""
    worker_nc = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()
    task = asyncio.create_task(run_intake(svc, worker_nc, stop))
    names = names_of(svc.settings)

    async def consumer_ready() -> bool:
        try:
            await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
        except nats.js.errors.NotFoundError:
            return False
        return True

    await wait_for(consumer_ready, what="the intake consumer")
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    await worker_nc.close()


# -- helpers ----------------------------------------------------------------------------------


async def publish_bytes(nc: Client, names: Names, raw: bytes, msg_id: str) -> int:
    """Publish bytes as a broken agency system would (no parsing on the way); the stream seq."""
    ack = await nc.jetstream().publish(
        names.intake(HC, "patient.registered.v1"), raw, headers={"Nats-Msg-Id": msg_id}, stream=names.intake_stream
    )
    return ack.seq


def registered(svc: Services, patient: UUID) -> bool:
    try:
        svc.case_record.patient(patient)
    except PatientNotFound:
        return False
    return True


async def stored_in_time(svc: Services, patient: UUID, risk_level: int, since: float) -> float:
    """Bounded poll: the patient registered with the visit's level; seconds it took from ``since``."""

    def done() -> bool:
        return registered(svc, patient) and svc.case_record.patient(patient).risk_level == risk_level

    await wait_for(done, what="the valid messages after the bad ones", timeout=STORED_WITHIN)
    return time.monotonic() - since


def bad_inputs(hc: AgencyClient) -> dict[str, tuple[bytes, UUID | None]]:
    """Reason → (bytes, the patient it would have registered, if any)."""
    deep_patient, utf8_patient, big_patient, dup_patient = uuid4(), uuid4(), uuid4(), uuid4()
    thousand_deep = b"[" * 1000 + b"]" * 1000
    deep = hc.registration(deep_patient, VILLAGE).replace(b'"Test Person"', thousand_deep)
    bad_utf8 = hc.registration(utf8_patient, VILLAGE).replace(b"Test Person", b"Test \xff\xfe Person")
    # the agency client builds only what the contract takes: the bad bytes are edited in after
    oversize = hc.registration(big_patient, VILLAGE).replace(b'"Test Person"', b'"' + b"x" * 70_000 + b'"')
    duplicate = hc.registration(dup_patient, VILLAGE).replace(
        f'"residence":"{VILLAGE}"'.encode(), f'"residence":"{VILLAGE}","residence":"990101-002-v01"'.encode()
    )
    nested_only = b'{"a":' * 1000 + b"1" + b"}" * 1000  # no envelope at all
    return {
        "too-deeply-nested": (deep, deep_patient),
        "invalid-utf8": (bad_utf8, utf8_patient),
        "message-too-large": (oversize, big_patient),
        "duplicate-key": (duplicate, dup_patient),
        "too-deeply-nested/bare": (nested_only, None),
    }


# -- tests ------------------------------------------------------------------------------------


async def test_each_bad_input_class_is_rejected_with_its_reason_and_valid_messages_after_are_stored(
    svc: Services, names: Names, nc: Client, intake: None
) -> None:
    hc = AgencyClient(nc, names, HC)
    bad = bad_inputs(hc)
    seqs = {}
    for i, (label, (raw, _)) in enumerate(bad.items()):
        seqs[label] = await publish_bytes(nc, names, raw, f"{HC}:bad-{i}")
    patient = uuid4()
    sent = time.monotonic()
    await hc.publish(hc.registration(patient, VILLAGE))
    last = await hc.publish(hc.visit(patient, 4, "unstable"))

    took = await stored_in_time(svc, patient, 4, sent)
    assert took < STORED_WITHIN

    got = await hc.rejections(len(bad))
    assert len(got) == len(bad)
    by_seq = {int(m.headers[H_SEQ]): m for m in got}
    for label, (raw, would_be) in bad.items():
        m = by_seq[seqs[label]]
        assert m.headers[H_REASON] == label.split("/")[0]
        assert m.data == raw  # the original bytes, kept for the sender
        assert m.headers[H_DETAIL]  # what to fix
        if would_be is not None:
            assert not registered(svc, would_be)  # nothing stored
    assert "SMD_MAX_JSON_DEPTH" in by_seq[seqs["too-deeply-nested"]].headers[H_DETAIL]
    assert "'residence' more than once" in by_seq[seqs["duplicate-key"]].headers[H_DETAIL]

    info = await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
    assert info.delivered.stream_seq >= last.seq
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0)  # acked at once, never retried


async def test_500_invalid_utf8_messages_in_a_row_do_not_delay_a_valid_registration(
    svc: Services, names: Names, nc: Client, intake: None
) -> None:
    hc = AgencyClient(nc, names, HC)
    template = hc.registration(uuid4(), VILLAGE).replace(b"Test Person", b"Test \xc3\x28 Person")
    js = nc.jetstream()
    subject = names.intake(HC, "patient.registered.v1")
    acks = [js.publish(subject, template, headers={"Nats-Msg-Id": f"{HC}:utf8-{i}"}) for i in range(500)]
    await asyncio.gather(*acks)
    patient = uuid4()
    sent = time.monotonic()
    ack = await hc.publish(hc.registration(patient, VILLAGE))

    await wait_for(lambda: registered(svc, patient), what="the registration after 500 bad messages", timeout=5)
    took = time.monotonic() - sent
    print(f"stored {took:.2f} s after it was published, behind 500 invalid-UTF-8 messages")  # README's figure
    assert took < STORED_WITHIN

    got = await hc.rejections(500, timeout=20)
    assert len(got) == 500 and {m.headers[H_REASON] for m in got} == {"invalid-utf8"}
    info = await js.consumer_info(names.intake_stream, INTAKE_CONSUMER)
    assert info.delivered.stream_seq >= ack.seq
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0)
