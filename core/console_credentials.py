"""Console credentials and console sessions: the governance console's sign-in (docs/decisions/041).

A console credential belongs to one staff member of a governance center or an auditor, is read
only (it opens the console's pages, never an API route) and is never an integration API key::

    smdc_<credential id: 12 hex>_<secret: 43 urlsafe base64 characters = 32 random bytes>

``api.auth`` accepts only ``smd_…`` keys and the console only ``smdc_…`` credentials, so neither
opens the other's door. The store keeps the credential id, the agency, the staff id, the issue
and revocation times and HMAC-SHA256 of the whole credential under a key derived from
SMD_BLIND_INDEX_KEY with its own label (as ``core.apikeys``: 256 random bits need no slow hash).

A session is a signed cookie value (HMAC-SHA256 under another derived key): the credential id,
the agency, the staff id, when it was opened and when it expires, the purpose once given, and a
random CSRF token for the session's forms. Nothing is stored per session: the credential is read
again on every page, so a revocation holds on the next page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from core.sqlite_files import ThreadConnections
from domain.registry import check_agency_id

HASH_ALG = "HMAC-SHA256"
HASH_LABEL = b"smd/console-credential-hash/v1"
SESSION_LABEL = b"smd/console-session/v1"
CONSOLE_FILE = "console-credentials.sqlite"
_CREDENTIAL = re.compile(r"^smdc_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_STAFF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The agency kinds the console is for.
CONSOLE_KINDS = ("governance_center", "auditor")


class UnknownCredential(Exception):
    """No console credential has this id."""

    def __init__(self, credential_id: str) -> None:
        super().__init__(f"no console credential with id {credential_id!r}; list them with: smd console list")


class InvalidStaffId(ValueError):
    """A staff id the console cannot record."""

    def __init__(self, staff_id: str) -> None:
        super().__init__(
            f"staff id {staff_id[:70]!r} is not 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"
        )


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What may be shown about a credential: never the credential, never its hash."""

    credential_id: str
    agency_id: str
    staff_id: str
    issued_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A credential just issued: the only time it exists outside its holder."""

    credential_id: str
    agency_id: str
    staff_id: str
    credential: str

    def __repr__(self) -> str:  # never print the credential by accident
        return f"IssuedCredential({self.credential_id!r}, agency={self.agency_id!r}, staff={self.staff_id!r})"


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """A credential as stored."""

    credential_id: str
    agency_id: str
    staff_id: str
    alg: str
    digest: str
    issued_at: datetime
    revoked_at: datetime | None

    def info(self) -> CredentialInfo:
        return CredentialInfo(self.credential_id, self.agency_id, self.staff_id, self.issued_at, self.revoked_at)


class CredentialTable(Protocol):
    """Where credential hashes are stored."""

    def insert(self, row: CredentialRow) -> None: ...

    def get(self, credential_id: str) -> CredentialRow | None: ...

    def rows(self, agency_id: str | None) -> list[CredentialRow]: ...

    def revoke(self, credential_id: str, at: datetime) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Session:
    """A console session as its signed cookie carries it (times in epoch seconds)."""

    credential_id: str
    agency_id: str
    staff_id: str
    opened: int
    expires: int
    csrf: str
    purpose: str | None = None

    def with_purpose(self, purpose: str) -> Session:
        return replace(self, purpose=purpose)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ConsoleCredentials:
    """Issues, checks, lists and revokes console credentials; seals and opens sessions."""

    def __init__(self, table: CredentialTable, blind_index_key: bytes, clock: Callable[[], datetime] | None = None):
        self.table = table
        self._hash_key = hmac.new(blind_index_key, HASH_LABEL, hashlib.sha256).digest()
        self._session_key = hmac.new(blind_index_key, SESSION_LABEL, hashlib.sha256).digest()
        self._clock = clock or (lambda: datetime.now(UTC))

    def _digest(self, credential: str) -> str:
        return hmac.new(self._hash_key, credential.encode(), hashlib.sha256).hexdigest()

    def issue(self, agency_id: str, staff_id: str) -> IssuedCredential:
        """A new credential for a staff member of the agency; returned once, stored hashed."""
        check_agency_id(agency_id)
        if not _STAFF.match(staff_id):
            raise InvalidStaffId(staff_id)
        credential_id = secrets.token_hex(6)
        credential = f"smdc_{credential_id}_{secrets.token_urlsafe(32)}"
        row = CredentialRow(credential_id, agency_id, staff_id, HASH_ALG, self._digest(credential), self._clock(), None)
        self.table.insert(row)
        return IssuedCredential(credential_id, agency_id, staff_id, credential)

    def check(self, credential: str) -> CredentialInfo | None:
        """The credential's holder if it is known and not revoked, else None."""
        match = _CREDENTIAL.match(credential)
        if match is None:
            return None
        row = self.table.get(match.group(1))
        if row is None or row.revoked_at is not None or row.alg != HASH_ALG:
            return None
        return row.info() if hmac.compare_digest(row.digest, self._digest(credential)) else None

    def current(self, credential_id: str) -> CredentialInfo | None:
        """The credential by id if it is not revoked (read on every console page)."""
        row = self.table.get(credential_id)
        return None if row is None or row.revoked_at is not None else row.info()

    def list(self, agency_id: str | None = None) -> list[CredentialInfo]:
        return [r.info() for r in self.table.rows(agency_id)]

    def revoke(self, credential_id: str) -> CredentialInfo:
        """Revoke from now on (its open sessions end at their next page); again changes nothing."""
        self.table.revoke(credential_id, self._clock())
        row = self.table.get(credential_id)
        if row is None:
            raise UnknownCredential(credential_id)
        return row.info()

    # -- sessions -----------------------------------------------------------------------------------

    def open_session(self, info: CredentialInfo, now: datetime, minutes: int) -> Session:
        """A new session for the credential's holder, expiring ``minutes`` from ``now``."""
        opened = int(now.timestamp())
        return Session(
            info.credential_id,
            info.agency_id,
            info.staff_id,
            opened,
            opened + 60 * minutes,
            _b64(secrets.token_bytes(24)),
        )

    def seal(self, session: Session) -> str:
        """The cookie value: the session as JSON, and its HMAC."""
        body = _b64(json.dumps(list(_fields(session)), separators=(",", ":")).encode())
        return f"{body}.{_b64(hmac.new(self._session_key, body.encode(), hashlib.sha256).digest())}"

    def unseal(self, value: str | None, now: datetime) -> Session | None:
        """The session if the value is ours, unaltered and not expired, else None."""
        if not value or len(value) > 1000 or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            expected = hmac.new(self._session_key, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(mac), expected):
                return None
            session = Session(*json.loads(_unb64(body)))
        except (ValueError, TypeError):
            return None
        return session if now.timestamp() < session.expires else None

    def close(self) -> None:
        self.table.close()


