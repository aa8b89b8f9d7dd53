"""Where followers keep the events they parked or hold, and the global fact they stopped at.

One row per (follower, log position). ``status``:

- ``parked``: the follower could not handle this event; ``reason`` and ``trace_id`` say why;
- ``held``: a later event about a parked patient, waiting in log order behind it;
- ``stopped``: a fact that concerns no single patient (registry, calendar, rule settings) failed;
  the follower does not move past it until it is handled.

``keys`` are the aggregate ids the event concerns (a patient, its suspected case); a key with any
row is "parked" for that follower. Rows hold ids, positions, topics and error types only: never
personal data (an exception's message is not stored; its type and where it was raised are).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from core.sqlite_files import ThreadConnections

PARKED, HELD, STOPPED = "parked", "held", "stopped"


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """One parked, held or stopping event of one follower."""

    follower: str
    position: int
    status: str
    topic: str
    keys: tuple[str, ...]
    reason: str
    trace_id: str
    at: datetime


class ParkingStore(Protocol):
    """Parked, held and stopping events, by follower."""

    def add(self, rows: Sequence[ParkedEvent]) -> None:
        """Insert rows (a row already there for the same follower and position is replaced)."""

    def rows(self, follower: str | None = None) -> list[ParkedEvent]:
        """Every row, or one follower's, in log order."""

    def keys(self, follower: str) -> set[str]:
        """The keys the follower holds events for (one query; usually empty)."""

    def remove(self, follower: str, positions: Iterable[int]) -> None:
        """Delete rows once their events have been handled."""

    def counts(self) -> dict[tuple[str, str], int]:
        """(follower, status) → number of rows."""

    def close(self) -> None:
        """Release connections."""


_DDL = (
    "CREATE TABLE IF NOT EXISTS {t} (follower TEXT NOT NULL, position BIGINT NOT NULL, status TEXT NOT NULL,"
    " topic TEXT NOT NULL, keys TEXT NOT NULL, reason TEXT NOT NULL, trace_id TEXT NOT NULL, at TEXT NOT NULL,"
    " PRIMARY KEY (follower, position))"
)


def _row(r: Sequence[object]) -> ParkedEvent:
    follower, position, status, topic, keys, reason, trace_id, at = r
    return ParkedEvent(
        follower=str(follower),
        position=int(position),  # type: ignore[call-overload]
        status=str(status),
        topic=str(topic),
        keys=tuple(k for k in str(keys).split(",") if k),
        reason=str(reason),
        trace_id=str(trace_id),
        at=datetime.fromisoformat(str(at)),
    )


def _values(r: ParkedEvent) -> tuple[object, ...]:
    return (
        r.follower,
        r.position,
        r.status,
        r.topic,
        ",".join(r.keys),
        r.reason,
        r.trace_id,
        r.at.astimezone(UTC).isoformat(),
    )


class MemoryParkingStore:
    """Parked events in memory: for a follower built without a store (a replay in a test)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], ParkedEvent] = {}

    def add(self, rows: Sequence[ParkedEvent]) -> None:
        self._rows.update({(r.follower, r.position): r for r in rows})

    def rows(self, follower: str | None = None) -> list[ParkedEvent]:
        return [r for k, r in sorted(self._rows.items()) if follower is None or k[0] == follower]

    def keys(self, follower: str) -> set[str]:
        return {k for r in self.rows(follower) for k in r.keys}

    def remove(self, follower: str, positions: Iterable[int]) -> None:
        for p in positions:
            self._rows.pop((follower, p), None)

    def counts(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for r in self._rows.values():
            out[(r.follower, r.status)] = out.get((r.follower, r.status), 0) + 1
        return out

    def close(self) -> None:
        pass


class SQLiteParkingStore:
    """Parked events in an SQLite file (the embedded default)."""

    table = "follower_parked"

    def __init__(self, path: Path) -> None:
        self._connections = ThreadConnections(path)
        self._conn().execute(_DDL.format(t=self.table))

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    def add(self, rows: Sequence[ParkedEvent]) -> None:
        if rows:
            c = self._conn()
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany(
                    f"INSERT OR REPLACE INTO {self.table} VALUES (?,?,?,?,?,?,?,?)", [_values(r) for r in rows]
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def rows(self, follower: str | None = None) -> list[ParkedEvent]:
        sql = f"SELECT * FROM {self.table}"
        params: tuple[str, ...] = ()
        if follower is not None:
            sql, params = sql + " WHERE follower=?", (follower,)
        return [_row(r) for r in self._conn().execute(sql + " ORDER BY follower, position", params)]

    def keys(self, follower: str) -> set[str]:
        found: set[str] = set()
        for (keys,) in self._conn().execute(f"SELECT keys FROM {self.table} WHERE follower=?", (follower,)):
            found.update(k for k in keys.split(",") if k)
        return found

    def remove(self, follower: str, positions: Iterable[int]) -> None:
        self._conn().executemany(
            f"DELETE FROM {self.table} WHERE follower=? AND position=?", [(follower, p) for p in positions]
        )

    def counts(self) -> dict[tuple[str, str], int]:
        sql = f"SELECT follower, status, count(*) FROM {self.table} GROUP BY follower, status"
        return {(f, s): n for f, s, n in self._conn().execute(sql)}

    def close(self) -> None:
        self._connections.close()


class PostgresParkingStore:
    """Parked events in a PostgreSQL table beside the event store."""

    table = "smd_follower_parked"

    def __init__(self, conninfo: str) -> None:
        from core.postgres import open_pool

        self.pool = open_pool(conninfo, min_size=1, max_size=2, name="smd-parking")
        with self.pool.connection() as c:
            c.execute("SELECT pg_advisory_xact_lock(7302)")  # concurrent starters: one creates
            c.execute(_DDL.format(t=self.table))

    def add(self, rows: Sequence[ParkedEvent]) -> None:
        if rows:
            with self.pool.connection() as c, c.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {self.table} VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (follower, position)"
                    " DO UPDATE SET status=excluded.status, topic=excluded.topic, keys=excluded.keys,"
                    " reason=excluded.reason, trace_id=excluded.trace_id, at=excluded.at",
                    [_values(r) for r in rows],
                )

    def rows(self, follower: str | None = None) -> list[ParkedEvent]:
        sql = f"SELECT * FROM {self.table}"
        params: tuple[str, ...] = ()
        if follower is not None:
            sql, params = sql + " WHERE follower=%s", (follower,)
        with self.pool.connection() as c:
            return [_row(r) for r in c.execute(sql + " ORDER BY follower, position", params).fetchall()]

    def keys(self, follower: str) -> set[str]:
        found: set[str] = set()
        with self.pool.connection() as c:
            for (keys,) in c.execute(f"SELECT keys FROM {self.table} WHERE follower=%s", (follower,)).fetchall():
                found.update(k for k in keys.split(",") if k)
        return found

    def remove(self, follower: str, positions: Iterable[int]) -> None:
        with self.pool.connection() as c, c.cursor() as cur:
            cur.executemany(
                f"DELETE FROM {self.table} WHERE follower=%s AND position=%s", [(follower, p) for p in positions]
            )

    def counts(self) -> dict[tuple[str, str], int]:
        sql = f"SELECT follower, status, count(*) FROM {self.table} GROUP BY follower, status"
        with self.pool.connection() as c:
            return {(f, s): n for f, s, n in c.execute(sql).fetchall()}

    def close(self) -> None:
        self.pool.close()
