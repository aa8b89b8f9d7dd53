"""Accepting one inbound message, the same way over HTTP, NATS and the ledger import.

Decode with the one contract, check that the envelope's ``source`` is the authenticated agency
(the API key's agency over HTTP, the subject's agency over NATS) and that its kind may record
the type, refuse what can never become valid (``core.door``: unknown org units and agencies,
times out of range), then record it exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError

from core.case_record import CaseRecord, ConcurrentWriteConflict, Recorded, backoff_seconds
from core.contract import DEFAULT_LIMITS, ContractError, InboundEvent, WireLimits, decode_event
from core.door import check_at_the_door
from core.jurisdiction import check_within_jurisdiction
from core.registry import REGION_TZ, AgencyInfo, RegistryView
from core.restrictions import check_not_restricted, check_not_restricted_in, restricted_among, subjects_of
from core.waiting import provided
from domain.access import check_may_record, check_may_record_aid, check_source, may_search_by_id_number
from domain.errors import DomainError, ReferenceNotKnownYet
from domain.identity_errors import IdNumberAlreadyRegistered
from domain.receipt import receipt_id
from domain.registry import RegistryState
from domain.values import EARLIEST_OCCURRED

if TYPE_CHECKING:
    from core.waiting import Arrival, Waiting


class UnknownAgency(DomainError):
    """The authenticated agency is not (or no longer) in the registry."""

    code = "unknown-agency"

    def __init__(self, agency_id: str) -> None:
        super().__init__(f"agency {agency_id!r} is not in this region's registry today; ask the operator to add it")


class WrongRegion(DomainError):
    """The envelope's ``region`` extension names another deployment."""

    code = "wrong-region"

    def __init__(self, given: str, ours: str) -> None:
        super().__init__(
            f"the envelope is for region {given!r}, this service records region {ours!r}; "
            "send it to that region's service or drop the region attribute"
        )


def accept(
    case_record: CaseRecord,
    registry: RegistryView,
    raw: bytes,
    agency_id: str,
    via: str,
    imported: bool = False,
    *,
    earliest: datetime = EARLIEST_OCCURRED,
    limits: WireLimits = DEFAULT_LIMITS,
    waiting: Waiting | None = None,
    arrival: Arrival | None = None,
    key_id: str | None = None,
    authenticated_by: str | None = None,
) -> Recorded:
    """Decode, authorise, check and record one message from ``agency_id`` (raises on refusal).

    ``earliest``: the deployment's SMD_EARLIEST_TIME (times and dates before it are refused).
    ``limits``: SMD_MAX_MESSAGE_BYTES and SMD_MAX_JSON_DEPTH (``core.contract.check_bytes``).
    ``waiting``: when given, a fact whose patient, suspected case, incident or move is not
    recorded yet is held there (outcome ``waiting``) instead of refused, and recording a message
    releases what waited for it, each through this same function (core.waiting). ``arrival``:
    the door it came through (to answer its sender there). ``key_id``: the API key that
    authenticated the message (kept on its receipt; a fact that waits keeps it while it waits);
    ``authenticated_by``: what authenticated it, by kind, when not an API key (``nats-user:…``,
    ``import:…``: ``domain.receipt``), kept the same way.
    """
    if waiting is not None:  # the same door, without waiting
        resubmit = partial(accept, case_record, registry, earliest=earliest, limits=limits)
        return waiting.accept(
            resubmit, raw, agency_id, via, imported, arrival, key_id=key_id, authenticated_by=authenticated_by
        )
    registry.refresh()  # the registry as recorded now
    state = registry.state(as_of_position=registry.position)
    now = case_record.clock()
    event, agency = authorise(registry, state, raw, agency_id, via, now, earliest, limits)

    # -- writes within jurisdiction (docs/decisions/014): before anything about the subject is
    # answered, so a refused agency learns nothing of a patient outside its area
    check_within_jurisdiction(case_record, state, agency, event, now)
    # a restricted patient takes no new fact (after the jurisdiction check: an outsider learns nothing)
    check_not_restricted(case_record, subjects_of(event))

    try:
        return case_record.record(event, agency_id, imported=imported, key_id=key_id, authenticated_by=authenticated_by)
    except IdNumberAlreadyRegistered as e:
        # name the holder only to a kind that could find it by searching the same number
        raise e.for_caller(may_search_by_id_number(agency.kind)) from None


def authorise(
    registry: RegistryView,
    state: RegistryState,
    raw: bytes,
    agency_id: str,
    via: str,
    now: datetime,
    earliest: datetime,
    limits: WireLimits,
) -> tuple[InboundEvent, AgencyInfo]:
    """Decode the message and refuse what its agency may not send or what can never become
    valid; everything that needs no record (``state``: the registry read at ``registry.position``)."""
    event = decode_event(raw, limits)
    agency = registry.agency(agency_id, as_of_position=registry.position)
    if agency is None:
        raise UnknownAgency(agency_id)
    check_source(event.source, agency_id, via)
    if event.region is not None and event.region != registry.region:
        raise WrongRegion(event.region, registry.region)
    check_may_record(agency_id, agency.kind, event.event_type)
    aid_type = getattr(event.data, "aid_type", None)
    if aid_type is not None:  # aid is recordable per aid type, not only per event type
        check_may_record_aid(agency_id, agency.kind, aid_type)
    # the registry just read, on the day the rules will ask it (the recorded day, in the region)
    check_at_the_door(event, state, now, now.astimezone(REGION_TZ).date(), earliest)
    return event, agency


