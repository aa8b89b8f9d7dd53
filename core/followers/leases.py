"""Which process runs each follower: one active, the others standing by (PostgreSQL).

Several service processes may run against one PostgreSQL database (on several hosts, or
restarted side by side during an upgrade). Each follower of the log (the rules, each read model,
the scheduler, the chain, the outbox) should then run in one of them: twice would be safe — the
tracking position refuses a second commit of the same batch, and receivers dedup outbound
messages — but every batch would be decided twice and one of them thrown away.

A lease is a session-level advisory lock named after the follower, held on one connection that
is kept for the process's life. ``held(name)`` takes it when it is free (a standby tries at most
every ``retry_seconds``) and checks now and then (``check_seconds``) that the connection holding
it is still alive: a process killed with ``kill -9`` or cut off from the database loses its
connection, PostgreSQL releases its locks at once, and the next standby to try takes them over.
A process that lost its connection gives every lease up before it tries again, so it never goes
on as if it still held one. The tracking position stays the guarantee; the lease is what keeps
the standbys idle.

SQLite has one writer per file and runs in one process: every lease is always held there.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

#: First key of every follower lease (the second is the follower's name, hashed): apart from the
#: schema lock and the table creators' transaction locks (7301–7304).
LEASE_CLASS = 7310
RETRY_SECONDS = 1.0
CHECK_SECONDS = 2.0


def lease_key(name: str) -> int:
    """The advisory lock's second key for a follower: CRC-32 of its name, as a signed int4."""
    value = zlib.crc32(name.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class AlwaysHeld:
    """Every lease held: one process owns the store (SQLite), or standbys are not wanted."""

    def held(self, name: str) -> bool:
        return True

    def holding(self) -> dict[str, bool]:
        return {}

    def close(self) -> None:
        return None


class AdvisoryLeases:
    """Leases as PostgreSQL session advisory locks on one connection of this process's own."""

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        retry_seconds: float = RETRY_SECONDS,
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect  # a new autocommit psycopg connection
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self._clock = clock
        self._conn: Any = None
        self._held: set[str] = set()
        self._tried: dict[str, float] = {}
        self._checked = 0.0
        self._lock = threading.Lock()  # the followers' loop and status readers
        self._closed = False

    def held(self, name: str) -> bool:
        """Whether this process holds ``name``'s lease now (taking it when it is free)."""
        with self._lock:
            if self._closed:
                return False
            now = self._clock()
            try:
                if name in self._held:
                    if now - self._checked >= self.check_seconds:
                        self._conn.execute("SELECT 1")
                        self._checked = now
                    return True
                if now - self._tried.get(name, -1e9) < self.retry_seconds:
                    return False
                self._tried[name] = now
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                    self._checked = now
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", (LEASE_CLASS, lease_key(name))
                ).fetchone()
            except Exception as e:  # the connection is gone: so is every lock it held
                self._lose(type(e).__name__)
                return False
            if row and row[0]:
                self._held.add(name)
                log.info("follower lease taken: this process runs it", follower=name)
                return True
            return False

    def holding(self) -> dict[str, bool]:
        """The leases this process has tried, each True when held (for ``/v1/status``)."""
        with self._lock:
            return {name: name in self._held for name in sorted({*self._tried, *self._held})}

    def _lose(self, why: str) -> None:
        if self._held:
            log.warning("follower leases lost with their connection", followers=sorted(self._held), error=why)
        self._held.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken
                conn.close()

    def close(self) -> None:
        """Give every lease up: unlocked before the connection closes, so that a standby can take
        them at once (closing alone releases them only when the server's backend has ended,
        a moment after the client has gone)."""
        with self._lock:
            self._closed = True
            if self._conn is not None:
                with contextlib.suppress(Exception):  # a broken connection: its locks went with it
                    self._conn.execute("SELECT pg_advisory_unlock_all()")
                self._held.clear()  # given up, not lost
            self._lose("closed")
