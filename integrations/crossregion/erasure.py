"""An erased patient's messages deleted from this region's cross-region streams, by sequence.

Run by `smd erasure run` after ``core.erasure`` (decision 049): this region's outgoing stream
``<ROOT>_XR_OUT_<region>`` and each ``<ROOT>_XR_IN_<peer>`` lose every message of a handover
about a patient erased here or named in a linked region's erasure notice
(``Handovers.erased_messages``). The personal parts of those messages are sealed to the receiving
region's key, which is not destroyed by an erasure: the receiver could still open its copies, and
the sender's copies are what the receiver would source again. JetStream's message delete
overwrites the stored message (it is not called with ``no_erase``).

Three messages wait for a later run rather than break the link: a received one not applied yet
(its sequence above the inbox's: deleting it would leave a gap every later message waits behind),
a sent one the peer has not said it applied (it may not be sourced yet), and the last message of
this region's own subject to a peer (the publisher reads its position from it). The erasure
notices themselves name only ids and stay.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import structlog
from nats.js.errors import NotFoundError

from integrations.crossregion.link import LinkNames

log = structlog.get_logger("smd.crossregion")


class _Header(msgspec.Struct):
    """What a cross-region message says of itself that the deletion needs (signature not checked:
    a forged copy of a genuine message about the patient goes too)."""

    handover_id: UUID
    sender: str
    receiver: str
    sequence: int


_decode = msgspec.json.Decoder(_Header).decode


async def delete_erased_messages(js: Any, names: LinkNames, erased: Any) -> dict[str, list[int]]:
    """Delete what ``erased`` (a ``core.handover.ErasedMessages``) names from this region's
    outgoing stream and each peer's sourced stream; the stream sequences deleted, per stream."""
    deleted: dict[str, list[int]] = {}
    if not erased.handover_ids:
        return deleted
    out = names.out_stream()
    last: dict[str, int] = {}
    for peer in erased.acked_by:
        try:
            last[peer] = (await js.get_last_msg(out, names.subject(names.region, peer))).seq
        except NotFoundError:
            continue

    def sent(h: _Header, seq: int) -> bool:
        acked = erased.acked_by.get(h.receiver)
        return acked is not None and h.sequence <= acked and seq != last.get(h.receiver)

    deleted[out] = await _delete(js, out, erased.handover_ids, sent)
    for peer, applied in erased.applied_from.items():

        def received(h: _Header, _seq: int, peer: str = peer, applied: int = applied) -> bool:
            return h.sender == peer and h.sequence <= applied

        deleted[names.in_stream(peer)] = await _delete(js, names.in_stream(peer), erased.handover_ids, received)
    return deleted


async def _delete(js: Any, stream: str, handover_ids: frozenset[UUID], now: Any) -> list[int]:
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return []
    seqs: list[int] = []
    later = 0
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except NotFoundError:
            continue  # deleted already, or aged out
        try:
            header = _decode(msg.data or b"")
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue  # not a cross-region message: ages out with the stream's max_age
        if header.handover_id not in handover_ids:
            continue
        if not now(header, seq):
            later += 1
            continue
        await js.delete_msg(stream, seq)
        seqs.append(seq)
    log.info("erased messages deleted", stream=stream, messages=len(seqs), left_for_a_later_run=later)
    return seqs
