"""The follower engine: one way to follow the global log, for every reader of it.

A ``Follower`` reads a batch of notifications after its tracked position, hands each one to its
``Handler`` (the rules, a read model, the outbox), and asks the handler to write the batch's
output and the new position in one transaction. It never stops for one patient:

- when the handler raises on an event about a patient, the event is *parked* (a row naming the
  follower, the position, the ids it concerns, the error's type and where it was raised, and a
  trace id that is also logged), and every later event about that patient is *held* behind it,
  in log order, whatever its aggregate; every other patient goes on;
- when the handler raises on a fact that concerns no single patient (registry, calendar, rule
  settings), the follower *stops* there and reports it, so a replay decides exactly as the live
  run did; it tries that fact again on each run until it succeeds;
- infrastructure failures (store unreachable, a write conflict) are never parked: the batch is
  abandoned and tried again later.

``retry`` handles a parked event and the events held behind it, in order, once the cause is
fixed (``smd followers retry``). docs/decisions/013 records which followers park and which stop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
import structlog
from eventsourcing.persistence import IntegrityError, Notification, PersistenceError

from core.followers.concerns import Concerns
from core.followers.parking import HELD, PARKED, STOPPED, ParkedEvent, ParkingStore

log = structlog.get_logger(__name__)

#: Failures of the infrastructure, not of the event: never parked, the batch is tried again.
TRANSIENT: tuple[type[BaseException], ...] = (
    PersistenceError,
    psycopg.Error,
    sqlite3.Error,
    OSError,
    TimeoutError,
)


class AlreadyApplied(Exception):
    """A retry's output was committed before (its tracking row exists): nothing to do again."""


class FailedAt(Exception):
    """Raised by a handler's ``finish`` to name the event whose deferred work failed: it is
    parked (or stops the follower) exactly as if ``apply`` had raised for it."""

    def __init__(self, notification: Notification, error: BaseException) -> None:
        super().__init__(str(error))
        self.notification = notification
        self.error = error


class Handler(Protocol):
    """What a follower does with the log: a unit of work per batch, written with its position.

    A handler may also define ``finish(work)``, called after the batch's last ``apply``: work
    deferred to it (one query for the whole batch instead of one per event) must raise
    ``FailedAt`` naming the event that failed. And ``select(start, limit, stop)``: the batch's
    rows read its own way (objects with at least ``id``, ``topic`` and ``originator_id``) instead of
    the recorder's ``select_notifications``.

    A handler whose ``commit`` hands the write to a writer of its own and returns before it is
    done (the next batch is decided while the database stores this one) defines two more:
    ``next_start(tracking_name)``, the position after the last batch handed over (where the next
    batch starts; ``position_of`` stays the position *written*), and ``flush()``, which waits until
    every batch handed over is written and raises what a write raised (an ``IntegrityError``: the
    batches are decided again from the store). The follower flushes before it reports that it
    caught up, so a ``run_once`` that returns 0 leaves nothing unwritten."""

    #: the topics it reads (None: every topic)
    topics: Sequence[str] | None

    def position_of(self, tracking_name: str) -> int:
        """The last position written under ``tracking_name``."""

    def begin(self) -> Any:
        """A fresh unit of work for one batch."""

    def apply(self, work: Any, notification: Notification) -> None:
        """Handle one event into the unit of work (raise when it cannot be handled)."""

    def commit(self, work: Any, tracking_name: str, position: int, *, exclusive: bool = False) -> None:
        """Write the unit of work and ``position`` under ``tracking_name`` in one transaction.

        ``exclusive``: the tracking name must be new (a retry); raise ``AlreadyApplied`` if not.
        Raise ``eventsourcing.persistence.IntegrityError`` on a write conflict (decided again).
        """


@dataclass(frozen=True, slots=True)
class FollowerStatus:
    """Where one follower stands (``smd projections status``, ``/v1/status``, ``/metrics``)."""

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    parked: int
    held: int
    stopped_at: int | None = None
    stopped_reason: str | None = None

    @property
    def state(self) -> str:
        """ok, lagging (behind the head), parked (some patients wait) or stopped."""
        if self.stopped_at is not None:
            return "stopped"
        if self.parked or self.held:
            return "parked"
        return "ok" if self.lag_events == 0 else "lagging"


@dataclass
class RetryReport:
    """What a retry did: events handled, events still parked or held."""

    handled: list[int] = field(default_factory=list)
    still_parked: list[int] = field(default_factory=list)


@dataclass
class Prepared:
    start: int
    end: int
    work: Any
    handled: int
    new_rows: list[ParkedEvent]
    cleared: list[int]  # stopped positions handled now


