"""A projection on the follower engine: its live generation followed, or a new one built.

``ProjectionFollower`` is what the service runs for each read model: it follows the log into
whichever generation is live (a rebuild in another process may switch it; the switch is seen
within ``stores.LIVE_TTL_SECONDS``). ``rebuild`` builds the next generation beside the live one
while the API keeps answering from the live one, then switches when it has caught up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from eventsourcing.persistence import Notification

from core.followers.concerns import Concerns
from core.followers.engine import Follower, FollowerStatus, RetryReport
from core.followers.parking import ParkingStore
from projections.base import Batch, Projection
from projections.stores import LIVE_TTL_SECONDS, Generation, ViewStore

log = structlog.get_logger(__name__)


class _Handler:
    """The engine's handler for one generation of one projection."""

    def __init__(self, case_record: Any, store: ViewStore, projection: Projection, generation: Generation) -> None:
        self.case_record = case_record
        self.store = store
        self.projection = projection
        self.generation = generation
        self.topics = tuple(projection.topics)
        bind = getattr(projection, "bind", None)
        if bind is not None:  # a view that reads aggregates (patient_lists) reads this case record
            bind(case_record)

    def position_of(self, tracking_name: str) -> int:
        return self.store.position(tracking_name)

    def begin(self) -> Batch:
        return Batch()

    def apply(self, work: Batch, n: Notification) -> None:
        self.projection.apply(self.case_record.mapper.to_domain_event(n), n, work)

    def commit(self, work: Batch, tracking_name: str, position: int, *, exclusive: bool = False) -> None:
        self.store.write(self.projection, self.generation, work.ops, tracking_name, position, exclusive=exclusive)


class ProjectionFollower:
    """Follows the log into a projection's live generation (or a fixed one, for a rebuild)."""

    def __init__(
        self,
        case_record: Any,
        store: ViewStore,
        projection: Projection,
        parking: ParkingStore,
        concerns: Concerns | None = None,
        generation: Generation | None = None,
        batch: int = 500,
    ) -> None:
        self.case_record = case_record
        self.store = store
        self.projection = projection
        self.parking = parking
        self.concerns = concerns or Concerns(case_record)
        self.fixed = generation
        self.batch = batch
        self._current: Follower | None = None

    @property
    def generation(self) -> Generation:
        return self.fixed or self.store.live(self.projection)

    @property
    def follower(self) -> Follower:
        gen = self.generation
        current = self._current
        if current is None or current.name != gen.tracking_name:
            handler = _Handler(self.case_record, self.store, self.projection, gen)
            current = self._current = Follower(
                gen.tracking_name, self.case_record, handler, self.parking, self.concerns, batch=self.batch
            )
        return current

    @property
    def name(self) -> str:
        return self.follower.name

    @property
    def position(self) -> int:
        return self.follower.position

    def run_once(self, limit: int | None = None) -> int:
        return self.follower.run_once(limit)

    def catch_up(self, position: int, timeout: float = 10.0) -> bool:
        return self.follower.catch_up(position, timeout)

    def status(self, head: int | None = None) -> FollowerStatus:
        return self.follower.status(head)

    def retry(self, keys: set[str] | None = None) -> RetryReport:
        return self.follower.retry(keys)


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild did."""

    name: str
    old: Generation | None  # the generation it replaced (dropped unless kept)
    new: Generation
    position: int
    seconds: float


def rebuild(
    case_record: Any,
    store: ViewStore,
    projection: Projection,
    parking: ParkingStore,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 1000,
    keep_old: bool = False,
) -> RebuildReport:
    """Build the next generation beside the live one, switch when caught up, drop the old one.

    The live generation keeps answering and keeps being followed by the service meanwhile.
    After the switch, the service's follower continues from the new generation's own position.
    """
    started = time.monotonic()
    store.ensure(projection)
    new = store.new_generation(projection)
    runner = ProjectionFollower(case_record, store, projection, parking, generation=new, batch=batch)
    log.info("rebuild started", projection=projection.name, generation=new.generation)
    head = case_record.recorder.max_notification_id() or 0
    while runner.position < head:
        if not runner.run_once() and runner.status(head).stopped_at is not None:
            raise RebuildStopped(projection.name, runner.status(head).stopped_reason or "")
        if progress:
            progress(runner.position, head)
    old = store.switch(projection, new)
    runner.run_once()  # anything recorded during the switch: the service's follower also takes it
    if old is not None and not keep_old:
        time.sleep(LIVE_TTL_SECONDS * 2)  # let every process notice the switch before dropping
        store.drop(projection, old)
    log.info("rebuild switched", projection=projection.name, generation=new.generation, position=runner.position)
    return RebuildReport(projection.name, old, new, runner.position, round(time.monotonic() - started, 3))


class RebuildStopped(Exception):
    """The new generation stopped at a fact it cannot handle; the live one stays live."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"rebuild of {name} stopped at a fact it cannot handle ({reason}); the live view stays live")
