"""`smd ingest` and `smd outbox`: the NATS workers as separate processes.

``add_commands(subparsers)`` adds them to the `smd` parser; ``python -m ops.cli_nats ingest``
runs them without it. SIGTERM or Ctrl-C stops a worker after its current batch.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ops.settings import SettingsError, load_settings

Worker = Callable[[Any, Any, asyncio.Event], Awaitable[None]]


async def _run(services: Any, worker: Worker, name: str) -> int:
    from integrations.runner import close_nats, connect_nats, where

    url = services.settings.nats_url
    try:
        nc = await connect_nats(url, name)
    except Exception as e:
        print(  # never print credentials: host:port only
            f"smd: cannot reach NATS at {where(url)} ({type(e).__name__}); is the server up? check SMD_NATS_URL",
            file=sys.stderr,
        )
        return 1
    services.nats = nc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker(services, nc, stop)
    finally:
        await close_nats(nc)
        services.nats = None
    return 0


def _command(worker_name: str, process_name: str) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        from integrations import runner
        from ops.bootstrap import bootstrap
        from ops.heap import settle
        from ops.logging import configure_logging, get_logger

        settings = load_settings()
        if not settings.nats_url:
            print(
                f"smd: SMD_NATS_URL is not set; `smd {worker_name}` needs a NATS server "
                "(e.g. SMD_NATS_URL=nats://127.0.0.1:4222)",
                file=sys.stderr,
            )
            return 2
        configure_logging(settings.log_format)
        get_logger("smd.cli").info(
            f"starting {worker_name}",
            store=settings.store_kind,
            region=settings.region,
            subject_root=settings.subject_root,
        )
        services = bootstrap(settings)
        settle()  # a long-running process (ops.heap)
        worker = runner.run_intake if worker_name == "ingest" else runner.run_outbox
        try:
            return asyncio.run(_run(services, worker, process_name))
        finally:
            services.close()

    return run


def _config(args: argparse.Namespace) -> int:
    """`smd nats config`: the server's accounts block from the registry, and the agencies' durables."""
    import os
    from pathlib import Path

    from core.registry import region_today
    from integrations.nats_identities import credentials, server_config
    from integrations.streams import names_of
    from ops.bootstrap import bootstrap

    settings = load_settings()
    services = bootstrap(settings)
    try:
        services.registry.refresh()
        state, today = services.registry.state(), region_today()
        agencies = sorted(a for a in state.agencies if state.agency(a, today) is not None)
        folder = Path(args.credentials) if args.credentials else settings.data_dir / "nats-credentials"
        passwords, service_password = credentials(folder, agencies)
        extra, leaf_text = _crossregion_config(args, settings, folder)
        text = server_config(names_of(settings), passwords, service_password, extra_accounts=extra)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch(mode=0o600)
        os.chmod(out, 0o600)
        out.write_text(text)
        print(f"smd nats config: {len(agencies)} agency users and the service user written to {out}")
        print(f"  passwords: {folder}/<agency>.password (hand each agency its own; mode 0600)")
        print(
            f"  include it in nats-server.conf (include {out.name}) and reload the server (nats-server --signal reload)"
        )
        print("  the service connects as smd-service: SMD_NATS_URL=nats://smd-service:<its password>@host:4222")
        if leaf_text is not None:
            leaf_out = Path(args.leaf_out)
            leaf_out.touch(mode=0o600)
            os.chmod(leaf_out, 0o600)
            leaf_out.write_text(leaf_text)
            print(
                f"smd nats config: cross-region account XR and the leaf node written to {out} and {leaf_out} "
                f"(JetStream domain {settings.crossregion_domain}; include both)"
            )
            print(
                "  the link connects as smd-crossregion: "
                "SMD_CROSSREGION_NATS_URL=nats://smd-crossregion:<its password>@host:4222"
            )
        if settings.nats_url:
            done = asyncio.run(_agency_consumers(settings, agencies))
            print(f"  durables: {sum(v == 'created' for v in done.values())} created, {len(done)} in all")
        return 0
    finally:
        services.close()


def _crossregion_config(args: argparse.Namespace, settings: Any, folder: Any) -> tuple[dict[str, object], str | None]:
    """The cross-region account and the leaf node's file, when this region links to others."""
    from integrations.crossregion import LEAF_USER, SERVICE_USER, crossregion_accounts, leafnode_config
    from integrations.nats_identities import credentials

    if not settings.crossregion_peers:
        if args.leaf_listen or args.leaf_remote:
            raise SettingsError("SMD_CROSSREGION_PEERS: a leaf node needs linked regions")
        return {}, None
    if not settings.crossregion_domain:
        raise SettingsError("SMD_CROSSREGION_DOMAIN: required to link regions (this server's JetStream domain)")
    if bool(args.leaf_listen) == bool(args.leaf_remote):
        raise SettingsError("linked regions: give --leaf-listen HOST:PORT (the hub) or --leaf-remote URL (the other)")
    domains = {settings.region: settings.crossregion_domain}
    domains |= {p.region: p.js_domain for p in settings.crossregion_peers}
    missing = [r for r, d in domains.items() if not d]
    if missing:
        raise SettingsError(f"SMD_CROSSREGION_PEERS: no js_domain for {', '.join(missing)}")
    service_password = credentials(folder, [SERVICE_USER])[0][SERVICE_USER]
    leaf_file = folder / f"{LEAF_USER}.password"
    if args.leaf_listen:  # the hub keeps the leaf user's password; the other region gets a copy
        leaf_password = credentials(folder, [LEAF_USER])[0][LEAF_USER]
        witnesses = _witnesses_across(settings)
        accounts = crossregion_accounts(settings.subject_root, domains, service_password, leaf_password, witnesses)
        return accounts, leafnode_config(settings.crossregion_domain, listen=args.leaf_listen)
    if not leaf_file.exists():
        raise SettingsError(f"--leaf-remote: copy the hub's {LEAF_USER}.password into {folder} first")
    leaf_password = leaf_file.read_text().strip()
    accounts = crossregion_accounts(settings.subject_root, domains, service_password, None)
    return accounts, leafnode_config(settings.crossregion_domain, remote=args.leaf_remote, leaf_password=leaf_password)


