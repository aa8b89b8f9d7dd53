"""Running the NATS workers: in `smd serve` (the service's background work, ``ops.workers``) or
as `smd ingest` / `smd outbox`.

Both workers declare the streams first (idempotent), then loop until ``stop`` is set. A worker
that fails unexpectedly is logged and restarted after a pause, so one bad moment never leaves
the service running without its intake or outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client

from core.registry import RegistryView, open_registry
from integrations.intake import Intake, error_location
from integrations.nats_identities import ensure_agency_consumers
from integrations.outbox import Outbox
from integrations.streams import ensure_streams, names_of
from integrations.waiting import run_waiting
from integrations.witnessing import run_witnessing

log = structlog.get_logger("smd.nats")

RESTART_PAUSE = 2.0


#: How often the client pings its server: a server whose host vanished (no TCP reset) is noticed
#: after two unanswered pings, and the client moves to another server of the cluster. nats-py's
#: default (120 s) would leave the intake stalled for four minutes.
PING_INTERVAL = 10
#: Before the first connection: attempts per server of ``SMD_NATS_URL`` before connect() gives up.
CONNECT_ATTEMPTS = 2


def servers_of(url: str) -> list[str]:
    """The servers of ``SMD_NATS_URL``: one, or the comma-separated servers of one cluster."""
    return [u.strip() for u in url.split(",") if u.strip()]


def where(url: str) -> str:
    """host:port of each server, without credentials (a URL may carry a password)."""
    return ",".join(u.split("://", 1)[-1].rpartition("@")[2] for u in servers_of(url))


async def connect_nats(url: str, name: str, inbox_prefix: str | None = None) -> Client:
    """Connect to any server of ``url`` (raises when none can be reached now); reconnects forever
    afterwards, to any server of the cluster, including those the servers announce. Replies come
    back under ``inbox_prefix`` (default ``_INBOX``)."""

    async def on_error(e: Exception) -> None:
        log.warning("nats error", error=type(e).__name__)

    async def on_disconnect() -> None:
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    nc = await nats.connect(
        servers=servers_of(url),
        name=name,
        connect_timeout=5,
        allow_reconnect=True,
        max_reconnect_attempts=CONNECT_ATTEMPTS,
        reconnect_time_wait=1,
        ping_interval=PING_INTERVAL,
        max_outstanding_pings=2,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        **({"inbox_prefix": inbox_prefix} if inbox_prefix else {}),
    )
    # With -1 from the start, a server that is down at start-up would make connect() retry
    # forever instead of failing; once connected, a restarting server (or another server of the
    # cluster) is waited for, and what is published meanwhile is buffered (its acks time out:
    # the intake's senders and the outbox publish again with the same Nats-Msg-Id).
    nc.options["max_reconnect_attempts"] = -1
    return nc


#: Pauses between connection attempts while NATS cannot be reached at start: 1, 2, 4 … 15 s.
CONNECT_RETRY_MAX = 15.0


async def connect_when_possible(
    url: str, name: str, stop: asyncio.Event, inbox_prefix: str | None = None
) -> Client | None:
    """Connect, trying again with a growing pause until it works; None if stopped first.

    `smd serve` serves HTTP meanwhile (NATS is then "not connected" in /readyz: degraded)."""
    pause = 1.0
    attempts = 0
    while not stop.is_set():
        attempts += 1
        try:
            nc = await connect_nats(url, name, inbox_prefix)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # the URL may carry credentials: never logged; the error's type says enough
            if attempts == 1:
                log.warning("nats unreachable; serving without it and trying again", error=type(e).__name__)
            else:
                log.info("nats still unreachable", error=type(e).__name__, attempts=attempts)
            try:
                await asyncio.wait_for(stop.wait(), timeout=pause)
            except TimeoutError:
                pass
            pause = min(CONNECT_RETRY_MAX, pause * 2)
            continue
        if stop.is_set():
            await close_nats(nc)
            return None
        if attempts > 1:
            log.info("nats connected", attempts=attempts)
        return nc
    return None


async def run_nats_workers(services: Any, stop: asyncio.Event, name: str = "smd-serve") -> None:
    """In `smd serve`: connect when NATS can be reached, then run the intake and the outbox until
    ``stop``; ``services.nats`` is the connection while there is one."""
    nc = await connect_when_possible(services.settings.nats_url, name, stop)
    if nc is None:
        return
    services.nats = nc
    try:
        await asyncio.gather(
            run_intake(services, nc, stop), run_outbox(services, nc, stop), run_witnessing(services, nc, stop)
        )
    finally:
        await close_nats(nc)
        services.nats = None


async def close_nats(nc: Client) -> None:
    """Drain the connection (pending messages out, then closed); one still reconnecting to a
    server that is down cannot drain (nats-py raises): it is closed."""
    try:
        await nc.drain()
        return
    except (nats.errors.ConnectionReconnectingError, nats.errors.ConnectionClosedError):
        pass
    try:
        await nc.close()
    except OSError as e:  # nats-py flushes what it buffered while reconnecting into the lost socket
        log.warning("nats closed while the server is unreachable", error=type(e).__name__)


def registry_of(services: Any) -> RegistryView:
    """The services' registry view, or one opened on the case record (until Services has one)."""
    return getattr(services, "registry", None) or open_registry(services.case_record, services.settings.region)


