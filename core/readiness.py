"""Readiness: what it means for this instance to be ready, and the pieces to check it with.

Unavailable only when the store (the case record) does not answer a cheap query within a short
time: that is the one thing a load balancer should route around. NATS not connected (when
configured), parked or held events, a stopped follower and a follower further behind the log
than ``SMD_LAG_DEGRADED_SECONDS`` make the instance *degraded*: it still records facts and
answers queries, so it stays in rotation, and ``checks`` names what is wrong. So do the verifiable
log's leaves left unsigned longer than ``SMD_CHECKPOINT_DEGRADED_SECONDS`` (``checkpoint``) and a
witness of ``SMD_WITNESSES`` whose cosignature of the latest checkpoint is missing longer than
``SMD_COSIGNATURE_DEGRADED_SECONDS`` after it was signed (``witness:<name>``).

Store calls are blocking and a hung PostgreSQL can hold one for longer than a probe may wait
(a TCP connection to a host that went away). Each check therefore runs in its own single thread
(``SingleFlight``) and callers wait for it at most ``STORE_TIMEOUT`` (``/readyz``:
``READY_BUDGET`` in all); callers that come while a check is still running wait for that same
check rather than start another, so a hung store holds one thread per check, not one per probe.
The composition root runs the checks (``ops.readiness.assess``); the API reports them.

Check texts carry no personal data and no ids of patients: states, counts, log positions, and
an error's type and where it was raised.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from core.followers.engine import FollowerStatus

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
CHECKPOINT, WITNESS_PREFIX = "checkpoint", "witness:"


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
class CheckpointsObserved:
    """What the checkpoints' check read: the tree, the latest checkpoint and who cosigned what."""

    now: datetime  # the service's clock when read
    tree_size: int  # leaves in the tree
    size: int | None  # the latest checkpoint's leaves (None: none signed yet)
    signed_at: datetime | None
    #: since when this process has seen leaves the latest checkpoint does not cover (None: none)
    unsigned_since: datetime | None
    witnesses: tuple[str, ...]  # the names of SMD_WITNESSES' keys
    last_cosigned: dict[str, int] = field(default_factory=dict)  # witness name → largest size it cosigned

    @property
    def age_seconds(self) -> float | None:
        """The latest checkpoint's age (None: none yet)."""
        return None if self.signed_at is None else max(0.0, (self.now - self.signed_at).total_seconds())

    @property
    def unsigned_seconds(self) -> float:
        """How long leaves have waited for a checkpoint (0: every leaf is signed)."""
        if self.unsigned_since is None:
            return 0.0
        return max(0.0, (self.now - self.unsigned_since).total_seconds())


@dataclass(frozen=True)
class Observed:
    """What the followers' check read from the store."""

    followers: list[FollowerStatus]
    parked: dict[tuple[str, str], int]  # (follower, parked|held|stopped) → rows
    checkpoints: CheckpointsObserved | None = None  # None: no verifiable log wired, or not read


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


def checkpoint_check(c: CheckpointsObserved, limit: float) -> str:
    """ "ok", or how long leaves of the tree have waited unsigned (more than ``limit`` seconds)."""
    waited = c.unsigned_seconds
    if waited <= limit:
        return OK
    unsigned = c.tree_size - (c.size or 0)
    latest = "no checkpoint signed yet" if c.size is None else f"the latest checkpoint covers {c.size}"
    return (
        f"{unsigned} leaves unsigned for {waited:.0f} s ({latest} of {c.tree_size};"
        f" more than SMD_CHECKPOINT_DEGRADED_SECONDS={limit:g})"
    )


def witness_checks(c: CheckpointsObserved, limit: float) -> dict[str, str]:
    """Per witness of SMD_WITNESSES: "ok", or that its cosignature of the latest checkpoint is
    missing more than ``limit`` seconds after it was signed."""
    age = c.age_seconds
    checks = {}
    for name in c.witnesses:
        last = c.last_cosigned.get(name, 0)
        if c.size is None or last >= c.size or age is None or age <= limit:
            checks[WITNESS_PREFIX + name] = OK
            continue
        since = f"its last cosignature is of the tree of {last}" if last else "it has cosigned nothing"
        checks[WITNESS_PREFIX + name] = (
            f"no cosignature of the checkpoint of {c.size} signed {age:.0f} s ago; {since}"
            f" (more than SMD_COSIGNATURE_DEGRADED_SECONDS={limit:g})"
        )
    return checks