# -- many messages in one unit of work -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message of a batch: its bytes, the agency that sent it and the door it came through."""

    raw: bytes
    agency_id: str
    via: str
    arrival: Arrival | None = None
    imported: bool = False
    key_id: str | None = None  # the API key that authenticated it (kept on its receipt)
    authenticated_by: str | None = None  # what else authenticated it, by kind (domain.receipt)


#: What became of one message of a batch: what recording it did, or why not: a refusal
#: (``ContractError`` / ``DomainError``) or a failure worth trying again (anything else).
Result = Recorded | Exception

#: Tries of a whole group whose save keeps colliding with other writers before it is split.
GROUP_ATTEMPTS = 3


def accept_batch(
    case_record: CaseRecord,
    registry: RegistryView,
    messages: Sequence[Incoming],
    *,
    earliest: datetime = EARLIEST_OCCURRED,
    limits: WireLimits = DEFAULT_LIMITS,
    waiting: Waiting | None = None,
) -> list[Result]:
    """``accept`` for many messages at once, with one result per message, in order.

    The registry is read once; every message is decoded and authorised; the valid ones are
    decided in order in one unit of work (each aggregate and receipt read once, a patient
    registered early in the batch known to the later messages) and stored in one transaction.
    A refused message is refused alone; a save that collides with another writer is tried
    again on fresh reads, then split in halves, down to one message. Facts that wait for their
    patient (``waiting``) are held after the commit, and what waited for the batch's records is
    released then. A failure of the store for the whole batch raises: nothing was stored.
    """
    results: list[Result | None] = [None] * len(messages)
    registry.refresh()  # the registry as recorded now, once for the batch
    state = registry.state(as_of_position=registry.position)
    todo: list[_Checked] = []
    for i, message in enumerate(messages):
        try:
            now = case_record.clock()
            event, agency = authorise(
                registry, state, message.raw, message.agency_id, message.via, now, earliest, limits
            )
        except (ContractError, DomainError) as e:
            results[i] = e
            continue
        todo.append(_Checked(i, message, event, agency))
    waits: dict[int, str] = {}
    _record_group(case_record, state, todo, results, waits if waiting is not None else None)
    if waiting is not None:
        resubmit = partial(accept, case_record, registry, earliest=earliest, limits=limits)
        for item in todo:
            if item.index in waits:
                m = item.message
                try:
                    results[item.index] = waiting.hold(
                        resubmit,
                        m.raw,
                        m.agency_id,
                        m.via,
                        m.imported,
                        m.arrival,
                        waits[item.index],
                        m.key_id,
                        m.authenticated_by,
                    )
                except Exception as e:  # a refusal (a changed resend) or a failure: this message only
                    results[item.index] = e
        references = [
            r
            for item in todo
            if isinstance(results[item.index], Recorded) and item.index not in waits
            for r in provided(item.event)
        ]
        if references:
            waiting.release_safely(resubmit, references)
    return [r if r is not None else RuntimeError("no result") for r in results]


@dataclass(frozen=True, slots=True)
class _Checked:
    """A message that passed every check needing no record."""

    index: int
    message: Incoming
    event: InboundEvent
    agency: AgencyInfo


