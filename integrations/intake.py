"""NATS intake: a durable pull consumer that stores each batch of envelopes, then acks them.

Each fetch (up to ``SMD_INTAKE_BATCH`` messages) is one unit of work
(``core.intake.accept_batch``): every message decoded and authorised, the valid ones decided in
order in memory and stored in one transaction; only then is any message acked. A message refused
is rejected alone; a save that collides with another writer is decided again, then split.

Per message (``<root>.<region>.in.<agency-id>.<event-type...>``):

- stored (or already stored: a redelivery) → ack, after the commit;
- its patient, suspected case, incident or move not recorded yet → held in the waiting table
  (core.waiting), then ack: it is recorded when that arrives, or rejected (below, by the sweep:
  ``integrations.waiting``) when it has not come within the window;
- refused for good (bytes no decoder may read: too large, not UTF-8, nested too deep; a bad
  envelope or a duplicate member; wrong source, not allowed, an org unit or agency the
  registry does not know, a time out of range, a domain rule) → the original
  bytes go to ``<root>.<region>.rejected.<agency-id>`` with the reason in headers, then ack;
- the store failed for now (unreachable, locked, writers colliding) → ``nak(delay)`` with a
  growing delay, never a rejection: the same message is tried again later;
- on the last delivery the consumer allows (``max_deliver``), a message that would be tried
  again (the store down for over an hour, or a bug: ``internal-error``) is a *dead letter*: it
  goes to the rejection stream with reason ``delivery-limit`` and is terminated (``term()``),
  so nothing is retried forever and the sender is told. The server's MAX_DELIVERIES advisory is
  only a cross-check (:class:`MaxDeliveriesWatch`): it comes only for a message the intake did
  not terminate (it crashed, or NATS failed, on the last delivery), which is dead-lettered then.

An idle fetch ends in a timeout: that is no error (nats-py raises its own ``TimeoutError`` or,
now and then, asyncio's; both are caught). While a batch is worked on, every half AckWait the
server is told its messages are still in progress, so a short AckWait (a crashed intake's
messages come back soon) never redelivers messages that are merely waiting for their commit.

The store is idempotent on ``<source>:<id>``, so at-least-once delivery gives exactly-once
effects. Acks are ``ack()`` (fire and forget) plus one ``flush()`` per batch: a lost ack only
means a redelivery after AckWait, which the store answers "duplicate"; ``ack_sync()`` per
message would add a server round trip to every message for no stronger outcome.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import nats.errors
import psycopg
import structlog
from eventsourcing.persistence import InterfaceError, OperationalError
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from structlog.contextvars import bound_contextvars

from core.case_record import CaseRecord, ConcurrentWriteConflict, Recorded
from core.contract import DEFAULT_LIMITS, ContractError, WireLimits, envelope_key
from core.intake import Incoming, Result, accept_batch
from core.ports import DoorCounts
from core.registry import RegistryView
from core.waiting import Arrival, Waiting
from domain.errors import DomainError
from domain.receipt import receipt_id
from domain.values import EARLIEST_OCCURRED
from integrations.streams import (
    INTAKE_ACK_WAIT,
    INTAKE_CONSUMER,
    INTAKE_MAX_DELIVER,
    Names,
    ensure_consumer,
    intake_consumer_config,
)


class IntakeCounts(DoorCounts, Protocol):
    """The door's counts, and what the intake found when a message ran out of deliveries."""

    def max_deliveries_advisory(self, found: str) -> None:
        """The cross-check handled a MAX_DELIVERIES advisory (``found``: ``ops.metrics``)."""


log = structlog.get_logger("smd.intake")

VIA = "NATS subject"

DOOR = "nats"  # the door's label in the metrics (ops.metrics)


def nats_user(agency_id: str) -> str:
    """What authenticated a message on ``<root>.<region>.in.<agency id>.…``: the agency's NATS user,
    the only user ``smd nats config`` lets publish there (docs/decisions/027); kept on its receipt."""
    return f"nats-user:{agency_id}"


#: Headers of a rejection (besides ``Nats-Msg-Id`` = ``rejected:<original stream seq>``).
H_REASON = "Smd-Reason"
H_DETAIL = "Smd-Detail"
H_SUBJECT = "Smd-Original-Subject"
H_SEQ = "Smd-Original-Seq"
H_MSG_ID = "Smd-Original-Msg-Id"
#: Failures worth trying again: the message may well be stored on a later delivery.
TRANSIENT = (
    OperationalError,
    InterfaceError,
    ConcurrentWriteConflict,
    psycopg.OperationalError,  # the keystore talks to PostgreSQL directly
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    ConnectionError,
    TimeoutError,
)
#: Test-only fault injection: SIGKILL this process after the first commit, before its ack.
FAULT_KILL_AFTER_COMMIT = "intake-kill-after-commit"
#: The reason of a dead letter: the last allowed delivery could not store the message.
DELIVERY_LIMIT = "delivery-limit"
#: Intake processes share the MAX_DELIVERIES advisories: one of them checks each.
ADVISORY_QUEUE = "smd-intake-max-deliveries"


