"""Facts that arrive before what they refer to wait, durably (docs/decisions/015).

A visit can reach the intake before the registration of its patient: police batches arrive
hours late, villages sync weekly, and a NATS message redelivered after AckWait comes back
behind later ones. Such a fact is not refused: ``accept`` holds it here (a table outside the
log, one per backend) and answers "waiting"; as soon as the record it refers to is recorded,
the writer that recorded it passes every fact waiting for it through the full ``accept`` path
again, in arrival order (every door check, on the registry as recorded now). What still waits
when the window (``SMD_WAITING_WINDOW_SECONDS``, default 24 h, on the service's clock) ends is
refused with ``reference-not-found``; a fact refused on release keeps its own reason. Either
refusal is kept as a small record: ``GET /v1/events/{source}:{id}`` answers it, and for a fact
that came over NATS the sweep publishes it on the sender's rejection subject.

What is awaited (``domain.errors.ReferenceNotKnownYet.reference``): a patient, a suspected case,
an incident of a patient, a move of a patient. The raw envelope is kept only sealed: AES-256-GCM
under the data key of the envelope's subject (the patient, or the suspected case), so nothing
personal sits in the table in plaintext and erasing the subject's key erases its waiting facts
too. Readable columns are ids, the type, times, the door and the reason of a refusal.

Safe with several writers: a fact is held and then the reference is looked up once more (the
record may have been written between the refusal and the hold); a release recorded twice is
one fact (the receipt); the sweep (``WaitingSweep``) also releases what a crashed writer left
behind and is safe to run in several processes at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.application import AggregateNotFoundError

from core.case_record import CaseRecord, Recorded
from core.contract import (
    ContractError,
    InboundEvent,
    IncidentReportedV1,
    MoveReportedV1,
    PatientRegisteredUnidentifiedV1,
    PatientRegisteredV1,
    PatientRegisteredV2,
    SuspectedCaseReportedV1,
    canonical_bytes,
    decode_event,
)
from core.keystore import DATA_KEY_ALG, NONCE_BYTES, KeyStoreError
from core.sqlite_files import ThreadConnections
from domain.errors import (
    DomainError,
    DuplicateMessageConflict,
    ReferenceNotFound,
    ReferenceNotKnownYet,
    patient_reference,
)
from domain.patient import Patient
from domain.patient_file import incident_reference, move_reference
from domain.receipt import Receipt, receipt_id
from domain.suspected_case import SuspectedCase, suspected_case_reference

if TYPE_CHECKING:
    from core.ports import DoorCounts
    from core.registry import RegistryView

log = structlog.get_logger(__name__)

WAITING, REFUSED = "waiting", "refused"
#: Doors whose senders are told of a refusal by a message (the others read GET /v1/events/…).
NOTIFIED_DOORS = frozenset({"nats"})
#: How long a refusal record is kept (as long as the NATS rejection stream keeps rejections).
REFUSALS_KEPT = timedelta(days=30)
DEFAULT_WINDOW = timedelta(hours=24)

#: ``accept`` without waiting: (raw, agency id, via, imported, key_id=…, authenticated_by=…) → Recorded,
#: or raises.
Resubmit = Callable[..., Recorded]


@dataclass(frozen=True, slots=True)
class Arrival:
    """Which door a message came through, and what is needed to answer its sender there."""

    door: str  # http | nats | import | simulation (the metrics' door label)
    nats_subject: str | None = None
    nats_seq: int | None = None  # the intake stream's sequence: the rejection's Nats-Msg-Id
    nats_msg_id: str | None = None


@dataclass(frozen=True, slots=True)
class WaitingFact:
    """One row: a fact waiting for ``reference``, or the record of its refusal."""

    seq: int  # arrival order
    key: str  # <source>:<id>
    reference: str
    status: str  # waiting | refused
    agency_id: str
    subject: UUID  # the envelope's subject: its data key seals ``sealed``
    event_type: str
    digest: str  # HMAC of the canonical envelope (as the receipt's): a changed resend is a conflict
    alg: str
    sealed: bytes | None  # nonce + ciphertext of the raw envelope; None once no longer needed
    arrived_at: datetime
    door: str
    via: str
    imported: bool
    nats_subject: str | None = None
    nats_seq: int | None = None
    nats_msg_id: str | None = None
    reason: str | None = None  # the refusal's code
    title: str | None = None
    detail: str | None = None
    problem_status: int | None = None
    refused_at: datetime | None = None
    notified: bool = False  # the sender was told over NATS
    key_id: str | None = None  # the API key that authenticated it: its receipt keeps it on release
    authenticated_by: str | None = None  # what else authenticated it, by kind (domain.receipt): the same

    @property
    def waiting_for(self) -> str:
        """What kind of record it waits for: patient, suspected-case, incident or move."""
        return self.reference.partition(":")[0]


@dataclass(frozen=True, slots=True)
class WaitingStats:
    """What waits: how many facts, and since when (for /v1/status and /metrics)."""

    waiting: int
    oldest_arrived_at: datetime | None
    untold: int  # refusals not yet published to their NATS senders


# -- the table, on SQLite and PostgreSQL --------------------------------------------------------

_COLUMNS = (
    "seq, key, reference, status, agency_id, subject, event_type, digest, alg, sealed, arrived_at, door, via,"
    " imported, nats_subject, nats_seq, nats_msg_id, reason, title, detail, problem_status, refused_at, notified,"
    " key_id, authenticated_by"
)
_DDL = (
    "CREATE TABLE IF NOT EXISTS {t} (seq {serial}, key TEXT NOT NULL UNIQUE, reference TEXT NOT NULL,"
    " status TEXT NOT NULL, agency_id TEXT NOT NULL, subject TEXT NOT NULL, event_type TEXT NOT NULL,"
    " digest TEXT NOT NULL, alg TEXT NOT NULL, sealed {blob}, arrived_at TEXT NOT NULL, door TEXT NOT NULL,"
    " via TEXT NOT NULL, imported INTEGER NOT NULL, nats_subject TEXT, nats_seq BIGINT, nats_msg_id TEXT,"
    " reason TEXT, title TEXT, detail TEXT, problem_status INTEGER, refused_at TEXT, notified INTEGER NOT NULL,"
    " key_id TEXT, authenticated_by TEXT)"
)
#: Tables made before the key id was kept get the column (empty for the facts waiting then).
_ADD_KEY_ID = "ALTER TABLE {t} ADD COLUMN key_id TEXT"
#: ... and before what else authenticated it was kept (empty for the facts waiting then).
_ADD_AUTHENTICATED_BY = "ALTER TABLE {t} ADD COLUMN authenticated_by TEXT"
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS {t}_reference ON {t} (reference, status, seq)",
    "CREATE INDEX IF NOT EXISTS {t}_status ON {t} (status, arrived_at)",
)


def _time(at: datetime) -> str:
    """UTC, one fixed width: text order is time order."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _row(r: Sequence[Any]) -> WaitingFact:
    return WaitingFact(
        seq=int(r[0]),
        key=r[1],
        reference=r[2],
        status=r[3],
        agency_id=r[4],
        subject=UUID(str(r[5])),
        event_type=r[6],
        digest=r[7],
        alg=r[8],
        sealed=None if r[9] is None else bytes(r[9]),
        arrived_at=datetime.fromisoformat(r[10]),
        door=r[11],
        via=r[12],
        imported=bool(r[13]),
        nats_subject=r[14],
        nats_seq=r[15],
        nats_msg_id=r[16],
        reason=r[17],
        title=r[18],
        detail=r[19],
        problem_status=r[20],
        refused_at=None if r[21] is None else datetime.fromisoformat(r[21]),
        notified=bool(r[22]),
        key_id=r[23],
        authenticated_by=r[24],
    )


