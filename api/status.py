"""`GET /v1/status`: the instance's state in full, for any agency's key (operators, monitoring).

The same checks as ``/readyz`` (core.readiness), with each follower's position, lag, parked,
held and stop, the log head, the parked-event counts and what waits for the record it refers
to (count, oldest age, window: core.waiting), the verifiable log's latest checkpoint and each
witness's cosignature (core.readiness ``checkpoint``, ``witness:<name>``). Positions, counts, error types and
where they were raised: no personal data, no ids of patients.

With the store unreachable on PostgreSQL the API key cannot be checked (the keys live in the
same database): the guard's lookup fails and the answer is a 503 ``store-unavailable`` problem,
not this report. Use ``/readyz`` (no key) to tell that case apart.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Literal

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide

from api.auth import Caller, agency_guard, provide_caller
from api.ports import Port, ReadinessPort
from core.readiness import CHECKPOINT, NATS, OK, STORE, STORE_TIMEOUT, WITNESS_PREFIX, Readiness


class StoreState(msgspec.Struct):
    """The case record's store."""

    kind: Literal["sqlite", "postgres"]
    reachable: bool
    check: str  # "ok" or what is wrong


class NatsState(msgspec.Struct):
    """NATS, when ``SMD_NATS_URL`` is set."""

    configured: bool
    connected: bool | None = None  # None when not configured
    check: str | None = None


class FollowerState(msgspec.Struct):
    """Where one follower of the global log stands (core.followers.engine.FollowerStatus)."""

    name: str
    state: Literal["ok", "lagging", "parked", "stopped"]
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    parked: int
    held: int
    stopped_at: int | None = None
    stopped_reason: str | None = None  # the error's type and where it was raised
    check: str = OK  # what /readyz says of it


class ParkedCount(msgspec.Struct):
    """Rows of the parking table, by follower and status (parked, held, stopped)."""

    follower: str
    status: Literal["parked", "held", "stopped"]
    count: int


class WaitingState(msgspec.Struct):
    """Facts that arrived before the record they refer to, waiting for it (core.waiting)."""

    count: int
    oldest_age_seconds: float  # on the service's clock; 0 when none waits
    window_seconds: float  # SMD_WAITING_WINDOW_SECONDS: refused when it ends
    refusals_untold: int  # refusals of waiting NATS messages not yet published to their senders


class WitnessState(msgspec.Struct):
    """One witness of ``SMD_WITNESSES`` (named by its key's name)."""

    name: str
    last_cosigned_size: int  # the largest checkpoint it cosigned (0: none)
    check: str = OK  # what /readyz says of it


class CheckpointState(msgspec.Struct):
    """The verifiable log: its tree, its latest signed checkpoint and the witnesses' cosignatures."""

    tree_size: int  # leaves chained so far
    size: int | None  # leaves the latest checkpoint covers (None: none signed yet)
    signed_at: datetime | None
    age_seconds: float | None  # on the service's clock
    unsigned_seconds: float  # how long leaves have waited for a checkpoint, as this process saw it
    degraded_seconds: float  # SMD_CHECKPOINT_DEGRADED_SECONDS
    cosignature_degraded_seconds: float  # SMD_COSIGNATURE_DEGRADED_SECONDS
    witnesses: list[WitnessState]
    check: str = OK


class ServiceStatus(msgspec.Struct):
    """The instance's state: ok, degraded (it serves; ``checks`` says what is wrong) or
    unavailable (the store does not answer)."""

    status: Literal["ok", "degraded", "unavailable"]
    checked_at: datetime
    checks: dict[str, str]
    store: StoreState
    nats: NatsState
    head: int | None  # the global log's last position (None: the store did not answer)
    followers: list[FollowerState]
    parked: list[ParkedCount]
    lag_degraded_seconds: float  # SMD_LAG_DEGRADED_SECONDS
    waiting: WaitingState | None = None  # None: the store did not answer
    checkpoint: CheckpointState | None = None  # None: the store or the check did not answer
    #: PostgreSQL: each follower's lease as this process sees it, ``active`` (it runs it here) or
    #: ``standby`` (another process does; this one takes over when that one is gone). Empty: this
    #: process runs every follower (SQLite), or its background loop has not started.
    leases: dict[str, Literal["active", "standby"]] = msgspec.field(default_factory=dict)


