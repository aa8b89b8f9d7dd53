"""Background work inside a service process: the followers of the global log (and, when
NATS is configured, the intake and the outbox, once NATS can be reached).

The service starts it, not the HTTP app: ``serving_app`` hands it to the app as a lifespan hook,
and ``background`` is the one place a service process connects to NATS and closes it
(``integrations.runner.run_nats_workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from litestar import Litestar

from api.app import create_app
from core.followers.engine import TRANSIENT
from integrations.crossregion import run_crossregion
from integrations.runner import run_nats_workers
from integrations.witnessing import peer_witnessing, run_peer_witnessing
from ops.bootstrap import Services, open_peer_witness
from ops.heap import settle
from ops.logging import get_logger

log = get_logger(__name__)
IDLE_SECONDS = 0.2
ERROR_BACKOFF_SECONDS = 2.0


async def run_followers(services: Services, stop: asyncio.Event) -> None:
    """Run each follower's batches until stopped; idle briefly when all are caught up.

    Pulling (not subscribing) works on SQLite, whose recorder cannot be subscribed to
    (STACK.md), and on PostgreSQL alike. On PostgreSQL a follower runs only while this process
    holds its lease (``core.followers.leases``): another process running it, this one stands by.
    """
    while not stop.is_set():
        busy = 0
        for follower in services.followers():
            if not await asyncio.to_thread(services.leases.held, lease_name(follower)):
                continue  # another process runs it; this one takes over when that one is gone
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


def lease_name(follower: Any) -> str:
    """The name a follower's lease goes by: its own name (the tracking name), else its type's."""
    name = getattr(follower, "name", None) or getattr(getattr(follower, "follower", None), "name", None)
    return str(name or type(follower).__name__)


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
    if crossregion_linked(services):
        # the handover messages to and from linked regions (R8), over the leaf node
        tasks.append(asyncio.create_task(run_crossregion(services, stop), name="crossregion"))
    witness = None
    if peer_witnessing(services.settings):
        # each linked region witnesses the other's log over the leaf node (cosigned checkpoints)
        witness = await asyncio.to_thread(open_peer_witness, services.settings)
        tasks.append(asyncio.create_task(run_peer_witnessing(services, witness, stop), name="peer-witnessing"))
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 10)
        if witness is not None:
            witness.store.close()


def crossregion_linked(services: Services) -> bool:
    """Whether this process carries handover messages: NATS set, linked regions, handovers on."""
    settings = services.settings
    return bool(settings.crossregion_nats_url and settings.crossregion_peers and services.handovers is not None)


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


def serve(settings: Any, workers: int = 1, followers: bool = True, services: Services | None = None) -> None:
    """Serve the HTTP API from ``workers`` processes sharing one listening socket (PostgreSQL).

    One process cannot use a second core (the interpreter lock): with ``workers`` > 1 the socket
    is bound here, then each worker process is forked with it, opens its own services (pools
    are never shared across a fork) and serves HTTP only; this process then runs the background
    work (the followers of the log and, with NATS, the intake and the outbox; ``followers``=False:
    none) and stops every worker when one ends or when it is stopped. Every cache a worker keeps
    is checked against the store on each use (API keys behind the key chain's sequence, the
    registry by its position, aggregates by their version at save), so any worker may answer any
    request. ``services``: already opened (one process only); closed when serving ends.
    """
    import signal
    import socket

    import uvicorn

    from ops.bootstrap import bootstrap

    def run(sock: socket.socket | None, background_work: bool, opened: Services | None = None) -> None:
        services = opened or bootstrap(settings)
        app = serving_app(services) if background_work else create_app(services)
        settle()  # what the start-up made lives as long as the process (ops.heap)
        try:
            if sock is None:
                uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
            else:
                # the socket itself, not its fd: uvicorn takes an fd for a UNIX socket, and the
                # loop then sets no TCP_NODELAY on the connections (40 ms delayed-ACK stalls)
                config = uvicorn.Config(app, log_config=None, access_log=False)
                uvicorn.Server(config).run(sockets=[sock])
        finally:
            services.close()

    if workers <= 1:
        run(None, followers, services)
        return
    if services is not None:
        raise ValueError("several workers open their own services")
    if settings.store_kind != "postgres":
        raise ValueError("several worker processes need PostgreSQL (SQLite has one writer per file)")
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    children: list[int] = []
    for i in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: its own services, the shared socket
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                run(sock, False)
            except BaseException:
                log.exception("worker failed", worker=i)
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()
    asyncio.run(_supervise(settings, children, followers))


async def _supervise(settings: Any, children: list[int], followers: bool) -> None:
    """The parent of ``serve``'s workers: the background work (``followers``) until stopped
    (SIGTERM, SIGINT) or until a worker ends; then every worker is stopped and waited for."""
    import signal

    from ops.bootstrap import bootstrap

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    services = bootstrap(settings) if followers else None
    settle()
    try:
        async with background(services) if services is not None else contextlib.nullcontext():
            while not stop.is_set():
                for child in children:
                    with contextlib.suppress(ChildProcessError):
                        if os.waitpid(child, os.WNOHANG)[0]:
                            stop.set()  # a worker ended (a failure, or stopped): stop them all
                await _sleep(stop, 0.5)
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        for child in children:
            with contextlib.suppress(ChildProcessError):
                await asyncio.to_thread(os.waitpid, child, 0)
        if services is not None:
            services.close()