def correlation_id(raw: bytes, seq: int, limits: WireLimits = DEFAULT_LIMITS) -> str:
    """``<source>:<id>`` when the bytes carry a well-formed pair, else ``seq:<stream seq>``.

    The bytes pass the byte-level checks first: a decoder must never see what could crash it."""
    return envelope_key(raw, limits) or f"seq:{seq}"


def _clean(text: str, limit: int = 1000) -> str:
    """A header value: one line, bounded (msgspec and domain messages carry no personal data)."""
    return " ".join(text.split())[:limit]


def backoff(delivered: int) -> float:
    """Seconds before the next try of a message delivered ``delivered`` times: 1, 2, 4 … 60."""
    return float(min(60, 2 ** max(0, delivered - 1)))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message (logged, and returned for tests)."""

    action: str  # "ack" | "reject" | "retry"
    outcome: str  # recorded | no-change | duplicate | rejected | retry
    reason: str | None = None
    detail: str | None = None


class Intake:
    """Fetches intake messages in batches and stores each batch through ``core.intake.accept_batch``."""

    def __init__(
        self,
        case_record: CaseRecord,
        registry: RegistryView,
        nc: Client,
        names: Names,
        *,
        batch: int = 100,
        fetch_timeout: float = 1.0,
        earliest: datetime = EARLIEST_OCCURRED,
        limits: WireLimits = DEFAULT_LIMITS,
        metrics: IntakeCounts | None = None,
        waiting: Waiting | None = None,
        ack_wait: float = INTAKE_ACK_WAIT,
        max_deliver: int = INTAKE_MAX_DELIVER,
        fault: str = "",
    ) -> None:
        self.case_record = case_record
        self.waiting = waiting  # facts whose reference is not recorded yet wait there (core.waiting)
        self.registry = registry
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.names = names
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.earliest = earliest  # SMD_EARLIEST_TIME
        self.limits = limits  # SMD_MAX_MESSAGE_BYTES, SMD_MAX_JSON_DEPTH
        self.metrics = metrics  # accepted and refused messages, counted (ops.metrics)
        self.ack_wait = ack_wait  # SMD_INTAKE_ACK_WAIT_SECONDS
        self.max_deliver = max_deliver
        self.fault = fault  # SMD_FAULT (test only)
        self._sub: Any = None
        self.watch = MaxDeliveriesWatch(self)

    async def subscribe(self) -> None:
        """Declare (or update) the durable consumer and bind a pull subscription to it."""
        stream = self.names.intake_stream
        config = intake_consumer_config(ack_wait=self.ack_wait, max_deliver=self.max_deliver)
        action = await ensure_consumer(self.js, stream, config)
        self._sub = await self.js.pull_subscribe_bind(durable=INTAKE_CONSUMER, stream=stream)
        await self.watch.start()
        log.info("intake consumer ready", stream=stream, consumer=INTAKE_CONSUMER, action=action)

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and process batches until ``stop`` is set."""
        if self._sub is None:
            await self.subscribe()
        try:
            while not stop.is_set():
                try:
                    msgs = await self._sub.fetch(self.batch, timeout=self.fetch_timeout)
                except TimeoutError:
                    # Nothing arrived: idle, not an error. nats.errors.TimeoutError is one; nats-py
                    # also raises asyncio's (the same class as TimeoutError) when its second pull
                    # request would have no time left, about once a minute on an idle intake.
                    continue
                except (
                    nats.errors.ConnectionClosedError,
                    nats.errors.ConnectionReconnectingError,
                    nats.errors.NoRespondersError,
                ) as e:
                    log.warning("intake fetch failed", error=type(e).__name__)
                    await _sleep(stop, 1.0)
                    continue
                pause = await self.process(msgs)
                if pause:
                    await _sleep(stop, pause)
        finally:
            # A pull subscription left open makes nc.drain() wait for its 30 s timeout.
            sub, self._sub = self._sub, None
            if not self.nc.is_closed:
                await sub.unsubscribe()
                await self.watch.stop()

    async def process(self, msgs: list[Msg]) -> float:
        """Process one batch as one unit of work; returns how long to pause (the store failing) or 0.

        Every message is decided in order and the batch is stored in one transaction
        (``core.intake.accept_batch``); only then is any message acked. A refused message is
        rejected alone; a message that failed alone is given back alone; a failure of the store
        for the batch gives every message back."""
        if not msgs:
            return 0.0
        incoming = [
            Incoming(msg.data, agency, VIA, _arrival(msg), authenticated_by=nats_user(agency))
            for msg, agency in ((m, m.subject.split(".")[3]) for m in msgs)
        ]
        # a slow batch: the messages still waiting for the commit are not abandoned
        heartbeat = asyncio.create_task(self._in_progress(msgs))
        try:
            results: list[Result] = await asyncio.to_thread(
                accept_batch,
                self.case_record,
                self.registry,
                incoming,
                earliest=self.earliest,
                limits=self.limits,
                waiting=self.waiting,
            )
        except Exception as e:  # nothing of the batch was stored
            results = [e] * len(msgs)
        finally:
            heartbeat.cancel()
        if self.fault == FAULT_KILL_AFTER_COMMIT and any(isinstance(r, Recorded) and r.is_new for r in results):
            os.kill(os.getpid(), signal.SIGKILL)  # test only: committed, not acked
        pause = 0.0
        for msg, result in zip(msgs, results, strict=True):
            outcome = await self.handle(msg, result)
            if outcome.action == "retry":
                pause = max(pause, min(backoff(msg.metadata.num_delivered or 1), 5.0))
        await self.nc.flush()  # the batch's acks reached the server before the next fetch
        return pause

    async def _in_progress(self, msgs: list[Msg]) -> None:
        """Every half AckWait, tell the server the batch's messages are still being worked on."""
        while True:
            await asyncio.sleep(self.ack_wait / 2)
            try:
                for msg in msgs:
                    await msg.in_progress()
            except Exception as e:  # NATS trouble: the messages may come back after AckWait (duplicates)
                log.warning("in-progress signal not sent", error=type(e).__name__)

    async def handle(self, msg: Msg, result: Result) -> Outcome:
        """Ack, reject or give back one message of a processed batch."""
        seq = msg.metadata.sequence.stream
        delivered = msg.metadata.num_delivered or 1
        agency_id = msg.subject.split(".")[3]  # the stream holds <root>.<region>.in.> only
        with bound_contextvars(correlation_id=correlation_id(msg.data, seq, self.limits)):
            outcome = self._outcome(result, delivered)
            if outcome.action == "retry" and delivered >= self.max_deliver:
                outcome = dead_letter(outcome.reason, delivered)  # never retried forever
            if outcome.action == "reject":
                try:
                    await self._reject(msg, agency_id, seq, outcome)
                except Exception as e:  # NATS trouble: try the whole message again later
                    log.warning("rejection not stored", seq=seq, error=type(e).__name__)
                    outcome = Outcome("retry", "retry", "rejection-not-stored")
            if outcome.action == "retry":
                # on the last delivery the server gives up: the advisory watch dead-letters it
                await msg.nak(delay=backoff(delivered))
            elif outcome.outcome == DEAD_LETTER:
                await msg.term()  # the dead-letter record is stored: no delivery after this one
            else:
                await msg.ack()
            if self.metrics is not None:
                if outcome.action == "reject":
                    self.metrics.message_rejected(DOOR, outcome.reason)
                elif outcome.action == "ack":
                    self.metrics.message_accepted(DOOR, outcome.outcome)
            log.info(
                "intake", seq=seq, agency=agency_id, delivered=delivered, outcome=outcome.outcome, reason=outcome.reason
            )
        return outcome

    def _outcome(self, result: Result, delivered: int) -> Outcome:
        """What to do with a message, given what recording it did or why it did not."""
        match result:
            case Recorded():
                return Outcome("ack", result.outcome)
            case ContractError() | DomainError():
                return Outcome("reject", "rejected", result.code, getattr(result, "detail", None) or str(result))
            case _ if isinstance(result, TRANSIENT):
                return Outcome("retry", "retry", type(result).__name__)
        # A bug, not the sender's fault: try again (a fix may be deployed meanwhile); on the
        # last delivery tell the sender rather than leave the message unanswered.
        where = error_location(result)
        log.error("intake failed unexpectedly", error=type(result).__name__, at=where)
        if delivered >= self.max_deliver:
            return Outcome(
                "reject",
                DEAD_LETTER,
                "internal-error",
                f"the service failed to store this message ({type(result).__name__}); "
                "the operator has the details; send it again later with the same id",
            )
        return Outcome("retry", "retry", type(result).__name__)

    async def _reject(self, msg: Msg, agency_id: str, seq: int, outcome: Outcome) -> None:
        """Store the original bytes with the reason on the rejection stream (awaited)."""
        await self.publish_rejection(msg.data, msg.subject, msg.headers, agency_id, seq, outcome)

    async def publish_rejection(
        self,
        raw: bytes,
        subject: str,
        original_headers: dict[str, str] | None,
        agency_id: str,
        seq: int,
        outcome: Outcome,
    ) -> Any:
        """The original bytes with the reason on the agency's rejection subject; the PubAck."""
        headers = {
            "Nats-Msg-Id": f"rejected:{seq}",  # a crash-and-redeliver stores one rejection
            H_REASON: outcome.reason or "rejected",
            H_DETAIL: _clean(outcome.detail or ""),
            H_SUBJECT: subject,
            H_SEQ: str(seq),
        }
        original_id = (original_headers or {}).get("Nats-Msg-Id")
        if original_id:
            headers[H_MSG_ID] = _clean(original_id, 200)
        return await self.js.publish(
            self.names.rejected(agency_id),
            raw,
            headers=headers,
            stream=self.names.rejected_stream,
        )


