"""The keyed blind index of ID numbers: how a number is matched without being stored.

``index(id_number)`` is ``"HMAC-SHA256/v1:<hex>"``: HMAC-SHA256 over the normalised number
under a key derived from SMD_BLIND_INDEX_KEY with its own label (distinct from the API-key hash
and the receipt digest). Without the key nobody can compute it, so a table of markers cannot be
enumerated against the (small, structured) space of ID numbers, as a plain or salted hash
could. Names are indexed together with the birth date (``name_index``), under a key of their
own: a name alone is too common to match on, and its index must not be comparable with the ID
number's. The value names its algorithm: a change (HMAC-SM3 for 密评 deployments) is a new id
beside the old one, and lookups try every id still in ``ALGORITHMS``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

from domain.identity import normalise_id_number, normalise_name

ALG = "HMAC-SHA256/v1"
LABEL = b"smd/blind-index/id-number/v1"  # distinct from every other use of the blind-index key
NAME_LABEL = b"smd/blind-index/name-birth-date/v1"
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
        self._name_keys = {ALG: derive_key(root_key, NAME_LABEL)}

    def index(self, id_number: str, alg: str = ALG) -> str:
        """``<alg>:<hex>`` of the normalised number (upper-case X, no surrounding spaces)."""
        digest = hmac.new(self._keys[alg], normalise_id_number(id_number).encode("ascii"), hashlib.sha256)
        return f"{alg}:{digest.hexdigest()}"

    def all_indexes(self, id_number: str) -> list[str]:
        """The number's value under every algorithm still in use (what a lookup tries)."""
        return [self.index(id_number, alg) for alg in ALGORITHMS]

    def name_index(self, name: str, birth_date: date, alg: str = ALG) -> str:
        """``<alg>:<hex>`` of the normalised name with the birth date (ISO), under the name key."""
        message = f"{normalise_name(name)}\x1f{birth_date.isoformat()}".encode()
        return f"{alg}:{hmac.new(self._name_keys[alg], message, hashlib.sha256).hexdigest()}"

    def all_name_indexes(self, name: str, birth_date: date) -> list[str]:
        """The name's value under every algorithm still in use (what a lookup tries)."""
        return [self.name_index(name, birth_date, alg) for alg in ALGORITHMS]

    def __repr__(self) -> str:  # never print key material
        return f"BlindIndex({ALG!r})"