def _witnesses_across(settings: Any) -> dict[str, Any]:
    """Each region whose log is witnessed across the link → the other region's witness key: ours
    for a peer that lists its checkpoint verifiers, the peer's (its entry's ``witness``) for ours."""
    from core.audit.notes import Verifier
    from core.audit.signing_keys import WITNESS
    from ops.bootstrap import region_keys

    witnesses: dict[str, Any] = {}
    for peer in settings.crossregion_peers:
        if peer.witness:
            witnesses[settings.region] = Verifier.decode(peer.witness)
        if peer.checkpoint_verifiers and settings.witness_key:
            witnesses[peer.region] = region_keys(settings).signer(WITNESS).verifier
    return witnesses


async def _agency_consumers(settings: Any, agencies: list[str]) -> dict[str, str]:
    import nats

    from integrations.nats_identities import ensure_agency_consumers
    from integrations.runner import servers_of
    from integrations.streams import ensure_streams, names_of

    nc = await nats.connect(servers=servers_of(settings.nats_url), connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        await ensure_streams(js, names_of(settings), settings.nats_replicas)
        return await ensure_agency_consumers(js, names_of(settings), agencies)
    finally:
        await nc.close()


def _peer_entry(_args: argparse.Namespace) -> int:
    """Print this region's public keys as the linked region's SMD_CROSSREGION_PEERS lists them."""
    import json

    from core.audit.signing_keys import CHECKPOINT, WITNESS
    from ops.bootstrap import crossregion_keys, region_keys
    from ops.settings import load_settings

    settings = load_settings()
    if not settings.crossregion_key or not settings.crossregion_seal_key:
        print(
            "smd: set SMD_CROSSREGION_KEY and SMD_CROSSREGION_SEAL_KEY (base64 of 32 random bytes each) "
            "before linking this region: without them its keys last one run",
            file=sys.stderr,
        )
        return 1
    entry = crossregion_keys(settings).peer_entry()
    if settings.crossregion_domain:  # where the other region sources this one's messages from
        entry["js_domain"] = settings.crossregion_domain
    keys = region_keys(settings)
    # the other region witnesses this one's log with these, and is asked by it with that
    entry["checkpoint_verifiers"] = [v.encode() for v in keys.verifiers(CHECKPOINT)]
    if settings.witness_key:
        entry["witness"] = keys.signer(WITNESS).verifier.encode()
    print(json.dumps(entry, indent=2))
    return 0


def _witnessed(args: argparse.Namespace) -> int:
    """Print the latest checkpoint of a linked region's log this region cosigned (its copy)."""
    from pathlib import Path

    from core.audit.notes import Verifier
    from ops.bootstrap import open_peer_witness

    settings = load_settings()
    peer = next((p for p in settings.crossregion_peers if p.region == args.region), None)
    if peer is None or not peer.checkpoint_verifiers:
        print(
            f"smd: region {args.region} is not witnessed here: its SMD_CROSSREGION_PEERS entry lists no "
            "checkpoint_verifiers",
            file=sys.stderr,
        )
        return 2
    witness = open_peer_witness(settings)
    if witness is None:
        print("smd: set SMD_WITNESS_KEY (this region's witness key)", file=sys.stderr)
        return 2
    try:
        held = witness.store.latest(Verifier.decode(peer.checkpoint_verifiers[0]).name)
    finally:
        witness.store.close()
    if held is None:
        print(f"smd: no checkpoint of region {args.region}'s log cosigned yet", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_text(held[2])
        print(f"smd: tree of {held[0]} leaves of region {args.region} written to {args.out}", file=sys.stderr)
    else:
        print(held[2], end="")
    return 0


def add_commands(subparsers: Any) -> None:
    """Add `ingest`, `outbox` and `nats config` to the `smd` command line."""
    natsp = subparsers.add_parser("nats", help="NATS identities of the region's agencies")
    natsub = natsp.add_subparsers(dest="nats_command", required=True)
    config = natsub.add_parser(
        "config",
        help="write the server's accounts block (one user per agency of the registry) and, with "
        "SMD_NATS_URL, create each agency's durables",
    )
    config.add_argument("--out", default="nats-accounts.conf", help="the file to write (nats-accounts.conf)")
    config.add_argument("--credentials", help="where the passwords are kept (SMD_DATA_DIR/nats-credentials)")
    config.add_argument(
        "--leaf-listen",
        help="linked regions: this server is the hub of the leaf node and listens on HOST:PORT (e.g. 0.0.0.0:7422)",
    )
    config.add_argument(
        "--leaf-remote",
        help="linked regions: this server connects to the hub's leaf port (e.g. nats-leaf://hub.example:7422), "
        "with the hub's xr-leaf.password copied into the credentials folder",
    )
    config.add_argument("--leaf-out", default="nats-leaf.conf", help="the leaf node's file to write (nats-leaf.conf)")
    config.set_defaults(func=_config)
    ingest = subparsers.add_parser("ingest", help="store envelopes from the NATS intake stream (needs SMD_NATS_URL)")
    ingest.set_defaults(func=_command("ingest", "smd-ingest"))
    outbox = subparsers.add_parser(
        "outbox", help="publish obligations and notices to agencies over NATS (needs SMD_NATS_URL)"
    )
    outbox.set_defaults(func=_command("outbox", "smd-outbox"))
    crossregion = subparsers.add_parser("crossregion", help="this region's link to other regions (R8 handovers)")
    crossub = crossregion.add_subparsers(dest="crossregion_command", required=True)
    entry = crossub.add_parser(
        "peer-entry", help="print this region's public keys, the entry the other region's SMD_CROSSREGION_PEERS lists"
    )
    entry.set_defaults(func=_peer_entry)
    witnessed = crossub.add_parser(
        "witnessed",
        help="print the latest checkpoint of a linked region's log this region cosigned (for smd verify --against)",
    )
    witnessed.add_argument("region", help="the linked region's code")
    witnessed.add_argument("--out", metavar="FILE", help="write the cosigned note to FILE")
    witnessed.set_defaults(func=_witnessed)


def main(argv: list[str] | None = None) -> int:
    """Run `ingest` or `outbox` without the rest of the `smd` command line."""
    parser = argparse.ArgumentParser(prog="smd")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as e:
        print(f"smd: configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
