"""The auditor's port onto the verifiable log: checkpoints and proofs (what ``api.audit`` needs).

Answers hold ids, positions, hashes, signatures and (for a bundle) stored rows as they are
stored, ciphertext included: never a key and never a decrypted value.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from core.audit.bundle import PatientNotInTree, build_bundle
from core.audit.checkpoints import Checkpointer
from core.audit.notes import SignedNote
from core.audit.proofs import TreeReader
from core.audit.signing_keys import CHECKPOINT, RegionKeys
from core.audit.store import ChainStore, StoredCheckpoint
from domain.errors import DomainError


class NoCheckpointYet(DomainError):
    """Nothing has been signed yet (an empty log, or the first checkpoint is not due)."""

    code = "no-checkpoint-yet"

    def __init__(self) -> None:
        super().__init__("no checkpoint has been signed yet; try again after the next one (SMD_CHECKPOINT_EVERY_*)")


class NotInTree(DomainError):
    """The position or size asked for is not in the (signed) tree."""

    code = "not-in-tree"


class InvalidProofRequest(DomainError):
    """A proof was asked for sizes that cannot have one."""

    code = "invalid-proof-request"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class CheckpointView:
    """A checkpoint as served: the cosigned note and its parts."""

    origin: str
    size: int
    root: str
    algorithm: str
    signed_at: str
    note: str  # the signed note with every witness's cosignature line
    key_id: str
    verifier_key: str
    witnesses: list[str]


class AuditLog:
    """Checkpoints and proofs off the stored tree."""

    def __init__(
        self,
        store: ChainStore,
        keys: RegionKeys,
        checkpointer: Checkpointer,
        recorder: Any = None,
        witnesses: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.keys = keys
        self.checkpointer = checkpointer
        self.recorder = recorder  # the events table, for bundles (stored rows as they are)
        self.witnesses = witnesses  # witness verifier keys, listed in bundles

    def _view(self, cp: StoredCheckpoint) -> CheckpointView:
        cosigs = self.store.cosignatures(cp.size)
        note = cp.note + "".join(line for _, line in cosigs)
        body = SignedNote.parse(cp.note).body
        signer = self.keys.signer(CHECKPOINT)
        return CheckpointView(
            origin=body.split("\n", 1)[0],
            size=cp.size,
            root=b64(cp.root),
            algorithm=cp.algorithm,
            signed_at=cp.signed_at.isoformat(),
            note=note,
            key_id=signer.verifier.key_id.hex(),
            verifier_key=signer.verifier.encode(),
            witnesses=[w for w, _ in cosigs],
        )

    def latest(self) -> CheckpointView:
        """The latest signed checkpoint (NoCheckpointYet if none)."""
        cp = self.store.latest_checkpoint()
        if cp is None:
            raise NoCheckpointYet()
        return self._view(cp)

    def checkpoint(self, size: int) -> CheckpointView:
        """The checkpoint of one size (NotInTree if none was signed at that size)."""
        found = self.store.checkpoints(size)
        if not found:
            raise NotInTree(f"no checkpoint was signed at tree size {size}; GET /v1/audit/checkpoints/latest")
        return self._view(found[0])

    def _size(self, size: int | None) -> int:
        if size is not None:
            return size
        return self.latest().size

    def inclusion(self, notification_id: int, size: int | None = None) -> dict[str, Any]:
        """The audit path of the row at ``notification_id`` in the tree of ``size`` (default: the
        latest checkpoint's)."""
        tree_size = self._size(size)
        leaf = self.store.leaf_at(notification_id)
        if leaf is None:
            raise NotInTree(f"no leaf commits to notification id {notification_id} (not chained yet, or no such row)")
        if leaf.leaf_index >= tree_size:
            raise NotInTree(
                f"notification id {notification_id} is leaf {leaf.leaf_index}, after the tree of {tree_size} leaves;"
                " ask again after the next checkpoint"
            )
        reader = TreeReader(self.store)
        if tree_size > reader.size:
            raise NotInTree(f"the tree has {reader.size} leaves, not {tree_size}")
        return {
            "notification_id": notification_id,
            "leaf_index": leaf.leaf_index,
            "tree_size": tree_size,
            "algorithm": reader.hasher.algorithm,
            "leaf_hash": b64(leaf.leaf_hash),
            "proof": [b64(h) for h in reader.inclusion(leaf.leaf_index, tree_size)],
        }

    def consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        """The proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
        second = self._size(second)
        if not 0 <= first <= second:
            raise InvalidProofRequest(f"first ({first}) must be from 0 to second ({second})")
        reader = TreeReader(self.store)
        if second > reader.size:
            raise NotInTree(f"the tree has {reader.size} leaves, not {second}")
        return {
            "first": first,
            "second": second,
            "algorithm": reader.hasher.algorithm,
            "proof": [b64(h) for h in reader.consistency(first, second)],
        }

    def bundle(self, patient_id: UUID, size: int | None = None) -> bytes:
        """The patient's proof bundle against the latest checkpoint (or the one of ``size``)."""
        view = self.latest() if size is None else self.checkpoint(size)
        try:
            return build_bundle(
                self.store,
                self.recorder,
                patient_id,
                view.note,
                view.size,
                [v.encode() for v in self.keys.verifiers(CHECKPOINT)],
                [w for w in self.witnesses if _name(w) in view.witnesses],
            )
        except PatientNotInTree:
            raise NotInTree(
                f"no row of patient {patient_id} is in the tree of {view.size} leaves (unknown, or recorded since)"
            ) from None


def _name(verifier_key: str) -> str:
    return verifier_key.split("+", 1)[0]