def _record_group(
    case_record: CaseRecord,
    state: RegistryState,
    group: list[_Checked],
    results: list[Result | None],
    waits: dict[int, str] | None,
) -> None:
    """Decide ``group`` in one unit of work and commit it; fills ``results`` (and ``waits``)."""
    if not group:
        return
    refused: dict[int, Exception] = {}
    attempt = 0
    while True:
        unit = case_record.unit_of_work()
        unit.prefetch_absent([receipt_id(c.event.idempotency_key) for c in group] + [c.event.subject for c in group])
        unit.preload([c.event.subject for c in group])  # the cached patients, brought up to date at once
        decided: list[int] = []
        failed: dict[int, Exception] = {}
        waiting_for: dict[int, str] = {}
        restricted = restricted_among(case_record, {s for c in group for s in subjects_of(c.event)})
        for c in group:
            if c.index in refused:
                continue
            try:
                # writes within jurisdiction (docs/decisions/014): on the subject as this unit sees it
                check_within_jurisdiction(unit, state, c.agency, c.event, case_record.clock())  # type: ignore[arg-type]
                if restricted:  # a restricted patient takes no new fact
                    check_not_restricted_in(restricted, subjects_of(c.event))
                unit.record(
                    c.event, c.message.agency_id, c.message.imported, c.message.key_id, c.message.authenticated_by
                )
                decided.append(c.index)
            except ReferenceNotKnownYet as e:
                if waits is None:
                    refused[c.index] = e
                else:
                    waiting_for[c.index] = e.reference
            except IdNumberAlreadyRegistered as e:
                # name the holder only to a kind that could find it by searching the same number
                refused[c.index] = e.for_caller(may_search_by_id_number(c.agency.kind))
            except (ContractError, DomainError) as e:
                refused[c.index] = e
            except Exception as e:  # this message's failure (a bug, a read that failed): it alone is retried
                failed[c.index] = e
            if unit.spoiled:
                break
        if unit.spoiled:
            continue  # decide again without the message that spoiled it (now in ``refused``)
        try:
            committed = unit.commit()
        except IntegrityError:
            attempt += 1
            case_record.retries += 1
            if len(group) == 1 and attempt >= case_record.max_attempts:
                results[group[0].index] = ConcurrentWriteConflict(group[0].event.idempotency_key, attempt)
                return
            if len(group) > 1 and attempt >= GROUP_ATTEMPTS:
                half = len(group) // 2
                _record_group(case_record, state, group[:half], results, waits)
                _record_group(case_record, state, group[half:], results, waits)
                return
            time.sleep(backoff_seconds(attempt))
            refused.clear()  # fresh reads: every message is decided again
            continue
        for index, recorded in zip(decided, committed, strict=True):
            results[index] = recorded
        for index, error in (refused | failed).items():
            results[index] = error
        if waits is not None:
            waits.update(waiting_for)
        return


class GroupCommit:
    """The messages of the requests in flight, recorded together (group commit).

    Each HTTP request hands its message to ``submit`` and waits for its own result; one writer
    thread takes whatever has gathered (up to ``max_batch``) and records it as one batch
    (``accept_batch``: one unit of work, one transaction). Under light load a batch is one
    message and nothing waits; under load the requests that arrived during one commit share the
    next, so the events table's lock is taken once per batch instead of once per request. Every
    request is answered after the commit of its own message, with its own outcome or refusal.
    """

    def __init__(self, record_batch: Callable[[list[Incoming]], list[Result]], max_batch: int = 100) -> None:
        self.record_batch = record_batch
        self.max_batch = max_batch
        self._queue: deque[tuple[Incoming, Future[Recorded]]] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, message: Incoming) -> Future[Recorded]:
        """The future result of recording ``message`` (raises its refusal or failure)."""
        future: Future[Recorded] = Future()
        with self._ready:
            self._queue.append((message, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="smd-group-commit", daemon=True)
                self._thread.start()
            self._ready.notify()
        return future

    def close(self) -> None:
        """Finish what was submitted, then stop the writer thread (a later ``submit`` starts
        another: an app's lifespan may run again)."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        with self._ready:
            self._closed = False

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    self._thread = None  # a later submit starts another
                    return
                taken = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            # a waiter that gave up (an asyncio request cancelled) cancelled its future: its message
            # is recorded all the same, and no one is told; the others can no longer be cancelled
            told = [f.set_running_or_notify_cancel() for _, f in taken]
            try:
                results = self.record_batch([message for message, _ in taken])
            except BaseException as e:  # nothing of the batch was stored: each request is told
                for (_, future), waiting in zip(taken, told, strict=True):
                    if waiting:
                        future.set_exception(e)
                continue
            for (_, future), waiting, result in zip(taken, told, results, strict=True):
                if not waiting:
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class GroupedAccessLog:
    """An access log whose ``append`` calls from concurrent requests share one transaction.

    Every read that reveals a patient appends a row before it is answered (``core.access_log``);
    one transaction per read is one commit (and its fsync) per page. Here the rows of the reads
    in flight are written by one writer thread with ``append_many`` (``GroupCommit``): each
    ``append`` still returns only once its own row is committed, and raises if that commit
    failed. Everything else is the wrapped log's."""

    def __init__(self, log: Any, max_batch: int = 100) -> None:
        self.log = log
        self._group = GroupCommit(self._write, max_batch=max_batch)  # type: ignore[arg-type]

    def _write(self, entries: list[Any]) -> list[None]:
        self.log.append_many(entries)  # a failure raises for every row of the batch
        return [None] * len(entries)

    def append(self, entry: Any) -> None:
        """Record one read; returns once committed (with the other reads in flight)."""
        self._group.submit(entry).result()

    def submit(self, entry: Any) -> Future[None]:
        """Record one read; the future is done once it is committed (it raises if that failed).
        An HTTP handler awaits it on its event loop (``api.reads.commit``): no worker thread
        waits for the commit."""
        return self._group.submit(entry)  # type: ignore[return-value]

    def append_many(self, entries: Sequence[Any]) -> None:
        self.log.append_many(entries)

    def entries(self, **query: Any) -> list[Any]:
        return self.log.entries(**query)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._group.close()
        self.log.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)  # the wrapped log's own attributes (its table, its pool)
