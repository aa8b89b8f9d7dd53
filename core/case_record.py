"""The case record: the one eventsourcing application whose notification log is the global log.

Every aggregate lives here: patients, receipts (idempotency markers), and later registry
changes, rule settings, obligations and handovers. Its notification log is the single ordered
log that policies, projections, the hash chain and the outbox follow (docs/decisions/002).
Its recorder is a *process* recorder, so a policy follower can store the events it derives and
its tracked position in one transaction, in the same store.

Application methods have one shape: load, decide (the aggregate's public method), save; they
return plain data and translate infrastructure errors at this boundary.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from copy import deepcopy
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent, Repository
from eventsourcing.persistence import IntegrityError, JSONTranscoder, ProcessRecorder, Recording, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder

from core import identity, suspected_cases
from core.contract import (
    HandoverAcceptedV1,
    IdentityConfirmedV1,
    IdentityConfirmedV2,
    InboundEvent,
    PatientRegisteredUnidentifiedV1,
    PatientRegisteredV1,
    PatientRegisteredV2,
    ReportSubmittedV1,
    RiskAssessedV1,
    TaskAssignedV1,
    TaskProgressRecordedV1,
    VisitMissedV1,
    VisitRecordedV1,
    canonical_bytes,
)
from core.file_commands import FILE_COMMANDS, REGION_COMMANDS
from core.keystore import KeyStore
from core.mapper import PersonalDataMapper, register_transcodings
from domain.errors import DuplicateMessageConflict, PatientAlreadyRegistered, PatientNotFound
from domain.patient import Patient
from domain.receipt import Receipt, receipt_id
from domain.reporting import AlreadyRecorded, SubmittedReport, TaskProgress
from domain.suspected_case import SuspectedCase
from domain.task import AssignedTask, TaskAlreadyAssigned, TaskNeedsAPlace
from domain.values import Provenance, RiskClass

Clock = Callable[[], datetime]

#: Message ids of facts imported from an agency's ledger start with this (see record()).
IMPORTED_PREFIX = "ledger:"


def utc_now() -> datetime:
    """The service clock (tests pass their own)."""
    return datetime.now(UTC)


class ConcurrentWriteConflict(Exception):
    """Writers kept colliding on the same aggregate; the caller may retry later."""

    code = "concurrent-write"

    def __init__(self, key: str, attempts: int) -> None:
        super().__init__(f"message {key}: the patient changed under us {attempts} times; send it again")
        self.detail = str(self)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording one inbound message did."""

    key: str
    outcome: str  # "recorded" | "duplicate" | "no-change"
    notification_id: int | None  # position of the last event stored (None if nothing new)
    subject: UUID

    @property
    def is_new(self) -> bool:
        """True when this call stored the message (not a redelivery)."""
        return self.outcome != "duplicate"


