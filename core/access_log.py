"""The access log: one append-only row per answer that revealed (or was asked to reveal) a patient.

Kept apart from the case events (its own SQLite file, its own PostgreSQL table) so that a read
never takes the events table's lock. A row says who read (agency, key id, the asserted staff id),
why (the stated purpose), what (the endpoint, the patient ids, the *names* of the fields
revealed), when, how it ended (the HTTP status), the request's correlation id, and the
emergency access grant the read was made under (break the glass; null for every other read). Never a value:
no name, number, address or free text reaches this table.

Append-only by construction: the class has no update or delete; on PostgreSQL a trigger refuses
``UPDATE`` and ``DELETE`` on the table, on SQLite two triggers do the same.
The row is committed before the answer is returned (the handler awaits ``append``).

Chained: each row's canonical text (``chain_record``) extends a hash chain kept in a table of its
own (``smd_access_log_chain``: position, head), written in the row's transaction under a lock so
that rows are chained in position order. Every checkpoint of the verifiable log pins the chain's
length and head (``smd-access-log`` line), so ``smd verify`` names a row altered, deleted or
inserted with SQL by a rogue administrator who first disabled the triggers, and a tail deleted
with its links too. The first start after this change chains the rows already there, once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import msgspec

from core.sqlite_files import ThreadConnections

ACCESS_LOG_FILE = "access-log.sqlite"


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One read, as recorded."""

    at: datetime
    agency_id: str
    key_id: str
    staff_id: str | None
    purpose: str
    endpoint: str  # the route template, e.g. GET /v1/patients/{patient_id}
    status: int
    patient_ids: tuple[UUID, ...]
    fields: tuple[str, ...]  # names of the fields revealed, never values
    correlation_id: str | None = None
    position: int | None = None  # assigned by the table
    #: the emergency access grant the read was made under (break the glass), else None
    emergency_grant: UUID | None = None


