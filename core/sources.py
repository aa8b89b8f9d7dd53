"""The source rows' own store: sealed, keyed, apart from the case record, deleted after the retention.

Each uploaded row is one table row: the list kind, the uploading agency, when it was loaded and
when it expires, the row's keyed blind indexes (ID number; name with birth date: HMAC under the
deployment's blind-index key, ``core.blind_index``) and the row itself sealed (AES-256-GCM)
under a data key of the upload's own (the keystore, subject = the upload id). Nothing else: no
name, number, category or place in the clear, so an unmatched row reveals nothing in the
database files. ``purge`` deletes the rows whose retention ended and destroys the upload's key,
so a copy of the file in a backup or WAL is unreadable too. Only findings enter the case record.

One SQLite file (``sources.sqlite``) in the embedded default; the ``smd_source_rows`` table on
PostgreSQL.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.sqlite_files import ThreadConnections
from domain.sources import ListKind, SourceRow

SOURCES_FILE = "sources.sqlite"
SEAL_ALG = "AES-256-GCM/v1"
_NONCE = 12


class _Sealed(msgspec.Struct, array_like=True):
    name: str
    birth_date: date | None
    id_number: str | None
    org_unit: str
    category: str | None
    status: str | None
    occurred_on: date | None = None  # added with the incident and dispute records (older rows: absent)


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A live source row, unsealed for the reconciliation."""

    row_id: int
    upload_id: UUID
    kind: ListKind
    agency_id: str
    loaded_at: datetime
    expires_at: datetime
    id_index: str | None
    name_index: str | None
    row: SourceRow


def _aad(upload_id: UUID, kind: str) -> bytes:
    return b"smd-source-row|" + upload_id.bytes + b"|" + kind.encode()


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


class SourceStore(Protocol):
    """Append an upload's rows, read the live ones, delete the expired."""

    def add(
        self,
        upload_id: UUID,
        kind: ListKind,
        agency_id: str,
        loaded_at: datetime,
        expires_at: datetime,
        rows: list[tuple[str | None, str | None, bytes]],
    ) -> None: ...

    def live(self, now: datetime) -> list[tuple[Any, ...]]: ...

    def expired_uploads(self, now: datetime) -> list[UUID]: ...

    def delete_expired(self, now: datetime) -> int: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


_COLUMNS = "row_id, upload_id, kind, agency_id, loaded_at, expires_at, id_index, name_index, sealed"


class _SqlSourceStore:
    mark = "?"
    table = "smd_source_rows"

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        raise NotImplementedError
        yield

    def _at(self, at: datetime) -> Any:
        return _utc(at).isoformat()

    def add(
        self,
        upload_id: UUID,
        kind: ListKind,
        agency_id: str,
        loaded_at: datetime,
        expires_at: datetime,
        rows: list[tuple[str | None, str | None, bytes]],
    ) -> None:
        m = self.mark
        sql = (
            f"INSERT INTO {self.table} (upload_id, kind, agency_id, loaded_at, expires_at, id_index,"  # noqa: S608
            f" name_index, sealed) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}, {m})"
        )
        with self._tx() as c:
            for id_index, name_index, sealed in rows:
                c.execute(
                    sql,
                    (
                        str(upload_id),
                        kind.value,
                        agency_id,
                        self._at(loaded_at),
                        self._at(expires_at),
                        id_index,
                        name_index,
                        sealed,
                    ),
                )

    def live(self, now: datetime) -> list[tuple[Any, ...]]:
        sql = f"SELECT {_COLUMNS} FROM {self.table} WHERE expires_at > {self.mark} ORDER BY row_id"  # noqa: S608
        with self._tx() as c:
            return [tuple(r) for r in c.execute(sql, (self._at(now),)).fetchall()]

    def expired_uploads(self, now: datetime) -> list[UUID]:
        sql = f"SELECT DISTINCT upload_id FROM {self.table} WHERE expires_at <= {self.mark}"  # noqa: S608
        with self._tx() as c:
            return [UUID(str(r[0])) for r in c.execute(sql, (self._at(now),)).fetchall()]

    def delete_expired(self, now: datetime) -> int:
        sql = f"DELETE FROM {self.table} WHERE expires_at <= {self.mark}"  # noqa: S608
        with self._tx() as c:
            return c.execute(sql, (self._at(now),)).rowcount or 0

    def count(self) -> int:
        with self._tx() as c:
            return int(c.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0])  # noqa: S608