def mutate_all(aggregate: Any, events: Iterable[Any]) -> Any:
    """Apply each event to the aggregate in turn (what eventsourcing's ``project_aggregate``
    does, without its per-event ``isinstance`` against a runtime-checkable Protocol: that check
    alone was about a sixth of reading a patient whole from its events)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


#: Lookups by key never gain from JIT compiling, which a table without statistics (a large
#: import's, before autovacuum analyzes it) makes every multi-key query ask for (docs/decisions/052).
NO_JIT = "SET jit = off"


def copy_aggregate(aggregate: Any) -> Any:
    """A deep copy of an aggregate (a unit of work changes its own copy, never the cached one):
    through pickle, about three times faster than ``copy.deepcopy`` for a patient's file, which
    a batch of an import or of the go-live makes once per patient."""
    try:
        return pickle.loads(pickle.dumps(aggregate, pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own bytes, just made
    except (pickle.PicklingError, TypeError, AttributeError):
        return deepcopy(aggregate)


class _Repository(Repository[UUID]):
    """eventsourcing's repository, projecting with ``mutate_all`` unless told otherwise.

    A cached aggregate is never changed in place: where the library fast-forwards the cached
    object itself (under a lock the readers that skip the copy do not take), this brings a copy
    up to date and caches the copy. So a reader that asks for no copy (``deepcopy_from_cache=
    False``: a file, a list's rows) holds one consistent state however other threads bring the
    patient forward, and pays no copy of the aggregate when nothing newer was recorded. Two
    threads that bring the same patient forward at once each read the newer events (no lock, no
    skipping: ``fastforward_skipping`` is not used here); the cache keeps either copy, and the
    next read brings it forward again if it is behind."""

    def get(
        self,
        aggregate_id: UUID,
        *,
        version: int | None = None,
        projector_func: Any = None,
        deepcopy_from_cache: bool = True,
        **kwargs: Any,
    ) -> Any:
        project = projector_func or mutate_all
        if version is not None or not (self.cache and self.fastforward):
            return super().get(
                aggregate_id, version=version, projector_func=project, deepcopy_from_cache=deepcopy_from_cache, **kwargs
            )
        try:
            cached = self.cache.get(aggregate_id)
        except KeyError:  # read from the store and cached (the library's own path)
            return super().get(aggregate_id, projector_func=project, deepcopy_from_cache=deepcopy_from_cache, **kwargs)
        newer = list(self.event_store.get(originator_id=aggregate_id, gt=cached.version))
        aggregate = cached
        if newer:
            aggregate = project(deepcopy(cached), newer)
            if aggregate is None:
                raise AggregateNotFoundError(aggregate_id)
            self.cache.put(aggregate_id, aggregate)
        return deepcopy(aggregate) if deepcopy_from_cache and self.deepcopy_from_cache else aggregate

    def read_from(self, aggregate_id: UUID, events: Sequence[Any]) -> Any:
        """Read only, no copy: the aggregate as ``events`` leave it, which must be every event of
        its stream from the first, in order (a caller that read them whole for itself: no query
        here). The cached state when it is as new; else the cached one's copy brought forward by
        the newer events, or the events replayed; cached when newer than the cache's."""
        if not events:
            raise AggregateNotFoundError(aggregate_id)
        last = events[-1].originator_version
        cached = None
        if self.cache:
            try:
                cached = self.cache.get(aggregate_id)
            except KeyError:
                cached = None
        if cached is not None and cached.version == last:
            return cached
        if cached is not None and cached.version < last:
            aggregate = mutate_all(deepcopy(cached), [e for e in events if e.originator_version > cached.version])
        else:  # not cached, or the cache is newer than this read (a save since): this read's state
            aggregate = mutate_all(None, events)
        if aggregate is None:
            raise AggregateNotFoundError(aggregate_id)
        if self.cache and (cached is None or cached.version < last):
            self.cache.put(aggregate_id, aggregate)
        return aggregate


class CaseRecord(Application[UUID]):
    """The append-only record of every agency's facts."""

    name = "CaseRecord"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Patient: 50}
    max_attempts = 20

    def __init__(
        self,
        env: dict[str, str],
        keystore: KeyStore,
        digest_key: bytes,
        clock: Clock = utc_now,
        snapshot_every: int | None = None,
        region: str | None = None,
    ) -> None:
        self.keystore = keystore
        #: this deployment's region: an accepted move inside it changes the residence (042)
        self.region = region
        self.digest_key = digest_key
        self.clock = clock
        self.retries = 0  # optimistic-concurrency retries so far (read by tests and metrics)
        if snapshot_every is not None:
            self.snapshotting_intervals = {Patient: snapshot_every}
        super().__init__(env)

    # -- wiring (called by the library's constructor) ---------------------------------------

    def construct_mapper(self) -> PersonalDataMapper:
        mapper = self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=PersonalDataMapper)
        assert isinstance(mapper, PersonalDataMapper)
        mapper.keystore = self.keystore
        return mapper

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_transcodings(transcoder)

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def construct_repository(self) -> Repository[UUID]:
        repository = super().construct_repository()
        repository.__class__ = _Repository  # the library's settings (cache, fast-forward) as they are
        return repository

    # -- commands ------------------------------------------------------------------------------

    def record(
        self,
        event: InboundEvent,
        agency_id: str,
        imported: bool = False,
        key_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> Recorded:
        """Record one inbound message exactly once (idempotent on ``<source>:<id>``).

        ``imported``: the message is a row of an agency's existing ledger (a backfill): its facts
        carry the message id ``ledger:<source>:<id>`` so the rules open nothing for the past.
        ``key_id``: the API key that authenticated it, kept on the message's receipt (saved in the
        same transaction as its facts).
        """
        for attempt in range(self.max_attempts):
            unit = self.unit_of_work()
            recorded = unit.record(event, agency_id, imported, key_id, authenticated_by)
            if recorded.outcome == "duplicate":
                return recorded
            try:
                [recorded] = unit.commit()
            except IntegrityError:
                self.retries += 1
                # another writer changed the patient first: back off (jittered), reload, decide again
                time.sleep(backoff_seconds(attempt))
                continue
            return recorded
        raise ConcurrentWriteConflict(event.idempotency_key, self.max_attempts)

    def unit_of_work(self) -> UnitOfWork:
        """A view of the record in which several messages are decided, then saved in one transaction."""
        return UnitOfWork(self)

    def save_in_order(self, events: list[Any], aggregates: dict[UUID, Any]) -> list[Recording[UUID]]:
        """Store ``events`` (already collected from ``aggregates``) in this order, in one transaction.

        ``Application.save`` orders events aggregate by aggregate; a batch keeps the order in which
        its messages were decided, so the log reads as the messages arrived."""
        processing = ProcessingEvent[UUID]()
        processing.events = events
        processing.aggregates = aggregates
        with self.keystore.deferred() as new_keys:
            if new_keys is not None:  # a new patient's key in the same transaction as its registration
                processing.saved_kwargs["data_keys"] = new_keys
            recordings = self._record(processing)
        cache = self.repository.cache
        if cache is not None and self.repository.fastforward:
            # the library caches on save only without fast-forward; a batch's next message about
            # the same patient (and the next batch) starts from here instead of replaying
            for aggregate_id, aggregate in aggregates.items():
                if isinstance(aggregate, Patient | SuspectedCase):  # not receipts: they are read once
                    cache.put(aggregate_id, aggregate)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    def _take_snapshots(self, processing: ProcessingEvent[UUID]) -> None:
        """The library's snapshots (every ``snapshotting_intervals`` events of an aggregate), taken
        from the aggregate just saved when it is at the snapshot's version, instead of replaying it
        from the store (the state is the same: the events just stored were applied to it); and put
        in one write for the whole save, not one per snapshot. An aggregate that went past the
        snapshot's version in the same save is replayed up to it, as the library does."""
        if not (self.snapshots and self.snapshotting_intervals):
            return
        taken: list[Any] = []
        for event in processing.events:
            aggregate = processing.aggregates.get(event.originator_id)
            if aggregate is None:
                continue
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is None or event.originator_version % interval != 0:
                continue
            if aggregate.version != event.originator_version:
                aggregate = self.repository.get(event.originator_id, version=event.originator_version)
            snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
            taken.append(snapshot_class.take(aggregate))
        if taken:
            self.snapshots.put(taken)

    def _check_receipt(self, key: str, digest: str, subject: UUID) -> Recorded | None:
        try:
            receipt: Receipt = self.repository.get(receipt_id(key))
        except AggregateNotFoundError:
            return None
        if not hmac.compare_digest(receipt.digest, digest):
            raise DuplicateMessageConflict(key)
        return Recorded(key=key, outcome="duplicate", notification_id=None, subject=subject)

    def mark_history_imported(
        self, patient_id: UUID, agency_id: str, ledger: str, rows: int, owner_kind: str | None = None
    ) -> Recorded:
        """After a backfill: one fact per patient that makes the rules assess its current state
        (``owner_kind``: a late join's agency kind, whose rules alone assess)."""
        return self._service_fact(
            patient_id,
            agency_id,
            f"import:{ledger}:{patient_id}",  # not "ledger:": this fact must reach the rules
            "smd.HistoryImported",
            lambda p, by, now: p.mark_history_imported(by, now, ledger=ledger, rows=rows, owner_kind=owner_kind),
        )

    def mark_go_live_joined(self, patient_id: UUID, agency_id: str, ledger: str) -> Recorded:
        """A ledger imported for the go-live holds the patient: the rules wait for its completion."""
        return self._service_fact(
            patient_id,
            agency_id,
            f"golive:{ledger}:{patient_id}",
            "smd.GoLiveJoined",
            lambda p, by, now: p.mark_go_live_joined(by, now, ledger=ledger),
        )

    def _service_fact(
        self, patient_id: UUID, agency_id: str, key: str, event_type: str, command: Callable[..., None]
    ) -> Recorded:
        """A fact the service records about a patient (once per key, like a message)."""
        digest = hmac.new(self.digest_key, key.encode(), hashlib.sha256).hexdigest()
        duplicate = self._check_receipt(key, digest, patient_id)
        if duplicate:
            return duplicate
        for _ in range(self.max_attempts):
            now = self.clock()
            patient = self.patient(patient_id)
            command(patient, Provenance(agency_id, None, now, key), now)
            receipt = Receipt.issue(
                key=key,
                digest=digest,
                event_type=event_type,
                subject=str(patient_id),
                agency_id=agency_id,
                outcome="recorded",
                now=now,
            )
            try:
                recordings = self.save(receipt, patient)
            except IntegrityError:
                if self._check_receipt(key, digest, patient_id):
                    return Recorded(key=key, outcome="duplicate", notification_id=None, subject=patient_id)
                continue
            return Recorded(
                key=key,
                outcome="recorded",
                notification_id=max(r.notification.id for r in recordings),
                subject=patient_id,
            )
        raise ConcurrentWriteConflict(key, self.max_attempts)

    # -- queries -------------------------------------------------------------------------------

    def patient(self, patient_id: UUID) -> Patient:
        """The patient's current file, or PatientNotFound."""
        try:
            patient = self.repository.get(patient_id)
        except AggregateNotFoundError:
            raise PatientNotFound(patient_id) from None
        if not isinstance(patient, Patient):
            raise PatientNotFound(patient_id)
        return patient

    def suspected_case(self, case_id: UUID) -> SuspectedCase:
        """The suspected case, or SuspectedCaseNotFound."""
        return suspected_cases.load(self, case_id)

    def originators_of(self, topic: str) -> set[UUID]:
        """The aggregates with at least one recorded event of ``topic`` (one query)."""
        rows = self._select("DISTINCT originator_id", "topic = {one}", [topic])
        if rows is None:  # the in-memory store of unit tests: walk the log
            return {n.originator_id for n in self.notification_log.select(1, 10**9, topics=[topic])}
        return {r["originator_id"] for r in rows}

    def load_many(self, ids: Collection[UUID], *, distinct: bool = False) -> dict[UUID, Any]:
        """The current state of those of these aggregates that are recorded, read in one query:
        for aggregates never snapshotted (obligations, lost episodes), whose events are all there
        is. The rules name a patient's candidate obligations, most of which were never opened.
        ``distinct``: the caller's ids are each there once already (none is hashed again)."""
        wanted = list(ids) if distinct else list(dict.fromkeys(ids))
        if not wanted:
            return {}
        columns = "originator_id, originator_version, topic, state"
        rows = self._select(columns, "originator_id {ids} ORDER BY originator_id, originator_version", wanted)
        if rows is None:  # the in-memory store of unit tests
            return {i: self.repository.get(i) for i in wanted if self._exists(i)}
        found: dict[UUID, Any] = {}
        for r in rows:
            stored = StoredEvent(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
            found[stored.originator_id] = self.mapper.to_domain_event(stored).mutate(found.get(r["originator_id"]))
        return found

    def read_many(self, ids: Collection[UUID]) -> dict[UUID, Any]:
        """Read only: the current state of these aggregates (those recorded), the cached objects
        themselves, never copies: the caller must not change them. The cached ones are checked
        for newer events in one query; only those with newer events, and those not cached, are
        read one by one (the repository brings them up to date under its own lock); those not
        cached are read together (``read_fresh``). A page of a hundred list rows pays a few
        queries instead of a hundred."""
        wanted = list(dict.fromkeys(ids))
        repository = self.repository
        cached: dict[UUID, Any] = {}
        if repository.cache:
            for aggregate_id in wanted:
                try:
                    cached[aggregate_id] = repository.cache.get(aggregate_id)
                except KeyError:
                    continue
        newer = self.events_after({i: a.version for i, a in cached.items()}) if cached else {}
        # the ones not cached: each one's latest snapshot and the events after it, in two queries
        # (a 10,000-row export read most of its patients one by one), then kept in the cache as
        # the repository keeps what it reads
        uncached = [i for i in wanted if i not in cached] if newer is not None else []
        loaded: dict[UUID, Any] = {}
        if uncached:  # their data keys too (each one's own query otherwise)
            keystore = getattr(self.mapper, "keystore", None)
            if keystore is not None:
                keystore.preload(uncached)
            fresh = self.read_fresh(uncached)
            loaded = fresh if fresh is not None else self.load_many(uncached, distinct=True)
        found: dict[UUID, Any] = {}
        for aggregate_id in wanted:
            if newer is not None and aggregate_id in cached and aggregate_id not in newer:
                found[aggregate_id] = cached[aggregate_id]
                continue
            aggregate = loaded.get(aggregate_id)
            if aggregate is not None:
                if repository.cache:
                    repository.cache.put(aggregate_id, aggregate)
                found[aggregate_id] = aggregate
                continue
            if uncached and aggregate_id not in cached:  # read above: not recorded
                continue
            try:
                found[aggregate_id] = repository.get(aggregate_id, deepcopy_from_cache=False)
            except AggregateNotFoundError:
                continue
        return found

    def read_fresh(self, ids: Collection[UUID]) -> dict[UUID, Any] | None:
        """The current state of those of these aggregates that are recorded, read from the store
        (not the cache): each one's latest snapshot in one query, then the events after it in
        one more, however many ids (a batch of an import or of the go-live whose patients are no
        longer cached). None on the in-memory store of unit tests."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        mapper = self.mapper
        found: dict[UUID, Any] = {}
        snapshots = self._latest_snapshots(wanted)
        if snapshots is None:
            return None
        for stored in snapshots:
            found[stored.originator_id] = mapper.to_domain_event(stored).mutate(None)
        newer = self.events_after({i: found[i].version if i in found else 0 for i in wanted})
        if newer is None:
            return None
        for aggregate_id, stored_events in newer.items():
            aggregate = mutate_all(found.get(aggregate_id), [mapper.to_domain_event(e) for e in stored_events])
            if aggregate is None:
                found.pop(aggregate_id, None)
            else:
                found[aggregate_id] = aggregate
        return found

    def _latest_snapshots(self, ids: list[UUID]) -> list[StoredEvent] | None:
        """Each of these aggregates' latest snapshot (those that have one), in one query."""
        if self.snapshots is None:
            return []
        recorder: Any = self.snapshots.recorder
        table = getattr(recorder, "events_table_name", None)
        if isinstance(recorder, PostgresAggregateRecorder) and table:
            query = (
                "SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state"  # noqa: S608
                f" FROM {table} WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version DESC"
            )
            with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
                cursor.execute(NO_JIT)  # connections made before the pool had the option (core.postgres)
                cursor.execute(query, [ids])
                return [
                    StoredEvent(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                    for r in cursor.fetchall()
                ]
        if isinstance(recorder, SQLiteAggregateRecorder) and table:
            out: list[StoredEvent] = []
            with recorder.datastore.transaction(commit=False) as cursor:
                for start in range(0, len(ids), 400):  # SQLite's limit on bound parameters
                    chunk = [i.hex for i in ids[start : start + 400]]
                    cursor.execute(
                        f"SELECT originator_id, originator_version, topic, state FROM {table} s"  # noqa: S608
                        f" WHERE originator_id IN ({','.join('?' * len(chunk))}) AND originator_version ="
                        f" (SELECT MAX(originator_version) FROM {table} WHERE originator_id = s.originator_id)",
                        chunk,
                    )
                    out.extend(
                        StoredEvent(UUID(r["originator_id"]), r["originator_version"], r["topic"], bytes(r["state"]))
                        for r in cursor.fetchall()
                    )
            return out
        return None

    def existing(self, ids: Collection[UUID]) -> set[UUID]:
        """Which of these aggregates have recorded events: one query, however many ids (a batch
        asks for its messages' receipts and patients, most of them new)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return set()
        rows = self._select("DISTINCT originator_id", "originator_id {ids}", wanted)
        if rows is None:  # the in-memory store of unit tests
            return {i for i in wanted if self._exists(i)}
        return {r["originator_id"] for r in rows}

    def _select(self, columns: str, where: str, params: list[Any]) -> list[dict[str, Any]] | None:
        """One SELECT on the recorder's own events table, on either store; ``where`` says
        ``{one}`` for one parameter or ``{ids}`` for membership in ``params`` (aggregate ids).
        Originator ids come back as UUIDs. None: a store with no table (the in-memory one)."""
        recorder: Any = self.recorder
        table = getattr(recorder, "events_table_name", None)
        if isinstance(recorder, PostgresAggregateRecorder) and table:
            clause = where.format(one="%s", ids="= ANY(%s::uuid[])")
            # the ids as one array literal of hex digits: the driver's list dumper costs ~3 us an
            # id (a page's restriction check asks about 100 patients on every read)
            args = ["{" + ",".join(_hex(p) for p in params) + "}"] if "{ids}" in where else params
            with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
                cursor.execute(NO_JIT)  # connections made before the pool had the option (core.postgres)
                cursor.execute(f"SELECT {columns} FROM {table} WHERE {clause}", args)  # noqa: S608 (our own table and clauses)
                return list(cursor.fetchall())
        if isinstance(recorder, SQLiteAggregateRecorder) and table:
            ids = "{ids}" in where
            clause = where.format(one="?", ids=f"IN ({','.join('?' * len(params))})")
            args = [p.hex for p in params] if ids else params  # the SQLite recorder stores ids as hex
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(f"SELECT {columns} FROM {table} WHERE {clause}", args)  # noqa: S608 (our own table and clauses)
                return [{**dict(r), "originator_id": UUID(r["originator_id"])} for r in cursor.fetchall()]
        return None

    def _exists(self, aggregate_id: UUID) -> bool:
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    def events_after(self, versions: dict[UUID, int]) -> dict[UUID, list[StoredEvent]] | None:
        """Each aggregate's stored events after the given version, in one query (a batch brings
        its cached patients up to date at once); None on the in-memory store of unit tests."""
        if not versions:
            return {}
        recorder: Any = self.recorder
        table = getattr(recorder, "events_table_name", None)
        found: dict[UUID, list[StoredEvent]] = {}
        if isinstance(recorder, PostgresAggregateRecorder) and table:
            # the recorder's own table name; one index lookup per aggregate, whatever the planner
            # believes of the table (OFFSET 0 keeps the subquery from being flattened into a join
            # that a table not yet analyzed, as during a large import, turns into a scan of all of it)
            query = (
                "SELECT e.originator_id, e.originator_version, e.topic, e.state"  # noqa: S608
                " FROM unnest(%s::uuid[], %s::bigint[]) AS w(id, v) CROSS JOIN LATERAL"
                f" (SELECT * FROM {table} x WHERE x.originator_id = w.id AND x.originator_version > w.v OFFSET 0) e"
                " ORDER BY e.originator_id, e.originator_version"
            )
            with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
                cursor.execute(NO_JIT)  # connections made before the pool had the option (core.postgres)
                # array literals: the driver's list dumper costs ~3 us an id (a page asks about 100)
                ids = "{" + ",".join(_hex(i) for i in versions) + "}"
                cursor.execute(query, [ids, "{" + ",".join(map(str, versions.values())) + "}"])
                for row in cursor.fetchall():
                    found.setdefault(row["originator_id"], []).append(
                        StoredEvent(row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"]))
                    )
            return found
        if isinstance(recorder, SQLiteAggregateRecorder) and table:
            items = list(versions.items())
            with recorder.datastore.transaction(commit=False) as cursor:
                for start in range(0, len(items), 400):  # SQLite's limit on bound parameters
                    chunk = items[start : start + 400]
                    where = " OR ".join(["(originator_id = ? AND originator_version > ?)"] * len(chunk))
                    cursor.execute(
                        f"SELECT originator_id, originator_version, topic, state FROM {table} WHERE {where}"  # noqa: S608
                        " ORDER BY originator_id, originator_version",
                        [v for i, version in chunk for v in (i.hex, version)],
                    )
                    for row in cursor.fetchall():
                        originator = UUID(row["originator_id"])
                        found.setdefault(originator, []).append(
                            StoredEvent(originator, row["originator_version"], row["topic"], bytes(row["state"]))
                        )
            return found
        return None


def backoff_seconds(attempt: int) -> float:
    """A jittered pause before trying a conflicting write again (attempt 0, 1, 2 …)."""
    return random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6)))  # noqa: S311 - jitter, not crypto


class SpoiledUnitOfWork(Exception):
    """A refused message left changes on an aggregate that later messages would build on: the
    batch's decisions are made again without it (nothing of it was stored)."""


class UnitOfWork:
    """Several messages decided in order against one in-memory view of the record, then stored
    in one transaction (``commit``).

    Each aggregate and receipt is read from the store at most once; the next message about the
    same patient sees the changes of the previous ones. The domain helpers read through
    ``repository.get``, ``patient`` and ``_exists`` exactly as they read the record itself.
    Nothing is stored before ``commit``; a refused message that had already changed an
    aggregate spoils the unit (``spoiled``): the caller decides the batch again without it.
    """

    def __init__(self, record: CaseRecord) -> None:
        self.case_record = record
        self.repository = self  # the domain helpers call record.repository.get(...)
        self.digest_key = record.digest_key
        self.keystore = record.keystore
        self.clock = record.clock
        self.region = record.region
        self.spoiled = False
        self._loaded: dict[UUID, Any] = {}
        self._absent: set[UUID] = set()
        self._events: list[Any] = []  # in the order the messages were decided
        self._aggregates: dict[UUID, Any] = {}
        self._decided: list[tuple[Recorded, list[Any]]] = []  # each message's outcome and new events

    # -- reading, as the record does -----------------------------------------------------------

    def get(self, aggregate_id: UUID, *, version: int | None = None, **kwargs: Any) -> Any:
        """The aggregate as this unit sees it (the store's, with this unit's changes)."""
        if version is not None:
            return self.case_record.repository.get(aggregate_id, version=version)
        if aggregate_id in self._loaded:
            return self._loaded[aggregate_id]
        if aggregate_id in self._absent:
            raise AggregateNotFoundError(aggregate_id)
        try:
            found = self.case_record.repository.get(aggregate_id)  # a copy: this unit changes it
        except AggregateNotFoundError:
            self._absent.add(aggregate_id)
            raise
        self._loaded[aggregate_id] = found
        return found

    def prefetch_absent(self, ids: Collection[UUID]) -> None:
        """Learn in one query which of ``ids`` have no events yet (new patients, new receipts),
        so that asking for them costs nothing."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self._loaded and i not in self._absent]
        if wanted:
            self._absent.update(set(wanted) - self.case_record.existing(wanted))

    def preload(self, ids: Collection[UUID]) -> None:
        """Bring the aggregates among ``ids`` into this unit at once: the cached ones brought up to
        date in one query (each a copy: this unit changes it), the others read from their latest
        snapshot and the events after it in two queries for all of them (``read_fresh``)."""
        repository = self.case_record.repository
        cached: dict[UUID, Any] = {}
        uncached: list[UUID] = []
        for aggregate_id in dict.fromkeys(ids):
            if aggregate_id in self._loaded or aggregate_id in self._absent:
                continue
            try:
                if not repository.cache:
                    raise KeyError(aggregate_id)
                cached[aggregate_id] = repository.cache.get(aggregate_id)
            except KeyError:
                uncached.append(aggregate_id)
        if cached:
            newer = self.case_record.events_after({i: a.version for i, a in cached.items()})
            if newer is not None:
                mapper = self.case_record.mapper
                for aggregate_id, aggregate in cached.items():
                    copy = copy_aggregate(aggregate)
                    events = [mapper.to_domain_event(stored) for stored in newer.get(aggregate_id, ())]
                    if events:
                        copy = mutate_all(copy, events)
                    if copy is not None:
                        self._loaded[aggregate_id] = copy
        if uncached:
            fresh = self.case_record.read_fresh(uncached)
            if fresh is not None:  # not the in-memory store: the others are read when asked for
                self._loaded.update(fresh)  # read for this unit alone: no copy
                self._absent.update(set(uncached) - set(fresh))

    def patient(self, patient_id: UUID) -> Patient:
        """The patient's file as this unit sees it, or PatientNotFound."""
        try:
            patient = self.get(patient_id)
        except AggregateNotFoundError:
            raise PatientNotFound(patient_id) from None
        if not isinstance(patient, Patient):
            raise PatientNotFound(patient_id)
        return patient

    def suspected_case(self, case_id: UUID) -> SuspectedCase:
        """The suspected case as this unit sees it, or SuspectedCaseNotFound."""
        return suspected_cases.load(self, case_id)  # type: ignore[arg-type]

    def _exists(self, aggregate_id: UUID) -> bool:
        try:
            self.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    # -- deciding --------------------------------------------------------------------------------

    def record(
        self,
        event: InboundEvent,
        agency_id: str,
        imported: bool = False,
        key_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> Recorded:
        """Decide one message in this unit (stored only by ``commit``); raises on refusal.
        ``key_id``: the API key that authenticated it, kept on its receipt; ``authenticated_by``:
        what authenticated it, by kind (``Receipt.Issued.authenticated_by``; an API key's is
        ``api-key:<key id>`` when not given)."""
        key = event.idempotency_key
        digest = hmac.new(self.digest_key, canonical_bytes(event), hashlib.sha256).hexdigest()
        try:
            receipt = self.get(receipt_id(key))
        except AggregateNotFoundError:
            receipt = None
        if receipt is not None:  # stored before, or earlier in this unit
            if not hmac.compare_digest(receipt.digest, digest):
                raise DuplicateMessageConflict(key)
            duplicate = Recorded(key=key, outcome="duplicate", notification_id=None, subject=event.subject)
            self._decided.append((duplicate, []))
            return duplicate
        now = self.clock()
        try:
            changed, outcome = decide(self, event, agency_id, now, imported)
        except BaseException:
            # the domain decides before it records, but a command of several steps may have
            # recorded one before refusing: then this unit's aggregates are no longer the truth
            if any(getattr(a, "pending_events", None) for a in self._loaded.values()):
                self.spoiled = True
            raise
        receipt = Receipt.issue(
            key=key,
            digest=digest,
            event_type=event.event_type,
            subject=str(event.subject),
            agency_id=agency_id,
            outcome=outcome,
            now=now,
            key_id=key_id,
            authenticated_by=authenticated_by or (None if key_id is None else f"api-key:{key_id}"),
        )
        new: list[Any] = []
        for aggregate in (*changed, receipt):
            new.extend(aggregate.collect_events())
            self._aggregates[aggregate.id] = aggregate
            self._loaded[aggregate.id] = aggregate
            self._absent.discard(aggregate.id)
        self._events.extend(new)
        recorded = Recorded(key=key, outcome=outcome, notification_id=None, subject=event.subject)
        self._decided.append((recorded, new))
        return recorded

    def include(self, *aggregates: Any) -> None:
        """Store with the message decided last what this unit's caller then changed on these
        aggregates (a fact recorded beside it, in the same transaction)."""
        new: list[Any] = []
        for aggregate in aggregates:
            new.extend(aggregate.collect_events())
            self._aggregates[aggregate.id] = aggregate
            self._loaded[aggregate.id] = aggregate
        self._events.extend(new)
        if self._decided:
            self._decided[-1][1].extend(new)

    def commit(self) -> list[Recorded]:
        """Store every decided message in one transaction; their outcomes with log positions.

        Raises ``IntegrityError`` when another writer got there first (nothing is stored)."""
        if not self._events:
            return [r for r, _ in self._decided]
        recordings = self.case_record.save_in_order(self._events, self._aggregates)
        positions = {id(r.domain_event): r.notification.id for r in recordings}
        return [
            replace(r, notification_id=max((positions[id(e)] for e in events), default=None))
            for r, events in self._decided
        ]


def decide(
    reader: Any, event: InboundEvent, agency_id: str, now: datetime, imported: bool = False
) -> tuple[list[Any], str]:
    """Load what the event is about (through ``reader``: the record or a unit of work) and call
    the domain; return the aggregates to save and the outcome."""
    by = Provenance(
        agency_id=agency_id,
        staff_id=event.actor,
        occurred_at=event.time,
        message_id=(IMPORTED_PREFIX if imported else "") + event.idempotency_key,
    )
    match event:
        case PatientRegisteredV1(subject=patient_id) | PatientRegisteredV2(subject=patient_id):
            if reader._exists(patient_id):
                raise PatientAlreadyRegistered(patient_id)
            return identity.register(reader, event, by, now), "recorded"  # with its ID-number marker
        case PatientRegisteredUnidentifiedV1(subject=patient_id):
            if reader._exists(patient_id):
                raise PatientAlreadyRegistered(patient_id)
            return identity.register_unidentified(reader, event, by, now), "recorded"
        case IdentityConfirmedV1() | IdentityConfirmedV2():
            return identity.confirm(reader, event, by, now), "recorded"  # with its ID-number marker
        case VisitRecordedV1(data=d):
            patient = reader.patient(event.subject)
            patient.record_visit(
                by,
                now,
                face_to_face=d.face_to_face,
                joint=d.joint,
                risk_level=d.risk_level,
                risk_class=RiskClass(d.risk_class),
            )
            return [patient], "recorded"
        case VisitMissedV1(data=d):
            patient = reader.patient(event.subject)
            new = patient.record_missed_visit(by, now, scheduled_on=d.scheduled_on, reason=d.reason)
            return ([patient], "recorded") if new else ([], "no-change")
        case RiskAssessedV1(data=d):
            patient = reader.patient(event.subject)
            patient.assess_risk(by, now, risk_level=d.risk_level, risk_class=RiskClass(d.risk_class))
            return [patient], "recorded"
        case TaskAssignedV1(data=d):
            return [_assign_task(reader, event, d, by, now)], "recorded"
        case ReportSubmittedV1(data=d):
            if reader._exists(event.subject):
                raise AlreadyRecorded("report", event.subject)
            report = SubmittedReport.submit(event.subject, by, now, duty=d.duty, period=d.period, reference=d.reference)
            return [report], "recorded"
        case TaskProgressRecordedV1(data=d):
            if reader._exists(event.subject):
                raise AlreadyRecorded("task progress", event.subject)
            return [TaskProgress.record(event.subject, by, now, task_number=d.task_number, text=d.text)], "recorded"
        case _ if type(event) in suspected_cases.EVENTS:
            return suspected_cases.decide(reader, event, by, now), "recorded"  # case (+ patient when registered)
        case HandoverAcceptedV1(data=d):  # inside the region: the residence changes with it (042)
            patient = reader.patient(event.subject)
            patient.answer_handover(by, now, move_id=d.move_id, accepted=True, reason=d.reason, region=reader.region)
            return [patient], "recorded"
        case _ if type(event) in REGION_COMMANDS:  # a region without this system (042)
            patient = reader.patient(event.subject)
            changed = REGION_COMMANDS[type(event)](patient, by, now, event.data, reader.region)
            return ([patient], "recorded") if changed is not False else ([], "no-change")
        case _ if type(event) in FILE_COMMANDS:
            patient = reader.patient(event.subject)
            changed = FILE_COMMANDS[type(event)](patient, by, now, event.data)
            return ([patient], "recorded") if changed is not False else ([], "no-change")
    raise TypeError(f"no handler for {type(event).__name__}")  # pragma: no cover


def _assign_task(reader: Any, event: TaskAssignedV1, d: Any, by: Provenance, now: datetime) -> AssignedTask:
    """A task: about a patient (its residence is the place) or at a place it names."""
    if reader._exists(event.subject):
        raise TaskAlreadyAssigned(event.subject)
    place = reader.patient(d.patient_id).residence if d.patient_id is not None else d.place
    if place is None:
        raise TaskNeedsAPlace()
    return AssignedTask.assign(
        event.subject,
        by,
        now,
        assignee=d.assignee,
        due_at=d.due_at,
        text=d.text,
        place=place,
        patient_id=d.patient_id,
    )


def _hex(value: Any) -> str:
    """An aggregate id as PostgreSQL reads it in a uuid array literal (32 hex digits)."""
    return value.hex if isinstance(value, UUID) else str(UUID(str(value)))
