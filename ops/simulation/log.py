"""The whole global log as plain records: what an auditor's tools read.

The invariant checker reads only these records (no aggregate, no rule): each is the stored
event's topic, stream, version, log position, recorded time and decoded fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

#: Attributes every stored event has; the rest are the event's own fields.
_ENVELOPE = ("originator_id", "originator_version", "timestamp")


@dataclass(frozen=True)
class Record:
    """One stored event, decoded."""

    position: int
    topic: str
    stream: UUID
    version: int
    recorded_at: datetime
    fields: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


def read_log(case_record: Any, page: int = 1000) -> Iterator[Record]:
    """Every stored event in log order (personal fields decrypted in memory, never printed)."""
    recorder, mapper = case_record.recorder, case_record.mapper
    start = 1
    while True:
        batch = recorder.select_notifications(start, page)
        for n in batch:
            event = mapper.to_domain_event(n)
            state = {k: v for k, v in vars(event).items() if k not in _ENVELOPE}
            yield Record(n.id, n.topic, n.originator_id, n.originator_version, event.timestamp, state)
        if len(batch) < page:
            return
        start = batch[-1].id + 1