DEAD_LETTER = "dead-letter"  # an Outcome's outcome: rejected because deliveries ran out


def dead_letter(cause: str | None, delivered: int) -> Outcome:
    """The last allowed delivery of a message that would be tried again: a dead letter."""
    return Outcome(
        "reject",
        DEAD_LETTER,
        DELIVERY_LIMIT,
        f"not stored after {delivered} deliveries over about an hour ({cause or 'the store did not answer'}); "
        "nothing was recorded: send it again with the same id once the service answers (GET /readyz)",
    )


class MaxDeliveriesWatch:
    """Cross-check of the dead letters: JetStream's MAX_DELIVERIES advisory for the intake.

    The intake terminates every message on its last delivery, so an advisory means it did not
    (killed on the last delivery, or the rejection could not be published): the message is
    looked up, and unless it was stored meanwhile it gets its dead-letter record now (the same
    ``Nats-Msg-Id`` as the intake's, so a record already written is not written twice). Logged
    and counted (``smd_intake_max_deliveries_total``) by what was found.
    """

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self._sub: Any = None
        self.handled: list[tuple[int, str]] = []  # (stream seq, found): read by tests

    async def start(self) -> None:
        if self._sub is None:
            subject = self.intake.names.intake_max_deliveries_advisory(INTAKE_CONSUMER)
            self._sub = await self.intake.nc.subscribe(subject, queue=ADVISORY_QUEUE, cb=self._on_advisory)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()

    async def _on_advisory(self, advisory: Msg) -> None:
        try:
            seq = int(json.loads(advisory.data)["stream_seq"])
        except (ValueError, KeyError, TypeError) as e:
            log.warning("max-deliveries advisory not understood", error=type(e).__name__)
            return
        try:
            found = await self.check(seq)
        except Exception as e:  # the next advisory is another chance; the message stays in the stream
            log.error("max-deliveries advisory not handled", seq=seq, error=type(e).__name__, at=error_location(e))
            return
        self.handled.append((seq, found))
        if self.intake.metrics is not None:
            self.intake.metrics.max_deliveries_advisory(found)

    async def check(self, seq: int) -> str:
        """What the message at ``seq`` is now; dead-letter it if it is neither stored nor one."""
        intake = self.intake
        try:
            original = await intake.js.get_msg(intake.names.intake_stream, seq)
        except nats.js.errors.NotFoundError:
            log.warning("max deliveries reached; the message is no longer in the stream", seq=seq)
            return "gone"
        raw = original.data or b""
        key = correlation_id(raw, seq, intake.limits)
        with bound_contextvars(correlation_id=key):
            if not key.startswith("seq:") and await asyncio.to_thread(self._stored, key):
                log.info("max deliveries reached for a message already stored or waiting", seq=seq)
                return "already-stored"
            agency_id = (original.subject or "").split(".")[3]
            outcome = dead_letter("its last delivery did not end", intake.max_deliver)
            ack = await intake.publish_rejection(raw, original.subject or "", original.headers, agency_id, seq, outcome)
            if ack.duplicate:
                log.info("max deliveries reached; already dead-lettered", seq=seq)
                return "already-dead-lettered"
            log.warning("max deliveries reached without a dead-letter record; written now", seq=seq)
            if intake.metrics is not None:
                intake.metrics.message_rejected(DOOR, DELIVERY_LIMIT)
            return "dead-lettered"

    def _stored(self, key: str) -> bool:
        """Recorded (its receipt), or taken by the waiting table (waiting, or refused and told)."""
        if self.intake.case_record.recorder.select_events(receipt_id(key), limit=1):
            return True
        waiting = self.intake.waiting
        return waiting is not None and waiting.status(key) is not None


def _arrival(msg: Msg) -> Arrival:
    return Arrival(
        door=DOOR,
        nats_subject=msg.subject,
        nats_seq=msg.metadata.sequence.stream,
        nats_msg_id=(msg.headers or {}).get("Nats-Msg-Id"),
    )


def error_location(e: BaseException) -> str:
    """file:line of the innermost frame (an exception's message may carry data: not logged)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, waking early when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