class AccessLog(Protocol):
    """Append and read back (for the auditor and the tests)."""

    def append(self, entry: AccessEntry) -> None:
        """Record one read; returns once committed."""
        ...

    def append_many(self, entries: Sequence[AccessEntry]) -> None:
        """Record several reads in one transaction (an outbound batch); returns once committed."""
        ...

    def entries(
        self,
        *,
        patient: UUID | None = None,
        agency: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[AccessEntry]:
        """Recorded reads in order, optionally for one patient or agency, in [since, until)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


_COLUMNS = (
    "at, agency_id, key_id, staff_id, purpose, endpoint, status, patient_ids, fields, correlation_id, emergency_grant"
)


class _SqlAccessLog:
    table = "smd_access_log"
    mark = "?"

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def append(self, entry: AccessEntry) -> None:
        self.append_many([entry])

    def append_many(self, entries: Sequence[AccessEntry]) -> None:
        marks = ", ".join([self.mark] * 11)
        sql = (
            f"INSERT INTO {self.table} ({_COLUMNS}) VALUES ({marks})"  # noqa: S608 (our own table name)
            f" RETURNING position, {_COLUMNS}"
        )
        link = f"INSERT INTO {CHAIN_TABLE} (position, head) VALUES ({self.mark}, {self.mark})"  # noqa: S608
        with self._tx() as c:
            self._lock_chain(c)  # rows are chained in position order, one writer at a time
            head = self._last_head(c)
            links = []
            for stored in self._insert_returning(c, sql, [self._row(e) for e in entries]):
                head = chain_link(head, chain_record(stored))
                links.append((stored[0], head))
            c.cursor().executemany(link, links)

    def _insert_returning(self, c: Any, sql: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The stored rows of ``rows`` inserted in order (positions ascending)."""
        return [tuple(c.execute(sql, row).fetchone()) for row in rows]

    # -- the chain ---------------------------------------------------------------------------

    def _lock_chain(self, c: Any) -> None:
        """Serialise appends (SQLite: ``BEGIN IMMEDIATE`` already does)."""

    def _last_head(self, c: Any) -> bytes:
        row = c.execute(f"SELECT head FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1").fetchone()  # noqa: S608
        return bytes(row[0]) if row else CHAIN_START

    def _chain_existing(self) -> None:
        """Chain the rows written before the chain existed (first start after the change), once."""
        with self._tx() as c:
            self._lock_chain(c)
            if c.execute(f"SELECT 1 FROM {CHAIN_TABLE} LIMIT 1").fetchone():  # noqa: S608
                return
            rows = c.execute(f"SELECT position, {_COLUMNS} FROM {self.table} ORDER BY position").fetchall()  # noqa: S608
            head = CHAIN_START
            link = f"INSERT INTO {CHAIN_TABLE} (position, head) VALUES ({self.mark}, {self.mark})"  # noqa: S608
            for r in rows:
                head = chain_link(head, chain_record(tuple(r)))
                c.execute(link, (r[0], head))

    def chain_head(self) -> tuple[int, bytes]:
        """(rows chained, the chain's head): what every checkpoint pins."""
        with self._tx() as c:
            count = int(c.execute(f"SELECT count(*) FROM {CHAIN_TABLE}").fetchone()[0])  # noqa: S608
            return count, self._last_head(c)

    def chain_heads(self) -> list[bytes]:
        """The chain's head after 0, 1, 2 … rows (a checkpoint's pin is checked against it)."""
        with self._tx() as c:
            rows = c.execute(f"SELECT head FROM {CHAIN_TABLE} ORDER BY position").fetchall()  # noqa: S608
        return [CHAIN_START, *(bytes(r[0]) for r in rows)]

    def chain_findings(self) -> list[str]:
        """The first row whose stored text, presence or order does not match the chain (empty:
        every row matches its link and every link has its row)."""
        with self._tx() as c:
            rows = c.execute(f"SELECT position, {_COLUMNS} FROM {self.table} ORDER BY position").fetchall()  # noqa: S608
            links = c.execute(f"SELECT position, head FROM {CHAIN_TABLE} ORDER BY position").fetchall()  # noqa: S608
        stored_rows = {int(r[0]): tuple(r) for r in rows}
        by_position = {int(p): bytes(h) for p, h in links}
        head = CHAIN_START
        for position in sorted(stored_rows.keys() | by_position.keys()):
            row, link = stored_rows.get(position), by_position.get(position)
            if link is None:
                return [f"access-log row {position}: not chained (inserted outside the service)"]
            if row is None:
                return [f"access-log row {position}: deleted (chained, no longer stored)"]
            head = chain_link(head, chain_record(row))
            if head != link:
                return [f"access-log row {position}: altered (its text no longer gives its chained hash)"]
        return []

    def _row(self, entry: AccessEntry) -> tuple[Any, ...]:
        return (
            self._at(entry.at),
            entry.agency_id,
            entry.key_id,
            entry.staff_id,
            entry.purpose,
            entry.endpoint,
            entry.status,
            _ids_text(entry.patient_ids),
            json.dumps(list(entry.fields)),
            entry.correlation_id,
            None if entry.emergency_grant is None else str(entry.emergency_grant),
        )

    def _at(self, at: datetime) -> Any:
        # one offset for every stored time, so that the text compares as the time does
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()

    def entries(
        self,
        *,
        patient: UUID | None = None,
        agency: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[AccessEntry]:
        where, params = [f"position > {self.mark}"], [after]
        if since is not None:
            where.append(f"at >= {self.mark}")
            params.append(self._at(since))
        if until is not None:
            where.append(f"at < {self.mark}")
            params.append(self._at(until))
        if agency is not None:
            where.append(f"agency_id = {self.mark}")
            params.append(agency)
        if patient is not None:  # the ids are a JSON list of strings: match the quoted id
            where.append(f"patient_ids LIKE {self.mark}")
            params.append(f'%"{patient}"%')
        sql = (
            f"SELECT position, {_COLUMNS} FROM {self.table} WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY position LIMIT {self.mark}"
        )
        with self._tx() as c:
            rows = c.execute(sql, (*params, limit)).fetchall()
        return [_entry(tuple(r)) for r in rows]


def _ids_text(ids: Sequence[UUID]) -> str:
    """The patient ids as stored: ``json.dumps`` of their strings (``["…", "…"]``), written by
    msgspec in C (``str`` of a UUID in Python cost about 1 us an id, 100 a page)."""
    return _encode_ids(ids).decode().replace('","', '", "')


_encode_ids = msgspec.json.Encoder().encode

CHAIN_TABLE = "smd_access_log_chain"
CHAIN_START = bytes(32)


def chain_record(stored: Sequence[Any]) -> str:
    """A stored row's canonical text (position, then the columns as stored; the time in UTC):
    what the chain hashes, recomputed by ``smd verify`` from the row as it is read back."""
    at = stored[1] if isinstance(stored[1], datetime) else datetime.fromisoformat(str(stored[1]))
    at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    values = [int(stored[0]), at, *stored[2:7], int(stored[7]), *stored[8:11]]
    if len(stored) > 11 and stored[11] is not None:  # rows without a grant keep the text they were chained with
        values.append(str(stored[11]))
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def chain_link(previous: bytes, record: str) -> bytes:
    """The chain's next head: SHA-256(0x02 || previous head || SHA-256(record))."""
    return hashlib.sha256(b"\x02" + previous + hashlib.sha256(record.encode()).digest()).digest()


def _entry(r: Sequence[Any]) -> AccessEntry:
    at = r[1] if isinstance(r[1], datetime) else datetime.fromisoformat(r[1])
    return AccessEntry(
        position=r[0],
        at=at,
        agency_id=r[2],
        key_id=r[3],
        staff_id=r[4],
        purpose=r[5],
        endpoint=r[6],
        status=r[7],
        patient_ids=tuple(UUID(p) for p in json.loads(r[8])),
        fields=tuple(json.loads(r[9])),
        correlation_id=r[10],
        emergency_grant=UUID(r[11]) if len(r) > 11 and r[11] else None,
    )


_SQLITE_DDL = (
    """CREATE TABLE IF NOT EXISTS smd_access_log (
        position INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, agency_id TEXT NOT NULL,
        key_id TEXT NOT NULL, staff_id TEXT, purpose TEXT NOT NULL, endpoint TEXT NOT NULL,
        status INTEGER NOT NULL, patient_ids TEXT NOT NULL, fields TEXT NOT NULL, correlation_id TEXT,
        emergency_grant TEXT)""",
    """CREATE TRIGGER IF NOT EXISTS smd_access_log_no_update BEFORE UPDATE ON smd_access_log
        BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS smd_access_log_no_delete BEFORE DELETE ON smd_access_log
        BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END""",
    """CREATE TABLE IF NOT EXISTS smd_access_log_chain (position INTEGER PRIMARY KEY, head BLOB NOT NULL)""",
    """CREATE TRIGGER IF NOT EXISTS smd_access_log_chain_no_update BEFORE UPDATE ON smd_access_log_chain
        BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS smd_access_log_chain_no_delete BEFORE DELETE ON smd_access_log_chain
        BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END""",
)


class SQLiteAccessLog(_SqlAccessLog):
    """The access log in its own SQLite file (the embedded default)."""

    def __init__(self, path: Path) -> None:
        # synchronous=FULL: a row of an answered read survives a power cut, not only a crash
        self._connections = ThreadConnections(path, "PRAGMA synchronous=FULL")
        c = self._connections.get()
        for ddl in _SQLITE_DDL:
            c.execute(ddl)
        columns = {r[1] for r in c.execute("PRAGMA table_info(smd_access_log)").fetchall()}
        if "emergency_grant" not in columns:  # a file created before reads under emergency access were marked
            try:
                c.execute("ALTER TABLE smd_access_log ADD COLUMN emergency_grant TEXT")
            except sqlite3.OperationalError:  # another process starting at the same time added it first
                if "emergency_grant" not in {r[1] for r in c.execute("PRAGMA table_info(smd_access_log)")}:
                    raise
        self._chain_existing()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._connections.transaction()

    def close(self) -> None:
        self._connections.close()


_POSTGRES_DDL = (
    """CREATE TABLE IF NOT EXISTS smd_access_log (
        position BIGSERIAL PRIMARY KEY, at TIMESTAMPTZ NOT NULL, agency_id TEXT NOT NULL,
        key_id TEXT NOT NULL, staff_id TEXT, purpose TEXT NOT NULL, endpoint TEXT NOT NULL,
        status INTEGER NOT NULL, patient_ids TEXT NOT NULL, fields TEXT NOT NULL, correlation_id TEXT,
        emergency_grant TEXT)""",
    # a table created before reads under emergency access were marked: add the column (null: none)
    "ALTER TABLE smd_access_log ADD COLUMN IF NOT EXISTS emergency_grant TEXT",
    """CREATE OR REPLACE FUNCTION smd_access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'the access log is append-only'; END $$""",
    """DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'smd_access_log_append_only') THEN
            CREATE TRIGGER smd_access_log_append_only BEFORE UPDATE OR DELETE ON smd_access_log
            FOR EACH ROW EXECUTE FUNCTION smd_access_log_append_only();
        END IF; END $$""",
    """CREATE TABLE IF NOT EXISTS smd_access_log_chain (position bigint PRIMARY KEY, head bytea NOT NULL)""",
    """DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'smd_access_log_chain_append_only') THEN
            CREATE TRIGGER smd_access_log_chain_append_only BEFORE UPDATE OR DELETE ON smd_access_log_chain
            FOR EACH ROW EXECUTE FUNCTION smd_access_log_append_only();
        END IF; END $$""",
)


class PostgresAccessLog(_SqlAccessLog):
    """The access log in its own PostgreSQL table beside the event store (never its lock)."""

    mark = "%s"

    def _at(self, at: datetime) -> Any:
        return at

    def __init__(self, conninfo: str) -> None:
        from core.postgres import open_pool

        self.pool = open_pool(conninfo, min_size=0, max_size=4, name="smd-access-log")
        with self.pool.connection() as c:
            c.execute("SELECT pg_advisory_xact_lock(7304)")  # concurrent starters: one creates
            for ddl in _POSTGRES_DDL:
                c.execute(ddl)
        self._chain_existing()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self.pool.connection() as c:  # one transaction: committed on leaving the block
            yield c

    def _lock_chain(self, c: Any) -> None:
        c.execute(f"LOCK TABLE {CHAIN_TABLE} IN EXCLUSIVE MODE")  # readers go on; appends wait

    def append_many(self, entries: Sequence[AccessEntry]) -> None:
        """As on every store, in three round trips: the transaction opened, the chain's lock
        taken and its head read in one; the rows inserted (pipelined) in the second; their links
        inserted and the transaction committed (pipelined) in the third. Each round trip costs
        the service and the server about as much CPU as a row: the page that waits for its
        row pays it."""
        marks = ", ".join(["%s"] * 11)
        sql = f"INSERT INTO {self.table} ({_COLUMNS}) VALUES ({marks}) RETURNING position, {_COLUMNS}"  # noqa: S608
        link = f"INSERT INTO {CHAIN_TABLE} (position, head) VALUES (%s, %s)"  # noqa: S608
        from psycopg.pq import TransactionStatus

        rows = [self._row(e) for e in entries]
        with self.pool.connection() as c:
            c.autocommit = True  # BEGIN and COMMIT are ours, each in a round trip with other statements
            try:
                cur = c.cursor()
                cur.execute(
                    f"BEGIN; LOCK TABLE {CHAIN_TABLE} IN EXCLUSIVE MODE;"  # noqa: S608
                    f" SELECT head FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1"
                )
                while cur.nextset():  # to the last statement's result: the head
                    pass
                last = cur.fetchone()
                head = bytes(last[0]) if last else CHAIN_START
                links = []
                for stored in self._insert_returning(c, sql, rows):
                    head = chain_link(head, chain_record(stored))
                    links.append((stored[0], head))
                with c.pipeline():
                    cur.executemany(link, links)
                    cur.execute("COMMIT")
            except BaseException:
                if not c.closed and c.info.transaction_status != TransactionStatus.IDLE:
                    c.execute("ROLLBACK")
                raise
            finally:
                if not c.closed and c.info.transaction_status == TransactionStatus.IDLE:
                    c.autocommit = False  # as the pool gave it (the other methods rely on it)

    def _insert_returning(self, c: Any, sql: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        # one pipelined round trip for the whole group, not one per row
        cur = c.cursor()
        cur.executemany(sql, rows, returning=True)
        out = []
        while True:
            out.append(tuple(cur.fetchone()))
            if not cur.nextset():
                return out

    def close(self) -> None:
        self.pool.close()
