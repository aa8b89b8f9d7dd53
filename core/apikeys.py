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

Valid keys are cached in each process (a lookup then costs no row read and no hash comparison
against the table), but every lookup first reads one number: the chain's last sequence (below),
which every revocation advances in its own transaction. A changed number empties the cache, so a
revocation by the CLI in another process holds on the very next request of every process.

Every issue and every revocation also appends a record to a hash chain (``api_key_records``),
in the same transaction as the key row: ``smd-apikey/v1 issue <key id> <agency> <alg> <digest>
<issued at>`` or ``smd-apikey/v1 revoke <key id> <revoked at>``, each link
H(0x02 || previous || H(record)). The chain's head goes into every signed checkpoint, so a key
row written with SQL (a key issued outside the service, then used to record "authenticated"
facts) or a revocation undone is named by ``smd verify`` (``key_records_findings``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core.sqlite_files import ThreadConnections
from domain.registry import check_agency_id

RECORD_PREFIX = "smd-apikey/v1"
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
        """Set the revocation time unless already revoked (and chain the revocation)."""

    def records(self) -> list[tuple[int, str, bytes]]:
        """The chained issue and revoke records: (sequence, record, head after it)."""

    def last_seq(self) -> int:
        """The chain's last sequence (0 when empty): it grows with every issue and revocation."""

    def close(self) -> None:
        """Release connections."""


#: Valid keys one process remembers at most (then it starts again from the table).
CACHE_SIZE = 10_000


def issue_record(row: ApiKeyRow) -> str:
    """The chained record of an issue (never changes meaning: chains are kept for decades)."""
    return f"{RECORD_PREFIX} issue {row.key_id} {row.agency_id} {row.alg} {row.digest} {_iso(row.issued_at)}"


def revoke_record(key_id: str, at: datetime) -> str:
    """The chained record of a revocation."""
    return f"{RECORD_PREFIX} revoke {key_id} {_iso(at)}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def next_link(previous: bytes, record: str) -> bytes:
    """The chain's next head: H(0x02 || previous || H(record))."""
    return hashlib.sha256(b"\x02" + previous + hashlib.sha256(record.encode()).digest()).digest()


CHAIN_START = bytes(32)


def derive_hash_key(blind_index_key: bytes) -> bytes:
    """The HMAC key of API key hashes, derived from the blind-index key with its own label."""
    return hmac.new(blind_index_key, HASH_LABEL, hashlib.sha256).digest()


class ApiKeys:
    """Issues, resolves, lists and revokes API keys."""

    def __init__(self, table: ApiKeyTable, hash_key: bytes, clock: Callable[[], datetime] | None = None):
        self.table = table
        self._hash_key = hash_key
        self._clock = clock or (lambda: datetime.now(UTC))
        self._valid: dict[str, ApiKeyInfo] = {}  # digest of a valid key → its key
        self._cached_at_seq: int | None = None  # the chain's last sequence the cache was filled under
        self._lock = threading.Lock()

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
        """The key's agency if the key is known and not revoked, else None.

        Reads the chain's last sequence on every call; the key's row only when the key is not
        cached under that sequence."""
        match = _KEY.match(key)
        if match is None:
            return None
        seq = self.table.last_seq()
        digest = self._digest(key)
        with self._lock:
            if seq != self._cached_at_seq:
                self._valid.clear()  # a key was issued or revoked since: check every key again
                self._cached_at_seq = seq
            cached = self._valid.get(digest)
        if cached is not None:
            return cached
        row = self.table.get(match.group(1))
        if row is None or row.revoked_at is not None or row.alg != HASH_ALG:
            return None
        if not hmac.compare_digest(row.digest, digest):
            return None
        info = row.info()
        with self._lock:
            # a revocation after the sequence was read empties the cache at the next call
            if seq == self._cached_at_seq:
                if len(self._valid) >= CACHE_SIZE:
                    self._valid.clear()
                self._valid[digest] = info
        return info

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

    def records(self) -> list[tuple[int, str, bytes]]:
        """The chain of issue and revoke records: (sequence, record, head after it)."""
        return self.table.records()

    def chain_head(self) -> tuple[int, bytes]:
        """How many records, and the chain's head (for every checkpoint)."""
        records = self.table.records()
        return (len(records), records[-1][2]) if records else (0, CHAIN_START)

    def close(self) -> None:
        """Release the table's connections."""
        self.table.close()


def key_records_findings(keys: ApiKeys) -> list[str]:
    """What does not match between the key rows and the chained records (empty: all matches)."""
    out: list[str] = []
    head = CHAIN_START
    issued: dict[str, str] = {}
    revoked: dict[str, str] = {}
    for seq, record, stored_head in keys.records():
        head = next_link(head, record)
        if head != stored_head:
            out.append(f"api-key record {seq}: the chain breaks here (a record altered, inserted or deleted)")
            return out
        parts = record.split(" ")
        if parts[1] == "issue":
            issued[parts[2]] = record
        elif parts[1] == "revoke":
            revoked[parts[2]] = parts[3]
    for row in keys.table.rows(None):
        if issued.get(row.key_id) != issue_record(row):
            what = (
                "has no chained issue record" if row.key_id not in issued else "differs from its chained issue record"
            )
            out.append(f"api key {row.key_id} of {row.agency_id} {what}: written outside the service")
        at = None if row.revoked_at is None else _iso(row.revoked_at)
        if revoked.get(row.key_id) != at:
            out.append(f"api key {row.key_id} of {row.agency_id}: its revocation differs from the chained record")
    keys_known = {r.key_id for r in keys.table.rows(None)}
    for key_id in issued.keys() - keys_known:
        out.append(f"api key {key_id}: chained as issued, but its row is gone")
    return out


def _adopt(c: Any, append: Callable[[Any, str], None], row: ApiKeyRow) -> None:
    """Chain a key issued before keys were chained (once: the first start with an empty chain;
    an emptied chain afterwards no longer matches the heads in the signed checkpoints)."""
    append(c, issue_record(row))
    if row.revoked_at is not None:
        append(c, revoke_record(row.key_id, row.revoked_at))


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
            c.execute(
                "CREATE TABLE IF NOT EXISTS api_key_records (seq INTEGER PRIMARY KEY, record TEXT NOT NULL,"
                " head BLOB NOT NULL)"
            )
        with self._tx() as c:
            if c.execute("SELECT count(*) FROM api_key_records").fetchone()[0] == 0:
                for r in c.execute(
                    "SELECT key_id, agency_id, alg, digest, issued_at, revoked_at FROM api_keys"
                    " ORDER BY issued_at, key_id"
                ).fetchall():
                    _adopt(c, self._append, _row(r, datetime.fromisoformat))

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        yield self._connections.get()

    def _tx(
        self,
    ) -> AbstractContextManager[sqlite3.Connection]:  # one writer: the chain's head is read and extended atomically
        return self._connections.transaction()

    @staticmethod
    def _append(c: sqlite3.Connection, record: str) -> None:
        last = c.execute("SELECT seq, head FROM api_key_records ORDER BY seq DESC LIMIT 1").fetchone()
        seq, head = (int(last[0]) + 1, bytes(last[1])) if last else (1, CHAIN_START)
        c.execute("INSERT INTO api_key_records VALUES (?, ?, ?)", (seq, record, next_link(head, record)))

    def last_seq(self) -> int:
        with self._conn() as c:
            return int(c.execute("SELECT coalesce(max(seq), 0) FROM api_key_records").fetchone()[0])

    def records(self) -> list[tuple[int, str, bytes]]:
        with self._conn() as c:
            rs = c.execute("SELECT seq, record, head FROM api_key_records ORDER BY seq").fetchall()
        return [(int(a), str(b), bytes(h)) for a, b, h in rs]

    def insert(self, row: ApiKeyRow) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO api_keys (key_id, agency_id, alg, digest, issued_at) VALUES (?,?,?,?,?)",
                (row.key_id, row.agency_id, row.alg, row.digest, row.issued_at.isoformat()),
            )
            self._append(c, issue_record(row))

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
        with self._tx() as c:
            cur = c.execute(
                "UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL",
                (at.isoformat(), key_id),
            )
            if cur.rowcount == 1:
                self._append(c, revoke_record(key_id, at))

    def close(self) -> None:
        self._connections.close()


