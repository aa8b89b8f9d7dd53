"""Per-thread SQLite connections to one file, all closed together.

The embedded default keeps each store (keys, API keys, read models) in its own SQLite file.
SQLite connections should stay on the thread that opened them; request handlers run in a
thread pool, so each thread gets its own connection, and ``close()`` closes every one of them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ThreadConnections:
    """One autocommit WAL connection per thread to ``path``."""

    def __init__(self, path: Path, *pragmas: str) -> None:
        self.path = path
        self.pragmas = ("PRAGMA journal_mode=WAL", *pragmas)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so that close() may close it from another thread;
            # each connection is still used by its own thread alone.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            for pragma in self.pragmas:
                conn.execute(pragma)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection in a write transaction (``BEGIN IMMEDIATE``: one writer at a
        time, so what is read in it is still true when it commits); rolled back on any error."""
        c = self.get()
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
