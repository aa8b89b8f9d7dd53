"""What an agency's system does over NATS in the end-to-end tests: a thin wrapper of the agency
client (integrations/agency_client) that also sends bytes the client would refuse to build.

Valid envelopes are built and published by the agency client (checked against the contract,
``Nats-Msg-Id: <source>:<id>``), dated relative to the real clock (the intake runs on the
service clock). Tests of bad input edit those bytes, or publish bytes of another agency on this
one's subject, through ``publish`` with the same subject and header rules. Reading creates a
durable of the test's own (``read``): the tests run without the durables the outbox creates
per agency, and a fresh name per read keeps one test's reads apart; the agency client itself
reads only the service's durables (``agency-<id>-out`` / ``-rejected``).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck

from core.contract import ContractError, decode_event, encode
from integrations import agency_client
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
    actor: str | None = "staff-07",
) -> bytes:
    """An envelope's bytes, as an agency's system sends them (built and checked by the agency
    client): ``occurred`` defaults to five minutes ago by the real clock, ``actor=None`` leaves
    the actor out."""
    built = agency_client.AgencyClient(source).envelope(
        event_type,
        subject,
        data,
        occurred=occurred or datetime.now(UTC) - timedelta(minutes=5),
        actor=actor,
        id=message_id,
    )
    return encode(built)


def envelope_json(
    source: str,
    event_type: str,
    subject: UUID | str,
    data: dict[str, Any],
    *,
    occurred: datetime | None = None,
    message_id: UUID | str | None = None,
    actor: str | None = "staff-07",
) -> dict[str, Any]:
    """The same envelope as a JSON document, for tests that post it over HTTP (``json=``), put
    it in a batch or a ledger, or edit one field of an otherwise valid envelope."""
    subject = subject if isinstance(subject, UUID) else UUID(subject)
    message_id = message_id if message_id is None or isinstance(message_id, UUID) else UUID(message_id)
    doc: dict[str, Any] = json.loads(
        envelope(source, event_type, subject, data, occurred=occurred, message_id=message_id, actor=actor)
    )
    return doc


class AgencyClient:
    """One agency's connection: its intake subject, its rejections, its outbound messages."""

    def __init__(self, nc: Client, names: Names, agency_id: str) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.names = names
        self.agency_id = agency_id
        self.client = agency_client.AgencyClient(agency_id, region=names.region, root=names.root, nats=nc)

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
        """Publish on ``<root>.<region>.in.<agency>.<type>`` and wait for the stream's ack: a valid
        envelope of this agency through the agency client, other bytes as they are."""
        try:
            event = decode_event(raw)
        except ContractError:
            event = None
        if event is not None and event.source == self.agency_id and event_type is None and msg_id is None:
            return await self.client.publish(event)
        kind = event_type or (event.event_type if event is not None else None) or _type_of(raw)
        if msg_id is None:
            msg_id = _key_of(raw)
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


def _type_of(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        return "unknown"
    return str(doc.get("type") or "unknown") if isinstance(doc, dict) else "unknown"


def _key_of(raw: bytes) -> str | None:
    """``<source>:<id>`` of bytes that carry both (even when the envelope is otherwise bad)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    if isinstance(doc, dict) and "id" in doc:
        return f"{doc.get('source')}:{doc['id']}"
    return None
