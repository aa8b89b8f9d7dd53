"""Streams of the cross-region link and the worker carrying handover messages over it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    ExternalStream,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)
from nats.js.errors import NotFoundError

from integrations.streams import ensure_consumer, ensure_stream

log = structlog.get_logger("smd.crossregion")

DAY = 24 * 3600.0
#: Both streams keep messages long past any outage of the link (they carry only sealed personal
#: parts); the inbox's sequence makes a message kept longer harmless.
XR_MAX_AGE = 90 * DAY
#: A publisher restarting mid-round publishes the same sequence again: dropped by this window
#: (and refused as replayed by the receiver anyway).
XR_DUPLICATE_WINDOW = 60 * 60.0
XR_ACK_WAIT = 30.0
FETCH_BATCH = 50
FETCH_TIMEOUT = 1.0
IDLE_SECONDS = 0.5
#: A message the store could not take now (an outage): delivered again after this.
NAK_DELAY = 2.0
#: The deliver prefix of a source consumer (the leaf user's permissions carry ``xrdeliver.>``).
DELIVER_ROOT = "xrdeliver"


@dataclass(frozen=True, slots=True)
class LinkNames:
    """The cross-region subjects and streams of one region under one subject root."""

    root: str
    region: str

    def out_stream(self, region: str | None = None) -> str:
        """Where ``region`` (default: this one) publishes what it sends."""
        return f"{self.root.upper()}_XR_OUT_{region or self.region}"

    def in_stream(self, peer: str) -> str:
        """This region's local copy of what ``peer`` sends it (sourced across domains)."""
        return f"{self.root.upper()}_XR_IN_{peer}"

    def subject(self, sender: str, receiver: str) -> str:
        return f"{self.root}.xr.{sender}.{receiver}"

    def durable(self, peer: str) -> str:
        return f"xr-from-{peer}"


def out_stream_config(names: LinkNames, replicas: int = 1) -> StreamConfig:
    """This region's outgoing handover stream, on ``replicas`` servers (``SMD_NATS_REPLICAS``)."""
    return StreamConfig(
        name=names.out_stream(),
        description="handover messages this region sends to linked regions (personal parts sealed)",
        subjects=[f"{names.root}.xr.{names.region}.>"],
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=XR_MAX_AGE,
        duplicate_window=XR_DUPLICATE_WINDOW,
        num_replicas=replicas,
    )


def in_stream_config(names: LinkNames, peer: str, domain: str, peer_domain: str, replicas: int = 1) -> StreamConfig:
    """The local stream sourcing ``peer``'s messages to this region from the peer's domain."""
    return StreamConfig(
        name=names.in_stream(peer),
        description=f"handover messages from region {peer} (sourced over the leaf node)",
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        max_age=XR_MAX_AGE,
        num_replicas=replicas,
        sources=[
            StreamSource(
                name=names.out_stream(peer),
                filter_subject=names.subject(peer, names.region),
                external=ExternalStream(api=f"$JS.{peer_domain}.API", deliver=f"{DELIVER_ROOT}.{domain}"),
            )
        ],
    )


async def ensure_link_streams(
    js: JetStreamContext, names: LinkNames, domain: str, peer_domains: Mapping[str, str], replicas: int = 1
) -> dict[str, str]:
    """Declare this region's outgoing stream, one sourced stream and its durable per peer."""
    done = {names.out_stream(): await ensure_stream(js, out_stream_config(names, replicas))}
    for peer, peer_domain in sorted(peer_domains.items()):
        config = in_stream_config(names, peer, domain, peer_domain, replicas)
        try:
            await js.stream_info(names.in_stream(peer))
            done[names.in_stream(peer)] = "unchanged"  # ``sources`` are not compared: set at creation
        except NotFoundError:
            await js.add_stream(config)
            done[names.in_stream(peer)] = "created"
        consumer = ConsumerConfig(
            durable_name=names.durable(peer),
            description=f"applies region {peer}'s handover messages, then acks",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=XR_ACK_WAIT,
            max_ack_pending=FETCH_BATCH * 4,
        )
        done[f"{names.in_stream(peer)}/{names.durable(peer)}"] = await ensure_consumer(
            js, names.in_stream(peer), consumer
        )
    return done


class _Seq(msgspec.Struct):
    sequence: int


