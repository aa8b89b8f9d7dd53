"""Checkpoints to witnesses over NATS: the service asks each witness to cosign, the witness
(`smd witness`) answers; both sides of the exchange in ``core.audit.witness``.

Subject: ``<root>.<region>.witness.<witness key id>`` (core NATS request/reply: a witness that
is down only delays its cosignature; the service asks again at the next round).

Linked regions witness each other over the leaf node (``run_peer_witnessing``): the same
exchange on the same subject, but in the cross-region account ``XR`` of each server, with the
replies under ``<root>.<region>.witness-reply`` (the asking region's own prefix, not the shared
``_INBOX``), so that the leaf node carries exactly these subjects and nothing else of theirs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import structlog
from nats.aio.client import Client

from core.audit.notes import NoteError, SignedNote, Verifier, check_cosignature
from core.audit.proofs import TreeReader
from core.audit.store import ChainStore
from core.audit.witness import Witness, add_checkpoint_request, parse_reply

log = structlog.get_logger(__name__)
ROUND_SECONDS = 2.0


def witness_subject(root: str, region: str, witness: Verifier) -> str:
    """Where a witness listens for a region's checkpoints."""
    return f"{root}.{region}.witness.{witness.key_id.hex()}"


def witness_reply_prefix(root: str, region: str) -> str:
    """The inbox prefix under which a region receives its witnesses' replies across the link."""
    return f"{root}.{region}.witness-reply"


async def request_cosignature(
    nc: Client, store: ChainStore, subject: str, witness: Verifier, timeout: float = 5.0
) -> str:
    """Ask one witness to cosign the latest checkpoint; keeps the cosignature. Returns
    "cosigned", "already", "none" (nothing signed yet) or the reason it was refused."""
    latest = store.latest_checkpoint()
    if latest is None:
        return "none"
    if any(name == witness.name for name, _ in store.cosignatures(latest.size)):
        return "already"
    reader = TreeReader(store)
    held = 0
    for _ in range(3):  # a conflict tells us the witness's size: ask again from there
        proof = await asyncio.to_thread(reader.consistency, held, latest.size) if held <= latest.size else []
        request = add_checkpoint_request(held, proof, latest.note)
        reply = await nc.request(subject, request, timeout=timeout)
        kind, value = parse_reply(reply.data)
        if kind == "conflict":
            held = int(value)
            if held > latest.size:
                # our log is shorter than what the witness cosigned: restored from an old backup?
                log.error("a witness holds a larger tree than our latest checkpoint", witness=witness.name, size=held)
                return f"the witness holds a larger tree ({held}) than our latest checkpoint ({latest.size})"
            continue
        if kind == "refused":
            log.error("a witness refused our checkpoint", witness=witness.name, size=latest.size, reason=value)
            return value
        try:
            check_cosignature(SignedNote.parse(latest.note + value), witness)
        except NoteError as e:
            log.error("a witness's cosignature does not verify", witness=witness.name, reason=str(e))
            return str(e)
        await asyncio.to_thread(store.add_cosignature, latest.size, witness.name, value)
        return "cosigned"
    return "conflict"


async def run_witnessing(services: Any, nc: Client, stop: asyncio.Event) -> None:
    """In `smd serve`: every round, ask each configured witness to cosign the latest checkpoint."""
    settings = services.settings
    await ask_witnesses(services, nc, [Verifier.decode(v) for v in settings.witnesses], stop)


async def ask_witnesses(services: Any, nc: Client, witnesses: list[Verifier], stop: asyncio.Event) -> None:
    """Every round until ``stop``, ask each of ``witnesses`` (on ``nc``) to cosign the latest
    checkpoint of this region's log."""
    settings = services.settings
    if not witnesses:
        return
    while not stop.is_set():
        for w in witnesses:
            try:
                await request_cosignature(
                    nc, services.chain_store, witness_subject(settings.subject_root, settings.region, w), w
                )
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, TimeoutError):
                pass  # the witness is away: the next round asks again
            except Exception as e:
                log.error("asking a witness failed", witness=w.name, error=type(e).__name__)
        try:
            await asyncio.wait_for(stop.wait(), ROUND_SECONDS)
        except TimeoutError:
            pass


def peer_witnessing(settings: Any) -> bool:
    """Whether `smd serve` witnesses a linked region's log or is witnessed by one (over XR)."""
    peers = settings.crossregion_peers
    return bool(settings.crossregion_nats_url and any(p.checkpoint_verifiers or p.witness for p in peers))


async def run_peer_witnessing(
    services: Any, witness: Witness | None, stop: asyncio.Event, name: str = "smd-witnessing"
) -> None:
    """In `smd serve` with linked regions: over the cross-region account (SMD_CROSSREGION_NATS_URL),
    answer the linked regions' checkpoints with ``witness`` (on ``<root>.<peer>.witness.<our
    witness key id>``), and ask each linked region's witness (its peer entry's ``witness``) to
    cosign ours, every round, until ``stop``."""
    from integrations.runner import close_nats, connect_when_possible

    settings = services.settings
    root = settings.subject_root
    nc = await connect_when_possible(
        settings.crossregion_nats_url, name, stop, witness_reply_prefix(root, settings.region)
    )
    if nc is None:
        return
    serving = [
        serve_witness(nc, witness, witness_subject(root, p.region, witness.signer.verifier), stop)
        for p in settings.crossregion_peers
        if witness is not None and p.checkpoint_verifiers
    ]
    asking = ask_witnesses(services, nc, [Verifier.decode(w) for _, w in settings.peer_witnesses], stop)
    try:
        await asyncio.gather(asking, *serving)
    finally:
        await close_nats(nc)


async def serve_witness(nc: Client, witness: Witness, subject: str, stop: asyncio.Event) -> None:
    """`smd witness`: answer add-checkpoint requests on ``subject`` until ``stop``. No queue
    group: a queue subscription behind the leaf node is not carried to the hub under the leaf
    user's subject permissions (nats-server 2.9.10); two processes answering the same request
    both cosign the same consistent tree and the store keeps the first."""

    async def handle(msg: Any) -> None:
        reply = await asyncio.to_thread(witness.add_checkpoint, msg.data)
        await msg.respond(reply)

    sub = await nc.subscribe(subject, cb=handle)
    try:
        await stop.wait()
    finally:
        await sub.unsubscribe()
