"""The chain follower: appends every stored row of the global log to the tree, in log order.

It runs on the one follower engine (``core.followers.engine``) with one difference from every
other follower: it never parks. A row it cannot append *stops* it just before that row, because
a skipped row would be a hole in the tree (every later leaf index would shift). Stopping is
visible in ``smd projections status``, ``/v1/status`` and ``/metrics`` like any other stop.

A batch's leaves (each with the perfect subtrees it completes and its stream's new chain head)
and the tracked position are written in one transaction (``ChainStore.append``); a writer that
moved the tree first makes the batch be decided again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from eventsourcing.persistence import Notification

from core.audit.leaves import LEAF_INPUT_SQL, leaf_of, stream_start
from core.audit.merkle import DEFAULT_ALGORITHM, Hasher, frontier_nodes
from core.audit.store import TREE, ChainStore
from core.followers.engine import AlreadyApplied, Follower
from core.followers.parking import ParkingStore

FOLLOWER_NAME = "chain"
#: Streams whose chain heads the chain keeps in memory between batches (beyond: read again).
HEADS_KEPT = 200_000
#: Leaves computed and sent to the store at a time within a batch's one write.
WRITE_CHUNK = 1_000


class NeverPark:
    """Concerns for the chain: every row concerns the whole tree, so a failure stops the chain."""

    def keys(self, notification: Notification) -> None:
        return None


class ChainRow(NamedTuple):
    """A stored row as the chain reads it: its ids and its leaf hash (the engine needs ``id`` and
    ``topic``). ``leaf_hash`` is None when the database could not compute it (a NULL column):
    the chain then hashes the row as eventsourcing hands it out."""

    id: int
    originator_id: str
    originator_version: int
    topic: str
    leaf_hash: bytes | None


@dataclass
class ChainWork:
    """One batch: where the tree stood, and what the batch appends."""

    start_position: int
    size: int
    frontier: list[bytes]
    heads: dict[str, tuple[int, bytes]]  # the streams' heads before the batch (known ones)
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # (notification id, stream, version, topic, leaf hash)
    touched: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # the streams' new heads
    fetched: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # heads read for this batch
    finished: bool = False  # the heads of the rows' streams are known (``finish``)


class ChainHandler:
    """Appends rows to the tree (the follower engine's ``Handler``).

    Where its time goes (``smd bench``): it reads each row's leaf hash computed by PostgreSQL
    (``select``), keeps the streams' chain heads in memory between batches (valid while nobody
    else moved the tree), and writes a batch's leaves, each with the subtrees it completes, with
    one ``COPY``: the subtrees and chain heads of a chunk of leaves are computed while PostgreSQL
    stores the chunk before (``_leaf_rows``)."""

    topics: Sequence[str] | None = None  # every row

    def __init__(self, store: ChainStore, recorder: Any = None, algorithm: str = DEFAULT_ALGORITHM) -> None:
        self.store = store
        self.recorder = recorder
        state = store.tree(algorithm)
        self.hasher = Hasher(state.algorithm)  # the stored algorithm wins: a tree never changes it
        self._heads: dict[str, tuple[int, bytes]] = {}
        self._heads_at = -1  # the tree size ``_heads`` is true at (-1: unknown)
        self._heads_complete = False  # every stream of the tree is in ``_heads``
        self._ahead: tuple[tuple[int, int, int], Future[list[ChainRow]]] | None = None  # read ahead
        self._reader: ThreadPoolExecutor | None = None

    def position_of(self, tracking_name: str) -> int:
        return self.store.tree(self.hasher.algorithm, TREE).position

    # -- reading -----------------------------------------------------------------------------

    def select(self, start: int, limit: int, stop: int) -> list[Any]:
        """Rows ``start``..``stop`` (at most ``limit``), each with its leaf hash: computed by
        PostgreSQL for a SHA-256 tree on eventsourcing's PostgreSQL recorder, else here.

        On PostgreSQL, a full batch also starts reading the next one on another connection while
        this one is hashed and written (a catch-up reads and writes at once). The rows read ahead
        serve the next call only if it asks for them: the same start and limit, and either a full
        batch (ids at or below the old ``stop`` never change) or the same ``stop``."""
        sql = self._select_sql()
        if sql is None:
            return list(self.recorder.select_notifications(start, limit, stop=stop))
        rows: list[ChainRow] | None = None
        if self._ahead is not None:
            (a_start, a_limit, a_stop), pending = self._ahead
            self._ahead = None
            try:
                found = pending.result()
            except Exception:  # read again below: a failure is reported by that read
                found = None
            if found is not None and (a_start, a_limit) == (start, limit):
                if a_stop == stop or len(found) == limit:
                    rows = found
        if rows is None:
            rows = self._read(sql, start, limit, stop)
        if len(rows) == limit and rows[-1].id < stop:
            if self._reader is None:
                self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain-read-ahead")
            after = rows[-1].id + 1
            self._ahead = ((after, limit, stop), self._reader.submit(self._read, sql, after, limit, stop))
        return rows

    def _read(self, sql: Any, start: int, limit: int, stop: int) -> list[ChainRow]:
        from psycopg.rows import tuple_row

        with self.recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(sql, (start, stop, limit), prepare=True)
            return [ChainRow._make(r) for r in cur.fetchall()]

    def _select_sql(self) -> Any:
        from eventsourcing.postgres import PostgresDatastore
        from psycopg.sql import SQL, Identifier

        datastore = getattr(self.recorder, "datastore", None)
        if self.hasher.algorithm != "sha256" or not isinstance(datastore, PostgresDatastore):
            return None

        return SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, sha256({leaf})"
            " FROM {schema}.{table} WHERE notification_id >= %s AND notification_id <= %s"
            " ORDER BY notification_id LIMIT %s"
        ).format(
            leaf=SQL(LEAF_INPUT_SQL),  # type: ignore[arg-type]  # a constant of this code base
            schema=Identifier(datastore.schema),
            table=Identifier(self.recorder.events_table_name),
        )

    # -- a batch -----------------------------------------------------------------------------

    def begin(self) -> ChainWork:
        state = self.store.tree(self.hasher.algorithm, TREE)
        wanted = frontier_nodes(state.size)
        found = self.store.nodes(wanted)
        if state.size != self._heads_at:  # someone else moved the tree, or the first batch
            self._heads = {}
            self._heads_complete = state.size == 0  # an empty tree has no stream yet
        return ChainWork(state.position, state.size, [found[k] for k in wanted], self._heads)

    def apply(self, work: ChainWork, notification: Any) -> None:
        leaf_hash = notification.leaf_hash if type(notification) is ChainRow else None
        if leaf_hash is None:
            if type(notification) is ChainRow:  # a NULL column: hash the row as eventsourcing reads it
                notification = self._notification(notification.id)
            leaf_hash = leaf_of(self.hasher, notification)
        oid = str(notification.originator_id)
        # the subtrees it completes and its stream's new head are computed as the batch is written
        work.rows.append((notification.id, oid, notification.originator_version, notification.topic, leaf_hash))

    def finish(self, work: ChainWork) -> None:
        """The chain heads of the batch's streams not in memory (one query)."""
        if not self._heads_complete:
            heads, touched = work.heads, work.touched
            missing = {r[1] for r in work.rows if r[1] not in heads and r[1] not in touched}
            if missing:
                work.fetched = self.store.stream_heads(missing)
        work.finished = True

    def _leaf_rows(self, work: ChainWork) -> Iterator[list[tuple[Any, ...]]]:
        """The batch as the leaves table's rows, a chunk at a time: each leaf with the interior
        subtrees it completes (level 1 first) and its stream's new chain head."""
        digest, start = self.hasher.digest, stream_start(self.hasher)
        heads, touched, frontier = work.heads, work.touched, work.frontier
        if work.fetched:
            heads = {**heads, **work.fetched}
        index = work.size
        rows = work.rows
        for first in range(0, len(rows), WRITE_CHUNK):
            out = []
            for nid, oid, version, topic, leaf_hash in rows[first : first + WRITE_CHUNK]:
                node, i, completed = leaf_hash, index, b""
                while i & 1:  # a right child: it completes its parent with the frontier's last subtree
                    node = digest(b"\x01" + frontier.pop() + node)
                    i >>= 1
                    completed += node
                frontier.append(node)
                previous = touched.get(oid) or heads.get(oid)
                head = digest(b"\x02" + (previous[1] if previous else start) + leaf_hash)
                touched[oid] = (version, head)
                out.append((index, nid, oid, version, topic, leaf_hash, head, completed))
                index += 1
            yield out

    def _notification(self, notification_id: int) -> Notification:
        found = self.recorder.select_notifications(notification_id, 1, stop=notification_id)
        return next(n for n in found if n.id == notification_id)

    def commit(self, work: ChainWork, tracking_name: str, position: int, *, exclusive: bool = False) -> None:
        if exclusive:
            raise AlreadyApplied(tracking_name)  # the chain never parks, so never retries one
        if not work.finished:
            self.finish(work)  # the engine calls it after the last ``apply``; a direct caller may not
        size = work.size + len(work.rows)
        try:
            self.store.append_chunks(work.start_position, position, size, self._leaf_rows(work))
        except BaseException:
            self._heads_at = -1  # the heads in memory may be ahead of the store now
            raise
        if work.heads is self._heads and len(self._heads) + len(work.touched) <= HEADS_KEPT:
            self._heads.update(work.touched)
        else:
            self._heads, self._heads_complete = dict(work.touched), False
        self._heads_at = size


def chain_follower(case_record: Any, store: ChainStore, parking: ParkingStore, batch: int = 10_000) -> Follower:
    """The chain follower on the engine: stops (never parks) at a row it cannot append."""
    handler = ChainHandler(store, case_record.recorder)
    return Follower(FOLLOWER_NAME, case_record, handler, parking, NeverPark(), batch=batch)  # type: ignore[arg-type]
