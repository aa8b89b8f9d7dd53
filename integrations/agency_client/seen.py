"""The receiver's memory of what it has handled: a small SQLite file of message keys.

Outbound delivery is at least once: the outbox re-publishes after a crash, and a copy older than
the stream's duplicate window is not dropped by JetStream; a message acknowledged while the
connection broke comes back. So the receiver keeps the keys it has handled (the CloudEvents
``id`` of an obligation or notice, ``rejected:<seq>`` of a rejection) in a file that outlives
the process, and recognises a copy after a restart.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS handled (
    key TEXT PRIMARY KEY,    -- the message's key: CloudEvents id, or rejected:<seq>
    stream TEXT NOT NULL,    -- which of the agency's durables it came from
    handled_at TEXT NOT NULL -- when it was marked done (UTC, ISO 8601)
) WITHOUT ROWID
"""


class SeenIds:
    """Keys of the messages handled, in a SQLite file at ``path`` (":memory:" keeps them only
    for the process: a restart then forgets them, which defeats the purpose outside tests).

    Each ``record`` is committed (WAL, synchronous=FULL) before it returns, so a message is
    acknowledged only once its key is on disk."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)

    def seen(self, key: str) -> bool:
        """Whether a message with this key was handled (marked done) before."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM handled WHERE key = ?", (key,)).fetchone()
        return row is not None

    def record(self, key: str, stream: str) -> bool:
        """Remember the key; False when it was already there."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO handled (key, stream, handled_at) VALUES (?, ?, ?)",
                (key, stream, datetime.now(UTC).isoformat()),
            )
        return cursor.rowcount == 1

    def count(self) -> int:
        """How many keys are remembered."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM handled").fetchone()[0])

    def forget_before(self, when: datetime) -> int:
        """Drop keys handled before ``when`` (older than the streams keep messages: 30 days);
        returns how many."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM handled WHERE handled_at < ?", (when.astimezone(UTC).isoformat(),))
        return cursor.rowcount

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
