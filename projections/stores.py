"""View stores: one per backend; they keep every projection's tables, tracking and generations.

A projection's tables live in *generations*: ``<name>_v<version>_g<n>_<table>``. One generation
per projection is live (the API reads it, the service's follower keeps it); a rebuild creates
the next generation beside it, follows the log into it until it has caught up, then switches
in one transaction and drops the old one. Each generation tracks its own position under its
own name (``<name>_v<version>_g<n>``), written in the same transaction as its rows.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
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
        into: Callable[..., Any] | None = None,
    ) -> list[Any]:
        """Rows of the live (or given) generation matching ``where`` (``?`` placeholders),
        ordered by ``order_by``, after a cursor value of that column. ``into``: each row is
        ``into(*values)``, the values in the table's column order, instead of a dict."""

    def select_merged(
        self,
        projection: Projection,
        table: str,
        branches: Sequence[tuple[str, Sequence[Any]]],
        *,
        order_by: str,
        after: Any = None,
        limit: int = 100,
        generation: Generation | None = None,
        stale_ok: bool = False,
        into: Callable[..., Any] | None = None,
    ) -> list[Any]:
        """Rows matching any of several ``(where, params)`` branches (disjoint), ordered by
        ``order_by``, after a cursor value: each branch one keyset range of an index, merged
        (a page reads about ``limit`` rows plus one probe per branch, never the whole set).
        ``stale_ok``: an answer for a reader (a page of the API), which a read replica may serve
        (a few milliseconds behind); the followers' own reads never are. ``into``: each row is
        ``into(*values)``, the values in the table's column order (a page of the API builds its
        rows straight from the driver's tuples), instead of a dict by column name."""

    def merged_statements(
        self,
        projection: Projection,
        table: str,
        branches: Sequence[tuple[str, Sequence[Any]]],
        *,
        order_by: str,
        after: Any = None,
        limit: int = 100,
        generation: Generation | None = None,
    ) -> list[tuple[str, list[Any]]]:
        """The statements (and parameters) ``select_merged`` runs: what a test asks the planner about."""

    def count(
        self,
        projection: Projection,
        table: str,
        group_by: Sequence[str],
        where: str = "1=1",
        params: Sequence[Any] = (),
        *,
        generation: Generation | None = None,
    ) -> dict[tuple[Any, ...], int]:
        """Rows of the live (or given) generation matching ``where``, counted by the values of
        the ``group_by`` columns (read only; one query)."""

    def select_all(
        self,
        projection: Projection,
        table: str,
        where: str,
        params: Sequence[Any],
        *,
        key: str | None = None,
        key_where: str = "1=1",
        key_params: Sequence[Any] = (),
        generation: Generation | None = None,
    ) -> list[dict[str, Any]]:
        """Every row of the live (or given) generation matching ``where``, in no particular
        order, in one statement; with ``key``, only those whose ``key`` column equals the ``key``
        of a row of the same table matching ``key_where`` (a semi-join the store plans: the key
        rows by an index, then each key's rows by an index on ``key``). The indicators' per-unit
        path: the facts of the patients registered in a unit's residences (docs/decisions/036)."""

    def close(self) -> None:
        """Release connections."""


