"""Go-live: the agencies' ledgers imported before the service takes over, then assessed once.

A region goes live once. Until its go-live is declared complete (``smd golive complete``), each
imported ledger only joins it: its patients are marked as joining (``GoLiveJoined`` in their
files) and the rules open nothing for them, live facts included, so no partial picture (a
registration without its visits) opens work due years before the system existed. At
completion every joined patient gets one ``HistoryImported`` fact and the rules assess the
current state once. A ledger imported after that is a late join: a patient the rules already follow
gets a ``HistoryImported`` naming the importing agency's kind, and only the rules that agency
kind owns re-assess it; a patient the ledger brings in is assessed by every rule (nothing
opens for the past either way).
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError

GO_LIVE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:go-live")


def go_live_id(region: str) -> UUID:
    """The id of a region's go-live (one per region)."""
    return uuid5(GO_LIVE_NAMESPACE, region)


class GoLiveAlreadyComplete(DomainError):
    """The region's go-live was already declared complete."""

    code = "go-live-complete"

    def __init__(self, region: str, completed_at: datetime) -> None:
        super().__init__(
            f"the go-live of region {region} was declared complete at {completed_at.isoformat()}; "
            "a ledger imported now is a late join (smd import joins it as one)"
        )


class GoLive(Aggregate):
    """A region's go-live: the ledgers that joined it and when it was declared complete."""

    TOPIC = "smd.GoLive"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.GoLive.Created"

    class Opened(Aggregate.Created):
        """GoLiveOpened: the first ledger of the region was imported."""

        TOPIC = "smd.GoLiveOpened"
        region: str

    class LedgerJoined(Aggregate.Event):
        """GoLiveLedgerJoined: an agency's ledger was imported as part of the go-live."""

        TOPIC = "smd.GoLiveLedgerJoined"
        ledger: str
        agency_id: str
        patients: int

        def apply(self, aggregate: GoLive) -> None:
            aggregate.ledgers.append({"ledger": self.ledger, "agency_id": self.agency_id, "patients": self.patients})

    class Completed(Aggregate.Event):
        """GoLiveCompleted: declared complete; every joined patient is assessed once."""

        TOPIC = "smd.GoLiveCompleted"
        patients: int

        def apply(self, aggregate: GoLive) -> None:
            aggregate.completed_at = self.timestamp

    def __init__(self, region: str) -> None:
        self.region = region
        self.ledgers: list[dict[str, object]] = []
        self.completed_at: datetime | None = None

    @classmethod
    def open(cls, region: str, now: datetime) -> GoLive:
        return cls._create(cls.Opened, id=go_live_id(region), timestamp=now, region=region)

    @property
    def complete(self) -> bool:
        return self.completed_at is not None

    def join(self, ledger: str, agency_id: str, patients: int, now: datetime) -> None:
        """A ledger joins the go-live (before it is complete)."""
        if self.completed_at is not None:
            raise GoLiveAlreadyComplete(self.region, self.completed_at)
        self.trigger_event(self.LedgerJoined, timestamp=now, ledger=ledger, agency_id=agency_id, patients=patients)

    def declare_complete(self, patients: int, now: datetime) -> bool:
        """Declare the go-live complete (False: it already was)."""
        if self.completed_at is not None:
            return False
        self.trigger_event(self.Completed, timestamp=now, patients=patients)
        return True
