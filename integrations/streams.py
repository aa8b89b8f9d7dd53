"""Subjects and JetStream streams of one region, declared idempotently at start.

Names derive from ``settings.subject_root`` and ``settings.region``; every stream name starts
with ``<ROOT>_`` (upper-cased root) so one prefix finds all of a deployment's (or a test run's)
streams. Works on Debian's nats-server 2.9.10: one ``filter_subject`` per consumer, no
per-message TTL (STACK.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

DAY = 24 * 3600.0

#: Intake holds whole envelopes, personal data included (names, ID numbers): keep them only as
#: long as an outage of the store could last plus time to replay; the case record is the record.
IN_MAX_AGE = 14 * DAY
#: Agencies retry with the same ``Nats-Msg-Id`` (``<source>:<id>``); the store is idempotent
#: anyway, the window only spares it the work. Explicit, because the server default is 2 min.
IN_DUPLICATE_WINDOW = 10 * 60.0
#: Rejections carry the original bytes (personal data too) and must wait for an agency system
#: that was offline (a holiday week) to read them; then they go.
REJECTED_MAX_AGE = 30 * DAY
#: Spans a crash-and-redeliver of the intake (AckWait), so ``rejected:<seq>`` is stored once.
REJECTED_DUPLICATE_WINDOW = 10 * 60.0
#: Outbound messages carry no direct identifiers; agencies catch up after an outage of weeks.
OUT_MAX_AGE = 30 * DAY
#: Spans an outbox crash-and-restart, so a re-publish of the same event id is dropped. Receivers
#: dedup on the CloudEvents id too: an outage can outlast any window.
OUT_DUPLICATE_WINDOW = 60 * 60.0
#: R1 on a single server: the default of ``SMD_NATS_REPLICAS``; the production cluster of three
#: sets 3, so a stream survives the loss of any one server (a quorum of 2 still elects a leader).
REPLICAS = 1

#: Durable name of the intake consumer (one per intake stream, shared by all intake processes).
INTAKE_CONSUMER = "intake"
#: Redelivered after this when neither acked nor nak'ed (a crashed or stuck worker): the default
#: of ``SMD_INTAKE_ACK_WAIT_SECONDS``. A batch of 100 takes about a second to store; a slower one
#: tells the server it is still in progress (integrations.intake), so a short AckWait is safe.
INTAKE_ACK_WAIT = 30.0
#: Explicit: the default (1000) stalls a consumer silently when full (STACK.md); a few batches.
INTAKE_MAX_ACK_PENDING = 500
#: Transient failures are nak'ed with a delay growing to 60 s: ~95 min of outage before the
#: last delivery, on which the intake writes the dead-letter record (a rejection with reason
#: ``delivery-limit``) and terminates the message; the message stays in the stream until
#: IN_MAX_AGE for an operator to replay. The server's MAX_DELIVERIES advisory is a cross-check.
INTAKE_MAX_DELIVER = 100


@dataclass(frozen=True, slots=True)
class Names:
    """Every subject and stream name of one region under one subject root."""

    root: str
    region: str

    @property
    def prefix(self) -> str:
        return f"{self.root}.{self.region}"

    @property
    def stream_prefix(self) -> str:
        return f"{self.root.upper()}_{self.region.upper()}"

    @property
    def intake_stream(self) -> str:
        return f"{self.stream_prefix}_IN"

    @property
    def rejected_stream(self) -> str:
        return f"{self.stream_prefix}_REJECTED"

    @property
    def out_stream(self) -> str:
        return f"{self.stream_prefix}_OUT"

    @property
    def intake_all(self) -> str:
        return f"{self.prefix}.in.>"

    @property
    def rejected_all(self) -> str:
        return f"{self.prefix}.rejected.>"

    @property
    def out_all(self) -> str:
        return f"{self.prefix}.out.>"

    def intake(self, agency_id: str, event_type: str) -> str:
        """Where an agency publishes an envelope: ``<root>.<region>.in.<agency>.<type...>``."""
        return f"{self.prefix}.in.{agency_id}.{event_type.removeprefix('cn.smd.')}"

    def intake_max_deliveries_advisory(self, consumer: str = "intake") -> str:
        """Where the server tells that an intake message reached the consumer's MaxDeliver."""
        return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.intake_stream}.{consumer}"

    def rejected(self, agency_id: str) -> str:
        """Where the agency reads what was refused."""
        return f"{self.prefix}.rejected.{agency_id}"

    def out(self, agency_id: str, *what: str) -> str:
        """Where the agency reads what it was given: ``<root>.<region>.out.<agency>.<what...>``."""
        return ".".join((f"{self.prefix}.out.{agency_id}", *what))


