"""The sender's side of the crash and outage tests: a ledger of every envelope sent, and the
checks a sender and a receiver can make against the store and the outbound stream.

- ``Ledger``: what was sent (``<source>:<id>`` → patient, kind), published at once with
  ``publish_async`` and counted only once JetStream acked it;
- ``StoreCounts``: read straight from PostgreSQL (the events table of the case record), so the
  test counts what is stored, not what a process says it stored: one receipt per envelope id
  (0 lost, 0 duplicated) and each patient's stream (one registration, one assessment);
- ``expected_outbound``: the messages the outbox must have published, derived from the log
  with the outbox's own mapping (``integrations.outbox``); ``read_outbound`` reads the OUT
  stream as a receiver does, deduplicating on the CloudEvents ``id``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from domain.receipt import receipt_id
from integrations.outbox import TOPICS, OutboxHandler
from integrations.streams import Names

HC = "hc-north"
VILLAGE = "990101-001-v01"  # hc-north's and police-east's
EVENTS_TABLE = "caserecord_events"  # eventsourcing: <application name, lower case>_events


def envelope(event_type: str, patient: UUID, data: dict[str, Any], hours_ago: float) -> tuple[str, bytes]:
    """(key, bytes) of one envelope from hc-north."""
    message_id = uuid4()
    doc = {
        "specversion": "1.0",
        "id": str(message_id),
        "source": HC,
        "type": f"cn.smd.{event_type}.v1",
        "subject": str(patient),
        "time": (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(),
        "actor": "staff-07",
        "data": data,
    }
    return f"{HC}:{message_id}", json.dumps(doc).encode()


def registration(patient: UUID) -> tuple[str, bytes]:
    return envelope("patient.registered", patient, {"name": "Test Person", "residence": VILLAGE}, 2)


def level_4_visit(patient: UUID) -> tuple[str, bytes]:
    data = {"face_to_face": True, "risk_level": 4, "risk_class": "unstable"}
    return envelope("visit.recorded", patient, data, 1)


@dataclass
class Ledger:
    """Every envelope the sender published and JetStream acknowledged."""

    names: Names
    sent: dict[str, tuple[UUID, str]] = field(default_factory=dict)  # key → (patient, kind)
    by_patient: dict[UUID, list[str]] = field(default_factory=dict)

    async def publish(self, nc: Client, items: list[tuple[str, bytes, UUID, str]]) -> None:
        """Publish all at once (``publish_async``); each is in the ledger once acked."""
        js = nc.jetstream()
        futures = []
        for key, raw, _, kind in items:
            subject = self.names.intake(HC, f"cn.smd.{kind}")
            futures.append(
                await js.publish_async(subject, raw, headers={"Nats-Msg-Id": key}, stream=self.names.intake_stream)
            )
        acks = await asyncio.gather(*futures)
        for (key, _, patient, kind), ack in zip(items, acks, strict=True):
            assert not ack.duplicate, key
            self.sent[key] = (patient, kind)
            self.by_patient.setdefault(patient, []).append(key)

    def keys(self, kind: str | None = None) -> list[str]:
        return [k for k, (_, kd) in self.sent.items() if kind is None or kd == kind]


class StoreCounts:
    """Counts read from the case record's events table (PostgreSQL), bypassing the service."""

    def __init__(self, conninfo: str) -> None:
        self.conn = psycopg.connect(conninfo, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def events_per(self, ids: list[UUID]) -> Counter[UUID]:
        """Stored events per aggregate id (receipts: one per envelope; patients: their facts)."""
        counts: Counter[UUID] = Counter()
        for start in range(0, len(ids), 5000):
            rows = self.conn.execute(
                f"SELECT originator_id, count(*) FROM {EVENTS_TABLE} WHERE originator_id = ANY(%s)"
                " GROUP BY originator_id",
                (ids[start : start + 5000],),
            ).fetchall()
            counts.update({r[0]: r[1] for r in rows})
        return counts

    def receipts(self, keys: list[str]) -> Counter[str]:
        """Stored receipt events per envelope key (1 each: recorded once; 0: lost)."""
        ids = {receipt_id(k): k for k in keys}
        per = self.events_per(list(ids))
        return Counter({ids[i]: n for i, n in per.items()})

    def head(self) -> int:
        row = self.conn.execute(f"SELECT max(notification_id) FROM {EVENTS_TABLE}").fetchone()
        return int(row[0] or 0) if row else 0

    def activity(self) -> list[tuple[Any, ...]]:
        """What every session on the test's database is doing (for a failure's report)."""
        return self.conn.execute(
            "SELECT pid, application_name, state, wait_event_type, wait_event,"
            " round(extract(epoch FROM now() - query_start)::numeric, 1), left(query, 160)"
            " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()

    def position(self, name: str) -> int:
        row = self.conn.execute(
            "SELECT max(notification_id) FROM caserecord_tracking WHERE application_name = %s", (name,)
        ).fetchone()
        return int(row[0] or 0) if row else 0


def expected_outbound(case_record: Any, names: Names) -> dict[str, str]:
    """Every outbound message the log calls for: CloudEvents id → subject (the outbox's mapping)."""
    handler = OutboxHandler(case_record, names)
    work = handler.begin()
    recorder = case_record.recorder
    start = 1
    while True:
        batch = recorder.select_notifications(start, 1000, topics=TOPICS)
        for n in batch:
            handler.apply(work, n)
        if len(batch) < 1000:
            break
        start = batch[-1].id + 1
    return {m.msg_id: m.subject for m in work.messages}


async def read_outbound(nc: Client, names: Names, *, idle: float = 2.0) -> Counter[str]:
    """Every message on the OUT stream, as a receiver reads them: CloudEvents id → deliveries."""
    js = nc.jetstream()
    durable = f"receiver-{uuid4().hex[:8]}"
    config = ConsumerConfig(
        durable_name=durable, ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, filter_subject=names.out_all
    )
    sub = await js.pull_subscribe(names.out_all, durable=durable, stream=names.out_stream, config=config)
    seen: Counter[str] = Counter()
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle:
            try:
                msgs = await sub.fetch(500, timeout=0.5)
            except TimeoutError:
                continue
            quiet_since = time.monotonic()
            for m in msgs:
                seen[json.loads(m.data)["id"]] += 1
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(names.out_stream, durable)
    return seen


def error_lines(*logs: Path) -> Counter[str]:
    """Error-level lines of the processes' JSON logs, by event (what a reader of the logs sees)."""
    found: Counter[str] = Counter()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("level") in ("error", "critical"):
                    found[str(entry.get("event"))] += 1
    return found
