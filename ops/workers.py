"""Background work inside a service process: the followers of the global log (and, when
NATS is configured, the intake and the outbox, once NATS can be reached).

The service starts it, not the HTTP app: ``serving_app`` hands it to the app as a lifespan hook,
and ``background`` is the one place a service process connects to NATS and closes it
(``integrations.runner.run_nats_workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar

from api.app import create_app
from core.followers.engine import TRANSIENT
from integrations.runner import run_nats_workers
from ops.bootstrap import Services
from ops.logging import get_logger

log = get_logger(__name__)
IDLE_SECONDS = 0.2
ERROR_BACKOFF_SECONDS = 2.0


async def run_followers(services: Services, stop: asyncio.Event) -> None:
    """Run each follower's batches until stopped; idle briefly when all are caught up.

    Pulling (not subscribing) works on SQLite, whose recorder cannot be subscribed to
    (STACK.md), and on PostgreSQL alike.
    """
    while not stop.is_set():
        busy = 0
        for follower in services.followers():
            try:
                busy += await asyncio.to_thread(follower.run_once)
            except TRANSIENT as e:  # the store is down: an outage, not a bug; the position did not move
                log.warning("follower waits for the store", follower=type(follower).__name__, error=type(e).__name__)
                busy = 0
                await _sleep(stop, ERROR_BACKOFF_SECONDS)
            except Exception as e:  # keep the process alive; the position did not move
                log.error("follower failed", follower=type(follower).__name__, error=type(e).__name__, exc_info=e)
                busy = 0
                await _sleep(stop, ERROR_BACKOFF_SECONDS)
        if not busy:
            await _sleep(stop, IDLE_SECONDS)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


@contextlib.asynccontextmanager
async def background(services: Services) -> AsyncIterator[None]:
    """Start the background tasks for the app's lifetime; stop them on shutdown."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(run_followers(services, stop), name="followers")]
    if services.settings.nats_url:
        # connects in the background: HTTP serves while NATS is down ("degraded" in /readyz)
        tasks.append(asyncio.create_task(run_nats_workers(services, stop), name="nats"))
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 10)


def background_lifespan(services: Services) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan hook (Litestar's shape) running ``background(services)`` while the app serves."""

    def lifespan(_app: Any) -> AbstractAsyncContextManager[None]:
        return background(services)

    return lifespan


def serving_app(services: Services) -> Litestar:
    """The app of `smd serve`: the HTTP API, and for its lifetime the followers of the log and,
    with SMD_NATS_URL, the NATS intake and outbox (connecting in the background, so the app
    starts while NATS is down)."""
    return create_app(services, lifespan=[background_lifespan(services)])