def names_of(settings: Any) -> Names:
    """The names of the configured subject root and region."""
    return Names(settings.subject_root, settings.region)


def stream_configs(names: Names, replicas: int = REPLICAS) -> list[StreamConfig]:
    """The three streams of a region: intake, rejections, outbound, each on ``replicas`` servers."""

    def stream(name: str, subject: str, max_age: float, window: float, what: str) -> StreamConfig:
        return StreamConfig(
            name=name,
            description=what,
            subjects=[subject],
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            num_replicas=replicas,
            max_age=max_age,
            duplicate_window=window,
        )

    return [
        stream(
            names.intake_stream,
            names.intake_all,
            IN_MAX_AGE,
            IN_DUPLICATE_WINDOW,
            "inbound envelopes from agencies (personal data)",
        ),
        stream(
            names.rejected_stream,
            names.rejected_all,
            REJECTED_MAX_AGE,
            REJECTED_DUPLICATE_WINDOW,
            "refused envelopes with their reasons (personal data)",
        ),
        stream(
            names.out_stream,
            names.out_all,
            OUT_MAX_AGE,
            OUT_DUPLICATE_WINDOW,
            "obligations and notices for agencies (no direct identifiers)",
        ),
    ]


def intake_consumer_config(ack_wait: float = INTAKE_ACK_WAIT, max_deliver: int = INTAKE_MAX_DELIVER) -> ConsumerConfig:
    """The durable pull consumer of the intake stream (the stream holds only intake subjects).

    Every intake process of a region must run with the same ``ack_wait`` (each one updates the
    shared consumer to its own at start)."""
    return ConsumerConfig(
        name=INTAKE_CONSUMER,
        durable_name=INTAKE_CONSUMER,
        description="stores inbound envelopes, then acks",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_ack_pending=INTAKE_MAX_ACK_PENDING,
        max_deliver=max_deliver,
    )


_STREAM_FIELDS = (
    "subjects",
    "retention",
    "discard",
    "storage",
    "num_replicas",
    "max_age",
    "duplicate_window",
    "description",
)
_CONSUMER_FIELDS = ("ack_policy", "ack_wait", "max_ack_pending", "max_deliver", "filter_subject", "description")


def _same(want: Any, have: Any) -> bool:
    if isinstance(want, float) or isinstance(have, float):
        return have is not None and want is not None and math.isclose(want, have, rel_tol=1e-9)
    if isinstance(want, list):
        return sorted(want) == sorted(have or [])
    return want == have


def _differs(want: Any, have: Any, fields: tuple[str, ...]) -> list[str]:
    return [f for f in fields if not _same(getattr(want, f), getattr(have, f))]


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> str:
    """Create the stream, or update it when its config differs: "created", "updated", "unchanged"."""
    try:
        info = await js.stream_info(config.name)  # type: ignore[arg-type]
    except NotFoundError:
        await js.add_stream(config)
        return "created"
    if not _differs(config, info.config, _STREAM_FIELDS):
        return "unchanged"
    # A storage change is refused by the server: that is right. A change of replicas is an
    # update (2.9 and 2.10+ move the stream and its consumers to more or fewer servers); asking
    # for more replicas than the cluster has servers is refused, as is R>1 on a single server.
    await js.update_stream(config)
    return "updated"


async def ensure_streams(js: JetStreamContext, names: Names, replicas: int = REPLICAS) -> dict[str, str]:
    """Declare the region's streams on ``replicas`` servers each; returns what was done to each."""
    return {c.name: await ensure_stream(js, c) for c in stream_configs(names, replicas)}  # type: ignore[misc]


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> str:
    """Create the durable consumer, or update it when its config differs.

    ``pull_subscribe`` ignores the config of an existing durable (STACK.md); on 2.9 creating a
    consumer again under the same name updates its editable fields.
    """
    assert config.durable_name
    try:
        info = await js.consumer_info(stream, config.durable_name)
    except NotFoundError:
        await js.add_consumer(stream, config)
        return "created"
    if not _differs(config, info.config, _CONSUMER_FIELDS):
        return "unchanged"
    await js.add_consumer(stream, config)
    return "updated"
