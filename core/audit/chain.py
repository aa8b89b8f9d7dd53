"""The chain follower: appends every stored row of the global log to the tree, in log order.

It runs on the one follower engine (``core.followers.engine``) with one difference from every
other follower: it never parks. A row it cannot append *stops* it just before that row, because
a skipped row would be a hole in the tree (every later leaf index would shift). Stopping is
visible in ``smd projections status``, ``/v1/status`` and ``/metrics`` like any other stop.

A batch's leaves, the perfect subtrees they complete, the streams' new chain heads and the
tracked position are written in one transaction (``ChainStore.append``); a writer that moved the
tree first makes the batch be decided again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import Notification

from core.audit.leaves import leaf_of, stream_start
from core.audit.merkle import DEFAULT_ALGORITHM, Hasher, completed_nodes, frontier_nodes
from core.audit.store import TREE, ChainStore, Leaf
from core.followers.engine import AlreadyApplied, Follower
from core.followers.parking import ParkingStore

FOLLOWER_NAME = "chain"


class NeverPark:
    """Concerns for the chain: every row concerns the whole tree, so a failure stops the chain."""

    def keys(self, notification: Notification) -> None:
        return None


@dataclass
class ChainWork:
    """One batch: where the tree stood, and what the batch appends."""

    start_position: int
    size: int
    frontier: list[bytes]
    rows: list[tuple[Notification, bytes]] = field(default_factory=list)  # (row, leaf hash)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)


class ChainHandler:
    """Appends rows to the tree (the follower engine's ``Handler``)."""

    topics: Sequence[str] | None = None  # every row

    def __init__(self, store: ChainStore, algorithm: str = DEFAULT_ALGORITHM) -> None:
        self.store = store
        state = store.tree(algorithm)
        self.hasher = Hasher(state.algorithm)  # the stored algorithm wins: a tree never changes it

    def position_of(self, tracking_name: str) -> int:
        return self.store.tree(self.hasher.algorithm, TREE).position

    def begin(self) -> ChainWork:
        state = self.store.tree(self.hasher.algorithm, TREE)
        wanted = frontier_nodes(state.size)
        found = self.store.nodes(wanted)
        return ChainWork(state.position, state.size, [found[k] for k in wanted])

    def apply(self, work: ChainWork, notification: Notification) -> None:
        leaf_hash = leaf_of(self.hasher, notification)
        index = work.size + len(work.rows)
        # level 0 is the leaves table's own leaf_hash: only interior subtrees go to the nodes table
        work.nodes.extend(n for n in completed_nodes(self.hasher, work.frontier, index, leaf_hash) if n[0])
        work.rows.append((notification, leaf_hash))

    def commit(self, work: ChainWork, tracking_name: str, position: int, *, exclusive: bool = False) -> None:
        if exclusive:
            raise AlreadyApplied(tracking_name)  # the chain never parks, so never retries one
        heads = self.store.stream_heads(str(n.originator_id) for n, _ in work.rows)
        leaves: list[Leaf] = []
        for i, (n, leaf_hash) in enumerate(work.rows):
            oid = str(n.originator_id)
            _, previous = heads.get(oid, (0, stream_start(self.hasher)))
            head = self.hasher.chain(previous, leaf_hash)
            heads[oid] = (n.originator_version, head)
            leaves.append(Leaf(work.size + i, n.id, oid, n.originator_version, n.topic, leaf_hash, head))
        touched = {lf.originator_id: heads[lf.originator_id] for lf in leaves}
        self.store.append(work.start_position, position, work.size + len(leaves), leaves, work.nodes, touched)


def chain_follower(case_record: Any, store: ChainStore, parking: ParkingStore, batch: int = 2000) -> Follower:
    """The chain follower on the engine: stops (never parks) at a row it cannot append."""
    return Follower(FOLLOWER_NAME, case_record, ChainHandler(store), parking, NeverPark(), batch=batch)  # type: ignore[arg-type]
