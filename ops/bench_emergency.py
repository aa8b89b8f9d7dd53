"""`smd bench --emergency`: from a committee's danger report to the police's obligation, over NATS.

The emergency flow (R20) end to end as the agencies' systems see it: a committee publishes
``cn.smd.risk.escalated.v1`` on its intake subject; the service's intake, rules, views and outbox
run as ``smd serve`` runs them (on a fresh PostgreSQL database); the police's
``respond_to_emergency`` comes out on their outbound subject. Each report's latency is measured
from its publication to the police's message; the bare round trip through JetStream (publish on
a stream, receive on a pull consumer, the same pace) is measured in the same run, and the
figures are given as milliseconds and as multiples of it. The goal is a p99 under
5 s: the police must be on their way within minutes (r20_police_response).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql

VILLAGE, POLICE, COMMITTEE, HC = "990101-001-v01", "police-east", "committee-north", "hc-north"


def _envelope(source: str, event_type: str, subject: Any, data: dict[str, Any]) -> tuple[str, bytes]:
    mid = str(uuid4())
    body = {
        "specversion": "1.0",
        "id": mid,
        "source": source,
        "type": event_type,
        "subject": str(subject),
        "time": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "data": data,
    }
    return f"{source}:{mid}", json.dumps(body).encode()


def _quantiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "n": float(len(values)),
        "p50_ms": statistics.median(values) * 1000,
        "p99_ms": values[min(len(values) - 1, int(0.99 * len(values)))] * 1000,
    }


async def bare_round_trip(nats_url: str, n: int, pace: float) -> dict[str, float]:
    """Publish on a stream and receive on a pull consumer: the floor under any NATS flow."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = f"BENCHRT{secrets.token_hex(3).upper()}"
    subject = f"benchrt.{secrets.token_hex(3)}"
    try:
        await js.add_stream(StreamConfig(name=name, subjects=[subject]))
        config = ConsumerConfig(durable_name="rt", ack_policy=AckPolicy.EXPLICIT)
        sub = await js.pull_subscribe(subject, durable="rt", stream=name, config=config)
        arrived: dict[int, float] = {}

        async def listen() -> None:
            while len(arrived) < n:
                try:
                    msgs = await sub.fetch(10, timeout=1.0)
                except TimeoutError:
                    continue
                now = time.monotonic()
                for m in msgs:
                    arrived.setdefault(int(m.data), now)
                    await m.ack()

        listener = asyncio.create_task(listen())
        sent: dict[int, float] = {}
        for i in range(n):
            sent[i] = time.monotonic()
            await js.publish(subject, str(i).encode())
            await asyncio.sleep(pace)
        await asyncio.wait_for(listener, timeout=60)
        return _quantiles([arrived[i] - sent[i] for i in sent])
    finally:
        await js.delete_stream(name)
        await nc.close()


async def emergency(nats_url: str, pg: str, n: int, pace: float) -> dict[str, float]:
    """The committee's report to the police's obligation, through a whole service."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from core.registry import load_file
    from integrations.runner import run_intake, run_outbox
    from integrations.streams import names_of
    from ops.bootstrap import bootstrap
    from ops.data_files import DEMO_DISTRICT
    from ops.settings import load_settings
    from ops.workers import run_followers

    dbname = f"smd_bench_{secrets.token_hex(4)}"
    with psycopg.connect(pg, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                "SMD_DATA_DIR": tmp,
                "SMD_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{dbname}",
                "SMD_NATS_URL": nats_url,
                "SMD_SUBJECT_ROOT": f"bench{secrets.token_hex(3)}",
            }
            svc = bootstrap(load_settings(env))
            load_file(svc.case_record, DEMO_DISTRICT)
            svc.registry.refresh()
            names = names_of(svc.settings)
            worker_nc, nc = await nats.connect(nats_url), await nats.connect(nats_url)
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(run_intake(svc, worker_nc, stop)),
                asyncio.create_task(run_followers(svc, stop)),
                asyncio.create_task(run_outbox(svc, worker_nc, stop)),
            ]
            js = nc.jetstream()
            try:
                for _ in range(100):  # the service declares the streams when it starts
                    try:
                        await js.stream_info(names.intake_stream)
                        await js.stream_info(names.out_stream)
                        break
                    except Exception:
                        await asyncio.sleep(0.1)
                patients = [uuid4() for _ in range(n)]
                for p in patients:
                    mid, raw = _envelope(
                        HC, "cn.smd.patient.registered.v1", p, {"name": "Bench Person", "residence": VILLAGE}
                    )
                    await js.publish(
                        names.intake(HC, "cn.smd.patient.registered.v1"), raw, headers={"Nats-Msg-Id": mid}
                    )
                deadline = time.monotonic() + 120
                while not all(_exists(svc, p) for p in patients):
                    if time.monotonic() > deadline:
                        raise TimeoutError("the registrations were not recorded in 120 s")
                    await asyncio.sleep(0.1)
                subject = names.out(POLICE, "obligation", "assigned")
                config = ConsumerConfig(
                    durable_name="r20-bench",
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.NEW,
                    filter_subject=subject,
                )
                sub = await js.pull_subscribe(subject, durable="r20-bench", stream=names.out_stream, config=config)
                arrived: dict[str, float] = {}

                async def listen() -> None:
                    while len(arrived) < n:
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
                report = {"danger": "to_others", "observed": "bench"}
                for p in patients:
                    mid, raw = _envelope(COMMITTEE, "cn.smd.risk.escalated.v1", p, report)
                    sent[str(p)] = time.monotonic()
                    await js.publish(
                        names.intake(COMMITTEE, "cn.smd.risk.escalated.v1"), raw, headers={"Nats-Msg-Id": mid}
                    )
                    await asyncio.sleep(pace)
                await asyncio.wait_for(listener, timeout=120)
                return _quantiles([arrived[p] - sent[p] for p in sent])
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=15)
                for stream in (names.intake_stream, names.rejected_stream, names.out_stream):
                    try:
                        await js.delete_stream(stream)
                    except Exception:  # noqa: S110 - a stream never declared
                        pass
                await nc.close()
                await worker_nc.close()
                svc.close()
    finally:
        with psycopg.connect(pg, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def _exists(svc: Any, patient: Any) -> bool:
    try:
        svc.case_record.repository.get(patient)
    except Exception:
        return False
    return True


def main(argv: list[str]) -> int:
    import logging

    from ops.bench_pages import quiet
    from ops.logging import configure_logging

    ap = argparse.ArgumentParser(prog="smd bench --emergency")
    ap.add_argument("--reports", type=int, default=50, help="danger reports sent (50)")
    ap.add_argument("--pace", type=float, default=0.05, help="seconds between two reports (0.05)")
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--pg", default="host=127.0.0.1 dbname=test user=postgres")
    a = ap.parse_args(argv)
    quiet()
    configure_logging("json", level=logging.WARNING)
    bare = asyncio.run(bare_round_trip(a.nats, a.reports, a.pace))
    ours = asyncio.run(emergency(a.nats, a.pg, a.reports, a.pace))
    print("| figure | ours | bare JetStream round trip | ratio |")
    print("|---|---|---|---|")
    for q in ("p50_ms", "p99_ms"):
        label = f"danger report → police obligation, {q[:3]} (ms)"
        print(f"| {label} | {ours[q]:.0f} | {bare[q]:.1f} | {ours[q] / bare[q]:.0f}× |")
    print(f"\n{int(ours['n'])} reports, one every {a.pace} s; the goal is a p99 under 5,000 ms")
    return 0
