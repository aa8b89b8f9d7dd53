"""Fictional people for the synthetic township: pseudonyms that cannot be anyone's real name.

Every name is "化名" (alias) followed by two characters drawn from a list of nature words,
and a number: "化名松溪-017". No surname, no ID number, no phone: the generator never makes
anything that could identify a real person (the seeds name real officials).
"""

from __future__ import annotations

import random

#: Nature words: used only as pseudonyms, two at a time.
_WORDS = "松竹梅兰菊荷柳桂枫桐杉楠溪泉岚霞云雾雪露霜虹禾麦稻粟苗芽萍苇"
_RELATIONS = ("mother", "father", "spouse", "sibling", "son", "daughter")


def pseudonym(rng: random.Random, n: int) -> str:
    """A clearly fictional name for person ``n``."""
    return f"化名{rng.choice(_WORDS)}{rng.choice(_WORDS)}-{n:03d}"


def relation(rng: random.Random) -> str:
    """A guardian's relation to the patient."""
    return rng.choice(_RELATIONS)
