"""Per-subject data keys, wrapped by a master key (DESIGN.md section 7).

Each data subject (a patient, later a suspected case) has its own random 256-bit data key. The
store keeps only the key *wrapped* (encrypted) by a master key, with the algorithm ids and the
master key's id beside it, so that:

- erasure is destroying one row (later issue): every sealed value of that subject becomes
  unreadable everywhere, events and snapshots alike, and nothing else changes;
- master-key rotation re-wraps rows without touching a single event (``core.key_rotation``);
- algorithms can change (SM4 for 密评 deployments) because every row names its own.

Keys live outside the event tables (SQLite: their own file; PostgreSQL: their own table), so the
hash chain over events never covers them and deleting a key never rewrites an event. On
PostgreSQL a new subject's key is written in the same transaction as the subject's first events
(``KeyStore.deferred``): no transaction of its own, and no key without the events it seals.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.sqlite_files import ThreadConnections

#: Algorithm ids stored beside keys and sealed values. Never change the meaning of one.
DATA_KEY_ALG = "AES-256-GCM"
WRAP_ALG = "AES-256-GCM-KW1"  # AES-GCM with a 96-bit random nonce; AAD binds subject and ids
NONCE_BYTES = 12


class KeyStoreError(Exception):
    """A key could not be unwrapped or stored; the message says which and why."""


@dataclass(frozen=True, slots=True)
class MasterKey:
    """A key-encryption key, named so every wrapped row can say which one wraps it."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"MasterKey({self.key_id!r})"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key as stored: wrapped, with its algorithm ids and master key id."""

    subject_id: UUID
    alg: str
    wrap_alg: str
    master_key_id: str
    wrapped: bytes
    created_at: datetime


class KeyTable(Protocol):
    """Where wrapped keys are stored: insert-if-absent, read, list, delete."""

    def insert_if_absent(self, row: WrappedKey) -> None:
        """Store the row unless the subject already has a key (first writer wins)."""

    def get(self, subject_id: UUID) -> WrappedKey | None:
        """The subject's wrapped key, or None (never created, or destroyed)."""

    def rows_wrapped_by(self, master_key_id: str, limit: int) -> list[WrappedKey]:
        """Up to ``limit`` rows wrapped by the master key ``master_key_id`` (key rotation, decision 007)."""

    def update_wrapped(self, rows: Sequence[WrappedKey], from_master_key_id: str) -> int:
        """Replace each row's wrapping, in one transaction, only where it is still ``from_master_key_id``."""

    def master_key_counts(self) -> dict[str, int]:
        """How many rows each master key wraps."""

    def delete(self, subject_id: UUID) -> bool:
        """Destroy the subject's key row (erasure); False when there was none."""

    def close(self) -> None:
        """Release connections."""


def _aad(subject_id: UUID, alg: str, master_key_id: str) -> bytes:
    return b"smd-key|" + subject_id.bytes + b"|" + alg.encode() + b"|" + master_key_id.encode()


def wrap(master: MasterKey, subject_id: UUID, data_key: bytes) -> WrappedKey:
    """Wrap a data key under the master key, bound to its subject."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(master.secret).encrypt(nonce, data_key, _aad(subject_id, DATA_KEY_ALG, master.key_id))
    return WrappedKey(
        subject_id=subject_id,
        alg=DATA_KEY_ALG,
        wrap_alg=WRAP_ALG,
        master_key_id=master.key_id,
        wrapped=nonce + sealed,
        created_at=datetime.now(UTC),
    )


def unwrap(masters: dict[str, MasterKey], row: WrappedKey) -> bytes:
    """Unwrap a stored data key with the master key its row names."""
    if row.wrap_alg != WRAP_ALG:
        raise KeyStoreError(f"data key of {row.subject_id}: unsupported wrap algorithm {row.wrap_alg!r}")
    master = masters.get(row.master_key_id)
    if master is None:
        raise KeyStoreError(
            f"data key of {row.subject_id} is wrapped by master key {row.master_key_id!r}, "
            "which this process was not given (set SMD_MASTER_KEY / SMD_MASTER_KEY_ID, or, during a "
            "rotation, SMD_MASTER_KEY_PREVIOUS / SMD_MASTER_KEY_PREVIOUS_ID)"
        )
    nonce, sealed = row.wrapped[:NONCE_BYTES], row.wrapped[NONCE_BYTES:]
    try:
        return AESGCM(master.secret).decrypt(nonce, sealed, _aad(row.subject_id, row.alg, row.master_key_id))
    except Exception:
        raise KeyStoreError(
            f"data key of {row.subject_id} does not unwrap with master key {row.master_key_id!r} "
            "(wrong key material, or the row was altered)"
        ) from None


class DeferredKeys:
    """New data keys created while events are being stored, written by the store's own
    transaction (``insert``, called by the PostgreSQL recorder with its cursor)."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name
        self.keys: dict[UUID, tuple[bytes, WrappedKey]] = {}

    def __bool__(self) -> bool:
        return bool(self.keys)

    def insert(self, cursor: Any) -> None:
        """Insert the new keys with the events' cursor. No ``ON CONFLICT``: a key written by
        another writer meanwhile fails the whole transaction, which is then decided again."""
        rows = [
            (r.subject_id, r.alg, r.wrap_alg, r.master_key_id, r.wrapped, r.created_at) for _, r in self.keys.values()
        ]
        cursor.executemany(f"INSERT INTO {self.table_name} ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s)", rows)


