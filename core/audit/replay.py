"""An auditor's replay of one stream: from event 1, no snapshot, each stored row checked against
its leaf in the tree before it is decrypted and applied.

What the check proves: the bytes replayed are the bytes the chain follower hashed into the tree
(a changed payload, a row put in another's place or one the chain never saw fails here); that
the tree itself is the one signed is ``smd verify``'s and the proofs' part.

Where the time goes (``smd bench``: a 1,000-event patient): the keyed read of the rows and of
their leaves (two index range reads), one SHA-256 a row, and decoding (``core.mapper``: msgspec's
parser and one walk that revives transcoded values and unseals personal ones).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

from core.audit.leaves import LEAF_VERSION
from core.audit.store import TREE, ChainStore

_HEAD = struct.Struct(">Q16sQI")
_LEN = struct.Struct(">I")


class StoredRow(NamedTuple):
    """A stored event as the mapper reads it (eventsourcing's ``StoredEvent``'s fields)."""

    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


def stored_rows(recorder: Any, originator_id: UUID) -> Sequence[Any]:
    """One stream's stored rows by version: on PostgreSQL one query with plain tuples (the
    library's ``select_events`` builds a dict, then a ``StoredEvent``, for each row)."""
    from eventsourcing.postgres import PostgresDatastore

    datastore = getattr(recorder, "datastore", None)
    if not isinstance(datastore, PostgresDatastore):
        return list(recorder.select_events(originator_id))
    from psycopg.rows import tuple_row
    from psycopg.sql import SQL, Identifier

    sql = SQL(
        "SELECT originator_version, topic, state FROM {schema}.{table} WHERE originator_id = %s"
        " ORDER BY originator_version"
    ).format(schema=Identifier(datastore.schema), table=Identifier(recorder.events_table_name))
    with datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(sql, (originator_id,), prepare=True)
        return [StoredRow(originator_id, v, t, s) for v, t, s in cur.fetchall()]


class NotVerified(Exception):
    """A stored row does not match its leaf, or is not in the tree (yet)."""


def replay_verified(case_record: Any, store: ChainStore, originator_id: UUID) -> Any:
    """The aggregate ``originator_id`` replayed from its first event, every stored row checked
    against its leaf first (``NotVerified`` names the first that fails)."""
    from core.audit.merkle import DEFAULT_ALGORITHM, Hasher

    rows = stored_rows(case_record.recorder, originator_id)
    leaves = store.leaf_hashes_of(str(originator_id))  # version → (notification id, leaf hash)
    hasher = Hasher(store.tree(DEFAULT_ALGORITHM, TREE).algorithm)  # the stored algorithm wins
    leaf = hasher.leaf
    oid = originator_id.bytes
    topics: dict[str, bytes] = {}
    for stored in rows:
        found = leaves.get(stored.originator_version)
        if found is None:
            raise NotVerified(f"version {stored.originator_version} is not in the tree (not chained yet, or inserted)")
        t = topics.get(stored.topic)
        if t is None:
            t = topics[stored.topic] = stored.topic.encode()
        state = stored.state
        head = _HEAD.pack(found[0], oid, stored.originator_version, len(t))
        data = b"".join((LEAF_VERSION, head, t, _LEN.pack(len(state)), state))  # leaves.leaf_data
        if leaf(data) != found[1]:
            raise NotVerified(f"version {stored.originator_version} does not match its leaf")
    to_domain = case_record.mapper.to_domain_event
    aggregate = None
    for stored in rows:
        aggregate = to_domain(stored).mutate(aggregate)
    return aggregate