class WaitingTable(Protocol):
    """Where waiting facts and refusal records are kept."""

    def hold(self, fact: WaitingFact) -> WaitingFact | None:
        """Insert a waiting fact; if its key already waits, insert nothing and return that row
        (a refusal record of the same key is replaced: the message was sent again)."""

    def set_reference(self, seq: int, reference: str) -> None:
        """A released fact now waits for something else (a patient's incident, say)."""

    def waiting_for(self, references: Iterable[str]) -> list[WaitingFact]:
        """The facts waiting for any of ``references``, in arrival order."""

    def references(self) -> list[str]:
        """Every reference something waits for."""

    def get(self, key: str) -> WaitingFact | None:
        """The row of a message key (waiting or refused), if any."""

    def remove(self, seq: int) -> None:
        """Delete a released fact."""

    def refuse(self, seq: int, reason: str, title: str, detail: str, at: datetime, keep: bool) -> bool:
        """Turn a waiting fact into a refusal record (``keep``: keep the sealed bytes until the
        sender is told); False when it no longer waits (another process got there first)."""

    def expired(self, arrived_before: datetime, limit: int) -> list[WaitingFact]:
        """Waiting facts that arrived before ``arrived_before``, oldest first."""

    def untold(self, doors: Iterable[str], limit: int) -> list[WaitingFact]:
        """Refusals whose senders are told by a message and were not yet."""

    def told(self, seq: int) -> None:
        """The sender was told: forget the sealed bytes."""

    def purge(self, refused_before: datetime) -> int:
        """Delete refusal records older than ``refused_before`` (told ones only)."""

    def stats(self, doors: Iterable[str]) -> WaitingStats:
        """How many facts wait, the oldest arrival, refusals not yet told."""

    def close(self) -> None:
        """Release connections."""


