"""Signed checkpoints of the tree: every N leaves or M seconds, never one inconsistent with the last.

Before signing, the checkpointer proves (RFC 9162 consistency proof from the stored tree) that
the tree it is about to sign extends the last one it signed, and checks that last one's own
signature: a tree rewritten under it (an administrator recomputing hashes) is refused loudly and
nothing is signed, instead of the service vouching for the rewrite. Witnesses (``witness``) then
keep a copy outside and cosign.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from core.audit import merkle
from core.audit.notes import Checkpoint, NoteError, open_note, sign
from core.audit.proofs import TreeReader
from core.audit.signing_keys import CHECKPOINT, RegionKeys
from core.audit.store import ChainStore, StoredCheckpoint

log = structlog.get_logger(__name__)


APIKEYS_EXTENSION = "smd-apikeys"


def apikeys_extension(count: int, head: bytes) -> str:
    """The checkpoint line that pins the API-key chain: ``smd-apikeys <records> <base64 head>``."""
    return f"{APIKEYS_EXTENSION} {count} {base64.b64encode(head).decode()}"


def parse_apikeys_extension(extensions: tuple[str, ...]) -> tuple[int, bytes] | None:
    """(records, head) from a checkpoint's extension lines, if it carries them."""
    for line in extensions:
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == APIKEYS_EXTENSION and parts[1].isdigit():
            return int(parts[1]), base64.b64decode(parts[2])
    return None


ACCESS_LOG_EXTENSION = "smd-access-log"


def access_log_extension(count: int, head: bytes) -> str:
    """The checkpoint line that pins the access log's chain: ``smd-access-log <rows> <base64 head>``."""
    return f"{ACCESS_LOG_EXTENSION} {count} {base64.b64encode(head).decode()}"


def parse_access_log_extension(extensions: tuple[str, ...]) -> tuple[int, bytes] | None:
    """(rows, head) from a checkpoint's extension lines, if it carries them."""
    for line in extensions:
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == ACCESS_LOG_EXTENSION and parts[1].isdigit():
            return int(parts[1]), base64.b64decode(parts[2])
    return None


class InconsistentCheckpoint(Exception):
    """The tree no longer extends the last signed checkpoint: the service refuses to sign."""


class Checkpointer:
    """Signs a checkpoint when due (a follower-like object: ``run_once`` in the service loop)."""

    def __init__(
        self,
        store: ChainStore,
        keys: RegionKeys,
        origin: str,
        *,
        every_events: int = 1000,
        every_seconds: float = 300.0,
        extensions: Callable[[], list[str]] = list,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.keys = keys
        self.origin = origin
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.extensions = extensions
        self.clock = clock
        self.refused: str | None = None  # why the last attempt was refused (status, tests)

    def due(self) -> bool:
        """N new leaves since the last checkpoint, or M seconds and at least one new leaf."""
        size = self.store.tree(merkle.DEFAULT_ALGORITHM).size
        last = self.store.latest_checkpoint()
        if last is None:
            return size > 0
        if size <= last.size:
            return False
        return (
            size - last.size >= self.every_events
            or (self.clock() - last.signed_at).total_seconds() >= self.every_seconds
        )

    def run_once(self) -> int:
        """Sign if due; 0 always (signing is never a reason to loop without pause)."""
        if self.due():
            try:
                self.sign_now()
            except InconsistentCheckpoint:
                pass  # reported once in sign_now; tried again next time
        return 0

    def sign_now(self) -> StoredCheckpoint | None:
        """Sign the tree as it is now (None when nothing is new); InconsistentCheckpoint if it does
        not extend the last checkpoint."""
        reader = TreeReader(self.store)
        size = reader.size
        last = self.store.latest_checkpoint()
        if size == 0 or (last is not None and last.size >= size):
            return None
        root = reader.root(size)
        if last is not None:
            self._check_extends(reader, last, size, root)
        body = Checkpoint(self.origin, size, root, tuple(self.extensions())).body()
        note = sign(body, self.keys.signer(CHECKPOINT))
        stored = StoredCheckpoint(size, root, reader.hasher.algorithm, note.text(), self.clock())
        self.store.add_checkpoint(stored)
        self.refused = None
        log.info("checkpoint signed", size=size, key_id=self.keys.key_id(CHECKPOINT))
        return stored

    def _check_extends(self, reader: TreeReader, last: StoredCheckpoint, size: int, root: bytes) -> None:
        try:
            note, _ = open_note(last.note, self.keys.verifiers(CHECKPOINT))
            signed = Checkpoint.parse(note.body)
            if (signed.size, signed.root) != (last.size, last.root):
                raise NoteError("the stored row does not match its signed note")
            proof = reader.consistency(last.size, size)
            merkle.verify_consistency(reader.hasher, last.size, size, signed.root, root, proof)
        except (NoteError, merkle.InvalidProof) as e:
            reason = f"the tree of {size} leaves does not extend the checkpoint of {last.size}: {e}"
            if reason != self.refused:
                log.error(
                    "checkpoint refused: the tree was rewritten under the last checkpoint", size=size, last=last.size
                )
            self.refused = reason
            raise InconsistentCheckpoint(reason) from e


def holding(store: ChainStore | None, position: int) -> dict[str, object] | None:
    """The first signed checkpoint whose tree holds every fact recorded up to log ``position``,
    and the witnesses that cosigned it: what a figure computed at ``position`` can be checked
    against (``smd verify --against``). None while no checkpoint holds it yet (the chain
    follower or the checkpointer has not reached it) or without a verifiable log."""
    if store is None or position <= 0:
        return None
    leaf = None
    for p in range(position, max(0, position - 1000), -1):  # a rolled-back insert leaves a gap
        if (leaf := store.leaf_at(p)) is not None:
            break
    if leaf is None:
        return None
    first = min((cp for cp in store.checkpoints() if cp.size > leaf.leaf_index), key=lambda cp: cp.size, default=None)
    if first is None:
        return None
    return {
        "size": first.size,
        "root": base64.b64encode(first.root).decode(),
        "signed_at": first.signed_at.isoformat(),
        "cosigned_by": [witness for witness, _ in store.cosignatures(first.size)],
    }