def _fields(s: Session) -> tuple[Any, ...]:
    return (s.credential_id, s.agency_id, s.staff_id, s.opened, s.expires, s.csrf, s.purpose)


def _row(r: Any, parse: Callable[[Any], datetime]) -> CredentialRow:
    return CredentialRow(r[0], r[1], r[2], r[3], r[4], parse(r[5]), None if r[6] is None else parse(r[6]))


class SQLiteCredentialTable:
    """Credential hashes in their own SQLite file (the embedded default)."""

    def __init__(self, path: Path):
        self._connections = ThreadConnections(path)
        self._connections.get().execute(
            "CREATE TABLE IF NOT EXISTS console_credentials (credential_id TEXT PRIMARY KEY,"
            " agency_id TEXT NOT NULL, staff_id TEXT NOT NULL, alg TEXT NOT NULL, digest TEXT NOT NULL,"
            " issued_at TEXT NOT NULL, revoked_at TEXT)"
        )

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        yield self._connections.get()

    def insert(self, row: CredentialRow) -> None:
        with self._conn() as c:
            c.execute(
                "INSERT INTO console_credentials"
                " (credential_id, agency_id, staff_id, alg, digest, issued_at, revoked_at) VALUES (?,?,?,?,?,?,NULL)",
                (row.credential_id, row.agency_id, row.staff_id, row.alg, row.digest, row.issued_at.isoformat()),
            )

    def get(self, credential_id: str) -> CredentialRow | None:
        with self._conn() as c:
            r = c.execute(
                "SELECT credential_id, agency_id, staff_id, alg, digest, issued_at, revoked_at"
                " FROM console_credentials WHERE credential_id=?",
                (credential_id,),
            ).fetchone()
        return None if r is None else _row(r, datetime.fromisoformat)

    def rows(self, agency_id: str | None) -> list[CredentialRow]:
        with self._conn() as c:
            rs = c.execute(
                "SELECT credential_id, agency_id, staff_id, alg, digest, issued_at, revoked_at"
                " FROM console_credentials WHERE ? IS NULL OR agency_id=?"
                " ORDER BY issued_at, credential_id",
                (agency_id, agency_id),
            ).fetchall()
        return [_row(r, datetime.fromisoformat) for r in rs]

    def revoke(self, credential_id: str, at: datetime) -> None:
        with self._conn() as c:
            c.execute(
                "UPDATE console_credentials SET revoked_at=? WHERE credential_id=? AND revoked_at IS NULL",
                (at.isoformat(), credential_id),
            )

    def close(self) -> None:
        self._connections.close()


