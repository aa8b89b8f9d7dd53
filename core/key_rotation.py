"""Master-key rotation: re-wrap every data key under the current master key, rewriting no event.

The keystore holds the current master key and the previous ones, so every row unwraps at any
moment of a rotation. Rows are taken in small batches of those still wrapped by an old key;
each batch is one transaction of ``UPDATE … WHERE subject_id = ? AND master_key_id = <old>``,
so a crash (even kill -9) leaves each row wrapped by the old key or by the new one, never
half-done, and a rerun simply finds fewer rows. A row erased or re-wrapped meanwhile by another
process matches no UPDATE and is skipped. The data keys themselves never change, so sealed
values in events and snapshots, and the hash chain over them, stay exactly as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from core.keystore import KeyStore, KeyStoreError, WrappedKey, unwrap, wrap

DEFAULT_BATCH = 100


@dataclass
class RotationReport:
    """What a rotation did, and what still names another master key than the current one."""

    current: str
    rewrapped: dict[str, int] = field(default_factory=dict)  # per old master key id
    remaining: dict[str, int] = field(default_factory=dict)  # rows not under the current key

    @property
    def complete(self) -> bool:
        """True when every row is wrapped by the current master key."""
        return not self.remaining


def rewrap(keystore: KeyStore, row: WrappedKey) -> WrappedKey:
    """The same data key, wrapped by the keystore's current master key (created_at kept)."""
    data_key = unwrap(keystore.masters, row)
    return replace(wrap(keystore.current, row.subject_id, data_key), created_at=row.created_at)


def rotate(
    keystore: KeyStore,
    batch: int = DEFAULT_BATCH,
    after_batch: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-wrap every row held by a non-current master key this keystore has.

    ``after_batch(total)`` runs after each committed batch with the rows re-wrapped so far
    (progress output, and the test-only fault injection of ``ops.cli_keys``). Rows wrapped by a
    master key the keystore was not given stay as they are and are listed in ``remaining``.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    table, current = keystore.table, keystore.current.key_id
    report = RotationReport(current=current)
    total = 0
    for old in [k for k in keystore.masters if k != current]:
        while rows := table.rows_wrapped_by(old, batch):
            done = table.update_wrapped([rewrap(keystore, r) for r in rows], from_master_key_id=old)
            report.rewrapped[old] = report.rewrapped.get(old, 0) + done
            total += done
            if after_batch is not None:
                after_batch(total)
    report.remaining = {k: n for k, n in table.master_key_counts().items() if k != current and n}
    return report


def check_unwraps_nothing(keystore: KeyStore, master_key_id: str) -> None:
    """Raise unless no row names ``master_key_id`` (what must hold before a key is destroyed)."""
    count = keystore.table.master_key_counts().get(master_key_id, 0)
    if count:
        raise KeyStoreError(
            f"{count} data key(s) are still wrapped by master key {master_key_id!r}; "
            "run `smd master-key rotate` with it as the previous key until none are"
        )
