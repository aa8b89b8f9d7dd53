"""Development master keys in the data folder, and how `smd master-key rotate` advances them.

Files in ``<data>/keys/`` (0600, never in production, where keys come from the environment):

- ``master.key``: the first key, id ``dev-1`` (what every development store starts with);
- ``master-<id>.key``: each later key;
- ``master-keys.toml``: which ids are current and previous, once a rotation has happened.
  It is replaced with one atomic rename, so a crash leaves either the old pair or the new one;
  a new key file is written (and synced) before the pointer names it.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

POINTER = "master-keys.toml"
FIRST_ID = "dev-1"
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class DevMasterKeys:
    """The current and (after a rotation) previous development master keys: (id, secret)."""

    current: tuple[str, bytes]
    previous: tuple[str, bytes] | None


def key_file(keys_dir: Path, key_id: str) -> Path:
    """Where a development master key's material lives."""
    return keys_dir / ("master.key" if key_id == FIRST_ID else f"master-{key_id}.key")


def _read_key(path: Path) -> bytes:
    key = base64.b64decode(path.read_text().strip(), validate=True)
    if len(key) != 32:
        raise ValueError(f"{path}: a master key is 32 bytes, this file holds {len(key)}")
    return key


def read(keys_dir: Path) -> DevMasterKeys | None:
    """The keys the pointer names, or None before the first rotation (``master.key`` is ``dev-1``)."""
    pointer = keys_dir / POINTER
    if not pointer.exists():
        return None
    ids = tomllib.loads(pointer.read_text())
    current = ids["current"]
    previous = ids.get("previous")
    return DevMasterKeys(
        current=(current, _read_key(key_file(keys_dir, current))),
        previous=(previous, _read_key(key_file(keys_dir, previous))) if previous else None,
    )


def next_id(current: str) -> str:
    """``dev-N`` → ``dev-N+1`` (other names get ``-2`` appended)."""
    match = re.fullmatch(r"dev-(\d+)", current)
    return f"dev-{int(match.group(1)) + 1}" if match else f"{current}-2"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def advance(keys_dir: Path, current: str) -> str:
    """Generate the next key and make it current, ``current`` becoming previous; return its id."""
    new = next_id(current)
    if not _ID.match(new):
        raise ValueError(f"cannot derive a key id from {current!r}")
    path = key_file(keys_dir, new)
    if not path.exists():  # a crashed earlier attempt may have written it: it wraps nothing yet
        _write_private(path, base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    tmp = keys_dir / (POINTER + ".tmp")
    _write_private(
        tmp, f'# written by `smd master-key rotate` (development only)\ncurrent = "{new}"\nprevious = "{current}"\n'
    )
    os.replace(tmp, keys_dir / POINTER)  # atomic: the old pair or the new pair, never a mix
    return new
