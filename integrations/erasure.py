"""An erased patient's messages deleted from the NATS intake and rejection streams, by sequence.

The intake keeps no stream sequence per stored fact, so the messages are found by what they are
about: the envelope's ``subject`` or ``data.patient_id`` (the stored bytes are the envelope as the
agency sent it, in plain JSON: names, ID numbers and notes included). A message that is not a
JSON envelope (a rejected malformed one) cannot be attributed and stays until the stream's
``max_age`` removes it. JetStream's message delete overwrites the stored message (it is not
called with ``no_erase``). One pass reads the whole stream: run it after ``core.erasure``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any
from uuid import UUID

import structlog
from nats.js.errors import NotFoundError

from integrations.streams import Names

log = structlog.get_logger(__name__)


def about(data: bytes, subjects: Collection[str]) -> bool:
    """Whether the envelope's subject, or the patient its data names, is one of ``subjects``."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    if not isinstance(doc, dict):
        return False
    inner = doc.get("data")
    named = inner.get("patient_id") if isinstance(inner, dict) else None
    return doc.get("subject") in subjects or named in subjects


async def delete_messages_about(js: Any, names: Names, subject_ids: Collection[UUID]) -> dict[str, list[int]]:
    """Delete every message about these patients from the intake and rejection streams; the
    sequences deleted, per stream."""
    wanted = {str(s) for s in subject_ids}
    deleted: dict[str, list[int]] = {}
    if not wanted:
        return deleted
    for stream in (names.intake_stream, names.rejected_stream):
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            continue
        seqs: list[int] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue  # deleted already, or aged out
            if about(msg.data or b"", wanted):
                await js.delete_msg(stream, seq)
                seqs.append(seq)
        deleted[stream] = seqs
        log.info("erased messages deleted", stream=stream, messages=len(seqs))
    return deleted
