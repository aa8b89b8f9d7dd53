"""Readiness checks of one wired service (``/readyz``, ``/v1/status``, metrics): the store, NATS
and the followers, each in its own single thread (``core.readiness`` says what each means).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from core.readiness import (
    DEGRADED,
    FOLLOWER_PREFIX,
    FOLLOWERS_TIMEOUT,
    NATS,
    OK,
    READY_BUDGET,
    STORE,
    STORE_TIMEOUT,
    UNAVAILABLE,
    Observed,
    Readiness,
    SingleFlight,
    follower_check,
)

if TYPE_CHECKING:
    from ops.bootstrap import Services

__all__ = [
    "DEGRADED",
    "FOLLOWERS_TIMEOUT",
    "FOLLOWER_PREFIX",
    "NATS",
    "OK",
    "READY_BUDGET",
    "STORE",
    "STORE_TIMEOUT",
    "UNAVAILABLE",
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