class PostgresCredentialTable:
    """Credential hashes in the PostgreSQL table ``smd_console_credentials``."""

    def __init__(self, conninfo: str):
        from core.postgres import open_pool

        self.pool = open_pool(conninfo, min_size=1, max_size=2, name="smd-console", autocommit=True)
        with self.pool.connection() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS smd_console_credentials (credential_id text PRIMARY KEY,"
                " agency_id text NOT NULL, staff_id text NOT NULL, alg text NOT NULL, digest text NOT NULL,"
                " issued_at timestamptz NOT NULL, revoked_at timestamptz)"
            )

    def insert(self, row: CredentialRow) -> None:
        with self.pool.connection() as c:
            c.execute(
                "INSERT INTO smd_console_credentials"
                " (credential_id, agency_id, staff_id, alg, digest, issued_at, revoked_at)"
                " VALUES (%s,%s,%s,%s,%s,%s,NULL)",
                (row.credential_id, row.agency_id, row.staff_id, row.alg, row.digest, row.issued_at),
            )

    def get(self, credential_id: str) -> CredentialRow | None:
        with self.pool.connection() as c:
            r = c.execute(
                "SELECT credential_id, agency_id, staff_id, alg, digest, issued_at, revoked_at"
                " FROM smd_console_credentials WHERE credential_id=%s",
                (credential_id,),
            ).fetchone()
        return None if r is None else _row(r, _same)

    def rows(self, agency_id: str | None) -> list[CredentialRow]:
        with self.pool.connection() as c:
            rs = c.execute(
                "SELECT credential_id, agency_id, staff_id, alg, digest, issued_at, revoked_at"
                " FROM smd_console_credentials WHERE %s::text IS NULL OR agency_id=%s"
                " ORDER BY issued_at, credential_id",
                (agency_id, agency_id),
            ).fetchall()
        return [_row(r, _same) for r in rs]

    def revoke(self, credential_id: str, at: datetime) -> None:
        with self.pool.connection() as c:
            c.execute(
                "UPDATE smd_console_credentials SET revoked_at=%s WHERE credential_id=%s AND revoked_at IS NULL",
                (at, credential_id),
            )

    def close(self) -> None:
        self.pool.close()


def _same(value: datetime) -> datetime:
    return value


def open_console_credentials(
    data_dir: Path, conninfo: str | None, blind_index_key: bytes, clock: Callable[[], datetime] | None = None
) -> ConsoleCredentials:
    """Console credentials on PostgreSQL (``conninfo``) or, without it, in a SQLite file in ``data_dir``."""
    if conninfo is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        table: CredentialTable = SQLiteCredentialTable(Path(data_dir) / CONSOLE_FILE)
    else:
        table = PostgresCredentialTable(conninfo)
    return ConsoleCredentials(table, blind_index_key, clock)
