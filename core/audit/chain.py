"""The chain follower: appends every stored row of the global log to the tree, in log order.

It runs on the one follower engine (``core.followers.engine``) with one difference from every
other follower: it never parks. A row it cannot append *stops* it just before that row, because
a skipped row would be a hole in the tree (every later leaf index would shift). Stopping is
visible in ``smd projections status``, ``/v1/status`` and ``/metrics`` like any other stop.

A batch's leaves (each with the perfect subtrees it completes and its stream's new chain head)
and the tracked position are written in one transaction (``ChainStore.append``); a writer that
moved the tree first makes the batch be decided again.

On PostgreSQL the write is handed to a writer thread of the chain's own and the next batch is
read and hashed while the database stores this one (the follower engine's ``next_start`` and
``flush``): at most one batch is being written at a time, each in its own transaction in log
order, and the follower reports that it caught up only once every batch handed over is written.
A write that fails (another writer moved the tree, the database went away) makes the chain
forget what it had decided on top of it and decide again from the store: the tree in the store
is the only truth, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog
from eventsourcing.persistence import IntegrityError, Notification

from core.audit.leaves import LEAF_INPUT_SQL, leaf_of, stream_start
from core.audit.merkle import DEFAULT_ALGORITHM, Hasher, frontier_nodes
from core.audit.store import TREE, ChainStore, PostgresChainStore
from core.followers.engine import AlreadyApplied, Follower
from core.followers.parking import ParkingStore

log = structlog.get_logger(__name__)

FOLLOWER_NAME = "chain"
#: Streams whose chain heads the chain keeps in memory between batches (beyond: read again).
HEADS_KEPT = 200_000
#: Leaves encoded and sent to the store at a time within a batch's one write.
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
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # the leaves table's rows
    touched: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # the streams' new heads
    unknown: set[str] = field(default_factory=set)  # streams whose head ``finish`` reads from the store
    start_head: bytes = b""  # a stream's chain head before its first event
    finished: bool = False  # every row's stream head is filled in (``finish``)


class ChainHandler:
    """Appends rows to the tree (the follower engine's ``Handler``).

    Where its time goes (``smd bench``): it reads each row's leaf hash computed by PostgreSQL
    (``select``), keeps the streams' chain heads in memory between batches (valid while nobody
    else moved the tree), and writes a batch's leaves, each with the subtrees it completes, with
    one ``COPY``, encoded and sent a chunk at a time; on PostgreSQL a writer thread does that
    while the next batch is read and hashed (see the module's doc)."""

    topics: Sequence[str] | None = None  # every row

    def __init__(self, store: ChainStore, recorder: Any = None, algorithm: str = DEFAULT_ALGORITHM) -> None:
        self.store = store
        self.recorder = recorder
        state = store.tree(algorithm)
        self.hasher = Hasher(state.algorithm)  # the stored algorithm wins: a tree never changes it
        self._start = stream_start(self.hasher)
        self._heads: dict[str, tuple[int, bytes]] = {}
        self._heads_at = -1  # the tree size ``_heads`` is true at (-1: unknown)
        self._heads_complete = False  # every stream of the tree is in ``_heads``
        self._ahead: tuple[tuple[int, int, int], Future[list[ChainRow]]] | None = None  # read ahead
        self._reader: ThreadPoolExecutor | None = None
        # writing behind (PostgreSQL): the batch being written, and the tree as it stands after it
        self._behind = isinstance(store, PostgresChainStore)
        self._writer: ThreadPoolExecutor | None = None
        self._writing: Future[None] | None = None
        self._handed: tuple[int, int, list[bytes]] | None = None  # position, size, frontier

    def next_start(self, tracking_name: str) -> int:
        """Where the next batch starts: after the batch handed to the writer while it is being
        written, else the tree's position in the store."""
        if self._writing is not None and not self._writing.done() and self._handed is not None:
            return self._handed[0]
        try:
            self.flush()
        except IntegrityError:
            pass  # another writer moved the tree: decided again from the store below
        return self.position_of(tracking_name)

    def flush(self) -> None:
        """Wait until the batch handed to the writer is written; raise what its write raised
        (after which every later batch is decided again from the store)."""
        writing, self._writing = self._writing, None
        if writing is None:
            return
        try:
            writing.result()
        except BaseException:
            self._handed, self._heads_at = None, -1
            raise
        self._handed = None  # written: the next batch starts from the store, as without a writer

    def close(self) -> None:
        """Write what was handed over, then stop the chain's threads (a standby may take over)."""
        try:
            self.flush()
        except Exception:  # already in the store's hands: decided again by whoever follows next
            log.warning("the chain's last batch was not written", exc_info=False)
        for pool in (self._writer, self._reader):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writer = self._reader = None
        self._ahead = None

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

        with (
            self.recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            # the rows in id order straight off the id index: with no statistics yet (a table just
            # filled, a catch-up after an import) the planner would sort every hashed row instead,
            # on disk past work_mem (a third of the read's time on the bench's 13,249 rows)
            cur.execute("SET LOCAL enable_sort = off")
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
        if self._handed is not None:  # on top of the batch handed to the writer
            position, size, frontier = self._handed
            return ChainWork(position, size, list(frontier), self._heads, start_head=self._start)
        state = self.store.tree(self.hasher.algorithm, TREE)
        wanted = frontier_nodes(state.size)
        found = self.store.nodes(wanted)
        if state.size != self._heads_at:  # someone else moved the tree, or the first batch
            self._heads = {}
            self._heads_complete = state.size == 0  # an empty tree has no stream yet
        return ChainWork(state.position, state.size, [found[k] for k in wanted], self._heads, start_head=self._start)

    def apply(self, work: ChainWork, notification: Any) -> None:
        leaf_hash = notification.leaf_hash if type(notification) is ChainRow else None
        if leaf_hash is None:
            if type(notification) is ChainRow:  # a NULL column: hash the row as eventsourcing reads it
                notification = self._notification(notification.id)
            leaf_hash = leaf_of(self.hasher, notification)
        oid = str(notification.originator_id)
        rows, digest = work.rows, self.hasher.digest
        index = work.size + len(rows)
        # the interior subtrees this leaf completes, level 1 first, go in its own row
        node, i, frontier, completed = leaf_hash, index, work.frontier, b""
        while i & 1:  # a right child: it completes its parent with the frontier's last subtree
            node = digest(b"\x01" + frontier.pop() + node)
            i >>= 1
            completed += node
        frontier.append(node)
        version = notification.originator_version
        previous = work.touched.get(oid) or work.heads.get(oid)
        if previous is None and not self._heads_complete:  # a stream whose head is in the store
            work.unknown.add(oid)  # ``finish`` reads it and chains this stream's rows of the batch
            head = None
        else:  # H(0x02 || previous head || leaf hash): ``Hasher.chain``, written out for speed
            head = digest(b"\x02" + (previous[1] if previous else work.start_head) + leaf_hash)
            work.touched[oid] = (version, head)
        rows.append((index, notification.id, oid, version, notification.topic, leaf_hash, head, completed))

    def finish(self, work: ChainWork) -> None:
        """The chain heads of the streams whose head was not in memory: read in one query, then
        their rows of the batch chained in order."""
        if work.unknown:
            heads = self.store.stream_heads(work.unknown)
            chain, touched = self.hasher.chain, work.touched
            for k, r in enumerate(work.rows):
                oid = r[2]
                if oid in work.unknown:
                    previous = touched.get(oid) or heads.get(oid)
                    head = chain(previous[1] if previous else work.start_head, r[5])
                    touched[oid] = (r[3], head)
                    work.rows[k] = (*r[:6], head, r[7])
            work.unknown = set()
        work.finished = True

    def _notification(self, notification_id: int) -> Notification:
        found = self.recorder.select_notifications(notification_id, 1, stop=notification_id)
        return next(n for n in found if n.id == notification_id)

    def commit(self, work: ChainWork, tracking_name: str, position: int, *, exclusive: bool = False) -> None:
        if exclusive:
            raise AlreadyApplied(tracking_name)  # the chain never parks, so never retries one
        if not work.finished:
            self.finish(work)  # the engine calls it after the last ``apply``; a direct caller may not
        self.flush()  # the batch before (this one stands on it): its failure fails this one too
        size = work.size + len(work.rows)
        rows = work.rows
        chunks = (rows[i : i + WRITE_CHUNK] for i in range(0, len(rows), WRITE_CHUNK))
        if not self._behind:
            try:
                self.store.append_chunks(work.start_position, position, size, chunks)
            except BaseException:
                self._heads_at = -1  # the heads in memory may be ahead of the store now
                raise
        if work.heads is self._heads and len(self._heads) + len(work.touched) <= HEADS_KEPT:
            self._heads.update(work.touched)
        else:
            self._heads, self._heads_complete = dict(work.touched), False
        self._heads_at = size
        if self._behind:
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chain-write")
            self._handed = (position, size, list(work.frontier))
            self._writing = self._writer.submit(self.store.append_chunks, work.start_position, position, size, chunks)


def chain_follower(case_record: Any, store: ChainStore, parking: ParkingStore, batch: int = 5_000) -> Follower:
    """The chain follower on the engine: stops (never parks) at a row it cannot append."""
    handler = ChainHandler(store, case_record.recorder)
    return Follower(FOLLOWER_NAME, case_record, handler, parking, NeverPark(), batch=batch)  # type: ignore[arg-type]
