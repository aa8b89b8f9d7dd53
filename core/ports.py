"""Ports: what the application needs from the outside, as small protocols.

The composition root (``ops.bootstrap``) passes in the adapters that implement them, so the
application never imports the layers above it (docs/decisions/016).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID


class DoorCounts(Protocol):
    """Counts what a door (HTTP, NATS, import) accepted and refused (``ops.metrics.Metrics``)."""

    def message_accepted(self, door: str, outcome: str) -> None:
        """A door accepted a message (``outcome``: recorded, no-change, duplicate, waiting)."""
        ...

    def message_rejected(self, door: str, code: str | None) -> None:
        """A door refused a message for good, with this refusal code."""
        ...


class DueRow(Protocol):
    """One open obligation past its deadline, as a read model lists it."""

    @property
    def obligation_id(self) -> UUID: ...


class DueObligations(Protocol):
    """Lists open obligations whose deadline has passed: an index only; the scheduler re-checks
    each one against the case record (``projections.work_queue`` implements it)."""

    def open_due(self, now: datetime, limit: int = 500) -> Sequence[DueRow]:
        """Open obligations due before ``now``, at most ``limit``."""
        ...