def _describe(error: BaseException) -> str:
    """The error's type and where it was raised: no message (it may quote personal data)."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"{type(error).__name__}{where}"


class Follower:
    """Follows the case record's notification log for one handler, with parking per patient."""

    def __init__(
        self,
        name: str,
        case_record: Any,
        handler: Handler,
        parking: ParkingStore,
        concerns: Concerns | None = None,
        *,
        batch: int = 500,
        attempts: int = 5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.case_record = case_record
        self.handler = handler
        self.parking = parking
        self.concerns = concerns or Concerns(case_record)
        self.batch = batch
        self.attempts = attempts
        self.clock = clock
        self.lock = threading.RLock()  # the background loop, read-your-writes waiters and retry

    @property
    def _held_reason(self) -> str:
        return f"held behind an earlier parked event of {self.name}"

    @property
    def position(self) -> int:
        """Every event up to here has been handled, parked or held."""
        return self.handler.position_of(self.name)

    # -- the loop ------------------------------------------------------------------------------

    def run_once(self, limit: int | None = None) -> int:
        """Handle the next batch; returns how many log positions it moved (0: caught up or stopped)."""
        with self.lock:
            flush = getattr(self.handler, "flush", None)
            for _ in range(self.attempts):
                batch = self.prepare(limit or self.batch)
                if batch is None:
                    if flush is not None:
                        try:
                            flush()  # caught up only once the batches handed over are written
                        except IntegrityError:
                            continue  # a handed-over batch lost to another writer: decide it again
                    return 0
                try:
                    self.commit(batch)
                except IntegrityError:
                    continue  # another writer moved first: decide the batch again from the store
                return batch.end - batch.start
            raise FollowerConflict(self.name, self.attempts)

    def catch_up(self, position: int, timeout: float = 10.0) -> bool:
        """Run until ``position`` is handled (read-your-writes); False on timeout or a stop before it."""
        deadline = time.monotonic() + timeout
        while self.position < position:
            if time.monotonic() > deadline:
                return False
            if not self.run_once():
                if any(r.status == STOPPED for r in self.parking.rows(self.name)):
                    return False  # stopped before it: waiting would not help
                time.sleep(0.01)
        return True

    def prepare(self, limit: int) -> Prepared | None:
        recorder = self.case_record.recorder
        next_start = getattr(self.handler, "next_start", None)
        start = next_start(self.name) if next_start is not None else self.position
        # Ids commit in order (PostgreSQL table lock, SQLite single writer): nothing at or below
        # ``top`` can still appear, so a short batch may move the position up to ``top``.
        top = recorder.max_notification_id() or 0
        if top <= start:
            return None
        select = getattr(self.handler, "select", None)  # a handler that reads the log its own way
        found: list[Notification] = list(
            select(start + 1, limit, top)
            if select is not None
            else recorder.select_notifications(start + 1, limit, stop=top, topics=self.handler.topics or ())
        )
        end = found[-1].id if len(found) == limit else top
        known = {r.position: r for r in self.parking.rows(self.name)}
        # key → the position from which its events wait (parked in an earlier run: all of this batch)
        waiting: dict[str, int] = {}
        for r in known.values():
            if r.status != STOPPED:
                for k in r.keys:
                    waiting[k] = min(waiting.get(k, r.position), r.position)
        parked_now: dict[int, ParkedEvent] = {}
        while True:  # a pass; after a failure, again from the start without the failed event
            skip = set(parked_now) | {p for p, r in known.items() if r.status != STOPPED}
            work, handled, held, failed = self._pass(found, skip, waiting, self.concerns.keys)
            if failed is None:
                break
            n, error = failed
            concerned = self.concerns.keys(n)
            again = n.id in known  # a stop tried again: said once already
            reason, trace_id = self._report(n, error, quiet=again, parked=concerned is not None)
            if concerned is None:  # a global fact: stop before it; try it again next run
                parked_now[n.id] = known[n.id] if again else self._row(n, STOPPED, frozenset(), reason, trace_id)
                found = [m for m in found if m.id < n.id]
                end = n.id - 1
                continue
            parked_now[n.id] = self._row(n, PARKED, concerned, reason, trace_id)
            for k in concerned:
                waiting[k] = min(waiting.get(k, n.id), n.id)
        cleared = [p for p, r in known.items() if r.status == STOPPED and p <= end and p not in parked_now]
        new_rows = [r for r in (*parked_now.values(), *held) if known.get(r.position) != r]
        return Prepared(start, end, work, len(handled), new_rows, cleared)

    def commit(self, batch: Prepared) -> None:
        if batch.new_rows:
            self.parking.add(batch.new_rows)  # first: a crash before the commit re-reads them
        if batch.end > batch.start:
            self.handler.commit(batch.work, self.name, batch.end)
        if batch.cleared:
            self.parking.remove(self.name, batch.cleared)
            log.info("follower moved past the fact it had stopped at", follower=self.name, positions=batch.cleared)

    def _pass(
        self,
        notes: Sequence[Notification],
        skip: set[int],
        waiting: dict[str, int],
        keys_of: Callable[[Notification], frozenset[str] | None],
    ) -> tuple[Any, list[int], list[ParkedEvent], tuple[Notification, BaseException] | None]:
        """Apply ``notes`` in order into a fresh unit of work, holding what concerns a waiting key
        (a key waits from a position on); stop at the first failure, which is returned."""
        work = self.handler.begin()
        blocking = dict(waiting)
        handled: list[int] = []
        held: list[ParkedEvent] = []
        for n in notes:
            if n.id in skip:
                continue
            if blocking:
                concerned = keys_of(n)
                if concerned and any(blocking.get(k, n.id) < n.id for k in concerned):
                    for k in concerned:
                        blocking.setdefault(k, n.id)
                    held.append(self._row(n, HELD, concerned, self._held_reason))
                    continue
            try:
                self.handler.apply(work, n)
            except TRANSIENT:
                raise
            except Exception as e:
                return work, handled, held, (n, e)
            handled.append(n.id)
        finish = getattr(self.handler, "finish", None)
        if finish is not None:
            try:
                finish(work)
            except FailedAt as e:
                if isinstance(e.error, TRANSIENT):
                    raise e.error from e
                return work, handled, held, (e.notification, e.error)
        return work, handled, held, None

    def _report(
        self, n: Notification, error: BaseException, *, quiet: bool = False, parked: bool = True
    ) -> tuple[str, str]:
        """Log a failure (type and place only, and a trace id); returns (reason, trace id)."""
        trace_id = uuid.uuid4().hex[:16]
        reason = _describe(error)
        (log.debug if quiet else log.error)(
            "follower could not handle an event",
            follower=self.name,
            position=n.id,
            topic=n.topic,
            reason=reason,
            trace_id=trace_id,
            parked=parked,
        )
        log.debug("follower traceback", trace_id=trace_id, traceback=traceback.format_exception(error)[-3:])
        return reason, trace_id

    def _row(self, n: Notification, status: str, keys: Iterable[str], reason: str, trace_id: str = "") -> ParkedEvent:
        return ParkedEvent(
            follower=self.name,
            position=n.id,
            status=status,
            topic=n.topic,
            keys=tuple(sorted(keys)),
            reason=reason,
            trace_id=trace_id,
            at=self.clock(),
        )

    # -- parked events -------------------------------------------------------------------------

    def retry(self, keys: set[str] | None = None) -> RetryReport:
        """Handle parked events and the events held behind them, in log order (all, or those
        concerning ``keys``); what fails again stays parked, with what is behind it held."""
        with self.lock:
            rows = [r for r in self.parking.rows(self.name) if r.status != STOPPED]
            if keys is not None:
                rows = [r for r in rows if set(r.keys) & keys]
            if not rows:
                return RetryReport()
            notes = self._notifications([r.position for r in rows])
            by_position = {r.position: r for r in rows}
            failed: dict[int, ParkedEvent] = {}

            def keys_of(n: Notification) -> frozenset[str]:
                return frozenset(by_position[n.id].keys)

            while True:  # a pass; after a failure, again from the start without the failed event
                waiting: dict[str, int] = {}
                for p, r in sorted(failed.items(), reverse=True):  # the earliest failure wins
                    waiting.update(dict.fromkeys(r.keys, p))
                work, handled, again, failure = self._pass(notes, set(failed), waiting, keys_of)
                if failure is None:
                    break
                n, error = failure
                reason, trace_id = self._report(n, error)
                failed[n.id] = self._row(n, PARKED, by_position[n.id].keys, reason, trace_id)
            if handled:
                try:
                    self.handler.commit(work, f"{self.name}/retry/{handled[0]}", handled[-1], exclusive=True)
                except AlreadyApplied:
                    log.warning("retry: output already committed", follower=self.name, first=handled[0])
            self.parking.add([*failed.values(), *again])
            self.parking.remove(self.name, handled)
            log.info("retry done", follower=self.name, handled=len(handled), still_parked=len(failed) + len(again))
            return RetryReport(handled=handled, still_parked=sorted([*failed, *(r.position for r in again)]))

    def _notifications(self, positions: list[int]) -> list[Notification]:
        recorder = self.case_record.recorder
        out = []
        for p in sorted(positions):
            found = recorder.select_notifications(p, 1, stop=p)
            out += [n for n in found if n.id == p]
        return out

    # -- status --------------------------------------------------------------------------------

    def status(self, head: int | None = None) -> FollowerStatus:
        """Position, lag (events and seconds behind the head), parked, held and stop."""
        recorder = self.case_record.recorder
        head = recorder.max_notification_id() or 0 if head is None else head
        position = self.position
        rows = self.parking.rows(self.name)
        stopped = next((r for r in rows if r.status == STOPPED), None)
        lag_seconds = 0.0
        if head > position:
            nxt = recorder.select_notifications(position + 1, 1, stop=head, topics=self.handler.topics or ())
            if nxt:
                recorded = self.case_record.mapper.to_domain_event(nxt[0]).timestamp
                lag_seconds = max(0.0, (self.clock() - recorded).total_seconds())
        return FollowerStatus(
            name=self.name,
            position=position,
            head=head,
            lag_events=max(0, head - position),
            lag_seconds=round(lag_seconds, 3),
            parked=sum(r.status == PARKED for r in rows),
            held=sum(r.status == HELD for r in rows),
            stopped_at=stopped.position if stopped else None,
            stopped_reason=stopped.reason if stopped else None,
        )


class FollowerConflict(Exception):
    """The batch kept colliding with other writers; the loop will try again later."""

    def __init__(self, name: str, attempts: int) -> None:
        super().__init__(f"follower {name}: the batch collided with other writers {attempts} times")