class _SqlWaitingTable:
    """The SQL both backends share (``?`` placeholders; PostgreSQL's class rewrites them)."""

    table = "waiting_facts"

    @contextmanager
    def _tx(self) -> Iterator[Any]:  # pragma: no cover - each backend's own
        raise NotImplementedError
        yield

    def _sql(self, sql: str) -> str:
        return sql.format(t=self.table)

    def hold(self, fact: WaitingFact) -> WaitingFact | None:
        values = (
            fact.key,
            fact.reference,
            WAITING,
            fact.agency_id,
            str(fact.subject),
            fact.event_type,
            fact.digest,
            fact.alg,
            fact.sealed,
            _time(fact.arrived_at),
            fact.door,
            fact.via,
            int(fact.imported),
            fact.nats_subject,
            fact.nats_seq,
            fact.nats_msg_id,
            fact.key_id,
            fact.authenticated_by,
        )
        select = self._sql(f"SELECT {_COLUMNS} FROM {{t}} WHERE key=?")
        with self._tx() as c:
            found = c.execute(select, (fact.key,)).fetchone()
            if found is not None:
                existing = _row(found)
                if existing.status == WAITING:
                    return existing
                c.execute(self._sql("DELETE FROM {t} WHERE seq=?"), (existing.seq,))  # sent again after a refusal
            inserted = c.execute(
                self._sql(
                    "INSERT INTO {t} (key, reference, status, agency_id, subject, event_type, digest, alg, sealed,"
                    " arrived_at, door, via, imported, nats_subject, nats_seq, nats_msg_id, key_id, authenticated_by,"
                    " notified) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0) ON CONFLICT (key) DO NOTHING"
                ),
                values,
            )
            if not inserted.rowcount:  # the same message held by another writer meanwhile (PostgreSQL)
                return _row(c.execute(select, (fact.key,)).fetchone())
        return None

    def set_reference(self, seq: int, reference: str) -> None:
        with self._tx() as c:
            c.execute(self._sql("UPDATE {t} SET reference=? WHERE seq=? AND status=?"), (reference, seq, WAITING))

    def waiting_for(self, references: Iterable[str]) -> list[WaitingFact]:
        refs = sorted(set(references))
        if not refs:
            return []
        marks = ",".join("?" * len(refs))
        sql = f"SELECT {_COLUMNS} FROM {{t}} WHERE status=? AND reference IN ({marks}) ORDER BY seq"
        with self._tx() as c:
            return [_row(r) for r in c.execute(self._sql(sql), (WAITING, *refs)).fetchall()]

    def references(self) -> list[str]:
        with self._tx() as c:
            rows = c.execute(self._sql("SELECT DISTINCT reference FROM {t} WHERE status=?"), (WAITING,)).fetchall()
        return sorted(r[0] for r in rows)

    def get(self, key: str) -> WaitingFact | None:
        with self._tx() as c:
            found = c.execute(self._sql(f"SELECT {_COLUMNS} FROM {{t}} WHERE key=?"), (key,)).fetchone()
        return None if found is None else _row(found)

    def remove(self, seq: int) -> None:
        with self._tx() as c:
            c.execute(self._sql("DELETE FROM {t} WHERE seq=?"), (seq,))

    def refuse(self, seq: int, reason: str, title: str, detail: str, at: datetime, keep: bool) -> bool:
        sealed = "sealed" if keep else "NULL"
        sql = (
            "UPDATE {t} SET status=?, reason=?, title=?, detail=?, problem_status=NULL, refused_at=?,"
            f" sealed={sealed}, notified=? WHERE seq=? AND status=?"
        )
        with self._tx() as c:
            done = c.execute(self._sql(sql), (REFUSED, reason, title, detail, _time(at), int(not keep), seq, WAITING))
            return bool(done.rowcount)

    def expired(self, arrived_before: datetime, limit: int) -> list[WaitingFact]:
        sql = f"SELECT {_COLUMNS} FROM {{t}} WHERE status=? AND arrived_at<? ORDER BY arrived_at, seq LIMIT ?"
        with self._tx() as c:
            return [_row(r) for r in c.execute(self._sql(sql), (WAITING, _time(arrived_before), limit)).fetchall()]

    def untold(self, doors: Iterable[str], limit: int) -> list[WaitingFact]:
        doors = sorted(doors)
        if not doors:
            return []
        marks = ",".join("?" * len(doors))
        sql = f"SELECT {_COLUMNS} FROM {{t}} WHERE status=? AND notified=0 AND door IN ({marks}) ORDER BY seq LIMIT ?"
        with self._tx() as c:
            return [_row(r) for r in c.execute(self._sql(sql), (REFUSED, *doors, limit)).fetchall()]

    def told(self, seq: int) -> None:
        with self._tx() as c:
            c.execute(self._sql("UPDATE {t} SET notified=1, sealed=NULL WHERE seq=? AND status=?"), (seq, REFUSED))

    def purge(self, refused_before: datetime) -> int:
        sql = "DELETE FROM {t} WHERE status=? AND notified=1 AND refused_at<?"
        with self._tx() as c:
            return int(c.execute(self._sql(sql), (REFUSED, _time(refused_before))).rowcount)

    def stats(self, doors: Iterable[str]) -> WaitingStats:
        doors = sorted(doors) or [""]
        marks = ",".join("?" * len(doors))
        with self._tx() as c:
            count, oldest = c.execute(
                self._sql("SELECT count(*), min(arrived_at) FROM {t} WHERE status=?"), (WAITING,)
            ).fetchone()
            (untold,) = c.execute(
                self._sql(f"SELECT count(*) FROM {{t}} WHERE status=? AND notified=0 AND door IN ({marks})"),
                (REFUSED, *doors),
            ).fetchone()
        return WaitingStats(int(count), None if oldest is None else datetime.fromisoformat(oldest), int(untold))


