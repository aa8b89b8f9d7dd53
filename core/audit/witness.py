"""A witness: keeps each checkpoint of a log outside the deployment, checks that it extends the
previous one it holds, and cosigns it (C2SP tlog-cosignature v1).

The exchange follows C2SP tlog-witness's add-checkpoint, as text over any request/reply
transport (NATS here):

    request:  old <size the log believes the witness holds>\\n
              <base64 hash of the consistency proof from that size>\\n   (zero or more)
              \\n
              <the signed checkpoint note>
    reply:    "— <witness name> <base64 cosignature>\\n"   cosigned
              "conflict <size>\\n"                           ask again from that size
              "refused <reason>\\n"                          unknown key, bad proof, a fork …

A witness cosigns a tree only if it is consistent with everything it cosigned before, so two
different trees of the same log can never both carry its cosignature. Its store is its own
(SQLite in a folder of its own: on another machine, or in the other region).
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import structlog

from core.audit import merkle
from core.audit.notes import Checkpoint, NoteError, Signer, Verifier, cosign, cosignature_line, open_note

log = structlog.get_logger(__name__)


def add_checkpoint_request(old: int, proof: list[bytes], note: str) -> bytes:
    """The request a log sends to a witness."""
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


def parse_reply(reply: bytes) -> tuple[str, str]:
    """("cosigned", line) | ("conflict", size) | ("refused", reason)."""
    text = reply.decode(errors="replace")
    if text.startswith("conflict "):
        return "conflict", text.split()[1]
    if text.startswith("refused "):
        return "refused", text[len("refused ") :].strip()
    return "cosigned", text


class WitnessStore(Protocol):
    """The checkpoints a witness holds, by log origin (its own store, never the log's)."""

    def latest(self, origin: str) -> tuple[int, bytes, str] | None:
        """(size, root, cosigned note) of the largest tree held for ``origin``."""
        ...

    def add(self, origin: str, size: int, root: bytes, note: str, at: datetime) -> None:
        """Keep a cosigned checkpoint (the same size again: the first kept)."""
        ...

    def close(self) -> None:
        """Release what the store holds open."""
        ...


class PostgresWitnessStore:
    """The checkpoints a witness holds, in table ``smd_witnessed`` of its own PostgreSQL database
    (on the witness's machine, never the log's database: a copy the log's administrator can edit
    is no copy outside)."""

    def __init__(self, conninfo: str) -> None:
        from core.postgres import open_pool

        self.pool = open_pool(conninfo, min_size=0, max_size=2, name="smd-witness")
        with self.pool.connection() as c:
            c.execute("SELECT pg_advisory_xact_lock(7309)")  # concurrent starters: one creates
            c.execute(
                "CREATE TABLE IF NOT EXISTS smd_witnessed (origin TEXT NOT NULL, size BIGINT NOT NULL,"
                " root BYTEA NOT NULL, note TEXT NOT NULL, cosigned_at TEXT NOT NULL, PRIMARY KEY (origin, size))"
            )

    def latest(self, origin: str) -> tuple[int, bytes, str] | None:
        with self.pool.connection() as c:
            row = c.execute(
                "SELECT size, root, note FROM smd_witnessed WHERE origin = %s ORDER BY size DESC LIMIT 1", (origin,)
            ).fetchone()
        return (int(row[0]), bytes(row[1]), str(row[2])) if row else None

    def add(self, origin: str, size: int, root: bytes, note: str, at: datetime) -> None:
        with self.pool.connection() as c:
            c.execute(
                "INSERT INTO smd_witnessed VALUES (%s, %s, %s, %s, %s) ON CONFLICT (origin, size) DO NOTHING",
                (origin, size, root, note, at.isoformat()),
            )

    def close(self) -> None:
        self.pool.close()


class SQLiteWitnessStore:
    """The checkpoints a witness holds, by log origin (its own SQLite file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self._conn()) as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS witnessed (origin TEXT NOT NULL, size INTEGER NOT NULL,"
                " root BLOB NOT NULL, note TEXT NOT NULL, cosigned_at TEXT NOT NULL, PRIMARY KEY (origin, size))"
            )

    def _conn(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def latest(self, origin: str) -> tuple[int, bytes, str] | None:
        """(size, root, cosigned note) of the largest tree held for ``origin``."""
        with closing(self._conn()) as c:
            row = c.execute(
                "SELECT size, root, note FROM witnessed WHERE origin = ? ORDER BY size DESC LIMIT 1", (origin,)
            ).fetchone()
        return (int(row[0]), bytes(row[1]), str(row[2])) if row else None

    def add(self, origin: str, size: int, root: bytes, note: str, at: datetime) -> None:
        with closing(self._conn()) as c:
            c.execute(
                "INSERT OR IGNORE INTO witnessed VALUES (?, ?, ?, ?, ?)", (origin, size, root, note, at.isoformat())
            )

    def close(self) -> None:
        """Nothing held open (a connection per call)."""


class Witness:
    """Checks and cosigns checkpoints of the logs whose verifier keys it was given."""

    def __init__(
        self,
        store: WitnessStore,
        signer: Signer,
        logs: list[Verifier],
        algorithm: str = merkle.DEFAULT_ALGORITHM,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.signer = signer
        self.logs = logs
        self.hasher = merkle.Hasher(algorithm)
        self.clock = clock

    def add_checkpoint(self, request: bytes) -> bytes:
        """Answer one add-checkpoint request (never raises on bad input: it is refused)."""
        try:
            return self._add(request.decode())
        except (NoteError, merkle.InvalidProof, ValueError) as e:
            log.warning("witness refused a checkpoint", reason=str(e))
            return f"refused {e}\n".encode()

    def _add(self, text: str) -> bytes:
        head, sep, note_text = text.partition("\n\n")
        if not sep:
            raise ValueError("a request is 'old N', the proof lines, an empty line and the note")
        lines = head.split("\n")
        if not lines[0].startswith("old ") or not lines[0][4:].isdigit():
            raise ValueError("the first line must be 'old <size>'")
        old = int(lines[0][4:])
        proof = [base64.b64decode(x, validate=True) for x in lines[1:]]
        note, _ = open_note(note_text, self.logs)
        cp = Checkpoint.parse(note.body)
        if cp.origin not in {v.name for v in self.logs}:
            raise NoteError(f"the checkpoint's origin {cp.origin!r} is not the name of a log key given")
        held = self.store.latest(cp.origin)
        held_size, held_root = (held[0], held[1]) if held else (0, self.hasher.empty())
        if old != held_size:
            return f"conflict {held_size}\n".encode()
        if cp.size < held_size:
            raise ValueError(f"the tree of {cp.size} is smaller than the {held_size} already cosigned")
        merkle.verify_consistency(self.hasher, held_size, cp.size, held_root, cp.root, proof)
        now = self.clock()
        name, kid, payload = cosign(note.body, self.signer, int(now.timestamp()))
        line = cosignature_line(name, kid, payload)
        self.store.add(cp.origin, cp.size, cp.root, note.text() + line, now)
        log.info("witness cosigned", origin=cp.origin, size=cp.size)
        return line.encode()