def _ts(dt: datetime) -> str:
    """One fixed-width UTC text form, so SQLite compares times as strings correctly."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class _Base:
    """Everything but the connection: names, the catalogue, operation SQL, reads and writes.

    A backend gives ``_tx()`` (a transaction whose ``execute(sql, params)`` returns rows via
    ``fetchall``/``fetchone``), ``_read()`` (the same outside a write transaction), its
    placeholder ``mark``, its column ``types``, its table ``prefix`` and value conversions.
    """

    prefix = ""
    mark = "?"
    types: ClassVar[Mapping[str, str]] = {}

    def __init__(self) -> None:
        self._live: dict[str, tuple[float, Generation]] = {}
        self._tables: dict[str, dict[str, Table]] = {}
        self.catalogue = f"{self.prefix}view_generations"
        self.tracking = f"{self.prefix}view_tracking"

    # -- backend primitives --------------------------------------------------------------------

    def _tx(self, catalogue: bool = False) -> AbstractContextManager[Any]:
        """A write transaction (``catalogue``: serialised with every other catalogue change)."""
        raise NotImplementedError

    def _read(self, stale_ok: bool = False) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _param(self, value: Any) -> Any:
        return value

    def _from_db(self, type_: str, value: Any) -> Any:
        return value

    def _fetch_page(self, c: Any, sql: str, values: list[Any]) -> list[Any]:
        """One statement of a page, its rows as tuples."""
        return list(c.execute(sql, values).fetchall())

    def _insert_new_tracking(self, c: Any, tracking_name: str, position: int) -> None:
        raise NotImplementedError

    def _schema(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {self.catalogue} (name TEXT NOT NULL, version INTEGER NOT NULL,"
            " generation INTEGER NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL,"
            " PRIMARY KEY (name, generation))",
            f"CREATE TABLE IF NOT EXISTS {self.tracking} (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
        ]

    # -- names and SQL -------------------------------------------------------------------------

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
            return sql, [self._param(op.row[c]) for c in cols]
        where = " AND ".join(f"{c}={m}" for c in op.where)
        where_params = [self._param(v) for v in op.where.values()]
        if isinstance(op, Update):
            sets = ", ".join(f"{c}={m}" for c in op.values)
            return f"UPDATE {name} SET {sets} WHERE {where}", [
                *(self._param(v) for v in op.values.values()),
                *where_params,
            ]
        if isinstance(op, Delete):
            return f"DELETE FROM {name} WHERE {where}", where_params
        raise TypeError(f"unknown operation {op!r}")  # pragma: no cover

    # -- the catalogue of generations ------------------------------------------------------------

    def _generations(self, c: Any, name: str | None) -> list[Generation]:
        sql = f"SELECT name, version, generation, state, created_at FROM {self.catalogue}"
        where = f" WHERE name={self.mark}" if name else ""
        rows = c.execute(sql + where + " ORDER BY name, generation", (name,) if name else ()).fetchall()
        return [Generation(*r) for r in rows]

    def _add_generation(self, c: Any, projection: Projection, state: str) -> Generation:
        number = max((g.generation for g in self._generations(c, projection.name)), default=0) + 1
        gen = Generation(projection.name, projection.version, number, state, datetime.now(UTC).isoformat())
        m = self.mark
        c.execute(
            f"INSERT INTO {self.catalogue} VALUES ({m},{m},{m},{m},{m})",
            (gen.name, gen.version, gen.generation, gen.state, gen.created_at),
        )
        for stmt in self._ddl(projection, gen):
            c.execute(stmt, ())
        return gen

    def _retire_live(self, c: Any, name: str) -> None:
        c.execute(f"UPDATE {self.catalogue} SET state='retired' WHERE name={self.mark} AND state='live'", (name,))

    def generations(self, name: str | None = None) -> list[Generation]:
        with self._read() as c:
            return self._generations(c, name)

    def ensure(self, projection: Projection) -> Generation:
        with self._tx(catalogue=True) as c:
            live = next((g for g in self._generations(c, projection.name) if g.state == "live"), None)
            if live is None or live.version != projection.version:
                # a new version of the code: its own tables, built from the log
                self._retire_live(c, projection.name)
                live = self._add_generation(c, projection, "live")
            for stmt in self._ddl(projection, live):
                c.execute(stmt, ())
        for g in self.generations(projection.name):
            if g.state == "retired":
                self.drop(projection, g)
        self._live[projection.name] = (time.monotonic(), live)
        return live

    def live(self, projection: Projection) -> Generation:
        hit = self._live.get(projection.name)
        if hit and time.monotonic() - hit[0] < LIVE_TTL_SECONDS and hit[1].version == projection.version:
            return hit[1]
        found = next((g for g in self.generations(projection.name) if g.state == "live"), None)
        if found is None or found.version != projection.version:
            return self.ensure(projection)
        self._live[projection.name] = (time.monotonic(), found)
        return found

    def new_generation(self, projection: Projection) -> Generation:
        with self._tx(catalogue=True) as c:
            return self._add_generation(c, projection, "building")

    def switch(self, projection: Projection, generation: Generation) -> Generation | None:
        with self._tx(catalogue=True) as c:
            old = next((g for g in self._generations(c, projection.name) if g.state == "live"), None)
            self._retire_live(c, projection.name)
            c.execute(
                f"UPDATE {self.catalogue} SET state='live' WHERE name={self.mark} AND generation={self.mark}",
                (projection.name, generation.generation),
            )
        self._live.pop(projection.name, None)
        return old

    def drop(self, projection: Projection, generation: Generation) -> None:
        m = self.mark
        with self._tx(catalogue=True) as c:
            for t in projection.tables:
                c.execute(f"DROP TABLE IF EXISTS {self.physical(generation, t.name)}", ())
            c.execute(
                f"DELETE FROM {self.tracking} WHERE name={m} OR name LIKE {m}",
                (generation.tracking_name, f"{generation.tracking_name}/%"),
            )
            c.execute(
                f"DELETE FROM {self.catalogue} WHERE name={m} AND generation={m}",
                (generation.name, generation.generation),
            )

    # -- rows and tracking ---------------------------------------------------------------------

    def position(self, tracking_name: str) -> int:
        with self._read() as c:
            r = c.execute(f"SELECT position FROM {self.tracking} WHERE name={self.mark}", (tracking_name,)).fetchone()
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
            self._apply_ops(c, [self._op_sql(projection, generation, op) for op in ops])
            if exclusive:
                self._insert_new_tracking(c, tracking_name, position)
            else:
                c.execute(
                    f"INSERT INTO {self.tracking} VALUES ({self.mark}, {self.mark}) ON CONFLICT (name) DO UPDATE"
                    f" SET position = CASE WHEN {self.tracking}.position > excluded.position"
                    f" THEN {self.tracking}.position ELSE excluded.position END",
                    (tracking_name, position),
                )

    def _apply_ops(self, c: Any, statements: list[tuple[str, list[Any]]]) -> None:
        for sql, params in statements:
            c.execute(sql, params)

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
        into: Callable[..., Any] | None = None,
    ) -> list[Any]:
        gen = generation or self.live(projection)
        t = self._table(projection, table)
        clause = where.replace("?", self.mark)
        sql = f"SELECT {', '.join(t.column_names)} FROM {self.physical(gen, table)} WHERE ({clause})"
        values = [self._param(p) for p in params]
        if after is not None:
            sql += f" AND {order_by} > {self.mark}"
            values.append(self._param(after))
        sql += f" ORDER BY {order_by} LIMIT {self.mark}"
        types = t.types()
        with self._read() as c:
            rows = c.execute(sql, (*values, limit)).fetchall()
        names = t.column_names
        if into is not None:  # a page: each row built from its tuple (no dict, no keywords)
            if type(self)._from_db is _Base._from_db:  # the driver gave the values as they are
                return [into(*r) for r in rows]
            kinds = [types[k] for k in names]
            return [into(*map(self._from_db, kinds, r)) for r in rows]
        return [{k: self._from_db(types[k], v) for k, v in zip(names, r, strict=True)} for r in rows]

    #: Branches per merged query: below SQLite's compound-select limit (500) and its oldest
    #: bound-parameter limit (999), and short enough for PostgreSQL to plan quickly.
    MAX_BRANCHES = 200

    def _arm(self, select: str, order_by: str) -> tuple[str, bool]:
        """One arm of the UNION ALL; True when it takes its own LIMIT parameter. The default
        (PostgreSQL) orders and limits each arm: the planner merges the arms (Merge Append)."""
        return f"({select} ORDER BY {order_by} LIMIT {self.mark})", True

    def merged_statements(
        self,
        projection: Projection,
        table: str,
        branches: Sequence[tuple[str, Sequence[Any]]],
        *,
        order_by: str,
        after: Any = None,
        limit: int = 100,
        generation: Generation | None = None,
    ) -> list[tuple[str, list[Any]]]:
        """The statements ``select_merged`` runs (one per ``MAX_BRANCHES`` branches), with their
        parameters: what a test asks the planner about."""
        gen = generation or self.live(projection)
        t = self._table(projection, table)
        if order_by not in t.column_names:
            raise ValueError(f"order by a column of {projection.name}.{table}, got {order_by!r}")
        m, name, cols = self.mark, self.physical(gen, table), ", ".join(t.column_names)
        statements = []
        for start in range(0, len(branches), self.MAX_BRANCHES):
            parts, values, limited = [], [], False
            for where, params in branches[start : start + self.MAX_BRANCHES]:
                sql = f"SELECT {cols} FROM {name} WHERE ({where.replace('?', m)})"
                values += [self._param(p) for p in params]
                if after is not None:
                    sql += f" AND {order_by} > {m}"
                    values.append(self._param(after))
                arm, limited = self._arm(sql, order_by)
                parts.append(arm)
                if limited:
                    values.append(limit)
            if len(parts) == 1 and limited:  # one arm already ordered and limited
                sql = parts[0]
            else:
                sql = " UNION ALL ".join(parts) + f" ORDER BY {order_by} LIMIT {m}"
                values.append(limit)
            statements.append((sql, values))
        return statements

    def select_merged(
        self,
        projection: Projection,
        table: str,
        branches: Sequence[tuple[str, Sequence[Any]]],
        *,
        order_by: str,
        after: Any = None,
        limit: int = 100,
        generation: Generation | None = None,
        stale_ok: bool = False,
        into: Callable[..., Any] | None = None,
    ) -> list[Any]:
        t = self._table(projection, table)
        statements = self.merged_statements(
            projection, table, branches, order_by=order_by, after=after, limit=limit, generation=generation
        )
        found: list[tuple[Any, ...]] = []
        with self._read(stale_ok) as c:
            for sql, values in statements:
                found += self._fetch_page(c, sql, values)
        if len(statements) > 1:  # several chunks: merge their pages
            key = t.column_names.index(order_by)
            found = sorted(found, key=lambda r: r[key])[:limit]
        types, names = t.types(), t.column_names
        as_given = type(self)._from_db is _Base._from_db  # the driver gave the values as they are
        if into is not None:  # a page: 100 rows, each built from its tuple (no dict, no keywords)
            if as_given:
                return [into(*r) for r in found]
            kinds = [types[k] for k in names]
            return [into(*map(self._from_db, kinds, r)) for r in found]
        if as_given:
            return [dict(zip(names, r, strict=True)) for r in found]
        return [{k: self._from_db(types[k], v) for k, v in zip(names, r, strict=True)} for r in found]

    def count(
        self,
        projection: Projection,
        table: str,
        group_by: Sequence[str],
        where: str = "1=1",
        params: Sequence[Any] = (),
        *,
        generation: Generation | None = None,
    ) -> dict[tuple[Any, ...], int]:
        gen = generation or self.live(projection)
        t = self._table(projection, table)
        unknown = [c for c in group_by if c not in t.column_names]
        if unknown or not group_by:
            raise ValueError(f"group by columns of {projection.name}.{table}, got {list(group_by)!r}")
        cols = ", ".join(group_by)
        clause = where.replace("?", self.mark)
        sql = f"SELECT {cols}, count(*) FROM {self.physical(gen, table)} WHERE ({clause}) GROUP BY {cols}"
        types = t.types()
        with self._read() as c:
            rows = c.execute(sql, [self._param(p) for p in params]).fetchall()
        return {tuple(self._from_db(types[k], v) for k, v in zip(group_by, r, strict=False)): int(r[-1]) for r in rows}

    def select_all(
        self,
        projection: Projection,
        table: str,
        where: str,
        params: Sequence[Any],
        *,
        key: str | None = None,
        key_where: str = "1=1",
        key_params: Sequence[Any] = (),
        generation: Generation | None = None,
    ) -> list[dict[str, Any]]:
        gen = generation or self.live(projection)
        t = self._table(projection, table)
        name, m = self.physical(gen, table), self.mark
        sql = f"SELECT {', '.join(t.column_names)} FROM {name} WHERE ({where.replace('?', m)})"
        values = [self._param(p) for p in params]
        if key is not None:
            if key not in t.column_names:
                raise ValueError(f"a key of {projection.name}.{table}, got {key!r}")
            sql += f" AND {key} IN (SELECT {key} FROM {name} WHERE ({key_where.replace('?', m)}))"
            values += [self._param(p) for p in key_params]
        types, names = t.types(), t.column_names
        with self._read() as c:
            rows = c.execute(sql, values).fetchall()
        if type(self)._from_db is _Base._from_db:  # the driver gave the values as they are
            return [dict(zip(names, r, strict=True)) for r in rows]
        return [{k: self._from_db(types[k], v) for k, v in zip(names, r, strict=True)} for r in rows]


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
        with self._tx(catalogue=True) as c:
            for stmt in self._schema():
                c.execute(stmt, ())

    @contextmanager
    def _tx(self, catalogue: bool = False) -> Iterator[sqlite3.Connection]:
        c = self._connections.get()
        c.execute("BEGIN IMMEDIATE")  # one writer: the catalogue's changes are serialised
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    @contextmanager
    def _read(self, stale_ok: bool = False) -> Iterator[sqlite3.Connection]:
        yield self._connections.get()

    def _arm(self, select: str, order_by: str) -> tuple[str, bool]:
        # A bare arm: SQLite pushes the compound's ORDER BY into each arm (an index range, no
        # sort) and merges them, stopping at the LIMIT; an arm wrapped with its own LIMIT
        # would be sorted again in a temporary b-tree.
        return select, False

    def _param(self, value: Any) -> Any:
        if isinstance(value, UUID):
            return str(value)
        if isinstance(value, datetime):
            return _ts(value)
        if isinstance(value, bool):
            return int(value)
        return value

    def _from_db(self, type_: str, value: Any) -> Any:
        if value is None:
            return None
        if type_ == "uuid":
            return UUID(value)
        if type_ == "time":
            return datetime.fromisoformat(value)
        if type_ == "bool":
            return bool(value)
        return value

    def _insert_new_tracking(self, c: Any, tracking_name: str, position: int) -> None:
        try:
            c.execute(f"INSERT INTO {self.tracking} VALUES (?, ?)", (tracking_name, position))
        except sqlite3.IntegrityError:
            raise AlreadyApplied(tracking_name) from None

    def close(self) -> None:
        self._connections.close()


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

    def __init__(self, conninfo: str, replica_conninfo: str | None = None) -> None:
        super().__init__()
        from core.postgres import open_pool

        # every write is in ``_tx`` (an explicit transaction): a page read is one round trip
        self.pool = open_pool(conninfo, min_size=1, max_size=4, name="smd-views", autocommit=True)
        #: SMD_DATABASE_READ_URL: a streaming replica serving the API's pages (``stale_ok``)
        self.replica_pool = (
            open_pool(replica_conninfo, min_size=1, max_size=4, name="smd-views-replica", autocommit=True)
            if replica_conninfo
            else None
        )
        with self._tx(catalogue=True) as c:
            for stmt in self._schema():
                c.execute(stmt, ())

    @contextmanager
    def _tx(self, catalogue: bool = False) -> Iterator[Any]:
        with self.pool.connection() as c, c.transaction():
            if catalogue:
                c.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_ID,))
            yield c

    @contextmanager
    def _read(self, stale_ok: bool = False) -> Iterator[Any]:
        pool = self.replica_pool if stale_ok and self.replica_pool is not None else self.pool
        with pool.connection() as c:
            yield c

    def _apply_ops(self, c: Any, statements: list[tuple[str, list[Any]]]) -> None:
        # consecutive statements of one shape go in one executemany
        with c.cursor() as cur:
            i = 0
            while i < len(statements):
                j = i
                while j < len(statements) and statements[j][0] == statements[i][0]:
                    j += 1
                cur.executemany(statements[i][0], [p for _, p in statements[i:j]])
                i = j

    def _fetch_page(self, c: Any, sql: str, values: list[Any]) -> list[Any]:
        # results in binary: no text to format on the server, none to parse here (the same values)
        return list(c.execute(sql, values, binary=True).fetchall())

    def _insert_new_tracking(self, c: Any, tracking_name: str, position: int) -> None:
        import psycopg

        try:
            with c.transaction():
                c.execute(f"INSERT INTO {self.tracking} VALUES (%s, %s)", (tracking_name, position))
        except psycopg.errors.UniqueViolation:
            raise AlreadyApplied(tracking_name) from None

    def close(self) -> None:
        if self.replica_pool is not None:
            self.replica_pool.close()
        self.pool.close()
