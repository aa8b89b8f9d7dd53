"""Valid, fictional resident ID numbers for tests: never a real person's.

The administrative code is ``<province>9901``: a real province (the checks require one) with a
county code 99xx that no province uses, so no number made here can be anyone's. The check
character is computed here independently of ``domain.identity`` (ISO 7064 MOD 11-2, written out
from the standard), so the tests check the domain against a second implementation.
"""

from __future__ import annotations

from datetime import date


def mod11_2(first17: str) -> str:
    """The check character: sum of digit x 2^(17-i) mod 11, mapped through (12 - r) mod 11."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


def fictional_id_number(born: date = date(1980, 1, 1), seq: int = 1, province: str = "11") -> str:
    """An 18-character number that passes every check and belongs to nobody."""
    first17 = f"{province}9901{born:%Y%m%d}{seq:03d}"
    return first17 + mod11_2(first17)


def with_x_check(born: date = date(1980, 1, 1), province: str = "11") -> str:
    """A fictional number whose check character is X (some sequence numbers give one)."""
    for seq in range(1000):
        number = fictional_id_number(born, seq, province)
        if number.endswith("X"):
            return number
    raise AssertionError("no sequence number gives X")  # pragma: no cover
