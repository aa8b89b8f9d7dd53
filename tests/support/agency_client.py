"""What an agency's system does over NATS: publish envelopes, read rejections and assignments.

Envelopes are plain JSON as any CloudEvents SDK would send them, dated relative to the real
clock (the intake runs on the service clock). ``Nats-Msg-Id`` is ``<source>:<id>`` by default.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck

from integrations.streams import Names

REGISTERED = "cn.smd.patient.registered.v1"
VISITED = "cn.smd.visit.recorded.v1"


def envelope(
    source: str,
    event_type: str,
    subject: UUID,
    data: dict[str, Any],
    *,
    occurred: datetime | None = None,
    message_id: UUID | None = None,
) -> bytes:
    """An envelope's bytes, as an agency's system would send them."""
    doc = {
        "specversion": "1.0",
        "id": str(message_id or uuid4()),
        "source": source,
        "type": event_type,
        "subject": str(subject),
        "time": (occurred or datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "datacontenttype": "application/json",
        "actor": "staff-07",
        "data": data,
    }
    return json.dumps(doc).encode()


class AgencyClient:
    """One agency's connection: its intake subject, its rejections, its outbound messages."""

    def __init__(self, nc: Client, names: Names, agency_id: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.names = names
        self.agency_id = agency_id

    def registration(self, patient: UUID, residence: str, *, source: str | None = None, **personal: Any) -> bytes:
        data = {"name": "Test Person", "residence": residence, **personal}
        return envelope(
            source or self.agency_id, REGISTERED, patient, data, occurred=datetime.now(UTC) - timedelta(hours=2)
        )

    def visit(self, patient: UUID, level: int, risk_class: str, *, source: str | None = None) -> bytes:
        data = {"face_to_face": True, "risk_level": level, "risk_class": risk_class}
        return envelope(
            source or self.agency_id, VISITED, patient, data, occurred=datetime.now(UTC) - timedelta(hours=1)
        )

    async def publish(self, raw: bytes, *, event_type: str | None = None, msg_id: str | None = None) -> PubAck:
        """Publish on ``<root>.<region>.in.<agency>.<type>`` and wait for the stream's ack."""
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {}
        kind = event_type or (doc.get("type") if isinstance(doc, dict) else None) or "unknown"
        if msg_id is None and isinstance(doc, dict) and "id" in doc:
            msg_id = f"{doc.get('source')}:{doc['id']}"
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        return await self.js.publish(
            self.names.intake(self.agency_id, kind), raw, headers=headers, stream=self.names.intake_stream
        )

    async def read(
        self, stream: str, filter_subject: str, durable: str, *, count: int, timeout: float = 10.0
    ) -> list[Msg]:
        """Fetch ``count`` messages (or fewer by ``timeout``) with a durable consumer, each acked."""
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=filter_subject,
        )
        sub = await self.js.pull_subscribe(filter_subject, durable=durable, stream=stream, config=config)
        got: list[Msg] = []
        deadline = time.monotonic() + timeout
        try:
            while len(got) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    msgs = await sub.fetch(count - len(got), timeout=min(left, 1.0))
                except TimeoutError:  # nats-py's own, or now and then asyncio's: idle either way
                    continue
                for m in msgs:
                    await m.ack_sync()  # the consumer state is settled on return
                got += msgs
        finally:
            await sub.unsubscribe()
        return got

    async def rejections(self, count: int, *, timeout: float = 10.0, durable: str = "rejections") -> list[Msg]:
        """What was refused from this agency (its ``rejected.<agency>`` subject)."""
        return await self.read(
            self.names.rejected_stream,
            self.names.rejected(self.agency_id),
            f"{durable}-{self.agency_id}",
            count=count,
            timeout=timeout,
        )

    async def assignments(self, count: int, *, timeout: float = 10.0, durable: str = "assigned") -> list[Msg]:
        """Obligations and notices for this agency (its ``out.<agency>.>`` subjects)."""
        return await self.read(
            self.names.out_stream,
            self.names.out(self.agency_id, ">"),
            f"{durable}-{self.agency_id}",
            count=count,
            timeout=timeout,
        )
