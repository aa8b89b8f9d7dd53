"""The verifiable log's commands (docs/decisions/017):

- ``smd verify [--against FILE …]``: recompute from the stored rows; exit 0 when everything
  verifies, 1 with the first problem named (its kind, notification id, leaf, what the tree had);
- ``smd checkpoint [--follow]``: sign a checkpoint of the tree now and print it;
- ``smd checkpoint-key [--rotate]``: print the checkpoint verifier key (what auditors and
  witnesses need); in development, rotate it;
- ``smd verify-bundle FILE [--key VERIFIER]``: check a patient's proof bundle with no database;
- ``smd witness --log-key VERIFIER [--data-dir D]``: a witness with its own store, cosigning the
  log's checkpoints it receives over NATS; ``--show`` prints the latest one it holds.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path
from typing import Any

from core.audit.checkpoints import InconsistentCheckpoint
from core.audit.notes import NoteError, open_note
from core.audit.signing_keys import CHECKPOINT


class AuditView:
    """What verify needs and nothing else: the events table and the tree's tables. It reads no
    event (a tampered row must not stop the auditor the way it may stop the service) and runs no
    follower."""

    def __init__(self) -> None:
        from core.audit.store import PostgresChainStore, SQLiteChainStore
        from core.case_record import CaseRecord
        from ops.bootstrap import VLOG_FILE, build_apikeys, build_keystore, eventsourcing_env, region_keys
        from ops.settings import load_settings

        self.settings = load_settings()
        self.keystore = build_keystore(self.settings)
        self.case_record = CaseRecord(
            env=eventsourcing_env(self.settings), keystore=self.keystore, digest_key=self.settings.blind_index_key
        )
        pg = self.settings.postgres
        self.keys = region_keys(self.settings)
        self.apikeys = build_apikeys(self.settings)
        self.chain_store = (
            SQLiteChainStore(self.settings.data_dir / VLOG_FILE) if pg is None else PostgresChainStore(pg.conninfo())
        )
        from core.access_log import ACCESS_LOG_FILE, PostgresAccessLog, SQLiteAccessLog

        self.access_log = (
            SQLiteAccessLog(self.settings.data_dir / ACCESS_LOG_FILE)
            if pg is None
            else PostgresAccessLog(pg.conninfo())
        )

    def close(self) -> None:
        self.access_log.close()
        self.apikeys.close()
        self.chain_store.close()
        self.case_record.close()
        self.keystore.close()


def _external(path: str, verifiers: list[Any], keys: list[str]) -> Any:
    """A checkpoint kept outside (a file holding a signed note), its signature checked with the
    verifier keys given (``--key``) or the region's own."""
    from core.audit.notes import Checkpoint, Verifier
    from core.audit.verify import ExternalCheckpoint

    text = Path(path).read_text()
    note, _ = open_note(text, [Verifier.decode(k) for k in keys] or verifiers)
    cp = Checkpoint.parse(note.body)
    return ExternalCheckpoint(cp.size, cp.root, f"{path} (tree of {cp.size})")


