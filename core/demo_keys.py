"""Demo API keys for development: one per agency kind, generated once, reused on restart.

DEVELOPMENT ONLY. The plaintext keys are kept in ``<data dir>/keys/demo-api-keys.toml``
(mode 0600, beside the generated development master key) so that every start prints the same
keys. The store itself still holds only their hashes. A key that no longer resolves (revoked,
or the store was switched or wiped) is replaced by a new one and the file rewritten. Never call
this in production: there, keys are issued with ``smd keys issue`` and handed over once.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from core.apikeys import ApiKeys
from core.registry import RegistryView
from domain.registry import AgencyKind, AgencyVersion, RegistryState

DEMO_KEYS_FILE = "demo-api-keys.toml"


@dataclass(frozen=True, slots=True)
class DemoKey:
    """One demo agency's key."""

    kind: str
    agency_id: str
    key_id: str
    key: str

    def __repr__(self) -> str:
        return f"DemoKey({self.kind!r}, {self.agency_id!r}, {self.key_id!r})"


def _read(path: Path) -> dict[str, DemoKey]:
    if not path.exists():
        return {}
    try:
        doc = tomllib.loads(path.read_text())
        return {kind: DemoKey(kind, entry["agency"], entry["key_id"], entry["key"]) for kind, entry in doc.items()}
    except (tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError):
        return {}  # a damaged demo file is regenerated, not repaired


def _write(path: Path, keys: list[DemoKey]) -> None:
    lines = [
        "# DEVELOPMENT ONLY: plaintext demo API keys, one per agency kind (smd serve prints them).",
        "# Delete this file to get new ones; revoke old ones with `smd keys revoke KEY_ID`.",
    ]
    for k in keys:  # json.dumps of an ASCII string is a valid TOML basic string
        lines += [
            "",
            f"[{k.kind}]",
            f"agency = {json.dumps(k.agency_id)}",
            f"key_id = {json.dumps(k.key_id)}",
            f"key = {json.dumps(k.key)}",
        ]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def _covered(state: RegistryState, agency: AgencyVersion, on: date) -> int:
    """How many org units the agency covers on ``on``."""
    return sum(
        1
        for uid in state.org_units
        if state.org_unit(uid, on) is not None and agency.jurisdiction & set(state.chain(uid, on))
    )


def ensure_demo_keys(apikeys: ApiKeys, registry: RegistryView, data_dir: Path) -> list[DemoKey]:
    """One working key per agency kind in the registry today.

    Each kind's demo agency is the one covering the most org units (then the first id), so the
    demo keys belong to the busiest agencies of the district.
    """
    path = Path(data_dir) / "keys" / DEMO_KEYS_FILE
    stored = _read(path)
    state, today = registry.state(), registry.today()
    result: list[DemoKey] = []
    for kind in AgencyKind:
        agencies = [
            a for aid in sorted(state.agencies) if (a := state.agency(aid, today)) is not None and a.kind == kind
        ]
        agencies.sort(key=lambda a: -_covered(state, a, today))  # stable: ties keep id order
        ids = [a.agency_id for a in agencies]
        if not ids:
            continue
        old = stored.get(kind.value)
        info = apikeys.lookup(old.key) if old is not None else None
        if old is not None and info is not None and info.agency_id == old.agency_id and old.agency_id in ids:
            result.append(old)
        else:
            issued = apikeys.issue(ids[0])
            result.append(DemoKey(kind.value, issued.agency_id, issued.key_id, issued.key))
    if result != list(stored.values()):
        _write(path, result)
    return result
