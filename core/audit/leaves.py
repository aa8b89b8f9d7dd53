"""What a leaf of the verifiable log is: one stored row, byte for byte, with its log position.

The leaf's data (version 1, never to change meaning: trees built with it are kept for decades):

    b"smd-leaf/v1\\x00"
    notification id      8 bytes, big-endian
    originator id        16 bytes (the UUID's bytes)
    originator version   8 bytes, big-endian
    topic                4-byte big-endian length, then UTF-8
    state                4-byte big-endian length, then the stored bytes as they are in the
                         events table (sealed personal fields stay ciphertext: no key is needed
                         to check, and an erasure, which destroys keys, changes no leaf)

Committing to the notification id makes a gap in notification ids (an insert rolled back) no
hole in the tree: the tree has its own dense counter, and each leaf says which position it is.
"""

from __future__ import annotations

import struct
from typing import Any
from uuid import UUID

from core.audit.merkle import Hasher

LEAF_VERSION = b"smd-leaf/v1\x00"
_HEAD = struct.Struct(">Q16sQ")


def leaf_data(notification_id: int, originator_id: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """The bytes a stored row contributes to the tree."""
    oid = originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
    t = topic.encode()
    if not isinstance(state, bytes | bytearray | memoryview):
        state = str(state).encode()  # a value someone stored with another type: it cannot match
    return b"".join(
        (
            LEAF_VERSION,
            _HEAD.pack(notification_id, oid.bytes, version),
            struct.pack(">I", len(t)),
            t,
            struct.pack(">I", len(state)),
            bytes(state),
        )
    )


def leaf_of(hasher: Hasher, notification: Any) -> bytes:
    """The leaf hash of a stored row as eventsourcing hands it out (a ``Notification``)."""
    return hasher.leaf(
        leaf_data(
            notification.id,
            notification.originator_id,
            notification.originator_version,
            notification.topic,
            notification.state,
        )
    )


#: ``0x00 || leaf_data(...)`` (what a leaf hash hashes) written in PostgreSQL over a row of
#: eventsourcing's events table, the same bytes (a test compares them row by row): the chain
#: follower reads ``sha256(LEAF_INPUT_SQL)``, 32 bytes a row, instead of every stored payload to
#: hash in Python.
LEAF_INPUT_SQL = (
    "'\\x00736d642d6c6561662f763100'::bytea"  # 0x00 (RFC 9162's leaf prefix), then LEAF_VERSION
    " || int8send(notification_id) || uuid_send(originator_id) || int8send(originator_version::bigint)"
    " || int4send(octet_length(convert_to(topic, 'UTF8'))) || convert_to(topic, 'UTF8')"
    " || int4send(octet_length(state)) || state"
)


def stream_start(hasher: Hasher) -> bytes:
    """The chain head of a stream before its first event."""
    return b"\x00" * hasher.size
