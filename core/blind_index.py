"""The keyed blind index of ID numbers: how a number is matched without being stored.

``index(id_number)`` is ``"HMAC-SHA256/v1:<hex>"``: HMAC-SHA256 over the normalised number
under a key derived from SMD_BLIND_INDEX_KEY with its own label (distinct from the API-key hash
and the receipt digest). Without the key nobody can compute it, so a table of markers cannot be
enumerated against the (small, structured) space of ID numbers, as a plain or salted hash
could. The value names its algorithm: a change (HMAC-SM3 for 密评 deployments) is a new id
beside the old one, and lookups try every id still in ``ALGORITHMS``.
"""

from __future__ import annotations

import hashlib
import hmac

from domain.identity import normalise_id_number

ALG = "HMAC-SHA256/v1"
LABEL = b"smd/blind-index/id-number/v1"  # distinct from every other use of the blind-index key
#: Algorithms whose values may be stored, newest first (lookups try each; writes use the first).
ALGORITHMS: tuple[str, ...] = (ALG,)


def derive_key(root: bytes, label: bytes = LABEL) -> bytes:
    """A purpose-bound key from the deployment's blind-index key (same derivation as the API keys)."""
    return hmac.new(root, label, hashlib.sha256).digest()


class BlindIndex:
    """Computes blind-index values of ID numbers under the deployment's key."""

    def __init__(self, root_key: bytes) -> None:
        if len(root_key) < 32:
            raise ValueError("the blind-index key must have at least 32 bytes")
        self._keys = {ALG: derive_key(root_key)}

    def index(self, id_number: str, alg: str = ALG) -> str:
        """``<alg>:<hex>`` of the normalised number (upper-case X, no surrounding spaces)."""
        digest = hmac.new(self._keys[alg], normalise_id_number(id_number).encode("ascii"), hashlib.sha256)
        return f"{alg}:{digest.hexdigest()}"

    def all_indexes(self, id_number: str) -> list[str]:
        """The number's value under every algorithm still in use (what a lookup tries)."""
        return [self.index(id_number, alg) for alg in ALGORITHMS]

    def __repr__(self) -> str:  # never print key material
        return f"BlindIndex({ALG!r})"