class SQLiteSourceStore(_SqlSourceStore):
    """Source rows in their own SQLite file (the embedded default)."""

    def __init__(self, path: Path) -> None:
        # secure_delete: a deleted row's bytes are overwritten in the file, not left on free pages
        self._connections = ThreadConnections(path, "PRAGMA secure_delete=ON")
        self._connections.get().execute(
            """CREATE TABLE IF NOT EXISTS smd_source_rows (
                row_id INTEGER PRIMARY KEY AUTOINCREMENT, upload_id TEXT NOT NULL, kind TEXT NOT NULL,
                agency_id TEXT NOT NULL, loaded_at TEXT NOT NULL, expires_at TEXT NOT NULL,
                id_index TEXT, name_index TEXT, sealed BLOB NOT NULL)"""
        )

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._connections.transaction()

    def close(self) -> None:
        self._connections.close()


class PostgresSourceStore(_SqlSourceStore):
    """Source rows in their own PostgreSQL table beside the event store."""

    mark = "%s"

    def _at(self, at: datetime) -> Any:
        return _utc(at)

    def __init__(self, conninfo: str) -> None:
        from core.postgres import open_pool

        self.pool = open_pool(conninfo, min_size=0, max_size=2, name="smd-sources")
        with self.pool.connection() as c:
            c.execute(
                """CREATE TABLE IF NOT EXISTS smd_source_rows (
                    row_id BIGSERIAL PRIMARY KEY, upload_id TEXT NOT NULL, kind TEXT NOT NULL,
                    agency_id TEXT NOT NULL, loaded_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL,
                    id_index TEXT, name_index TEXT, sealed BYTEA NOT NULL)"""
            )

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self.pool.connection() as c:
            yield c

    def close(self) -> None:
        self.pool.close()


class SourceRows:
    """Sealing and unsealing over a store: what the reconciliation uses."""

    def __init__(self, store: SourceStore, keystore: Any) -> None:
        self.store = store
        self.keystore = keystore

    def add(
        self,
        upload_id: UUID,
        kind: ListKind,
        agency_id: str,
        loaded_at: datetime,
        expires_at: datetime,
        rows: list[tuple[SourceRow, str | None, str | None]],
    ) -> None:
        """Seal each row under the upload's key and store it with its blind indexes."""
        aead = AESGCM(self.keystore.data_key(upload_id))
        aad = _aad(upload_id, kind.value)
        sealed = []
        for row, id_index, name_index in rows:
            nonce = secrets.token_bytes(_NONCE)
            plain = msgspec.json.encode(
                _Sealed(
                    row.name, row.birth_date, row.id_number, row.org_unit, row.category, row.status, row.occurred_on
                )
            )
            sealed.append((id_index, name_index, nonce + aead.encrypt(nonce, plain, aad)))
        self.store.add(upload_id, kind, agency_id, loaded_at, expires_at, sealed)

    def live(self, now: datetime) -> list[StoredRow]:
        """Every row whose retention has not ended, unsealed (a row whose key is gone is skipped)."""
        found: list[StoredRow] = []
        keys: dict[UUID, bytes | None] = {}
        for r in self.store.live(now):
            upload_id = UUID(str(r[1]))
            if upload_id not in keys:
                keys[upload_id] = self.keystore.existing_data_key(upload_id)
            key = keys[upload_id]
            if key is None:
                continue
            blob = bytes(r[8])
            plain = AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], _aad(upload_id, r[2]))
            s = msgspec.json.decode(plain, type=_Sealed)
            at = [v if isinstance(v, datetime) else datetime.fromisoformat(v) for v in (r[4], r[5])]
            found.append(
                StoredRow(
                    int(r[0]),
                    upload_id,
                    ListKind(r[2]),
                    r[3],
                    at[0],
                    at[1],
                    r[6],
                    r[7],
                    SourceRow(s.name, s.birth_date, s.id_number, s.org_unit, s.category, s.status, s.occurred_on),
                )
            )
        return found

    def purge(self, now: datetime) -> int:
        """Delete the rows whose retention ended and destroy their uploads' keys; how many rows."""
        uploads = self.store.expired_uploads(now)
        deleted = self.store.delete_expired(now)
        for upload_id in uploads:
            self.keystore.destroy(upload_id)
        return deleted
