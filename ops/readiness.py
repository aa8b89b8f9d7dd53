"""Readiness: can this instance serve, and what is degraded (``/readyz``, ``/v1/status``, metrics).

Unavailable only when the store (the case record) does not answer a cheap query within a short
time: that is the one thing a load balancer should route around. NATS not connected (when
configured), parked or held events, a stopped follower and a follower further behind the log
than ``SMD_LAG_DEGRADED_SECONDS`` make the instance *degraded*: it still records facts and
answers queries, so it stays in rotation, and ``checks`` names what is wrong.

Store calls are blocking and a hung PostgreSQL can hold one for longer than a probe may wait
(a TCP connection to a host that went away). Each check therefore runs in its own single thread
and callers wait for it at most ``STORE_TIMEOUT`` (``/readyz``: ``READY_BUDGET`` in all);
callers that come while a check is still running wait for that same check rather than start
another, so a hung store holds one thread per check, not one per probe.

Check texts carry no personal data and no ids of patients: states, counts, log positions, and
an error's type and where it was raised.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from core.followers.engine import FollowerStatus

if TYPE_CHECKING:
    from ops.bootstrap import Services

T = TypeVar("T")

#: /readyz answers within this many seconds, whatever the store does (a load balancer's probe
#: must not hang; a load balancer's probe waits about a second).
READY_BUDGET = 0.8
#: How long a check waits for the store's answer (a cheap query: milliseconds when it is up).
STORE_TIMEOUT = 0.6
#: How long /v1/status and /metrics wait for the followers' positions, parked counts and lag;
#: /readyz waits what is left of READY_BUDGET (no answer in time: "degraded", never 503).
FOLLOWERS_TIMEOUT = 5.0

OK, DEGRADED, UNAVAILABLE = "ok", "degraded", "unavailable"
STORE, NATS = "store", "nats"
FOLLOWER_PREFIX = "follower:"


class SingleFlight(Generic[T]):
    """Runs a blocking call in its own thread; a caller arriving while it runs shares that run.

    ``await flight(timeout)`` returns the call's result or raises its exception, or raises
    ``TimeoutError`` after ``timeout`` seconds (the call goes on; the next caller waits for it).
    """

    def __init__(self, name: str, call: Callable[[], T]) -> None:
        self.call = call
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._running: Future[T] | None = None
        self._lock = threading.Lock()

    async def __call__(self, timeout: float) -> T:
        with self._lock:
            running = self._running
            if running is None or running.done():
                running = self._running = self._executor.submit(self.call)
        waited = asyncio.wrap_future(running)
        waited.add_done_callback(_retrieved)  # a check that ends after its callers gave up is no error
        return await asyncio.wait_for(asyncio.shield(waited), timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _retrieved(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True)
class Observed:
    """What the followers' check read from the store."""

    followers: list[FollowerStatus]
    parked: dict[tuple[str, str], int]  # (follower, parked|held|stopped) → rows


@dataclass(frozen=True)
class Readiness:
    """The instance's state and each check ("ok" or what is wrong)."""

    status: str  # ok | degraded | unavailable
    checks: dict[str, str]
    head: int | None = None  # the log's last position, when the store answered
    observed: Observed | None = None  # None when the store or the followers' check did not answer

    @property
    def store_ok(self) -> bool:
        return self.checks.get(STORE) == OK

    @property
    def nats_ok(self) -> bool:
        return self.checks.get(NATS, OK) == OK


class Probes:
    """The single-flight checks of one Services (made on first use, closed with the services)."""

    def __init__(self) -> None:
        self.store: SingleFlight[int] | None = None
        self.followers: SingleFlight[Observed] | None = None
        self._lock = threading.Lock()

    def get(self, services: Services) -> tuple[SingleFlight[int], SingleFlight[Observed]]:
        with self._lock:
            if self.store is None or self.followers is None:

                def head() -> int:
                    return services.case_record.recorder.max_notification_id() or 0

                def observe() -> Observed:
                    return Observed(services.follower_status(), services.parking.counts())

                self.store = SingleFlight("smd-ready-store", head)
                self.followers = SingleFlight("smd-ready-followers", observe)
            return self.store, self.followers

    def close(self) -> None:
        for flight in (self.store, self.followers):
            if flight is not None:
                flight.close()


def follower_check(s: FollowerStatus, lag_limit: float) -> str:
    """ "ok", or what is wrong with one follower."""
    problems = []
    if s.stopped_at is not None:
        problems.append(f"stopped at log position {s.stopped_at}: {s.stopped_reason or 'unknown reason'}")
    if s.parked or s.held:
        problems.append(f"{s.parked} parked, {s.held} held")
    if s.lag_seconds > lag_limit:
        problems.append(
            f"{s.lag_events} events behind, the oldest {s.lag_seconds:.0f} s old"
            f" (more than SMD_LAG_DEGRADED_SECONDS={lag_limit:g})"
        )
    return "; ".join(problems) or OK


def _failed(e: BaseException, timeout: float) -> str:
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g} s"
    return type(e).__name__  # the message may name hosts or data: the type only


async def assess(services: Services, timeout: float = STORE_TIMEOUT, budget: float | None = None) -> Readiness:
    """Check the store (bounded by ``timeout``), NATS and the followers (bounded by
    ``FOLLOWERS_TIMEOUT``, or by what is left of ``budget`` seconds when one is given)."""
    started = time.monotonic()
    store, followers = services.probes.get(services)
    checks: dict[str, str] = {}
    head: int | None = None
    try:
        head = await store(timeout)
        checks[STORE] = OK
    except Exception as e:
        checks[STORE] = f"unreachable: {_failed(e, timeout)}"
    if services.settings.nats_url:
        nc = services.nats
        checks[NATS] = OK if nc is not None and nc.is_connected else "not connected"
    observed: Observed | None = None
    if head is not None:
        wait = FOLLOWERS_TIMEOUT if budget is None else max(0.05, budget - (time.monotonic() - started))
        try:
            observed = await followers(wait)
        except Exception as e:
            checks["followers"] = f"unknown: {_failed(e, wait)}"
        else:
            limit = services.settings.lag_degraded_seconds
            for s in observed.followers:  # the outbox is listed only with SMD_NATS_URL (nothing runs it else)
                checks[FOLLOWER_PREFIX + s.name] = follower_check(s, limit)
    if checks[STORE] != OK:
        status = UNAVAILABLE
    elif all(v == OK for v in checks.values()):
        status = OK
    else:
        status = DEGRADED
    return Readiness(status=status, checks=checks, head=head, observed=observed)