class CrossRegionLink:
    """One region's side of the link: ``publish`` its outbox to its own stream, ``consume`` what
    the peers' streams brought (each handed to ``handovers.receive``)."""

    def __init__(
        self,
        handovers: Any,
        nc: Client,
        names: LinkNames,
        domain: str,
        peer_domains: Mapping[str, str],
        replicas: int = 1,
    ):
        self.handovers = handovers
        self.replicas = replicas
        self.nc = nc
        self.js = nc.jetstream()
        self.names = names
        self.domain = domain
        self.peer_domains = dict(peer_domains)
        self._subs: dict[str, Any] = {}

    async def ensure(self) -> dict[str, str]:
        return await ensure_link_streams(self.js, self.names, self.domain, self.peer_domains, self.replicas)

    async def published(self, peer: str) -> int:
        """The last sequence to ``peer`` in this region's stream (0: none)."""
        try:
            last = await self.js.get_last_msg(self.names.out_stream(), self.names.subject(self.names.region, peer))
        except NotFoundError:
            return 0
        return msgspec.json.decode(last.data or b"{}", type=_Seq).sequence

    async def publish(self) -> int:
        """Publish every queued message not yet in the stream, in order; returns how many."""
        count = 0
        for peer in sorted(self.peer_domains):
            after = await self.published(peer)
            wires = await asyncio.to_thread(self.handovers.outbox, peer, after)
            subject = self.names.subject(self.names.region, peer)
            for n, wire in enumerate(wires, start=after + 1):
                msg_id = f"xr:{self.names.region}:{peer}:{n}"
                await self.js.publish(subject, wire.encode(), headers={"Nats-Msg-Id": msg_id})
                count += 1
        return count

    async def consume(self, peer: str, batch: int = FETCH_BATCH, timeout: float = FETCH_TIMEOUT) -> list[str]:
        """Fetch and apply what ``peer`` sent (up to ``batch``); returns each message's outcome
        ("applied", or the reason it was refused: "replayed" for a delivery seen before)."""
        sub = self._subs.get(peer)
        if sub is None:
            sub = await self.js.pull_subscribe_bind(self.names.durable(peer), self.names.in_stream(peer))
            self._subs[peer] = sub
        try:
            msgs = await sub.fetch(batch, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        outcomes = []
        for msg in msgs:
            try:
                outcome = await asyncio.to_thread(self.handovers.receive, msg.data)
            except Exception as e:  # the store could not take it now: delivered again later
                log.warning("handover message not applied; delivered again", peer=peer, error=type(e).__name__)
                await msg.nak(delay=NAK_DELAY)
                continue
            if outcome != "applied":  # refused and kept in the inbox with its reason
                log.info("handover message refused", peer=peer, reason=outcome)
            await msg.ack()
            outcomes.append(outcome)
        return outcomes

    async def run(self, stop: asyncio.Event) -> None:
        await self.ensure()
        try:
            while not stop.is_set():
                busy = await self.publish()
                for peer in sorted(self.peer_domains):
                    busy += len(await self.consume(peer))
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), IDLE_SECONDS)
        finally:
            await self.close()

    async def close(self) -> None:
        """Unsubscribe the pull subscriptions: one left open makes the connection's drain wait
        until it times out (and `smd serve` stops waiting for it after 10 s)."""
        subs, self._subs = self._subs, {}
        if self.nc.is_closed:
            return
        for sub in subs.values():
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


async def run_crossregion(services: Any, stop: asyncio.Event, name: str = "smd-crossregion") -> None:
    """In `smd serve` with SMD_NATS_URL and linked regions: connect to the cross-region account
    (SMD_CROSSREGION_NATS_URL, else SMD_NATS_URL) when it can be reached, then publish this
    region's handover messages and apply the peers' until ``stop``."""
    from integrations.runner import _supervised, close_nats, connect_when_possible

    settings = services.settings
    names = LinkNames(settings.subject_root, settings.region)
    peers = {p.region: p.js_domain for p in settings.crossregion_peers}
    nc = await connect_when_possible(settings.crossregion_nats_url, name, stop)
    if nc is None:
        return

    async def once() -> None:
        link = CrossRegionLink(
            services.handovers, nc, names, settings.crossregion_domain, peers, settings.nats_replicas
        )
        await link.run(stop)

    try:
        await _supervised("crossregion", stop, once)
    finally:
        await close_nats(nc)