class KeyStore:
    """Creates, wraps, unwraps and caches per-subject data keys."""

    def __init__(
        self, table: KeyTable, current: MasterKey, others: tuple[MasterKey, ...] = (), cache_size: int = 10_000
    ):
        self.table = table
        self.current = current
        self.masters = {m.key_id: m for m in (current, *others)}
        self._cache: OrderedDict[UUID, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._local = threading.local()  # this thread's DeferredKeys while it stores events

    @contextmanager
    def deferred(self) -> Iterator[DeferredKeys | None]:
        """While storing events in this thread: new keys are kept for the store's transaction
        (None when this table cannot join it: SQLite keeps keys in a file of their own). The
        keys are cached only if the block ends without an error (the transaction committed)."""
        table_name = getattr(self.table, "table", None)
        if not isinstance(self.table, PostgresKeyTable) or table_name is None:
            yield None
            return
        pending = DeferredKeys(table_name)
        self._local.pending = pending
        try:
            yield pending
        finally:
            self._local.pending = None
        with self._lock:
            for subject_id, (key, _) in pending.keys.items():
                self._remember(subject_id, key)

    def data_key(self, subject_id: UUID) -> bytes:
        """The subject's data key, created (and stored wrapped) on first use."""
        key = self.existing_data_key(subject_id)
        if key is not None:
            return key
        pending: DeferredKeys | None = getattr(self._local, "pending", None)
        if pending is not None:  # written by the transaction that stores the events it seals
            key = secrets.token_bytes(32)
            pending.keys[subject_id] = (key, wrap(self.current, subject_id, key))
            return key
        self.table.insert_if_absent(wrap(self.current, subject_id, secrets.token_bytes(32)))
        key = self.existing_data_key(subject_id)  # re-read: a concurrent creator may have won
        if key is None:
            raise KeyStoreError(f"data key of {subject_id} vanished right after it was stored")
        return key

    def existing_data_key(self, subject_id: UUID) -> bytes | None:
        """The subject's data key, or None when it never existed or was destroyed."""
        pending: DeferredKeys | None = getattr(self._local, "pending", None)
        if pending is not None and subject_id in pending.keys:
            return pending.keys[subject_id][0]
        with self._lock:
            key = self._cache.get(subject_id)
            if key is not None:
                self._cache.move_to_end(subject_id)
                return key
        row = self.table.get(subject_id)
        if row is None:
            return None
        key = unwrap(self.masters, row)
        with self._lock:
            self._remember(subject_id, key)
        return key

    def preload(self, subject_ids: Sequence[UUID]) -> None:
        """Cache the existing data keys of these subjects not cached yet, read in one query (a
        page that reads patients not cached would otherwise read each one's key alone). A key
        destroyed or never made is not cached: its values read as erased, as ever."""
        with self._lock:
            missing = [s for s in subject_ids if s not in self._cache]
        get_many = getattr(self.table, "get_many", None)
        if not missing or get_many is None:
            return
        rows = get_many(missing[: self._cache_size])
        keys = [(row.subject_id, unwrap(self.masters, row)) for row in rows]
        with self._lock:
            for subject_id, key in keys:
                self._remember(subject_id, key)

    def destroy(self, subject_id: UUID) -> bool:
        """Erasure: delete the subject's key row and forget it here; every value sealed under it
        reads as erased from now on (decision 004). Another process that cached the key keeps it
        until it is restarted or the key leaves its cache (docs/decisions/030)."""
        with self._lock:
            self._cache.pop(subject_id, None)
        return self.table.delete(subject_id)

    def _remember(self, subject_id: UUID, key: bytes) -> None:
        self._cache[subject_id] = key
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def close(self) -> None:
        """Release the table's connections."""
        self.table.close()


_COLUMNS = "subject_id, alg, wrap_alg, master_key_id, wrapped, created_at"


class SQLiteKeyTable:
    """Wrapped keys in their own SQLite file (the embedded default)."""

    def __init__(self, path: Path):
        self.path = path
        # secure_delete: a destroyed key must not linger in free pages
        self._connections = ThreadConnections(path, "PRAGMA secure_delete=ON")
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS data_keys (subject_id TEXT PRIMARY KEY, alg TEXT NOT NULL,"
                " wrap_alg TEXT NOT NULL, master_key_id TEXT NOT NULL, wrapped BLOB NOT NULL,"
                " created_at TEXT NOT NULL)"
            )
            c.execute("CREATE INDEX IF NOT EXISTS data_keys_master_key_id ON data_keys (master_key_id)")

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        yield self._connections.get()

    def insert_if_absent(self, row: WrappedKey) -> None:
        with self._conn() as c:
            c.execute(
                f"INSERT INTO data_keys ({_COLUMNS}) VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (
                    str(row.subject_id),
                    row.alg,
                    row.wrap_alg,
                    row.master_key_id,
                    row.wrapped,
                    row.created_at.isoformat(),
                ),
            )

    def get(self, subject_id: UUID) -> WrappedKey | None:
        with self._conn() as c:
            r = c.execute(f"SELECT {_COLUMNS} FROM data_keys WHERE subject_id=?", (str(subject_id),)).fetchone()
        if r is None:
            return None
        return WrappedKey(UUID(r[0]), r[1], r[2], r[3], bytes(r[4]), datetime.fromisoformat(r[5]))

    def get_many(self, subject_ids: Sequence[UUID]) -> list[WrappedKey]:
        """The rows of those of these subjects that have one (500 ids a query: SQLite's bound
        parameters)."""
        out = []
        ids = [str(s) for s in subject_ids]
        with self._conn() as c:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                rows = c.execute(f"SELECT {_COLUMNS} FROM data_keys WHERE subject_id IN ({marks})", part).fetchall()
                out += [
                    WrappedKey(UUID(r[0]), r[1], r[2], r[3], bytes(r[4]), datetime.fromisoformat(r[5])) for r in rows
                ]
        return out

    def rows_wrapped_by(self, master_key_id: str, limit: int) -> list[WrappedKey]:
        with self._conn() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM data_keys WHERE master_key_id=? ORDER BY subject_id LIMIT ?",
                (master_key_id, limit),
            ).fetchall()
        return [WrappedKey(UUID(r[0]), r[1], r[2], r[3], bytes(r[4]), datetime.fromisoformat(r[5])) for r in rows]

    def update_wrapped(self, rows: Sequence[WrappedKey], from_master_key_id: str) -> int:
        with self._conn() as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                done = sum(
                    c.execute(
                        "UPDATE data_keys SET wrap_alg=?, master_key_id=?, wrapped=?"
                        " WHERE subject_id=? AND master_key_id=?",
                        (r.wrap_alg, r.master_key_id, r.wrapped, str(r.subject_id), from_master_key_id),
                    ).rowcount
                    for r in rows
                )
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
        return done

    def master_key_counts(self) -> dict[str, int]:
        with self._conn() as c:
            return dict(c.execute("SELECT master_key_id, count(*) FROM data_keys GROUP BY master_key_id").fetchall())

    def delete(self, subject_id: UUID) -> bool:
        with self._conn() as c:
            gone = c.execute("DELETE FROM data_keys WHERE subject_id=?", (str(subject_id),)).rowcount > 0
        with self._conn() as c:  # the old page must not stay in the write-ahead log either
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    def close(self) -> None:
        self._connections.close()


