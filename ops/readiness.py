"""Readiness checks of one wired service (``/readyz``, ``/v1/status``, metrics): the store, NATS
and the followers, each in its own single thread (``core.readiness`` says what each means).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from core.audit import merkle
from core.readiness import (
    CHECKPOINT,
    DEGRADED,
    FOLLOWER_PREFIX,
    FOLLOWERS_TIMEOUT,
    NATS,
    OK,
    READY_BUDGET,
    STORE,
    STORE_TIMEOUT,
    UNAVAILABLE,
    WITNESS_PREFIX,
    CheckpointsObserved,
    Observed,
    Readiness,
    SingleFlight,
    checkpoint_check,
    follower_check,
    witness_checks,
)

if TYPE_CHECKING:
    from ops.bootstrap import Services

__all__ = [
    "CHECKPOINT",
    "DEGRADED",
    "FOLLOWERS_TIMEOUT",
    "FOLLOWER_PREFIX",
    "NATS",
    "OK",
    "READY_BUDGET",
    "STORE",
    "STORE_TIMEOUT",
    "UNAVAILABLE",
    "WITNESS_PREFIX",
    "Observed",
    "Probes",
    "Readiness",
    "SingleFlight",
    "assess",
    "follower_check",
]


class Probes:
    """The single-flight checks of one Services (made on first use, closed with the services)."""

    def __init__(self) -> None:
        self.store: SingleFlight[int] | None = None
        self.followers: SingleFlight[Observed] | None = None
        self._lock = threading.Lock()
        #: (when seen, tree size then), sizes increasing: the marks of leaves not yet signed
        self._unsigned: deque[tuple[datetime, int]] = deque(maxlen=4096)

    def get(self, services: Services) -> tuple[SingleFlight[int], SingleFlight[Observed]]:
        with self._lock:
            if self.store is None or self.followers is None:

                def head() -> int:
                    return services.case_record.recorder.max_notification_id() or 0

                def observe() -> Observed:
                    return Observed(services.follower_status(), services.parking.counts(), self._checkpoints(services))

                self.store = SingleFlight("smd-ready-store", head)
                self.followers = SingleFlight("smd-ready-followers", observe)
            return self.store, self.followers

    def _checkpoints(self, services: Services) -> CheckpointsObserved | None:
        """The verifiable log's tree, latest checkpoint and cosignatures (None: not wired, or the
        read failed: logged, and the followers' check still answers)."""
        audit = services.audit
        if audit is None:
            return None
        try:
            store = audit.store
            now = services.case_record.clock()
            tree_size = store.tree(merkle.DEFAULT_ALGORITHM).size
            latest = store.latest_checkpoint()
            last_cosigned = store.last_cosigned() if services.settings.all_witnesses else {}
        except Exception as e:
            log.warning("readiness: checkpoints not read", error=type(e).__name__)
            return None
        covered = latest.size if latest is not None else 0
        # since when leaves have waited unsigned, as this process saw it: the earliest mark whose
        # leaves a checkpoint does not cover yet (a probe seldom run sees them late: no false alarm)
        with self._lock:
            marks = self._unsigned
            while marks and marks[0][1] <= covered:
                marks.popleft()
            if tree_size > covered and (not marks or marks[-1][1] < tree_size):
                marks.append((now, tree_size))
            unsigned_since = marks[0][0] if marks else None
        return CheckpointsObserved(
            now=now,
            tree_size=tree_size,
            size=None if latest is None else latest.size,
            signed_at=None if latest is None else latest.signed_at,
            unsigned_since=unsigned_since,
            witnesses=tuple(w.split("+", 1)[0] for w in services.settings.all_witnesses),
            last_cosigned=last_cosigned,
        )

    def close(self) -> None:
        for flight in (self.store, self.followers):
            if flight is not None:
                flight.close()


log = structlog.get_logger("smd.readiness")


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
            if observed.checkpoints is not None:
                settings = services.settings
                checks[CHECKPOINT] = checkpoint_check(observed.checkpoints, settings.checkpoint_degraded_seconds)
                checks.update(witness_checks(observed.checkpoints, settings.cosignature_degraded_seconds))
    if checks[STORE] != OK:
        status = UNAVAILABLE
    elif all(v == OK for v in checks.values()):
        status = OK
    else:
        status = DEGRADED
    return Readiness(status=status, checks=checks, head=head, observed=observed)
