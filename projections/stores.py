"""View stores: one per backend; they keep every projection's tables, tracking and generations.

A projection's tables live in *generations*: ``<name>_v<version>_g<n>_<table>``. One generation
per projection is live (the API reads it, the service's follower keeps it); a rebuild creates
the next generation beside it, follows the log into it until it has caught up, then switches
in one transaction and drops the old one. Each generation tracks its own position under its
own name (``<name>_v<version>_g<n>``), written in the same transaction as its rows.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol
from uuid import UUID

from core.followers.engine import AlreadyApplied
from core.sqlite_files import ThreadConnections
from projections.base import Delete, Insert, Op, Projection, Table, Update, Upsert

#: How long a process trusts its idea of which generation is live (a switch is seen within it).
LIVE_TTL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Generation:
    """One generation of a projection's tables."""

    name: str
    version: int
    generation: int
    state: str  # live | building
    created_at: str

    @property
    def tracking_name(self) -> str:
        return f"{self.name}_v{self.version}_g{self.generation}"


class ViewStore(Protocol):
    """Tables, tracking and generations of every projection on one backend."""

    def ensure(self, projection: Projection) -> Generation:
        """The live generation of this projection's version (created, empty, when there is none)."""

    def live(self, projection: Projection) -> Generation:
        """The live generation (cached for ``LIVE_TTL_SECONDS``)."""

    def new_generation(self, projection: Projection) -> Generation:
        """Create an empty generation beside the live one (for a rebuild)."""

    def switch(self, projection: Projection, generation: Generation) -> Generation | None:
        """Make ``generation`` live in one transaction; returns the one it replaced."""

    def drop(self, projection: Projection, generation: Generation) -> None:
        """Drop a generation's tables, tracking and catalogue row."""

    def generations(self, name: str | None = None) -> list[Generation]:
        """Every generation, live and building."""

    def position(self, tracking_name: str) -> int:
        """The last position written under a tracking name."""

    def write(
        self,
        projection: Projection,
        generation: Generation,
        ops: Sequence[Op],
        tracking_name: str,
        position: int,
        *,
        exclusive: bool = False,
    ) -> None:
        """Apply row operations and move the tracking position, in one transaction."""

    def select(
        self,
        projection: Projection,
        table: str,
        where: str,
        params: Sequence[Any],
        *,
        order_by: str,
        after: Any = None,
        limit: int = 100,
        generation: Generation | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of the live (or given) generation matching ``where`` (``?`` placeholders),
        ordered by ``order_by``, after a cursor value of that column."""

    def close(self) -> None:
        """Release connections."""


def _ts(dt: datetime) -> str:
    """One fixed-width UTC text form, so SQLite compares times as strings correctly."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _Base:
    """What both backends share: names, the catalogue cache, operation SQL."""

    prefix = ""
    mark = "?"
    types: ClassVar[Mapping[str, str]] = {}

    def __init__(self) -> None:
        self._live: dict[str, tuple[float, Generation]] = {}
        self._tables: dict[str, dict[str, Table]] = {}
        self._lock = threading.Lock()

    def physical(self, generation: Generation, table: str) -> str:
        return f"{self.prefix}{generation.tracking_name}_{table}"

    def _table(self, projection: Projection, name: str) -> Table:
        tables = self._tables.get(projection.name)
        if tables is None:
            tables = self._tables[projection.name] = {t.name: t for t in projection.tables}
        return tables[name]

    def _ddl(self, projection: Projection, generation: Generation) -> list[str]:
        out = []
        for t in projection.tables:
            name = self.physical(generation, t.name)
            cols = [f"{c.name} {self.types[c.type]}{' NOT NULL' if c.not_null else ''}" for c in t.columns]
            cols.append(f"PRIMARY KEY ({', '.join(t.primary_key)})")
            cols += [f"UNIQUE ({', '.join(u)})" for u in t.unique]
            out.append(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)})")
            out += [f"CREATE INDEX IF NOT EXISTS {name}_{'_'.join(ix)} ON {name} ({', '.join(ix)})" for ix in t.indexes]
        return out

    def _op_sql(self, projection: Projection, generation: Generation, op: Op) -> tuple[str, list[Any]]:
        table = self._table(projection, op.table)
        name = self.physical(generation, op.table)
        m = self.mark
        if isinstance(op, Insert | Upsert):
            cols = list(op.row)
            sql = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join([m] * len(cols))})"
            if isinstance(op, Insert):
                sql += " ON CONFLICT DO NOTHING"
            else:
                sets = ", ".join(f"{c}=excluded.{c}" for c in cols if c not in table.primary_key)
                sql += f" ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET {sets}"
            return sql, [self._value(table, c, op.row[c]) for c in cols]
        where = " AND ".join(f"{c}={m}" for c in op.where)
        where_params = [self._value(table, c, v) for c, v in op.where.items()]
        if isinstance(op, Update):
            sets = ", ".join(f"{c}={m}" for c in op.values)
            return f"UPDATE {name} SET {sets} WHERE {where}", [
                *(self._value(table, c, v) for c, v in op.values.items()),
                *where_params,
            ]
        if isinstance(op, Delete):
            return f"DELETE FROM {name} WHERE {where}", where_params
        raise TypeError(f"unknown operation {op!r}")  # pragma: no cover

    def _value(self, table: Table, column: str, value: Any) -> Any:
        return value

    def _cached_live(self, projection: Projection) -> Generation | None:
        hit = self._live.get(projection.name)
        if hit and time.monotonic() - hit[0] < LIVE_TTL_SECONDS and hit[1].version == projection.version:
            return hit[1]
        return None