def waiting_state(services: ReadinessPort) -> WaitingState:
    """What waits now (reads the waiting table: blocking)."""
    stats = services.waiting.stats()
    return WaitingState(
        count=stats.waiting,
        oldest_age_seconds=services.waiting.oldest_age_seconds(stats),
        window_seconds=services.waiting.window.total_seconds(),
        refusals_untold=stats.untold,
    )


def service_status(services: ReadinessPort, ready: Readiness, waiting: WaitingState | None = None) -> ServiceStatus:
    """The report for a readiness result."""
    observed = ready.observed
    followers = [
        FollowerState(
            name=s.name,
            state=s.state,  # type: ignore[arg-type]
            position=s.position,
            head=s.head,
            lag_events=s.lag_events,
            lag_seconds=s.lag_seconds,
            parked=s.parked,
            held=s.held,
            stopped_at=s.stopped_at,
            stopped_reason=s.stopped_reason,
            check=ready.checks.get(f"follower:{s.name}", OK),
        )
        for s in (observed.followers if observed else [])
    ]
    parked = [
        ParkedCount(follower=f, status=st, count=n)  # type: ignore[arg-type]
        for (f, st), n in sorted((observed.parked if observed else {}).items())
    ]
    checkpoint = None
    c = observed.checkpoints if observed else None
    if c is not None:
        checkpoint = CheckpointState(
            tree_size=c.tree_size,
            size=c.size,
            signed_at=c.signed_at,
            age_seconds=c.age_seconds,
            unsigned_seconds=c.unsigned_seconds,
            degraded_seconds=services.settings.checkpoint_degraded_seconds,
            cosignature_degraded_seconds=services.settings.cosignature_degraded_seconds,
            witnesses=[
                WitnessState(
                    name=w, last_cosigned_size=c.last_cosigned.get(w, 0), check=ready.checks.get(WITNESS_PREFIX + w, OK)
                )
                for w in c.witnesses
            ],
            check=ready.checks.get(CHECKPOINT, OK),
        )
    nats_configured = bool(services.settings.nats_url)
    return ServiceStatus(
        status=ready.status,  # type: ignore[arg-type]
        checked_at=datetime.now(UTC),
        checks=ready.checks,
        store=StoreState(kind=services.settings.store_kind, reachable=ready.store_ok, check=ready.checks[STORE]),
        nats=NatsState(
            configured=nats_configured,
            connected=ready.nats_ok if nats_configured else None,
            check=ready.checks.get(NATS),
        ),
        head=ready.head,
        followers=followers,
        parked=parked,
        lag_degraded_seconds=services.settings.lag_degraded_seconds,
        waiting=waiting,
        checkpoint=checkpoint,
        leases={name: "active" if held else "standby" for name, held in services.leases.holding().items()},
    )


class StatusController(Controller):
    """The instance's state in full, for any valid API key."""

    path = "/v1/status"
    tags = ["health"]  # noqa: RUF012 (Litestar reads it as a class attribute)
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        operation_id="status",
        summary="Store, NATS, each follower (position, lag, parked, held, stop), the log head",
        description=(
            "Any agency's API key. `status` is what `/readyz` answers (ok, degraded, unavailable), "
            "always with HTTP 200 here; `checks` names what is wrong. With PostgreSQL unreachable "
            "the key itself cannot be checked: 503 problem `store-unavailable`."
        ),
    )
    async def status(self, caller: NamedDependency[Caller], services: Port[ReadinessPort]) -> ServiceStatus:
        ready = await services.readiness(STORE_TIMEOUT)
        waiting = None
        if ready.store_ok:
            try:
                waiting = await asyncio.wait_for(asyncio.to_thread(waiting_state, services), STORE_TIMEOUT)
            except Exception:  # noqa: S110 - the report still answers, without this part
                pass
        return service_status(services, ready, waiting)