#: NATS not answering for now: a server restarting, or the cluster electing a stream's leader
#: (seconds). The worker starts again after the pause; a warning, since nothing is wrong with it.
NATS_UNAVAILABLE = (
    TimeoutError,  # nats-py's request timeout is one
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
)


async def _supervised(what: str, stop: asyncio.Event, make: Callable[[], Awaitable[Any]]) -> None:
    """Run ``make()`` until ``stop``; log and restart it after a pause when it fails."""
    while not stop.is_set():
        try:
            await make()
        except asyncio.CancelledError:
            raise
        except NATS_UNAVAILABLE as e:
            log.warning(f"{what} paused: NATS did not answer; starting again", error=type(e).__name__)
        except nats.js.errors.APIError as e:
            # the server's own words (a stream name, a limit; never a message's content) say what
            # to fix, e.g. "replicas > 1 not supported in non-clustered mode" for SMD_NATS_REPLICAS
            log.error(
                f"{what} failed; restarting",
                error=type(e).__name__,
                err_code=e.err_code,
                description=e.description,
                at=error_location(e),
            )
        except Exception as e:
            log.error(f"{what} failed; restarting", error=type(e).__name__, at=error_location(e))
        try:
            await asyncio.wait_for(stop.wait(), timeout=RESTART_PAUSE)
        except TimeoutError:
            pass


async def run_intake(services: Any, nc: Client, stop: asyncio.Event) -> None:
    """Store inbound envelopes from the intake stream until ``stop`` is set."""
    names = names_of(services.settings)
    registry = await asyncio.to_thread(registry_of, services)  # reads the log: off the loop

    async def once() -> None:
        await ensure_streams(nc.jetstream(), names, services.settings.nats_replicas)
        settings = services.settings
        metrics = getattr(services, "metrics", None)
        intake = Intake(
            services.case_record,
            registry,
            nc,
            names,
            earliest=settings.earliest_time,
            limits=settings.wire_limits,
            metrics=metrics,
            waiting=getattr(services, "waiting", None),
            ack_wait=settings.intake_ack_wait_seconds,
            batch=settings.intake_batch,
            fault=settings.fault,
        )
        await intake.run(stop)

    if getattr(services, "waiting_sweep", None) is None:
        await _supervised("intake", stop, once)
        return
    # beside it: refusals of facts that waited, told on the senders' rejection subjects
    await asyncio.gather(_supervised("intake", stop, once), run_waiting(services, nc, names, stop))


async def run_outbox(services: Any, nc: Client, stop: asyncio.Event) -> None:
    """Publish obligations and notices from the log until ``stop`` is set."""
    names = names_of(services.settings)

    async def once() -> None:
        await ensure_streams(nc.jetstream(), names, services.settings.nats_replicas)
        agencies = await asyncio.to_thread(_agencies_today, services)
        await ensure_agency_consumers(nc.jetstream(), names, agencies)  # where each agency reads
        outbox = Outbox(
            services.case_record,
            nc,
            names,
            parking=getattr(services, "parking", None),
            fault=services.settings.fault,
            access_log=services.access_log,
            leases=getattr(services, "leases", None),
        )
        await outbox.run(stop)

    await _supervised("outbox", stop, once)


def _agencies_today(services: Any) -> list[str]:
    """The agencies in the registry today (each gets its durables on the outbound and rejection streams)."""
    registry = services.registry
    registry.refresh()
    state, today = registry.state(), registry.today()
    return sorted(a for a in state.agencies if state.agency(a, today) is not None)
