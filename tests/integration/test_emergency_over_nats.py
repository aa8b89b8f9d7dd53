"""The emergency flow end to end over NATS, as the agencies' systems see it: a committee's
``cn.smd.risk.escalated.v1`` goes into the intake; the police's ``respond_to_emergency`` comes out
on their outbound subject, for every report. How long it takes is a benchmark, not a test:
`smd bench --emergency` (ops/bench_emergency.py) gives p50 and p99 against the bare JetStream
round trip measured in the same run."""

from __future__ import annotations

import asyncio
import json
import time
from uuid import UUID, uuid4

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from integrations.runner import run_intake, run_outbox
from integrations.streams import Names
from ops.bootstrap import Services
from ops.workers import run_followers
from tests.support.agency_client import AgencyClient, envelope
from tests.support.nats_world import stream_exists, wait_for

pytestmark = pytest.mark.integration

VILLAGE, POLICE, COMMITTEE = "990101-001-v01", "police-east", "committee-north"
REPORTS = 20


def _exists(svc: Services, patient: UUID) -> bool:
    try:
        svc.case_record.repository.get(patient)
    except Exception:
        return False
    return True


async def test_each_committee_report_reaches_the_police_as_one_respond_to_emergency_obligation(
    svc: Services, names: Names, nc: Client, nats_url: str
) -> None:
    worker_nc = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_intake(svc, worker_nc, stop)),
        asyncio.create_task(run_followers(svc, stop)),
        asyncio.create_task(run_outbox(svc, worker_nc, stop)),
    ]
    arrived: dict[str, float] = {}
    try:
        await wait_for(lambda: stream_exists(nc, names.intake_stream), what="the streams")
        hc, committee = AgencyClient(nc, names, "hc-north"), AgencyClient(nc, names, COMMITTEE)
        patients = [uuid4() for _ in range(REPORTS)]
        for p in patients:
            await hc.publish(hc.registration(p, VILLAGE))
        await wait_for(lambda: all(_exists(svc, p) for p in patients), what="the registrations", timeout=60)

        js = nc.jetstream()
        subject = names.out(POLICE, "obligation", "assigned")
        config = ConsumerConfig(
            durable_name="r20-bench", ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW,
            filter_subject=subject,
        )  # fmt: skip
        sub = await js.pull_subscribe(subject, durable="r20-bench", stream=names.out_stream, config=config)

        async def listen() -> None:
            while len(arrived) < REPORTS:
                try:
                    msgs = await sub.fetch(10, timeout=1.0)
                except TimeoutError:
                    continue
                now = time.monotonic()
                for m in msgs:
                    data = json.loads(m.data)["data"]
                    if data["rule"] == "R20" and data["action"] == "respond_to_emergency":
                        arrived.setdefault(data["patient_id"], now)
                    await m.ack()

        listener = asyncio.create_task(listen())
        sent: dict[str, float] = {}
        for p in patients:
            report = envelope(COMMITTEE, "cn.smd.risk.escalated.v1", p, {"danger": "to_others", "observed": "x"})
            sent[str(p)] = time.monotonic()
            await committee.publish(report)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(listener, timeout=60)
        await sub.unsubscribe()
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        await worker_nc.close()
    assert set(arrived) == set(sent)  # every report: the police's obligation, on their subject
    assert all(arrived[p] >= sent[p] for p in sent)
