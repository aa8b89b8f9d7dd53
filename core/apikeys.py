"""API keys: one or more per agency, stored only as a keyed hash, revocable at once.

Key format (shown once, at issue)::

    smd_<key id: 12 hex>_<secret: 43 urlsafe base64 characters = 32 random bytes>

The key id is public: ``smd keys list`` shows it and ``smd keys revoke`` takes it; a holder can
read it off the key to say which key to revoke. The store keeps the key id, the agency id, the
issue and revocation times and HMAC-SHA256 of the whole key under a key derived from
SMD_BLIND_INDEX_KEY with its own label. The secret has 256 random bits, so a keyed fast hash is
enough (a slow hash protects guessable passwords); the HMAC key means a stolen table cannot even
confirm a guess. A key is bound to the agency id only: kind, region and jurisdiction come from
the registry at each request.

Every lookup reads the table (no cache): a revocation by the CLI in another process holds on
the very next request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core.sqlite_files import ThreadConnections
from domain.registry import check_agency_id

HASH_ALG = "HMAC-SHA256"
HASH_LABEL = b"smd/api-key-hash/v1"  # distinct from every other use of the blind-index key
KEY_PREFIX = "smd"
API_KEYS_FILE = "api-keys.sqlite"
_KEY = re.compile(r"^smd_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def key_id_of(key: str) -> str | None:
    """The public key id of a well-formed key (whether or not it is valid), else None."""
    match = _KEY.match(key)
    return match.group(1) if match else None


class UnknownApiKey(Exception):
    """No key has this id."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key with id {key_id!r}; list the keys with: smd keys list")


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What may be shown about a key: never the key, never its hash."""

    key_id: str
    agency_id: str
    issued_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just issued: the only time the key itself exists outside its holder."""

    key_id: str
    agency_id: str
    key: str
    issued_at: datetime

    def __repr__(self) -> str:  # never print the key by accident
        return f"IssuedKey({self.key_id!r}, agency={self.agency_id!r})"


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """A key as stored."""

    key_id: str
    agency_id: str
    alg: str
    digest: str  # hex
    issued_at: datetime
    revoked_at: datetime | None

    def info(self) -> ApiKeyInfo:
        """The public part."""
        return ApiKeyInfo(self.key_id, self.agency_id, self.issued_at, self.revoked_at)


class ApiKeyTable(Protocol):
    """Where key hashes are stored."""

    def insert(self, row: ApiKeyRow) -> None:
        """Store a new key (ids are random; a collision is an error)."""

    def get(self, key_id: str) -> ApiKeyRow | None:
        """The key's row, or None."""

    def rows(self, agency_id: str | None) -> list[ApiKeyRow]:
        """All rows, or one agency's, by issue time."""

    def revoke(self, key_id: str, at: datetime) -> None:
        """Set the revocation time unless already revoked."""

    def close(self) -> None:
        """Release connections."""


def derive_hash_key(blind_index_key: bytes) -> bytes:
    """The HMAC key of API key hashes, derived from the blind-index key with its own label."""
    return hmac.new(blind_index_key, HASH_LABEL, hashlib.sha256).digest()


class ApiKeys:
    """Issues, resolves, lists and revokes API keys."""

    def __init__(self, table: ApiKeyTable, hash_key: bytes, clock: Callable[[], datetime] | None = None):
        self.table = table
        self._hash_key = hash_key
        self._clock = clock or (lambda: datetime.now(UTC))

    def _digest(self, key: str) -> str:
        return hmac.new(self._hash_key, key.encode(), hashlib.sha256).hexdigest()

    def issue(self, agency_id: str) -> IssuedKey:
        """A new key for the agency; the key is returned once and never stored."""
        check_agency_id(agency_id)
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        now = self._clock()
        self.table.insert(ApiKeyRow(key_id, agency_id, HASH_ALG, self._digest(key), now, None))
        return IssuedKey(key_id=key_id, agency_id=agency_id, key=key, issued_at=now)

    def lookup(self, key: str) -> ApiKeyInfo | None:
        """The key's agency if the key is known and not revoked, else None (reads the table)."""
        match = _KEY.match(key)
        if match is None:
            return None
        row = self.table.get(match.group(1))
        if row is None or row.revoked_at is not None or row.alg != HASH_ALG:
            return None
        if not hmac.compare_digest(row.digest, self._digest(key)):
            return None
        return row.info()

    def list(self, agency_id: str | None = None) -> list[ApiKeyInfo]:
        """Every key (or one agency's), revoked ones included."""
        return [r.info() for r in self.table.rows(agency_id)]

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key from now on; revoking it again changes nothing."""
        self.table.revoke(key_id, self._clock())
        row = self.table.get(key_id)
        if row is None:
            raise UnknownApiKey(key_id)
        return row.info()

    def close(self) -> None:
        """Release the table's connections."""
        self.table.close()


