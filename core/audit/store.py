"""Where the verifiable log keeps its tree: leaves, perfect subtrees, stream heads, checkpoints.

Tables (SQLite file ``vlog.sqlite`` in the data folder; PostgreSQL tables ``smd_vlog_*`` beside
the events):

- ``tree``: one row per tree: its hash algorithm, its size (leaves) and the last log position
  the chain follower handled (the tracked position, written with the leaves in one transaction);
- ``leaves``: one row per leaf, in a dense counter of its own (``leaf_index`` 0, 1, 2 …): the
  notification id it commits to, the stream and version, the leaf hash, the stream's chain
  hash after it, and ``subtrees``: the hashes of the perfect aligned subtrees of two leaves or
  more that this leaf completes, level 1 first, concatenated (empty for most leaves), so that a
  proof costs O(log n) lookups of leaf rows in one query;
- ``nodes``: the same subtrees as written before ``subtrees`` existed (the leaves whose
  ``subtrees`` is NULL): read, never written any more;
- ``checkpoints`` (signed notes) and ``cosignatures`` (witnesses' lines).

A stream's chain head is its last leaf's ``stream_hash`` (index by stream, then leaf index).
Before, a ``streams`` table held a copy of each head and the nodes had rows of their own: two
more rows and two more index entries a leaf to write for nothing a leaf row cannot hold. The
upgrade (``_upgrade``, at start) adds the column, swaps the stream index and renames the old
``streams`` table to ``streams_retired`` (kept, unread: every head in it is its stream's last
leaf's ``stream_hash``); a process of the version before cannot follow after it (its writes to
``streams`` fail, so its chain stops before writing anything) — stop old processes first.

Rows hold ids, versions, topics and hashes: never personal data.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any, ClassVar

from eventsourcing.persistence import IntegrityError

from core.sqlite_files import ThreadConnections

TREE = "case-record"  # the one tree of a deployment: every row of the global log


@dataclass(frozen=True, slots=True)
class Leaf:
    """One leaf as the chain recorded it."""

    leaf_index: int
    notification_id: int
    originator_id: str
    originator_version: int
    topic: str
    leaf_hash: bytes
    stream_hash: bytes


@dataclass(frozen=True, slots=True)
class TreeState:
    """A tree's algorithm, size and the last log position handled."""

    algorithm: str
    size: int
    position: int


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A signed checkpoint the service issued."""

    size: int
    root: bytes
    algorithm: str
    note: str
    signed_at: datetime


class _Base:
    prefix: ClassVar[str] = ""
    mark: ClassVar[str] = "?"
    blob: ClassVar[str] = "BLOB"
    big: ClassVar[str] = "INTEGER"

    def t(self, name: str) -> str:
        return f"{self.prefix}vlog_{name}"

    def _schema(self) -> list[str]:
        b, i = self.blob, self.big
        return [
            f"CREATE TABLE IF NOT EXISTS {self.t('tree')} (name TEXT PRIMARY KEY, algorithm TEXT NOT NULL,"
            f" size {i} NOT NULL, position {i} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.t('leaves')} (leaf_index {i} PRIMARY KEY,"
            f" notification_id {i} NOT NULL UNIQUE, originator_id TEXT NOT NULL, originator_version {i} NOT NULL,"
            f" topic TEXT NOT NULL, leaf_hash {b} NOT NULL, stream_hash {b} NOT NULL, subtrees {b})",
            f"CREATE TABLE IF NOT EXISTS {self.t('nodes')} (level INTEGER NOT NULL, idx {i} NOT NULL,"
            f" hash {b} NOT NULL, PRIMARY KEY (level, idx))",
            f"CREATE TABLE IF NOT EXISTS {self.t('checkpoints')} (size {i} PRIMARY KEY, root {b} NOT NULL,"
            " algorithm TEXT NOT NULL, note TEXT NOT NULL, signed_at TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.t('cosignatures')} (size {i} NOT NULL, witness TEXT NOT NULL,"
            " line TEXT NOT NULL, PRIMARY KEY (size, witness))",
        ]

    def _upgrade(self, c: Any) -> None:
        """Bring a tree stored by an earlier version to this one's tables (see the module's doc)."""
        if "subtrees" not in self._columns(c, "leaves"):
            c.execute(f"ALTER TABLE {self.t('leaves')} ADD COLUMN subtrees {self.blob}")
        # the stream's last leaf by leaf index is its head; by version it was only its newest event
        c.execute(
            f"CREATE INDEX IF NOT EXISTS {self.t('leaves_stream_order')}"
            f" ON {self.t('leaves')} (originator_id, leaf_index)"
        )
        c.execute(f"DROP INDEX IF EXISTS {self.t('leaves_stream')}")
        if self._has_table(c, "streams"):
            c.execute(f"ALTER TABLE {self.t('streams')} RENAME TO {self.t('streams_retired')}")

    def _columns(self, c: Any, table: str) -> set[str]:
        raise NotImplementedError

    def _has_table(self, c: Any, table: str) -> bool:
        raise NotImplementedError

    # -- connections (per backend) --------------------------------------------------------------

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return sql.replace("?", self.mark)

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read() as c:
            return [tuple(r) for r in c.execute(self._q(sql), tuple(params)).fetchall()]

    # -- the tree -----------------------------------------------------------------------------

    def tree(self, algorithm: str, name: str = TREE) -> TreeState:
        """The tree's state (created empty with ``algorithm`` on first use)."""
        rows = self._all(f"SELECT algorithm, size, position FROM {self.t('tree')} WHERE name = ?", (name,))
        if not rows:
            with self._tx() as c:
                c.execute(
                    self._q(f"INSERT INTO {self.t('tree')} VALUES (?, ?, 0, 0) ON CONFLICT (name) DO NOTHING"),
                    (name, algorithm),
                )
            rows = self._all(f"SELECT algorithm, size, position FROM {self.t('tree')} WHERE name = ?", (name,))
        a, s, p = rows[0]
        return TreeState(str(a), int(s), int(p))

    def nodes(self, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored perfect subtrees asked for, from the rows of the leaves that complete them
        (level 0: the leaf's hash) in one query per 400 leaves; those of leaves stored before the
        ``subtrees`` column from the ``nodes`` table."""
        by_leaf: dict[int, list[tuple[int, int]]] = {}
        for level, idx in set(wanted):
            by_leaf.setdefault(((idx + 1) << level) - 1, []).append((level, idx))
        out: dict[tuple[int, int], bytes] = {}
        older: list[tuple[int, int]] = []
        indexes = sorted(by_leaf)
        for i in range(0, len(indexes), 400):
            chunk = indexes[i : i + 400]
            marks = ",".join("?" * len(chunk))
            for index, h, subtrees in self._all(
                f"SELECT leaf_index, leaf_hash, subtrees FROM {self.t('leaves')} WHERE leaf_index IN ({marks})", chunk
            ):
                size = len(h)
                for level, idx in by_leaf[int(index)]:
                    if not level:
                        out[(0, idx)] = bytes(h)
                    elif subtrees is None:
                        older.append((level, idx))
                    elif len(subtrees) >= level * size:
                        out[(level, idx)] = bytes(subtrees[(level - 1) * size : level * size])
        older.sort()
        for i in range(0, len(older), 400):
            keys = older[i : i + 400]
            pairs = ",".join(["(?, ?)"] * len(keys))
            params = [x for pair in keys for x in pair]
            for lvl, idx, h in self._all(
                f"SELECT level, idx, hash FROM {self.t('nodes')} WHERE (level, idx) IN (VALUES {pairs})", params
            ):
                out[(int(lvl), int(idx))] = bytes(h)
        return out

    def stream_heads(self, originators: Iterable[str]) -> dict[str, tuple[int, bytes]]:
        """Each stream's last version and chain head: its last leaf's (streams not seen yet are absent)."""
        ids = sorted(set(originators))
        out: dict[str, tuple[int, bytes]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            # SQLite takes the bare columns from the row of max(leaf_index)
            for oid, _, version, head in self._all(
                f"SELECT originator_id, max(leaf_index), originator_version, stream_hash FROM {self.t('leaves')}"
                f" WHERE originator_id IN ({marks}) GROUP BY originator_id",
                chunk,
            ):
                out[str(oid)] = (int(version), bytes(head))
        return out

    def append(
        self,
        expected_position: int,
        position: int,
        size: int,
        leaves: Sequence[Leaf],
        subtrees: Sequence[bytes],
        name: str = TREE,
    ) -> None:
        """Write a batch's leaves (with the subtrees each completes) with the new size and
        position, in one transaction; IntegrityError when another writer moved the tree first."""
        rows = [
            (
                lf.leaf_index,
                lf.notification_id,
                lf.originator_id,
                lf.originator_version,
                lf.topic,
                lf.leaf_hash,
                lf.stream_hash,
                completed,
            )
            for lf, completed in zip(leaves, subtrees, strict=True)
        ]
        self.append_rows(expected_position, position, size, rows, name)

    def append_rows(
        self,
        expected_position: int,
        position: int,
        size: int,
        leaves: Sequence[tuple[Any, ...]],
        name: str = TREE,
    ) -> None:
        """``append`` with the leaves as the leaves table's rows (``Leaf``'s fields in order, then
        the subtrees the leaf completes)."""
        self.append_chunks(expected_position, position, size, [leaves] if leaves else [], name)

    def append_chunks(
        self,
        expected_position: int,
        position: int,
        size: int,
        chunks: Iterable[Sequence[tuple[Any, ...]]],
        name: str = TREE,
    ) -> None:
        """``append_rows`` with the rows in chunks, each taken from ``chunks`` (which may compute
        it) only once the ones before are on their way to the database, inside the transaction:
        PostgreSQL stores a chunk while the next is being computed."""
        with self._tx() as c:
            self._no_flush_wait(c)
            cur = c.execute(
                self._q(f"UPDATE {self.t('tree')} SET size = ?, position = ? WHERE name = ? AND position = ?"),
                (size, position, name, expected_position),
            )
            if cur.rowcount != 1:
                raise IntegrityError(f"the tree {name} moved past {expected_position} meanwhile")
            self._insert_chunks(c, chunks)

    def _insert_chunks(self, c: Any, chunks: Iterable[Sequence[tuple[Any, ...]]]) -> None:
        for rows in chunks:
            if rows:
                self._insert_leaves(c, rows)

    def _no_flush_wait(self, c: Any) -> None:
        """The chain's batch need not wait for its commit to reach the disk (PostgreSQL)."""

    def _insert_leaves(self, c: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        c.executemany(self._q(f"INSERT INTO {self.t('leaves')} VALUES ({', '.join('?' * 8)})"), rows)

    def leaves(self, start: int = 0, limit: int = 10_000) -> list[Leaf]:
        """Leaves from ``start`` (a leaf index), in order."""
        rows = self._all(
            f"SELECT leaf_index, notification_id, originator_id, originator_version, topic, leaf_hash, stream_hash"
            f" FROM {self.t('leaves')} WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
            (start, limit),
        )
        return [_leaf(r) for r in rows]

    def leaves_of(self, originator_id: str) -> list[Leaf]:
        """One stream's leaves, by version."""
        rows = self._all(
            f"SELECT leaf_index, notification_id, originator_id, originator_version, topic, leaf_hash, stream_hash"
            f" FROM {self.t('leaves')} WHERE originator_id = ? ORDER BY originator_version",
            (originator_id,),
        )
        return [_leaf(r) for r in rows]

    def leaf_hashes_of(self, originator_id: str) -> dict[int, tuple[int, bytes]]:
        """One stream's leaves as version → (notification id, leaf hash): what a replay checks."""
        rows = self._all(
            f"SELECT originator_version, notification_id, leaf_hash FROM {self.t('leaves')} WHERE originator_id = ?",
            (originator_id,),
        )
        return {int(v): (int(n), bytes(h)) for v, n, h in rows}

    def leaf_at(self, notification_id: int) -> Leaf | None:
        """The leaf that commits to a log position, if any."""
        rows = self._all(
            f"SELECT leaf_index, notification_id, originator_id, originator_version, topic, leaf_hash, stream_hash"
            f" FROM {self.t('leaves')} WHERE notification_id = ?",
            (notification_id,),
        )
        return _leaf(rows[0]) if rows else None

    def subtrees(self) -> Iterator[tuple[int, bytes | None]]:
        """Every leaf's stored subtrees (for verify), by leaf index: None for a leaf stored before
        the ``subtrees`` column (its subtrees are in ``older_nodes``)."""
        last = -1
        while True:
            rows = self._all(
                f"SELECT leaf_index, subtrees FROM {self.t('leaves')} WHERE leaf_index > ?"
                " ORDER BY leaf_index LIMIT 10000",
                (last,),
            )
            if not rows:
                return
            for idx, st in rows:
                yield int(idx), None if st is None else bytes(st)
            last = int(rows[-1][0])

    def older_nodes(self) -> Iterator[tuple[int, int, bytes]]:
        """The ``nodes`` table's subtrees (written before the ``subtrees`` column), by level and index."""
        last = (0, -1)
        while True:
            rows = self._all(
                f"SELECT level, idx, hash FROM {self.t('nodes')} WHERE level > ? OR (level = ? AND idx > ?)"
                " ORDER BY level, idx LIMIT 10000",
                (last[0], last[0], last[1]),
            )
            if not rows:
                return
            for level, idx, h in rows:
                yield int(level), int(idx), bytes(h)
            last = (int(rows[-1][0]), int(rows[-1][1]))

    # -- checkpoints ---------------------------------------------------------------------------

    def add_checkpoint(self, cp: StoredCheckpoint) -> None:
        """Keep a signed checkpoint (one per size)."""
        with self._tx() as c:
            c.execute(
                self._q(f"INSERT INTO {self.t('checkpoints')} VALUES (?, ?, ?, ?, ?) ON CONFLICT (size) DO NOTHING"),
                (cp.size, cp.root, cp.algorithm, cp.note, cp.signed_at.isoformat()),
            )

    def checkpoints(self, size: int | None = None) -> list[StoredCheckpoint]:
        """Every checkpoint by size (or the one of ``size``)."""
        where, params = ("WHERE size = ?", (size,)) if size is not None else ("", ())
        rows = self._all(
            f"SELECT size, root, algorithm, note, signed_at FROM {self.t('checkpoints')} {where} ORDER BY size", params
        )
        return [
            StoredCheckpoint(int(s), bytes(r), str(a), str(n), datetime.fromisoformat(str(t))) for s, r, a, n, t in rows
        ]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint of the largest tree signed so far."""
        rows = self._all(
            f"SELECT size, root, algorithm, note, signed_at FROM {self.t('checkpoints')} ORDER BY size DESC LIMIT 1"
        )
        return (
            StoredCheckpoint(
                int(rows[0][0]),
                bytes(rows[0][1]),
                str(rows[0][2]),
                str(rows[0][3]),
                datetime.fromisoformat(str(rows[0][4])),
            )
            if rows
            else None
        )

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep a witness's cosignature line of the checkpoint of ``size``."""
        with self._tx() as c:
            c.execute(
                self._q(
                    f"INSERT INTO {self.t('cosignatures')} VALUES (?, ?, ?) ON CONFLICT (size, witness)"
                    " DO UPDATE SET line = excluded.line"
                ),
                (size, witness, line),
            )

    def cosignatures(self, size: int) -> list[tuple[str, str]]:
        """(witness name, signature line) of a checkpoint."""
        return [
            (str(w), str(line))
            for w, line in self._all(
                f"SELECT witness, line FROM {self.t('cosignatures')} WHERE size = ? ORDER BY witness", (size,)
            )
        ]

    def last_cosigned(self) -> dict[str, int]:
        """Each witness's largest cosigned checkpoint (witness name → size)."""
        rows = self._all(f"SELECT witness, max(size) FROM {self.t('cosignatures')} GROUP BY witness")
        return {str(w): int(s) for w, s in rows}

    def close(self) -> None:
        raise NotImplementedError


def _leaf(r: Sequence[Any]) -> Leaf:
    return Leaf(int(r[0]), int(r[1]), str(r[2]), int(r[3]), str(r[4]), bytes(r[5]), bytes(r[6]))


class SQLiteChainStore(_Base):
    """The tree in an SQLite file (the embedded default)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connections = ThreadConnections(path)
        with self._tx() as c:
            for stmt in self._schema():
                c.execute(stmt)
            self._upgrade(c)

    def _columns(self, c: Any, table: str) -> set[str]:
        return {str(r[1]) for r in c.execute(f"PRAGMA table_info({self.t(table)})")}

    def _has_table(self, c: Any, table: str) -> bool:
        return bool(
            c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (self.t(table),)).fetchall()
        )

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._connections.transaction()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        yield self._connections.get()

    def close(self) -> None:
        self._connections.close()


class PostgresChainStore(_Base):
    """The tree in PostgreSQL tables beside the event store."""

    prefix = "smd_"
    mark = "%s"
    blob = "bytea"
    big = "bigint"

    def __init__(self, conninfo: str, pool: Any = None) -> None:
        from core.postgres import open_pool

        # ``pool``: another store's pool to share (the server's connections are few); not closed here
        self._own_pool = pool is None
        self.pool = pool if pool is not None else open_pool(conninfo, min_size=1, max_size=2, name="smd-vlog")
        with self._tx() as c:
            for stmt in self._schema():
                c.execute(stmt)
            self._upgrade(c)

    def _columns(self, c: Any, table: str) -> set[str]:
        c.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s",
            (self.t(table),),
        )
        return {str(r[0]) for r in c.fetchall()}

    def _has_table(self, c: Any, table: str) -> bool:
        c.execute("SELECT to_regclass(%s)", (self.t(table),))
        return c.fetchone()[0] is not None

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur  # execute and executemany, as an SQLite connection offers

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self.pool.connection() as c:
            yield c

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read() as c:
            return [tuple(r) for r in c.execute(self._q(sql), tuple(params)).fetchall()]

    def _no_flush_wait(self, c: Any) -> None:
        # A batch lost in a crash is appended again, the same leaves at the same indexes: the tree
        # is a function of the stored rows, which were flushed before the chain could read them,
        # so a proof given out meanwhile holds again once it is. A checkpoint's commit waits for
        # the flush, which is sequential: every batch before it is on disk with it.
        c.execute("SET LOCAL synchronous_commit TO off")

    def _insert_leaves(self, c: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        self._insert_chunks(c, [rows])

    def _insert_chunks(self, c: Any, chunks: Iterable[Sequence[tuple[Any, ...]]]) -> None:
        # one binary COPY, encoded here a chunk at a time (several times faster than INSERTs, and
        # a third of the time of psycopg's ``write_row``, which dumps field by field); the server
        # stores a chunk while the next is computed and encoded, so the two overlap
        pending = (rows for rows in chunks if rows)
        first = next(pending, None)
        if first is None:
            return
        with c.copy(f"COPY {self.t('leaves')} FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(_COPY_HEADER)
            for rows in chain((first,), pending):
                copy.write(b"".join(_copy_leaves(rows)))
            copy.write(_COPY_TRAILER)

    def stream_heads(self, originators: Iterable[str]) -> dict[str, tuple[int, bytes]]:
        # one descent of the stream index a stream, whatever its length
        rows = self._all(
            f"SELECT s.id, last.originator_version, last.stream_hash FROM unnest(%s::text[]) AS s (id)"
            f" CROSS JOIN LATERAL (SELECT originator_version, stream_hash FROM {self.t('leaves')}"
            " WHERE originator_id = s.id ORDER BY leaf_index DESC LIMIT 1) AS last",
            (sorted(set(originators)),),
        )
        return {str(oid): (int(v), bytes(h)) for oid, v, h in rows}

    def close(self) -> None:
        if self._own_pool:
            self.pool.close()


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_COPY_TRAILER = b"\xff\xff"
_STRUCTS: dict[tuple[int, ...], struct.Struct] = {}  # by the lengths of the row's variable fields


def _copy_leaves(rows: Sequence[tuple[Any, ...]]) -> list[bytes]:
    out: list[bytes] = []
    append, structs = out.append, _STRUCTS
    for index, nid, oid, version, topic, leaf, head, subtrees in rows:
        o, t = oid.encode(), topic.encode()
        key = (len(o), len(t), len(leaf), len(head), len(subtrees))
        st = structs.get(key)
        if st is None:  # eight fields, each its length then its bytes (PostgreSQL's binary COPY)
            st = structs[key] = struct.Struct(">hiqiqi{}siqi{}si{}si{}si{}s".format(*key))
        lo, lt, ll, lh, ls = key
        append(st.pack(8, 8, index, 8, nid, lo, o, 8, version, lt, t, ll, leaf, lh, head, ls, subtrees))
    return out


ChainStore = SQLiteChainStore | PostgresChainStore