def _checkpoint(args: argparse.Namespace) -> int:
    services = _services()
    try:
        if args.follow:
            while services.chain.run_once():
                pass
        try:
            signed = services.checkpointer.sign_now()
        except InconsistentCheckpoint as e:
            print(f"checkpoint: REFUSED: {e}")
            return 1
        latest = services.chain_store.latest_checkpoint()
    finally:
        services.close()
    if latest is None:
        print("checkpoint: the tree is empty; nothing to sign", file=sys.stderr)
        return 0
    if signed is None:
        print(f"checkpoint: nothing new since the checkpoint of {latest.size} leaves", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(latest.note)
        print(f"checkpoint: tree of {latest.size} leaves written to {args.out}", file=sys.stderr)
    else:
        print(latest.note, end="")
    return 0


def _checkpoint_key(args: argparse.Namespace) -> int:
    from ops.bootstrap import region_keys
    from ops.settings import load_settings

    settings = load_settings()
    if args.rotate:
        import os

        if settings.mode != "development" or os.environ.get("SMD_CHECKPOINT_KEY"):
            print("checkpoint-key: in production, set SMD_CHECKPOINT_KEY to the new key and add the old verifier")
            print("key to SMD_CHECKPOINT_VERIFIERS_RETIRED (docs/decisions/017)")
            return 2
        old = region_keys(settings).signer(CHECKPOINT).verifier.encode()
        keys_dir = settings.data_dir / "keys"
        with open(keys_dir / "checkpoint-retired.txt", "a") as f:
            f.write(old + "\n")
        (keys_dir / "checkpoint.key").unlink()
        settings = load_settings()  # generates the next key
        print(f"retired: {old}")
    keys = region_keys(settings)
    print(f"checkpoint key id {keys.key_id(CHECKPOINT)}")
    for v in keys.verifiers(CHECKPOINT):
        print(v.encode())
    return 0


def open_witness(data_dir: Path, name: str, log_keys: list[str], database_url: str = "") -> Any:
    """A witness on its own folder: its cosigning key (generated there once) and its store: an
    SQLite file there, or with ``database_url`` the witness's own PostgreSQL database."""
    import os
    import secrets

    from core.audit.notes import COSIGNATURE_V1, Signer, Verifier
    from core.audit.witness import PostgresWitnessStore, SQLiteWitnessStore, Witness

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = data_dir / "witness.key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    seed = base64.b64decode(key_file.read_text().strip())
    signer = Signer.from_seed(name, seed, COSIGNATURE_V1)
    store = PostgresWitnessStore(database_url) if database_url else SQLiteWitnessStore(data_dir / "witness.sqlite")
    return Witness(store, signer, [Verifier.decode(k) for k in log_keys])


def _witness(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from core.audit.notes import Verifier
    from integrations.runner import connect_nats
    from integrations.witnessing import serve_witness, witness_subject
    from ops.settings import load_settings

    if not args.log_key:
        print("witness: give the log's verifier key with --log-key (smd checkpoint-key prints it)", file=sys.stderr)
        return 2
    witness = open_witness(Path(args.data_dir), args.name, args.log_key, args.database_url)
    print(f"witness verifier key (put it in the log's SMD_WITNESSES): {witness.signer.verifier.encode()}", flush=True)
    if args.show:
        held = witness.store.latest(Verifier.decode(args.log_key[0]).name)
        if held is None:
            print("witness: holds no checkpoint of that log yet", file=sys.stderr)
            return 1
        if args.out:
            Path(args.out).write_text(held[2])
        else:
            print(held[2], end="")
        return 0
    settings = load_settings()
    if not settings.nats_url:
        print("witness: set SMD_NATS_URL (the witness receives checkpoints over NATS)", file=sys.stderr)
        return 2
    subject = witness_subject(settings.subject_root, settings.region, witness.signer.verifier)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        nc = await connect_nats(settings.nats_url, "smd-witness")
        print(f"witness: listening on {subject}", flush=True)
        try:
            await serve_witness(nc, witness, subject, stop)
        finally:
            await nc.close()

    asyncio.run(run())
    return 0


def _verify_bundle(args: argparse.Namespace) -> int:
    from core.audit.bundle import BundleError, verify_bundle

    raw = Path(args.file).read_bytes()
    try:
        report = verify_bundle(raw, args.key or None)
    except BundleError as e:
        print(f"verify-bundle: FAILED: {e}")
        return 1
    print(
        f"verify-bundle: OK: patient {report.patient_id}: {report.rows} stored rows in the tree of"
        f" {report.tree_size} leaves, root {report.root}"
    )
    print(f"  signed by {', '.join(report.signed_by)}")
    print(f"  cosigned by {', '.join(report.cosigned_by) or 'no witness'}")
    if report.keys_from_bundle:
        print("  NOTE: checked with the keys the bundle lists; pass --key with the log's verifier key you trust")
    return 0


def _services() -> Any:
    from ops.bootstrap import bootstrap
    from ops.settings import load_settings

    return bootstrap(load_settings())


def print_report(report: Any) -> int:
    """Print a verify report; returns the exit code."""
    print(
        f"verify: tree of {report.leaves} leaves ({report.algorithm}), root {base64.b64encode(report.root).decode()};"
        f" {report.rows} stored rows, {report.pending} not yet chained; {report.checkpoints} checkpoints"
        + (f"; {report.against} outside checkpoints" if report.against else "")
    )
    if report.ok:
        print("verify: OK")
        return 0
    print(f"verify: FAILED: {report.first}")
    for f in report.findings[1:]:
        print(f"  also: {f}")
    return 1


def _verify(args: argparse.Namespace) -> int:
    from core.audit.verify import verify

    if args.follow:
        services = _services()
        try:
            while services.chain.run_once():
                pass
        finally:
            services.close()
    view = AuditView()
    try:
        verifiers = view.keys.verifiers(CHECKPOINT)

        def check_signature(note: str) -> str | None:
            try:
                open_note(note, verifiers)
            except NoteError as e:
                return str(e)
            return None

        against = [_external(path, verifiers, args.key) for path in args.against]
        report = verify(
            view.case_record.recorder,
            view.chain_store,
            against=against,
            check_signature=check_signature,
            apikeys=view.apikeys,
            access_log=view.access_log,
            stop_after=args.max_findings,
        )
    except NoteError as e:
        print(f"verify: {e}")
        return 2
    finally:
        view.close()
    return print_report(report)


def add_commands(sub: Any) -> None:
    """Register `smd verify`, `smd checkpoint`, `smd checkpoint-key`, `smd verify-bundle`, `smd witness`."""
    v = sub.add_parser("verify", help="recompute the verifiable log from the stored rows; name the first problem")
    v.add_argument("--follow", action="store_true", help="first chain the rows not chained yet")
    v.add_argument("--max-findings", type=int, default=1, help="how many row problems to list (default 1)")
    v.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="FILE",
        help="a signed checkpoint kept outside (auditor's copy, witness's): the rows must give its root",
    )
    v.add_argument(
        "--key", action="append", default=[], metavar="VERIFIER", help="verifier key for --against (default: ours)"
    )
    v.set_defaults(func=_verify)
    c = sub.add_parser("checkpoint", help="sign a checkpoint of the verifiable log now and print it")
    c.add_argument("--follow", action="store_true", help="first chain the rows not chained yet")
    c.add_argument("--out", metavar="FILE", help="write the signed note to FILE (keep it outside the deployment)")
    c.set_defaults(func=_checkpoint)
    k = sub.add_parser("checkpoint-key", help="print the checkpoint verifier keys (current, then retired)")
    k.add_argument("--rotate", action="store_true", help="development: retire the key and generate the next")
    k.set_defaults(func=_checkpoint_key)
    b = sub.add_parser("verify-bundle", help="check a patient's proof bundle offline (public keys only)")
    b.add_argument("file", help="the bundle (GET /v1/audit/patients/{id}/bundle)")
    b.add_argument("--key", action="append", default=[], metavar="VERIFIER", help="the log's verifier key you trust")
    b.set_defaults(func=_verify_bundle)
    w = sub.add_parser("witness", help="run a witness: keep, check and cosign a log's checkpoints (over NATS)")
    w.add_argument("--data-dir", default="witness-data", help="the witness's own folder (store and key)")
    w.add_argument("--name", default="witness.example/w1", help="the witness's key name (no spaces, no '+')")
    w.add_argument("--log-key", action="append", default=[], metavar="VERIFIER", help="the log's verifier key")
    w.add_argument(
        "--database-url",
        default=os.environ.get("SMD_WITNESS_DATABASE_URL", ""),
        metavar="URL",
        help="the witness's own PostgreSQL database (default SMD_WITNESS_DATABASE_URL; else --data-dir/witness.sqlite)",
    )
    w.add_argument("--show", action="store_true", help="print the latest cosigned checkpoint held, and exit")
    w.add_argument("--out", metavar="FILE", help="with --show: write it to FILE")
    w.set_defaults(func=_witness)
