"""Checkpoints to witnesses over NATS: the service asks each witness to cosign, the witness
(`smd witness`) answers; both sides of the exchange in ``core.audit.witness``.

Subject: ``<root>.<region>.witness.<witness key id>`` (core NATS request/reply: a witness that
is down only delays its cosignature; the service asks again at the next round).
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
    witnesses = [Verifier.decode(v) for v in settings.witnesses]
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


async def serve_witness(nc: Client, witness: Witness, subject: str, stop: asyncio.Event) -> None:
    """`smd witness`: answer add-checkpoint requests on ``subject`` until ``stop``."""

    async def handle(msg: Any) -> None:
        reply = await asyncio.to_thread(witness.add_checkpoint, msg.data)
        await msg.respond(reply)

    sub = await nc.subscribe(subject, cb=handle)
    try:
        await stop.wait()
    finally:
        await sub.unsubscribe()
