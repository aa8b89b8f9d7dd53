"""Nothing is retried forever, and an idle intake is quiet (issue 17, real NATS and PostgreSQL).

- a message the store cannot take by its last allowed delivery is a dead letter: the intake
  itself writes it to the rejection stream (reason ``delivery-limit``) and terminates it;
- the server's MAX_DELIVERIES advisory is only a cross-check: it comes for a message the
  intake did not terminate on its last delivery, which is dead-lettered then, unless stored;
- an idle fetch timeout is not an error, whichever timeout class nats-py raises;
- a slow batch keeps its waiting messages from being redelivered under a short AckWait.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import nats
import pytest
import pytest_asyncio
from eventsourcing.persistence import OperationalError
from nats.aio.client import Client

import integrations.intake
from core.intake import Incoming, accept_batch
from core.registry import open_registry
from integrations.intake import DELIVERY_LIMIT, H_DETAIL, H_REASON, H_SEQ, Intake
from integrations.streams import INTAKE_CONSUMER, Names, ensure_streams
from ops.bootstrap import Services
from tests.support.agency_client import AgencyClient
from tests.support.nats_world import wait_for

pytestmark = pytest.mark.integration

HC = "hc-north"
VILLAGE = "990101-001-v01"


@pytest_asyncio.fixture
async def worker_nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url, connect_timeout=5)
    yield client
    await client.close()


async def start(intake: Intake, names: Names) -> tuple[asyncio.Event, asyncio.Task[None]]:
    await ensure_streams(intake.js, names)
    await intake.subscribe()
    stop = asyncio.Event()
    return stop, asyncio.create_task(intake.run(stop))


async def settle(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    await asyncio.wait_for(task, timeout=10)  # raises what the intake raised


def store_down_for(svc: Services, monkeypatch: pytest.MonkeyPatch, patient: Any) -> list[int]:
    """Recording fails as with an unreachable store, for one patient's envelopes only (the rest
    of each batch is recorded)."""
    tries: list[int] = []

    def accept_unless(case_record: Any, registry: Any, messages: list[Incoming], **kwargs: Any) -> Any:
        stuck = [str(patient).encode() in m.raw for m in messages]
        tries.extend(1 for s in stuck if s)
        rest = iter(
            accept_batch(case_record, registry, [m for m, s in zip(messages, stuck, strict=True) if not s], **kwargs)
        )
        return [OperationalError("couldn't get a connection after 1.00 sec") if s else next(rest) for s in stuck]

    monkeypatch.setattr(integrations.intake, "accept_batch", accept_unless)
    monkeypatch.setattr(integrations.intake, "backoff", lambda delivered: 0.2)  # not 1, 2, 4 … 60 s
    return tries


async def consumer(nc: Client, names: Names) -> Any:
    return await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)


async def test_a_message_the_store_cannot_take_by_its_last_delivery_is_dead_lettered_and_terminated(
    svc: Services, names: Names, nc: Client, worker_nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck, after = uuid4(), uuid4()
    tries = store_down_for(svc, monkeypatch, stuck)
    intake = Intake(svc.case_record, open_registry(svc.case_record, "990101"), worker_nc, names, max_deliver=3)
    intake.metrics = svc.metrics
    stop, task = await start(intake, names)
    try:
        hc = AgencyClient(nc, names, HC)
        ack = await hc.publish(hc.registration(stuck, VILLAGE))

        [dead] = await hc.rejections(1, timeout=20)
        assert (dead.headers[H_REASON], dead.headers[H_SEQ]) == (DELIVERY_LIMIT, str(ack.seq))
        assert "not stored after 3 deliveries" in dead.headers[H_DETAIL]
        assert "OperationalError" in dead.headers[H_DETAIL]  # the transient cause, by type
        assert "Test Person" not in str(dead.headers)
        assert len(tries) == 3, "tried on each allowed delivery, then no more"

        await hc.publish(hc.registration(after, VILLAGE))  # the intake goes on
        await wait_for(lambda: svc.case_record.recorder.select_events(after), what="the next message stored")
        await asyncio.sleep(1.0)  # a redelivery or an advisory would come within this
        info = await consumer(nc, names)
        assert info.num_ack_pending == 0
        assert info.delivered.consumer_seq == 3 + 1, "terminated: never delivered after its third delivery"
        assert len(tries) == 3
        assert intake.watch.handled == [], "terminated by the intake: no MAX_DELIVERIES advisory"
        assert svc.metrics.rejected.labels("nats", DELIVERY_LIMIT)._value.get() == 1
    finally:
        await settle(stop, task)


async def test_the_max_deliveries_advisory_dead_letters_what_the_intake_left_on_its_last_delivery(
    svc: Services, names: Names, nc: Client, worker_nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck, stored = uuid4(), uuid4()
    store_down_for(svc, monkeypatch, stuck)
    intake = Intake(svc.case_record, open_registry(svc.case_record, "990101"), worker_nc, names, max_deliver=2)
    intake.metrics = svc.metrics
    real = intake.publish_rejection
    failed: list[int] = []

    async def nats_fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failed:  # the intake's own dead-letter write fails (NATS trouble at that moment)
            failed.append(1)
            raise nats.errors.TimeoutError
        return await real(*args, **kwargs)

    monkeypatch.setattr(intake, "publish_rejection", nats_fails_once)
    stop, task = await start(intake, names)
    try:
        hc = AgencyClient(nc, names, HC)
        ack = await hc.publish(hc.registration(stuck, VILLAGE))

        [dead] = await hc.rejections(1, timeout=20)  # written by the cross-check
        assert (dead.headers[H_REASON], dead.headers[H_SEQ]) == (DELIVERY_LIMIT, str(ack.seq))
        assert dead.headers["Nats-Msg-Id"] == f"rejected:{ack.seq}"
        assert failed == [1]
        await wait_for(lambda: intake.watch.handled, what="the advisory handled")
        assert intake.watch.handled == [(ack.seq, "dead-lettered")]
        assert svc.metrics.max_deliveries.labels("dead-lettered")._value.get() == 1

        # checked again (another process got the same advisory): the record is not written twice
        assert await intake.watch.check(ack.seq) == "already-dead-lettered"
        ok = await hc.publish(hc.registration(stored, VILLAGE))
        await wait_for(lambda: svc.case_record.recorder.select_events(stored), what="a registration stored")
        assert await intake.watch.check(ok.seq) == "already-stored", "a stored message is not dead-lettered"
        assert await intake.watch.check(ok.seq + 1000) == "gone"
        info = await nc.jetstream().stream_info(names.rejected_stream)
        assert info.state.messages == 1
    finally:
        await settle(stop, task)


async def test_an_idle_intake_treats_every_fetch_timeout_as_idle_and_never_fails(
    svc: Services, names: Names, worker_nc: Client
) -> None:
    # nats-py raises asyncio's TimeoutError instead of its own now and then (measured here: 1 in
    # 15 fetches with a 10 ms timeout, about one a minute with the intake's 1 s): the intake
    # failed and was restarted with an error logged. A 10 ms fetch timeout shows it in seconds.
    intake = Intake(svc.case_record, open_registry(svc.case_record, "990101"), worker_nc, names, fetch_timeout=0.01)
    stop, task = await start(intake, names)
    fetch = intake._sub.fetch
    seen: collections.Counter[str] = collections.Counter()

    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(*args, **kwargs)
        except BaseException as e:
            seen[f"{type(e).__module__}.{type(e).__qualname__}"] += 1
            raise

    intake._sub.fetch = counted
    await asyncio.sleep(6)
    assert not task.done(), f"the idle intake stopped: {task.exception() if task.done() else ''}"
    await settle(stop, task)  # ends cleanly: nothing raised out of run()
    total = sum(seen.values())
    assert total >= 150, seen
    assert set(seen) <= {"nats.errors.TimeoutError", "builtins.TimeoutError"}, seen
    print(f"idle fetches: {dict(seen)}")


async def test_a_slow_batch_tells_the_server_its_waiting_messages_are_in_progress(
    svc: Services, names: Names, nc: Client, worker_nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AckWait 1 s, and each message takes 0.4 s: without in-progress signals the messages of a
    # batch of 8 would be redelivered while the batch is worked on.
    def slow_accept(case_record: Any, registry: Any, messages: list[Incoming], **kwargs: Any) -> Any:
        import time

        time.sleep(0.4 * len(messages))
        return accept_batch(case_record, registry, messages, **kwargs)

    monkeypatch.setattr(integrations.intake, "accept_batch", slow_accept)
    intake = Intake(svc.case_record, open_registry(svc.case_record, "990101"), worker_nc, names, ack_wait=1.0)
    hc = AgencyClient(nc, names, HC)
    await ensure_streams(nc.jetstream(), names)
    patients = [uuid4() for _ in range(8)]
    for p in patients:
        await hc.publish(hc.registration(p, VILLAGE))
    stop, task = await start(intake, names)
    try:

        async def all_acked() -> bool:
            info = await consumer(nc, names)
            return info.delivered.stream_seq >= len(patients) and info.num_ack_pending == 0

        await wait_for(all_acked, what="the batch acked", timeout=30)
        info = await consumer(nc, names)
        assert info.delivered.consumer_seq == len(patients), "each message delivered once"
    finally:
        await settle(stop, task)