class SQLiteViewStore(_Base):
    """Every view in one SQLite file (the embedded default)."""

    types: ClassVar[Mapping[str, str]] = {
        "text": "TEXT",
        "int": "INTEGER",
        "bool": "INTEGER",
        "uuid": "TEXT",
        "time": "TEXT",
        "real": "REAL",
    }

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._connections = ThreadConnections(path)
        self._conn().executescript(
            "CREATE TABLE IF NOT EXISTS view_generations (name TEXT NOT NULL, version INTEGER NOT NULL,"
            " generation INTEGER NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL,"
            " PRIMARY KEY (name, generation));"
            "CREATE TABLE IF NOT EXISTS view_tracking (name TEXT PRIMARY KEY, position INTEGER NOT NULL);"
        )

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _value(self, table: Table, column: str, value: Any) -> Any:
        return _sqlite_param(value)

    def _generations(self, c: sqlite3.Connection, name: str | None) -> list[Generation]:
        sql = "SELECT name, version, generation, state, created_at FROM view_generations"
        rows = c.execute(
            sql + (" WHERE name=?" if name else "") + " ORDER BY name, generation", (name,) if name else ()
        )
        return [Generation(*r) for r in rows]

    def generations(self, name: str | None = None) -> list[Generation]:
        return self._generations(self._conn(), name)

    def ensure(self, projection: Projection) -> Generation:
        with self._tx() as c:
            gens = self._generations(c, projection.name)
            live = next((g for g in gens if g.state == "live"), None)
            if live is None or live.version != projection.version:
                number = max((g.generation for g in gens), default=0) + 1
                if live is not None:  # a new version of the code: its own tables, built from the log
                    c.execute("UPDATE view_generations SET state='retired' WHERE name=? AND state='live'", (live.name,))
                live = Generation(projection.name, projection.version, number, "live", _now())
                c.execute("INSERT INTO view_generations VALUES (?,?,?,?,?)", (*_gen_values(live),))
            for stmt in self._ddl(projection, live):
                c.execute(stmt)
        self._drop_retired(projection)
        self._live[projection.name] = (time.monotonic(), live)
        return live

    def _drop_retired(self, projection: Projection) -> None:
        for g in self.generations(projection.name):
            if g.state == "retired":
                self.drop(projection, g)

    def live(self, projection: Projection) -> Generation:
        cached = self._cached_live(projection)
        if cached is not None:
            return cached
        found = next((g for g in self.generations(projection.name) if g.state == "live"), None)
        if found is None or found.version != projection.version:
            return self.ensure(projection)
        self._live[projection.name] = (time.monotonic(), found)
        return found

    def new_generation(self, projection: Projection) -> Generation:
        with self._tx() as c:
            number = max((g.generation for g in self._generations(c, projection.name)), default=0) + 1
            gen = Generation(projection.name, projection.version, number, "building", _now())
            c.execute("INSERT INTO view_generations VALUES (?,?,?,?,?)", _gen_values(gen))
            for stmt in self._ddl(projection, gen):
                c.execute(stmt)
        return gen

    def switch(self, projection: Projection, generation: Generation) -> Generation | None:
        with self._tx() as c:
            old = next((g for g in self._generations(c, projection.name) if g.state == "live"), None)
            c.execute("UPDATE view_generations SET state='retired' WHERE name=? AND state='live'", (projection.name,))
            c.execute(
                "UPDATE view_generations SET state='live' WHERE name=? AND generation=?",
                (projection.name, generation.generation),
            )
        self._live.pop(projection.name, None)
        return old

    def drop(self, projection: Projection, generation: Generation) -> None:
        with self._tx() as c:
            for t in projection.tables:
                c.execute(f"DROP TABLE IF EXISTS {self.physical(generation, t.name)}")
            c.execute(
                "DELETE FROM view_tracking WHERE name=? OR name LIKE ?",
                (generation.tracking_name, f"{generation.tracking_name}/%"),
            )
            c.execute(
                "DELETE FROM view_generations WHERE name=? AND generation=?", (generation.name, generation.generation)
            )

    def position(self, tracking_name: str) -> int:
        r = self._conn().execute("SELECT position FROM view_tracking WHERE name=?", (tracking_name,)).fetchone()
        return r[0] if r else 0

    def write(
        self,
        projection: Projection,
        generation: Generation,
        ops: Sequence[Op],
        tracking_name: str,
        position: int,
        *,
        exclusive: bool = False,
    ) -> None:
        with self._tx() as c:
            for op in ops:
                sql, params = self._op_sql(projection, generation, op)
                c.execute(sql, params)
            if exclusive:
                try:
                    c.execute("INSERT INTO view_tracking VALUES (?, ?)", (tracking_name, position))
                except sqlite3.IntegrityError:
                    raise AlreadyApplied(tracking_name) from None
            else:
                c.execute(
                    "INSERT INTO view_tracking VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                    " SET position=max(view_tracking.position, excluded.position)",
                    (tracking_name, position),
                )

    def select(
        self,
        projection: Projection,
        table: str,
        where: str,
        params: Sequence[Any],
        *,
        order_by: str,
        after: Any = None,
        limit: int = 100,
        generation: Generation | None = None,
    ) -> list[dict[str, Any]]:
        gen = generation or self.live(projection)
        t = self._table(projection, table)
        sql = f"SELECT {', '.join(t.column_names)} FROM {self.physical(gen, table)} WHERE ({where})"
        values = [_sqlite_param(p) for p in params]
        if after is not None:
            sql += f" AND {order_by} > ?"
            values.append(_sqlite_param(after))
        sql += f" ORDER BY {order_by} LIMIT ?"
        types = t.types()
        rows = self._conn().execute(sql, (*values, limit)).fetchall()
        return [{k: _from_sqlite(types[k], v) for k, v in zip(t.column_names, r, strict=True)} for r in rows]

    def close(self) -> None:
        self._connections.close()