class SQLiteWaitingTable(_SqlWaitingTable):
    """Waiting facts in their own SQLite file (the embedded default)."""

    def __init__(self, path: Path) -> None:
        # secure_delete: a released fact's sealed bytes do not linger in free pages
        self._connections = ThreadConnections(path, "PRAGMA secure_delete=ON")
        c = self._connections.get()
        c.execute(_DDL.format(t=self.table, serial="INTEGER PRIMARY KEY AUTOINCREMENT", blob="BLOB"))
        columns = {r[1] for r in c.execute(f"PRAGMA table_info({self.table})")}
        if "key_id" not in columns:
            c.execute(_ADD_KEY_ID.format(t=self.table))
        if "authenticated_by" not in columns:
            c.execute(_ADD_AUTHENTICATED_BY.format(t=self.table))
        for index in _INDEXES:
            c.execute(index.format(t=self.table))

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._connections.transaction()

    def close(self) -> None:
        self._connections.close()


class PostgresWaitingTable(_SqlWaitingTable):
    """Waiting facts in a PostgreSQL table beside the event store."""

    table = "smd_waiting_facts"

    def __init__(self, conninfo: str) -> None:
        from core.postgres import open_pool

        self.pool = open_pool(conninfo, min_size=0, max_size=2, name="smd-waiting")
        with self.pool.connection() as c:
            c.execute("SELECT pg_advisory_xact_lock(7303)")  # concurrent starters: one creates
            c.execute(_DDL.format(t=self.table, serial="BIGSERIAL PRIMARY KEY", blob="BYTEA"))
            for add in (_ADD_KEY_ID, _ADD_AUTHENTICATED_BY):
                c.execute(add.format(t=self.table).replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"))
            for index in _INDEXES:
                c.execute(index.format(t=self.table))

    def _sql(self, sql: str) -> str:
        return super()._sql(sql).replace("?", "%s")

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self.pool.connection() as c:  # one transaction: committed on leaving the block
            yield c

    def close(self) -> None:
        self.pool.close()


# -- what a fact waits for, and what a recorded fact provides ----------------------------------


def provided(event: InboundEvent) -> list[str]:
    """The references a recorded message satisfies (what facts waiting for it may now need)."""
    match event:
        case PatientRegisteredV1() | PatientRegisteredV2() | PatientRegisteredUnidentifiedV1():
            return [patient_reference(event.subject)]
        case SuspectedCaseReportedV1():
            return [suspected_case_reference(event.subject)]
        case IncidentReportedV1(data=d):
            return [incident_reference(event.subject, d.incident_id)]
        case MoveReportedV1(data=d):
            return [move_reference(event.subject, d.move_id)]
    return []


def reference_exists(case_record: CaseRecord, reference: str) -> bool:
    """Whether the record a reference names is in the store now."""
    kind, _, ids = reference.partition(":")
    first, _, second = ids.partition(":")
    try:
        found = case_record.repository.get(UUID(first))
    except (AggregateNotFoundError, ValueError):
        return False
    match kind:
        case "patient":
            return isinstance(found, Patient)
        case "suspected-case":
            return isinstance(found, SuspectedCase)
        case "incident":
            return isinstance(found, Patient) and found.has_incident(UUID(second))
        case "move":
            return isinstance(found, Patient) and found.has_move(UUID(second))
    return False


def _aad(subject: UUID, key: str) -> bytes:
    return b"smd-waiting|" + subject.bytes + b"|" + key.encode()


# -- the service ------------------------------------------------------------------------------


class Waiting:
    """Holds facts whose reference is not recorded yet, releases them, refuses the late ones."""

    def __init__(
        self,
        table: WaitingTable,
        case_record: CaseRecord,
        window: timedelta = DEFAULT_WINDOW,
        metrics: DoorCounts | None = None,
    ) -> None:
        self.table = table
        self.case_record = case_record
        self.window = window
        self.metrics = metrics  # this process's door counters (ops.metrics), set by the composition root

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.case_record.clock  # the service's (injectable) clock

    # -- the door ------------------------------------------------------------------------------

    def accept(
        self,
        resubmit: Resubmit,
        raw: bytes,
        agency_id: str,
        via: str,
        imported: bool,
        arrival: Arrival | None,
        key_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> Recorded:
        """Record the message through ``resubmit`` (``accept`` without waiting); hold it when what
        it refers to is not recorded yet; after a record, release what waited for it."""
        try:
            recorded = resubmit(raw, agency_id, via, imported, key_id=key_id, authenticated_by=authenticated_by)
        except ReferenceNotKnownYet as e:
            door = arrival or Arrival(door="other")
            return self._hold(resubmit, raw, agency_id, via, imported, door, e.reference, key_id, authenticated_by)
        references = provided(decode_event(raw))
        if references:
            self.release_safely(resubmit, references)
        return recorded

    def hold(
        self,
        resubmit: Resubmit,
        raw: bytes,
        agency_id: str,
        via: str,
        imported: bool,
        arrival: Arrival | None,
        reference: str,
        key_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> Recorded:
        """Hold a message that waits for ``reference`` (the same message again is held once);
        recorded at once if the reference was written meanwhile. A batch holds its waiting
        messages after its commit (core.intake.accept_batch)."""
        door = arrival or Arrival(door="other")
        return self._hold(resubmit, raw, agency_id, via, imported, door, reference, key_id, authenticated_by)

    def _hold(
        self,
        resubmit: Resubmit,
        raw: bytes,
        agency_id: str,
        via: str,
        imported: bool,
        arrival: Arrival,
        reference: str,
        key_id: str | None = None,
        authenticated_by: str | None = None,
    ) -> Recorded:
        event = decode_event(raw)
        key = event.idempotency_key
        digest = hmac.new(self.case_record.digest_key, canonical_bytes(event), hashlib.sha256).hexdigest()
        fact = WaitingFact(
            seq=0,
            key=key,
            reference=reference,
            status=WAITING,
            agency_id=agency_id,
            subject=event.subject,
            event_type=event.event_type,
            digest=digest,
            alg=DATA_KEY_ALG,
            sealed=self._seal(event.subject, key, raw),
            arrived_at=self.clock(),
            door=arrival.door,
            via=via,
            imported=imported,
            nats_subject=arrival.nats_subject,
            nats_seq=arrival.nats_seq,
            nats_msg_id=arrival.nats_msg_id,
            key_id=key_id,
            authenticated_by=authenticated_by,
        )
        existing = self.table.hold(fact)
        if existing is not None:  # the same message again while it waits
            if not hmac.compare_digest(existing.digest, digest):
                raise DuplicateMessageConflict(key)
            if existing.reference != reference:
                self.table.set_reference(existing.seq, reference)
        else:
            log.info("fact waits", key=key, waiting_for=fact.waiting_for, door=arrival.door)
        # the record may have been written between the refusal and the hold: look once more
        if reference_exists(self.case_record, reference):
            released = self.release_safely(resubmit, [reference])
            if key in released:
                return released[key]
        return Recorded(key=key, outcome=WAITING, notification_id=None, subject=event.subject)

    # -- release ----------------------------------------------------------------------------------

    def release_safely(self, resubmit: Resubmit, references: Iterable[str]) -> dict[str, Recorded]:
        """``release``, never failing the write that triggered it: what cannot be released now
        (the store failed, say) keeps waiting and the sweep releases it later."""
        try:
            return self.release(resubmit, references)
        except Exception as e:
            log.warning("release of waiting facts deferred to the sweep", error=type(e).__name__)
            return {}

    def release(self, resubmit: Resubmit, references: Iterable[str]) -> dict[str, Recorded]:
        """Pass every fact waiting for ``references`` through ``accept`` again, in arrival order;
        a released fact's own record releases what waited for it in turn. Returns what was recorded."""
        refs, tried, again, done = set(references), set[int](), Counter[int](), dict[str, Recorded]()
        while True:
            rows = [r for r in self.table.waiting_for(refs) if r.seq not in tried]
            if not rows:
                return done
            row = rows[0]
            tried.add(row.seq)
            raw = self._open(row)
            try:
                recorded = resubmit(
                    raw, row.agency_id, row.via, row.imported, key_id=row.key_id, authenticated_by=row.authenticated_by
                )
            except ReferenceNotKnownYet as e:  # released, but it also needs something else
                if e.reference != row.reference:
                    self.table.set_reference(row.seq, e.reference)
                    log.info("fact waits", key=row.key, waiting_for=e.reference.partition(":")[0], door=row.door)
                if again[row.seq] < 2 and reference_exists(self.case_record, e.reference):  # written meanwhile
                    again[row.seq] += 1
                    refs.add(e.reference)
                    tried.discard(row.seq)
                continue
            except (ContractError, DomainError) as e:  # refused on release, with its own reason
                self.refuse(row, e.code, _title(e), getattr(e, "detail", None) or str(e))
                continue
            self.table.remove(row.seq)
            done[row.key] = recorded
            log.info("waiting fact released", key=row.key, outcome=recorded.outcome, door=row.door)
            if self.metrics is not None and row.door in _METRIC_DOORS:
                self.metrics.message_accepted(row.door, recorded.outcome)
            refs.update(provided(decode_event(raw)))

    # -- refusal, the window, the sweep --------------------------------------------------------

    def refuse(self, row: WaitingFact, reason: str, title: str, detail: str) -> bool:
        """Turn a waiting fact into a refusal record (kept sealed until a NATS sender is told)."""
        keep = row.door in NOTIFIED_DOORS
        if not self.table.refuse(row.seq, reason, title, detail, self.clock(), keep):
            return False
        log.info("waiting fact refused", key=row.key, reason=reason, door=row.door)
        if self.metrics is not None and row.door in _METRIC_DOORS:
            self.metrics.message_rejected(row.door, reason)
        return True

    def sweep(self, resubmit: Resubmit, *, look_up: bool = True, limit: int = 500) -> int:
        """Release what waits for a record that is there now (``look_up``: the log moved since
        the last sweep), refuse what waited longer than the window; returns how many it refused."""
        if look_up:
            present = [r for r in self.table.references() if reference_exists(self.case_record, r)]
            if present:
                self.release(resubmit, present)
        now = self.clock()
        refused = 0
        for row in self.table.expired(now - self.window, limit):
            if reference_exists(self.case_record, row.reference):  # it came: a release failed, try once more
                try:
                    self.release(resubmit, [row.reference])
                except Exception as e:
                    log.error("release failed at the end of the window", key=row.key, error=type(e).__name__)
                    refused += self.refuse(
                        row,
                        "internal-error",
                        "Internal error",
                        f"the service failed to record this message after what it refers to arrived "
                        f"({type(e).__name__}); the operator has the details; send it again with the same id",
                    )
                continue
            error = ReferenceNotFound(row.reference, self.window.total_seconds())
            refused += self.refuse(row, error.code, _title(error), error.detail)
        self.table.purge(now - REFUSALS_KEPT)
        return refused

    # -- reading -------------------------------------------------------------------------------

    def status(self, key: str) -> WaitingFact | None:
        """The waiting fact or refusal record of a message key, if any."""
        return self.table.get(key)

    def stats(self) -> WaitingStats:
        """How many facts wait and since when."""
        return self.table.stats(NOTIFIED_DOORS)

    def oldest_age_seconds(self, stats: WaitingStats) -> float:
        """Age of the oldest waiting fact on the service's clock (0 when nothing waits)."""
        if stats.oldest_arrived_at is None:
            return 0.0
        return max(0.0, (self.clock() - stats.oldest_arrived_at).total_seconds())

    def original(self, row: WaitingFact) -> bytes:
        """The original envelope bytes of a row (to publish a NATS rejection)."""
        return self._open(row)

    # -- sealing ---------------------------------------------------------------------------------

    def _seal(self, subject: UUID, key: str, raw: bytes) -> bytes:
        data_key = self.case_record.keystore.data_key(subject)
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(data_key).encrypt(nonce, raw, _aad(subject, key))

    def _open(self, row: WaitingFact) -> bytes:
        if row.sealed is None or row.alg != DATA_KEY_ALG:
            raise KeyStoreError(f"waiting fact {row.key}: no sealed envelope to open ({row.alg})")
        data_key = self.case_record.keystore.existing_data_key(row.subject)
        if data_key is None:
            raise KeyStoreError(f"waiting fact {row.key}: the data key of its subject was destroyed")
        nonce, ct = row.sealed[:NONCE_BYTES], row.sealed[NONCE_BYTES:]
        return AESGCM(data_key).decrypt(nonce, ct, _aad(row.subject, row.key))


_METRIC_DOORS = frozenset({"http", "nats", "import"})


@dataclass(frozen=True, slots=True)
class MessageStatus:
    """Where a message stands: recorded (its receipt), waiting, or refused after waiting."""

    key: str
    status: str  # recorded | waiting | refused
    agency_id: str
    event_type: str
    outcome: str | None = None  # recorded: recorded | no-change
    recorded_at: datetime | None = None
    waiting_for: str | None = None
    waiting_since: datetime | None = None
    waiting_until: datetime | None = None
    refused_at: datetime | None = None
    reason: str | None = None
    title: str | None = None
    detail: str | None = None
    problem_status: int | None = None


def message_status(case_record: CaseRecord, waiting: Waiting, key: str) -> MessageStatus | None:
    """The receipt of ``key`` if it was recorded, else its waiting row or refusal record."""
    try:
        receipt = case_record.repository.get(receipt_id(key))
    except AggregateNotFoundError:
        receipt = None
    if isinstance(receipt, Receipt):
        return MessageStatus(
            key=key,
            status="recorded",
            agency_id=receipt.agency_id,
            event_type=receipt.event_type,
            outcome=receipt.outcome,
            recorded_at=receipt.created_on,
        )
    row = waiting.status(key)
    if row is None:
        return None
    if row.status == WAITING:
        return MessageStatus(
            key=key,
            status=WAITING,
            agency_id=row.agency_id,
            event_type=row.event_type,
            waiting_for=row.waiting_for,
            waiting_since=row.arrived_at,
            waiting_until=row.arrived_at + waiting.window,
        )
    return MessageStatus(
        key=key,
        status=REFUSED,
        agency_id=row.agency_id,
        event_type=row.event_type,
        refused_at=row.refused_at,
        reason=row.reason,
        title=row.title,
        detail=row.detail,
        problem_status=row.problem_status,
    )


def _title(e: BaseException) -> str:
    doc = type(e).__doc__ or getattr(e, "code", type(e).__name__)
    return doc.strip().splitlines()[0]


class WaitingSweep:
    """The periodic part: releases what a failed or crashed writer left, refuses at the window's
    end. Runs beside the followers (``smd serve``) and beside the NATS intake (``smd ingest``);
    several at once are safe (a refusal is recorded once; a release twice is one fact)."""

    def __init__(
        self,
        waiting: Waiting,
        registry: RegistryView,
        earliest: datetime,
        every_seconds: float = 1.0,
    ) -> None:
        self.waiting = waiting
        self.registry = registry
        self.earliest = earliest
        self.every_seconds = every_seconds
        self._last_run = 0.0
        self._last_head: int | None = None

    def resubmit(self) -> Resubmit:
        """``core.intake.accept`` on this service, without waiting: the full door again."""
        from core.intake import accept

        return partial(accept, self.waiting.case_record, self.registry, earliest=self.earliest)

    def run_once(self, force: bool = False) -> int:
        """One sweep (at most every ``every_seconds`` unless forced); returns how many it refused."""
        if not force and time.monotonic() - self._last_run < self.every_seconds:
            return 0
        self._last_run = time.monotonic()
        head = self.waiting.case_record.recorder.max_notification_id() or 0
        look_up = head != self._last_head  # something new in the log: a record may have come
        refused = self.waiting.sweep(self.resubmit(), look_up=look_up)
        self._last_head = head
        return refused


__all__ = [
    "REFUSED",
    "WAITING",
    "Arrival",
    "MessageStatus",
    "PostgresWaitingTable",
    "SQLiteWaitingTable",
    "Waiting",
    "WaitingFact",
    "WaitingStats",
    "WaitingSweep",
    "WaitingTable",
    "message_status",
    "provided",
    "reference_exists",
]