class PostgresKeyTable:
    """Wrapped keys in their own PostgreSQL table, beside (never inside) the event tables."""

    def __init__(self, conninfo: str, schema: str = "public", min_size: int = 1, max_size: int = 4):
        from core.postgres import open_pool

        self.table = f'"{schema}".smd_data_keys'
        self.pool = open_pool(conninfo, min_size=min_size, max_size=max_size, name="smd-keys")
        with self.pool.connection() as c:
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (subject_id uuid PRIMARY KEY, alg text NOT NULL,"
                " wrap_alg text NOT NULL, master_key_id text NOT NULL, wrapped bytea NOT NULL,"
                " created_at timestamptz NOT NULL)"
            )
            c.execute(f"CREATE INDEX IF NOT EXISTS smd_data_keys_master_key_id ON {self.table} (master_key_id)")

    def insert_if_absent(self, row: WrappedKey) -> None:
        with self.pool.connection() as c:
            c.execute(
                f"INSERT INTO {self.table} ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
                (row.subject_id, row.alg, row.wrap_alg, row.master_key_id, row.wrapped, row.created_at),
            )

    def get(self, subject_id: UUID) -> WrappedKey | None:
        with self.pool.connection() as c:
            r = c.execute(f"SELECT {_COLUMNS} FROM {self.table} WHERE subject_id=%s", (subject_id,)).fetchone()
        if r is None:
            return None
        return WrappedKey(r[0], r[1], r[2], r[3], bytes(r[4]), r[5])

    def get_many(self, subject_ids: Sequence[UUID]) -> list[WrappedKey]:
        """The rows of those of these subjects that have one, in one query."""
        with self.pool.connection() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM {self.table} WHERE subject_id = ANY(%s::uuid[])",
                ("{" + ",".join(s.hex for s in subject_ids) + "}",),
            ).fetchall()
        return [WrappedKey(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def rows_wrapped_by(self, master_key_id: str, limit: int) -> list[WrappedKey]:
        with self.pool.connection() as c:
            rows = c.execute(
                f"SELECT {_COLUMNS} FROM {self.table} WHERE master_key_id=%s ORDER BY subject_id LIMIT %s",
                (master_key_id, limit),
            ).fetchall()
        return [WrappedKey(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def update_wrapped(self, rows: Sequence[WrappedKey], from_master_key_id: str) -> int:
        with self.pool.connection() as c:  # one transaction: committed on leaving the block
            return sum(
                c.execute(
                    f"UPDATE {self.table} SET wrap_alg=%s, master_key_id=%s, wrapped=%s"
                    " WHERE subject_id=%s AND master_key_id=%s",
                    (r.wrap_alg, r.master_key_id, r.wrapped, r.subject_id, from_master_key_id),
                ).rowcount
                for r in rows
            )

    def master_key_counts(self) -> dict[str, int]:
        with self.pool.connection() as c:
            query = f"SELECT master_key_id, count(*) FROM {self.table} GROUP BY master_key_id"
            rows = c.execute(query).fetchall()
        return {r[0]: r[1] for r in rows}

    def delete(self, subject_id: UUID) -> bool:
        with self.pool.connection() as c:  # the row stays in WAL and backups for a while (decision 030)
            return c.execute(f"DELETE FROM {self.table} WHERE subject_id=%s", (subject_id,)).rowcount > 0

    def close(self) -> None:
        self.pool.close()


class MemoryKeyTable:
    """Wrapped keys in a dict: for tests and throwaway in-memory stores only."""

    def __init__(self) -> None:
        self.rows: dict[UUID, WrappedKey] = {}
        self._lock = threading.Lock()

    def insert_if_absent(self, row: WrappedKey) -> None:
        with self._lock:
            self.rows.setdefault(row.subject_id, row)

    def get(self, subject_id: UUID) -> WrappedKey | None:
        return self.rows.get(subject_id)

    def rows_wrapped_by(self, master_key_id: str, limit: int) -> list[WrappedKey]:
        with self._lock:
            rows = [r for r in self.rows.values() if r.master_key_id == master_key_id]
        return sorted(rows, key=lambda r: str(r.subject_id))[:limit]

    def update_wrapped(self, rows: Sequence[WrappedKey], from_master_key_id: str) -> int:
        done = 0
        with self._lock:
            for r in rows:
                old = self.rows.get(r.subject_id)
                if old is not None and old.master_key_id == from_master_key_id:
                    self.rows[r.subject_id] = r
                    done += 1
        return done

    def master_key_counts(self) -> dict[str, int]:
        with self._lock:
            ids = [r.master_key_id for r in self.rows.values()]
        return {k: ids.count(k) for k in set(ids)}

    def delete(self, subject_id: UUID) -> bool:
        with self._lock:
            return self.rows.pop(subject_id, None) is not None

    def close(self) -> None:
        pass
