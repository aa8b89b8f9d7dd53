"""Telling NATS senders about facts refused after waiting (core.waiting; docs/decisions/015).

A fact that came over NATS and waited for its patient (or suspected case, incident, move) is
acked once it is safely waiting. When it is refused later (the window ended:
``reference-not-found``; or refused on release with its own reason) its sender is told exactly
as for a refusal at the door: the original bytes on ``<root>.<region>.rejected.<agency-id>``
with ``Smd-Reason``, ``Smd-Detail``, ``Smd-Original-Subject``, ``Smd-Original-Seq`` (and
``Smd-Original-Msg-Id``), ``Nats-Msg-Id: rejected:<original stream seq>``. Then the row forgets
the sealed bytes.

``run_waiting`` runs beside the intake (in ``smd serve`` and ``smd ingest``): every second it
sweeps (releases what a crashed writer left, refuses at the window's end) and publishes the
refusals not yet told. Several processes may do it at once: the rejection's ``Nats-Msg-Id`` makes
JetStream keep one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from nats.aio.client import Client

from core.waiting import NOTIFIED_DOORS, Waiting, WaitingFact
from integrations.intake import H_DETAIL, H_MSG_ID, H_REASON, H_SEQ, H_SUBJECT, _clean, error_location
from integrations.streams import Names

log = structlog.get_logger("smd.waiting")

EVERY_SECONDS = 1.0
BATCH = 100


async def tell(waiting: Waiting, nc: Client, names: Names, limit: int = BATCH) -> int:
    """Publish the refusals of waiting facts not yet told to their NATS senders; returns how many."""
    rows = await asyncio.to_thread(waiting.table.untold, NOTIFIED_DOORS, limit)
    js = nc.jetstream()
    told = 0
    for row in rows:
        raw = await asyncio.to_thread(waiting.original, row)
        await js.publish(names.rejected(row.agency_id), raw, headers=_headers(row), stream=names.rejected_stream)
        await asyncio.to_thread(waiting.table.told, row.seq)
        log.info("waiting fact rejection published", key=row.key, reason=row.reason, seq=row.nats_seq)
        told += 1
    return told


def _headers(row: WaitingFact) -> dict[str, str]:
    seq = str(row.nats_seq) if row.nats_seq is not None else f"waiting-{row.seq}"
    headers = {
        "Nats-Msg-Id": f"rejected:{seq}",  # the same id a refusal at the door would have had
        H_REASON: row.reason or "rejected",
        H_DETAIL: _clean(row.detail or ""),
        H_SUBJECT: row.nats_subject or "",
        H_SEQ: seq,
    }
    if row.nats_msg_id:
        headers[H_MSG_ID] = _clean(row.nats_msg_id, 200)
    return headers


async def run_waiting(services: Any, nc: Client, names: Names, stop: asyncio.Event) -> None:
    """Sweep and tell, every second, until ``stop`` is set (failures are logged and retried)."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(services.waiting_sweep.run_once)
            if nc.is_connected:
                await tell(services.waiting, nc, names)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the store or NATS failed for now: next round
            log.warning("waiting sweep failed", error=type(e).__name__, at=error_location(e))
        try:
            await asyncio.wait_for(stop.wait(), timeout=EVERY_SECONDS)
        except TimeoutError:
            pass