def _same(value: datetime) -> datetime:
    return value


class PostgresApiKeyTable:
    """Key hashes in the PostgreSQL table ``smd_api_keys``, beside the event tables."""

    def __init__(self, conninfo: str, min_size: int = 1, max_size: int = 4):
        from core.postgres import open_pool

        # every write is in an explicit transaction: the sequence read on each request is one round trip
        self.pool = open_pool(conninfo, min_size=min_size, max_size=max_size, name="smd-api-keys", autocommit=True)
        with self.pool.connection() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS smd_api_keys (key_id text PRIMARY KEY,"
                " agency_id text NOT NULL, alg text NOT NULL, digest text NOT NULL,"
                " issued_at timestamptz NOT NULL, revoked_at timestamptz)"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS smd_api_key_records (seq bigint PRIMARY KEY, record text NOT NULL,"
                " head bytea NOT NULL)"
            )
        with self.pool.connection() as c, c.transaction():
            c.execute("LOCK TABLE smd_api_key_records IN EXCLUSIVE MODE")
            if c.execute("SELECT count(*) FROM smd_api_key_records").fetchone()[0] == 0:
                for r in c.execute(
                    "SELECT key_id, agency_id, alg, digest, issued_at, revoked_at FROM smd_api_keys"
                    " ORDER BY issued_at, key_id"
                ).fetchall():
                    _adopt(c, self._append, _row(r, _same))

    @staticmethod
    def _append(c: Any, record: str) -> None:
        # the lock serialises writers of the chain (a second issue waits for the first's commit)
        c.execute("LOCK TABLE smd_api_key_records IN EXCLUSIVE MODE")
        last = c.execute("SELECT seq, head FROM smd_api_key_records ORDER BY seq DESC LIMIT 1").fetchone()
        seq, head = (int(last[0]) + 1, bytes(last[1])) if last else (1, CHAIN_START)
        c.execute("INSERT INTO smd_api_key_records VALUES (%s, %s, %s)", (seq, record, next_link(head, record)))

    def last_seq(self) -> int:
        with self.pool.connection() as c:
            row = c.execute("SELECT coalesce(max(seq), 0) FROM smd_api_key_records").fetchone()
        return int(row[0])

    def records(self) -> list[tuple[int, str, bytes]]:
        with self.pool.connection() as c:
            rs = c.execute("SELECT seq, record, head FROM smd_api_key_records ORDER BY seq").fetchall()
        return [(int(a), str(b), bytes(h)) for a, b, h in rs]

    def insert(self, row: ApiKeyRow) -> None:
        with self.pool.connection() as c, c.transaction():
            c.execute(
                "INSERT INTO smd_api_keys (key_id, agency_id, alg, digest, issued_at) VALUES (%s,%s,%s,%s,%s)",
                (row.key_id, row.agency_id, row.alg, row.digest, row.issued_at),
            )
            self._append(c, issue_record(row))

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
        with self.pool.connection() as c, c.transaction():
            cur = c.execute(
                "UPDATE smd_api_keys SET revoked_at=%s WHERE key_id=%s AND revoked_at IS NULL",
                (at, key_id),
            )
            if cur.rowcount == 1:
                self._append(c, revoke_record(key_id, at))

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