def _row(r: Any, parse: Callable[[Any], datetime]) -> ApiKeyRow:
    return ApiKeyRow(r[0], r[1], r[2], r[3], parse(r[4]), None if r[5] is None else parse(r[5]))


class SQLiteApiKeyTable:
    """Key hashes in their own SQLite file (the embedded default)."""

    def __init__(self, path: Path):
        self.path = path
        self._connections = ThreadConnections(path)
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY,"
                " agency_id TEXT NOT NULL, alg TEXT NOT NULL, digest TEXT NOT NULL,"
                " issued_at TEXT NOT NULL, revoked_at TEXT)"
            )

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        yield self._connections.get()

    def insert(self, row: ApiKeyRow) -> None:
        with self._conn() as c:
            c.execute(
                "INSERT INTO api_keys (key_id, agency_id, alg, digest, issued_at) VALUES (?,?,?,?,?)",
                (row.key_id, row.agency_id, row.alg, row.digest, row.issued_at.isoformat()),
            )

    def get(self, key_id: str) -> ApiKeyRow | None:
        with self._conn() as c:
            r = c.execute(
                "SELECT key_id, agency_id, alg, digest, issued_at, revoked_at FROM api_keys WHERE key_id=?",
                (key_id,),
            ).fetchone()
        return None if r is None else _row(r, datetime.fromisoformat)

    def rows(self, agency_id: str | None) -> list[ApiKeyRow]:
        with self._conn() as c:
            rs = c.execute(
                "SELECT key_id, agency_id, alg, digest, issued_at, revoked_at FROM api_keys"
                " WHERE ? IS NULL OR agency_id=? ORDER BY issued_at, key_id",
                (agency_id, agency_id),
            ).fetchall()
        return [_row(r, datetime.fromisoformat) for r in rs]

    def revoke(self, key_id: str, at: datetime) -> None:
        with self._conn() as c:
            c.execute(
                "UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL",
                (at.isoformat(), key_id),
            )

    def close(self) -> None:
        self._connections.close()


def _same(value: datetime) -> datetime:
    return value


class PostgresApiKeyTable:
    """Key hashes in the PostgreSQL table ``smd_api_keys``, beside the event tables."""

    def __init__(self, conninfo: str, min_size: int = 1, max_size: int = 4):
        from core.postgres import open_pool

        self.pool = open_pool(conninfo, min_size=min_size, max_size=max_size, name="smd-api-keys")
        with self.pool.connection() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS smd_api_keys (key_id text PRIMARY KEY,"
                " agency_id text NOT NULL, alg text NOT NULL, digest text NOT NULL,"
                " issued_at timestamptz NOT NULL, revoked_at timestamptz)"
            )

    def insert(self, row: ApiKeyRow) -> None:
        with self.pool.connection() as c:
            c.execute(
                "INSERT INTO smd_api_keys (key_id, agency_id, alg, digest, issued_at) VALUES (%s,%s,%s,%s,%s)",
                (row.key_id, row.agency_id, row.alg, row.digest, row.issued_at),
            )

    def get(self, key_id: str) -> ApiKeyRow | None:
        with self.pool.connection() as c:
            r = c.execute(
                "SELECT key_id, agency_id, alg, digest, issued_at, revoked_at FROM smd_api_keys WHERE key_id=%s",
                (key_id,),
            ).fetchone()
        return None if r is None else _row(r, _same)

    def rows(self, agency_id: str | None) -> list[ApiKeyRow]:
        with self.pool.connection() as c:
            rs = c.execute(
                "SELECT key_id, agency_id, alg, digest, issued_at, revoked_at FROM smd_api_keys"
                " WHERE %s::text IS NULL OR agency_id=%s ORDER BY issued_at, key_id",
                (agency_id, agency_id),
            ).fetchall()
        return [_row(r, _same) for r in rs]

    def revoke(self, key_id: str, at: datetime) -> None:
        with self.pool.connection() as c:
            c.execute(
                "UPDATE smd_api_keys SET revoked_at=%s WHERE key_id=%s AND revoked_at IS NULL",
                (at, key_id),
            )

    def close(self) -> None:
        self.pool.close()


def open_apikeys(data_dir: Path, conninfo: str | None, blind_index_key: bytes) -> ApiKeys:
    """API keys on PostgreSQL (``conninfo``) or, without it, in a SQLite file in ``data_dir``."""
    if conninfo is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        table: ApiKeyTable = SQLiteApiKeyTable(Path(data_dir) / API_KEYS_FILE)
    else:
        table = PostgresApiKeyTable(conninfo)
    return ApiKeys(table, derive_hash_key(blind_index_key))
