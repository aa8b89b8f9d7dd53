"""`smd master-key rotate` and `smd master-key status`: re-wrap data keys under a new master key.

``add_commands(subparsers)`` adds them to the `smd` parser. In production the keys come from the
environment (SMD_MASTER_KEY(_ID) is the new key, SMD_MASTER_KEY_PREVIOUS(_ID) the one being
retired; docs/decisions/007 gives the procedure). In development, when no master key is set in
the environment, `rotate` generates the next key into ``<data>/keys/`` and keeps the old one as
the previous key (``ops.dev_master_keys``); a rerun after a crash resumes instead.

Test-only fault injection: ``SMD_FAULT=rotation-kill-after=N`` makes the process SIGKILL itself
once N or more rows are re-wrapped (after the batch that reaches N commits). It is ignored, with
a warning, when SMD_MODE=production.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

from core.key_rotation import DEFAULT_BATCH, RotationReport, rotate
from core.keystore import KeyStore, KeyStoreError
from ops import dev_master_keys
from ops.settings import Settings, load_settings

FAULT_VAR = "SMD_FAULT"
_KILL_AFTER = re.compile(r"^rotation-kill-after=(\d+)$")
PROGRESS_EVERY = 1000


def _open_keystore(settings: Settings) -> KeyStore:
    from ops.bootstrap import build_keystore, schema_lock

    with schema_lock(settings):  # the key table may be created here
        return build_keystore(settings)


def _dev_managed(settings: Settings) -> bool:
    """Development keys live in the data folder unless the environment names a master key."""
    return settings.mode == "development" and not (
        os.environ.get("SMD_MASTER_KEY", "").strip() or os.environ.get("SMD_MASTER_KEY_ID", "").strip()
    )


def fault_hook(settings: Settings) -> Callable[[int], None] | None:
    """The test-only crash of SMD_FAULT=rotation-kill-after=N (never in production)."""
    spec = settings.fault
    match = _KILL_AFTER.match(spec)
    if not match:
        return None
    if settings.mode == "production":
        print(f"smd: warning: {FAULT_VAR} is ignored in production", file=sys.stderr)
        return None
    limit = int(match.group(1))

    def kill(total: int) -> None:
        if total >= limit:
            os.kill(os.getpid(), signal.SIGKILL)  # a real crash: no cleanup, no finally

    return kill


def _progress(fault: Callable[[int], None] | None) -> Callable[[int], None]:
    shown = [0]

    def after_batch(total: int) -> None:
        if total - shown[0] >= PROGRESS_EVERY:
            shown[0] = total
            print(f"  {total} data key(s) re-wrapped so far", flush=True)
        if fault is not None:
            fault(total)

    return after_batch


def _describe(report: RotationReport, keystore: KeyStore) -> tuple[str, int]:
    lines = [f"re-wrapped {n} data key(s) from {old} to {report.current}" for old, n in report.rewrapped.items()]
    if not report.rewrapped:
        lines.append(f"nothing to re-wrap: every data key held by this process's keys is under {report.current}")
    if report.complete:
        lines.append(f"every data key is wrapped by {report.current}; no other master key unwraps anything")
        return "\n".join(lines), 0
    for key_id, n in sorted(report.remaining.items()):
        if key_id in keystore.masters:
            lines.append(
                f"{n} data key(s) still under {key_id} (created meanwhile by a process not yet "
                "restarted with the new key?): restart every process, then run rotate again"
            )
        else:
            lines.append(
                f"{n} data key(s) are under master key {key_id!r}, which this process was not given: "
                "set it as SMD_MASTER_KEY_PREVIOUS(_ID) and run rotate again"
            )
    return "\n".join(lines), 1


def _rotate(args: argparse.Namespace) -> int:
    settings = load_settings()
    keystore = _open_keystore(settings)
    try:
        if _dev_managed(settings):
            previous = settings.master_key_previous_id
            if previous and keystore.table.master_key_counts().get(previous):
                print(f"resuming the rotation from {previous} to {settings.master_key_id}", flush=True)
            else:
                old = settings.master_key_id
                new = dev_master_keys.advance(settings.data_dir / "keys", old)
                keystore.close()
                settings = load_settings()
                keystore = _open_keystore(settings)
                print(
                    f"generated development master key {new} in {settings.data_dir / 'keys'}; "
                    f"{old} is now the previous key (restart `smd serve` to use {new})",
                    flush=True,
                )
        report = rotate(keystore, batch=args.batch, after_batch=_progress(fault_hook(settings)))
        text, status = _describe(report, keystore)
    finally:
        keystore.close()
    print(text)
    return status


def _status(args: argparse.Namespace) -> int:
    settings = load_settings()
    keystore = _open_keystore(settings)
    try:
        counts = keystore.table.master_key_counts()
    finally:
        keystore.close()
    roles = {settings.master_key_id: "current"}
    if settings.master_key_previous_id:
        roles[settings.master_key_previous_id] = "previous"
    for key_id in sorted(set(counts) | set(roles)):
        print(f"{key_id:<24} {roles.get(key_id, 'not given to this process'):<26} {counts.get(key_id, 0)} data key(s)")
    return 0


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Print key errors as one line saying what to fix (exit status 1)."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except KeyStoreError as e:
            print(f"smd: {e}", file=sys.stderr)
            return 1

    return run


def add_commands(subparsers: Any) -> None:
    """Add `master-key` to the `smd` command line."""
    master = subparsers.add_parser("master-key", help="the master key that wraps every patient's data key")
    msub = master.add_subparsers(dest="master_key_command", required=True)
    rotate_cmd = msub.add_parser(
        "rotate",
        help="re-wrap every data key under the current master key (development: generate the next key first)",
    )
    rotate_cmd.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="rows per transaction (default 100)")
    rotate_cmd.set_defaults(func=_guarded(_rotate))
    status = msub.add_parser("status", help="how many data keys each master key wraps")
    status.set_defaults(func=_guarded(_status))