def _gen_values(g: Generation) -> tuple[Any, ...]:
    return (g.name, g.version, g.generation, g.state, g.created_at)


def _sqlite_param(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return _ts(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _from_sqlite(type_: str, value: Any) -> Any:
    if value is None:
        return None
    if type_ == "uuid":
        return UUID(value)
    if type_ == "time":
        return datetime.fromisoformat(value)
    if type_ == "bool":
        return bool(value)
    return value


class PostgresViewStore(_Base):
    """Every view in PostgreSQL tables beside the event store."""

    prefix = "smd_"
    mark = "%s"
    types: ClassVar[Mapping[str, str]] = {
        "text": "text",
        "int": "bigint",
        "bool": "boolean",
        "uuid": "uuid",
        "time": "timestamptz",
        "real": "double precision",
    }
    #: advisory lock held while changing the catalogue (concurrent starters, a rebuild)
    LOCK_ID = 7303

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        from psycopg_pool import ConnectionPool

        self.pool = ConnectionPool(conninfo, min_size=1, max_size=4, open=True)
        with self.pool.connection() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_ID,))
            c.execute(
                "CREATE TABLE IF NOT EXISTS smd_view_generations (name text NOT NULL, version int NOT NULL,"
                " generation int NOT NULL, state text NOT NULL, created_at text NOT NULL,"
                " PRIMARY KEY (name, generation))"
            )
            c.execute("CREATE TABLE IF NOT EXISTS smd_view_tracking (name text PRIMARY KEY, position bigint NOT NULL)")

    def _generations(self, c: Any, name: str | None) -> list[Generation]:
        sql = "SELECT name, version, generation, state, created_at FROM smd_view_generations"
        rows = c.execute(
            sql + (" WHERE name=%s" if name else "") + " ORDER BY name, generation", (name,) if name else ()
        )
        return [Generation(*r) for r in rows.fetchall()]

    def generations(self, name: str | None = None) -> list[Generation]:
        with self.pool.connection() as c:
            return self._generations(c, name)

    def ensure(self, projection: Projection) -> Generation:
        with self.pool.connection() as c, c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_ID,))
            gens = self._generations(c, projection.name)
            live = next((g for g in gens if g.state == "live"), None)
            if live is None or live.version != projection.version:
                number = max((g.generation for g in gens), default=0) + 1
                if live is not None:
                    c.execute(
                        "UPDATE smd_view_generations SET state='retired' WHERE name=%s AND state='live'", (live.name,)
                    )
                live = Generation(projection.name, projection.version, number, "live", _now())
                c.execute("INSERT INTO smd_view_generations VALUES (%s,%s,%s,%s,%s)", _gen_values(live))
            for stmt in self._ddl(projection, live):
                c.execute(stmt)
        for g in self.generations(projection.name):
            if g.state == "retired":
                self.drop(projection, g)
        self._live[projection.name] = (time.monotonic(), live)
        return live

    def live(self, projection: Projection) -> Generation:
        cached = self._cached_live(projection)
        if cached is not None:
            return cached
        found = next((g for g in self.generations(projection.name) if g.state == "live"), None)
        if found is None or found.version != projection.version:
            return self.ensure(projection)
        self._live[projection.name] = (time.monotonic(), found)
        return found

    def new_generation(self, projection: Projection) -> Generation:
        with self.pool.connection() as c, c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_ID,))
            number = max((g.generation for g in self._generations(c, projection.name)), default=0) + 1
            gen = Generation(projection.name, projection.version, number, "building", _now())
            c.execute("INSERT INTO smd_view_generations VALUES (%s,%s,%s,%s,%s)", _gen_values(gen))
            for stmt in self._ddl(projection, gen):
                c.execute(stmt)
        return gen

    def switch(self, projection: Projection, generation: Generation) -> Generation | None:
        with self.pool.connection() as c, c.transaction():
            c.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_ID,))
            old = next((g for g in self._generations(c, projection.name) if g.state == "live"), None)
            c.execute(
                "UPDATE smd_view_generations SET state='retired' WHERE name=%s AND state='live'", (projection.name,)
            )
            c.execute(
                "UPDATE smd_view_generations SET state='live' WHERE name=%s AND generation=%s",
                (projection.name, generation.generation),
            )
        self._live.pop(projection.name, None)
        return old

    def drop(self, projection: Projection, generation: Generation) -> None:
        with self.pool.connection() as c, c.transaction():
            for t in projection.tables:
                c.execute(f"DROP TABLE IF EXISTS {self.physical(generation, t.name)}")
            c.execute(
                "DELETE FROM smd_view_tracking WHERE name=%s OR name LIKE %s",
                (generation.tracking_name, f"{generation.tracking_name}/%"),
            )
            c.execute(
                "DELETE FROM smd_view_generations WHERE name=%s AND generation=%s",
                (generation.name, generation.generation),
            )

    def position(self, tracking_name: str) -> int:
        with self.pool.connection() as c:
            r = c.execute("SELECT position FROM smd_view_tracking WHERE name=%s", (tracking_name,)).fetchone()
        return r[0] if r else 0

    def write(
        self,
        projection: Projection,
        generation: Generation,
        ops: Sequence[Op],
        tracking_name: str,
        position: int,
        *,
        exclusive: bool = False,
    ) -> None:
        import psycopg

        with self.pool.connection() as c, c.transaction(), c.cursor() as cur:
            # consecutive operations of one statement shape go in one executemany
            pending: tuple[str, list[list[Any]]] | None = None
            for op in ops:
                sql, params = self._op_sql(projection, generation, op)
                if pending is not None and pending[0] == sql:
                    pending[1].append(params)
                    continue
                if pending is not None:
                    cur.executemany(pending[0], pending[1])
                pending = (sql, [params])
            if pending is not None:
                cur.executemany(pending[0], pending[1])
            if exclusive:
                try:
                    with c.transaction():
                        cur.execute("INSERT INTO smd_view_tracking VALUES (%s, %s)", (tracking_name, position))
                except psycopg.errors.UniqueViolation:
                    raise AlreadyApplied(tracking_name) from None
            else:
                cur.execute(
                    "INSERT INTO smd_view_tracking VALUES (%s, %s) ON CONFLICT (name) DO UPDATE"
                    " SET position = GREATEST(smd_view_tracking.position, excluded.position)",
                    (tracking_name, position),
                )

    def select(
        self,
        projection: Projection,
        table: str,
        where: str,
        params: Sequence[Any],
        *,
        order_by: str,
        after: Any = None,
        limit: int = 100,
        generation: Generation | None = None,
    ) -> list[dict[str, Any]]:
        gen = generation or self.live(projection)
        t = self._table(projection, table)
        sql = f"SELECT {', '.join(t.column_names)} FROM {self.physical(gen, table)} WHERE ({where.replace('?', '%s')})"
        values = list(params)
        if after is not None:
            sql += f" AND {order_by} > %s"
            values.append(after)
        sql += f" ORDER BY {order_by} LIMIT %s"
        with self.pool.connection() as c:
            rows = c.execute(sql, (*values, limit)).fetchall()
        return [dict(zip(t.column_names, r, strict=True)) for r in rows]

    def close(self) -> None:
        self.pool.close()
