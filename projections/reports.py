"""The reports view: reports submitted (R21) and progress recorded on the work plan's tasks.

A projection on the framework of ``projections.base``: one row per report or progress record,
holding no text (the reference and the progress text stay sealed in the case record; the
endpoint reads them from there for a caller that may see them). Pages are keyset pages by log
position on an index that starts with the agency, one range per agency merged, as the oversight
list does per residence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from core.followers.concerns import Concerns
from core.followers.parking import ParkingStore
from domain.reporting import SubmittedReport, TaskProgress
from projections.base import Batch, Column, Insert, Table
from projections.runner import ProjectionFollower
from projections.stores import ViewStore

REPORT_SUBMITTED = SubmittedReport.Submitted.TOPIC
PROGRESS_RECORDED = TaskProgress.Recorded.TOPIC

#: What a row is (``what``).
WHATS = ("report", "task_progress")


@dataclass(frozen=True, slots=True)
class ReportRow:
    """A report or a progress record, without its text."""

    position: int
    item_id: UUID
    what: str
    agency_id: str
    duty: str | None
    period: str | None
    task_number: int | None
    occurred_at: datetime
    recorded_at: datetime
    message_id: str


ITEMS = Table(
    name="items",
    columns=(
        Column("position", "int", not_null=True),
        Column("item_id", "uuid", not_null=True),
        Column("what", "text", not_null=True),
        Column("agency_id", "text", not_null=True),
        Column("duty", "text"),
        Column("period", "text"),
        Column("task_number", "int"),
        Column("occurred_at", "time", not_null=True),
        Column("recorded_at", "time", not_null=True),
        Column("message_id", "text", not_null=True),
    ),
    primary_key=("item_id",),
    indexes=(
        ("agency_id", "position"),
        ("agency_id", "what", "position"),
        ("agency_id", "period", "position"),
    ),
)


class ReportsView:
    """The projection: report and progress facts → one row each."""

    name = "reports"
    version = 1
    topics = (REPORT_SUBMITTED, PROGRESS_RECORDED)
    tables = (ITEMS,)

    def apply(self, event: Any, notification: Notification, batch: Batch) -> None:
        report = notification.topic == REPORT_SUBMITTED
        batch.add(
            Insert(
                "items",
                {
                    "position": notification.id,
                    "item_id": event.originator_id,
                    "what": "report" if report else "task_progress",
                    "agency_id": event.agency_id,
                    "duty": event.duty if report else None,
                    "period": event.period if report else None,
                    "task_number": None if report else event.task_number,
                    "occurred_at": event.occurred_at,
                    "recorded_at": event.timestamp,
                    "message_id": event.message_id,
                },
            )
        )


class ReportsProjection(ProjectionFollower):
    """Follows the case record and keeps the reports view; answers its pages."""

    def __init__(
        self, case_record: Any, store: ViewStore, parking: ParkingStore, concerns: Concerns | None = None
    ) -> None:
        super().__init__(case_record, store, ReportsView(), parking, concerns)

    def of_agencies(
        self,
        agencies: Iterable[str],
        *,
        after: int = 0,
        limit: int = 100,
        what: str | None = None,
        period: str | None = None,
    ) -> list[ReportRow]:
        """The reports and progress records of these agencies, by position, after a cursor
        (``what``: report or task_progress; ``period``: reports of one period)."""
        if period is not None and what == "task_progress":
            return []  # only reports have a period
        branches = []
        for agency in sorted(set(agencies)):
            where, params = "agency_id = ?", [agency]
            if period is not None:
                where, params = where + " AND period = ?", [*params, period]
            elif what is not None:
                where, params = where + " AND what = ?", [*params, what]
            branches.append((where, params))
        if not branches:
            return []
        rows = self.store.select_merged(
            self.projection, "items", branches, order_by="position", after=after, limit=limit, stale_ok=True
        )
        return [ReportRow(**r) for r in rows]

    def items_up_to(self, position: int, page: int = 5000) -> list[ReportRow]:
        """Every row recorded at or below ``position`` (the view is caught up to it first)."""
        if self.position < position and not self.catch_up(position, timeout=30):
            raise TimeoutError(f"the view {self.name} is at position {self.position}, not yet at {position}")
        gen = self.store.live(self.projection)
        found: list[ReportRow] = []
        after = None
        while True:
            rows = self.store.select(
                self.projection,
                "items",
                "position <= ?",
                [position],
                order_by="position",
                after=after,
                limit=page,
                generation=gen,
            )
            found.extend(ReportRow(**r) for r in rows)
            if len(rows) < page:
                return found
            after = rows[-1]["position"]
