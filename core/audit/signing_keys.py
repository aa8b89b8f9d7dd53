"""The region's signing keys: one per purpose, each with a name, a key id and its retired keys.

Purposes are kept apart so that a key can never sign something of another kind: ``checkpoint``
signs the verifiable log's checkpoints; ``witness`` cosigns the checkpoints of a linked region's
log (a cosignature, C2SP tlog-cosignature v1, never one of our own checkpoints); cross-region
messages have a key of their own (``core.region_keys``).
A key is an Ed25519 seed (32 bytes); its *name* is what signed notes carry (the log's origin for
the checkpoint key) and its *key id* is derived from the name and the public key, so a rotated
key has a new id under the same name. Retired keys stay as verifier keys (public only), so that
checkpoints signed before a rotation still verify; their private halves are destroyed.

Where keys come from (environment, development files) is the settings' business (ops.settings);
this module only holds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.audit.notes import Signer, Verifier

CHECKPOINT = "checkpoint"
WITNESS = "witness"
PURPOSES = (CHECKPOINT, WITNESS)


class UnknownPurpose(KeyError):
    """No key is configured for that purpose."""


@dataclass
class RegionKeys:
    """The current signer and the retired verifiers of each purpose."""

    signers: dict[str, Signer]
    retired: dict[str, list[Verifier]] = field(default_factory=dict)

    def signer(self, purpose: str) -> Signer:
        """The key that signs ``purpose`` now."""
        if purpose not in self.signers:
            raise UnknownPurpose(purpose)
        return self.signers[purpose]

    def verifiers(self, purpose: str) -> list[Verifier]:
        """Every key that ever signed ``purpose``: the current one first, then the retired ones."""
        return [self.signer(purpose).verifier, *self.retired.get(purpose, [])]

    def key_id(self, purpose: str) -> str:
        """The current key's id (hex), as shown to operators and auditors."""
        return self.signer(purpose).verifier.key_id.hex()
