"""The work-queue view: each agency's obligations and notices, and the oversight list.

A projection on the framework of ``projections.base``: it reads the obligation topics and keeps
one table, written with its tracked position in one transaction by the view store; rebuildable
(``smd projections rebuild work_queue``). Rows hold no personal data: ids, org units, rule,
action, deadline, status and risk level only.

Pages are keyset pages on an index: every query is ``<equalities> AND position > cursor ORDER BY
position LIMIT n`` on an index that starts with those equalities and ends with ``position``, so a
page reads about ``n`` index entries whatever the size of the table. ``is_open`` is kept as a
column (not derived from ``status`` in the query) so that "open only" is an equality the index
can serve. The oversight list spans many residences: one such index range per residence, merged
by position (``ViewStore.select_merged``), reads about ``n`` rows plus one probe per residence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Notification

from core.followers.concerns import Concerns
from core.followers.parking import ParkingStore
from domain.obligation import STATUS_AFTER, Obligation
from projections.base import Batch, Column, Insert, Table, Update
from projections.runner import ProjectionFollower
from projections.stores import ViewStore

ASSIGNED = Obligation.Assigned.TOPIC
LIFECYCLE = STATUS_AFTER
OVERDUE = Obligation.Overdue.TOPIC


class QueueRow(msgspec.Struct, frozen=True):
    """One obligation or notice as its owner and the governance center see it. The fields are
    the view's columns in their order: a page builds each row from the driver's tuple
    (``QueueRow(*values)``, a C call), which costs a fiftieth of a dict and a dataclass."""

    position: int
    obligation_id: UUID
    kind: str
    rule: str
    action: str
    patient_id: UUID
    episode_key: str
    assignee: str
    residence: str
    due_at: datetime | None
    risk_level: int | None
    status: str
    assigned_at: datetime
    trigger_message_id: str
    overdue: bool = False
    escalated_to: str | None = None
    closed_note: str | None = None
    is_open: bool = True


@dataclass(frozen=True, slots=True)
class RuleCounts:
    """One rule's obligations (not notices) in the view: ever opened, marked overdue, escalated,
    and open now (assigned or acknowledged), of which overdue."""

    opened: int = 0
    overdue: int = 0
    escalated: int = 0
    open: int = 0
    open_overdue: int = 0


OPEN_STATUSES = frozenset({"assigned", "acknowledged"})

#: The status filter of a page: open (assigned or acknowledged), done (completed, cancelled,
#: read) or all.
STATUS_FILTERS = ("open", "done", "all")


ROWS = Table(
    name="rows",
    columns=(
        Column("position", "int", not_null=True),
        Column("obligation_id", "uuid", not_null=True),
        Column("kind", "text"),
        Column("rule", "text"),
        Column("action", "text"),
        Column("patient_id", "uuid"),
        Column("episode_key", "text"),
        Column("assignee", "text"),
        Column("residence", "text"),
        Column("due_at", "time"),
        Column("risk_level", "int"),
        Column("status", "text"),
        Column("assigned_at", "time"),
        Column("trigger_message_id", "text"),
        Column("overdue", "bool", not_null=True),
        Column("escalated_to", "text"),
        Column("closed_note", "text"),
        Column("is_open", "bool", not_null=True),
    ),
    # Keyed by obligation, with no index on position alone: a planner given one would walk it
    # and filter (open items are recent, so "open only" would read every closed row first);
    # every page is served by an index that starts with its equalities and ends with position.
    primary_key=("obligation_id",),
    indexes=(
        ("assignee", "position"),  # a work queue, every status
        ("assignee", "is_open", "position"),  # a work queue, open or done
        ("residence", "kind", "position"),  # the oversight list, one range per residence
        ("residence", "kind", "is_open", "position"),
        ("is_open", "overdue", "due_at"),  # the scheduler's open obligations past their deadline
        ("patient_id", "position"),  # one patient's items: the file and its timeline (created at start)
    ),
)


class WorkQueueView:
    """The projection: obligation events → one row per obligation or notice."""

    name = "work_queue"
    version = 4  # 2 was round 1's hand-written tables, 3 had no is_open; bump when the rows change
    topics = (ASSIGNED, *LIFECYCLE, OVERDUE)
    tables = (ROWS,)

    def apply(self, event: Any, notification: Notification, batch: Batch) -> None:
        topic = notification.topic
        if topic == ASSIGNED:
            batch.add(
                Insert(
                    "rows",
                    {
                        "position": notification.id,
                        "obligation_id": event.originator_id,
                        "kind": event.kind,
                        "rule": event.rule,
                        "action": event.action,
                        "patient_id": event.patient_id,
                        "episode_key": event.episode_key,
                        "assignee": event.assignee,
                        "residence": event.residence,
                        "due_at": event.due_at,
                        "risk_level": event.risk_level,
                        "status": "assigned",
                        "assigned_at": event.timestamp,
                        "trigger_message_id": event.trigger_message_id,
                        "overdue": False,
                        "escalated_to": None,
                        "closed_note": None,
                        "is_open": True,
                    },
                )
            )
        elif topic in LIFECYCLE:
            status = LIFECYCLE[topic]
            values: dict[str, Any] = {"status": status, "is_open": status in OPEN_STATUSES}
            note = getattr(event, "reason", None) or getattr(event, "fulfilled_by", None)
            if note is not None:
                values["closed_note"] = note
            batch.add(Update("rows", {"obligation_id": event.originator_id}, values))
        elif topic == OVERDUE:
            batch.add(
                Update(
                    "rows",
                    {"obligation_id": event.originator_id},
                    {"overdue": True, "escalated_to": event.escalated_to},
                )
            )


class WorkQueueProjection(ProjectionFollower):
    """Follows the case record and keeps the work-queue view; answers its queries."""

    def __init__(
        self, case_record: Any, store: ViewStore, parking: ParkingStore, concerns: Concerns | None = None
    ) -> None:
        super().__init__(case_record, store, WorkQueueView(), parking, concerns)

    def select(self, where: str, params: Sequence[Any], after: int = 0, limit: int = 100) -> list[QueueRow]:
        """Rows matching a WHERE clause (placeholders ``?``), by position, after a cursor."""
        rows = self.store.select(self.projection, "rows", where, params, order_by="position", after=after, limit=limit)
        return [QueueRow(**r) for r in rows]

    def counts_by_rule(self) -> dict[str, RuleCounts]:
        """Obligations (not notices) by rule: opened, overdue, escalated, open, open and overdue.

        One grouped query on the view (read by every process alike), for the metrics."""
        groups = self.store.count(
            self.projection, "rows", ("rule", "status", "overdue", "escalated_to"), "kind = ?", ["obligation"]
        )
        out: dict[str, list[int]] = {}
        for (rule, status, overdue, escalated_to), n in groups.items():
            c = out.setdefault(rule or "", [0, 0, 0, 0, 0])
            is_open = status in OPEN_STATUSES
            c[0] += n
            c[1] += n if overdue else 0
            c[2] += n if escalated_to else 0
            c[3] += n if is_open else 0
            c[4] += n if is_open and overdue else 0
        return {rule: RuleCounts(*c) for rule, c in out.items()}

    def wait(self, position: int, timeout: float = 5.0) -> bool:
        """Block until the view has applied ``position`` (read-your-writes); False on timeout."""
        import time

        deadline = time.monotonic() + timeout
        while self.position < position:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def for_assignee(self, agency_id: str, after: int = 0, limit: int = 100, status: str = "all") -> list[QueueRow]:
        """The agency's own obligations and notices (``status``: open, done or all), by position."""
        return self._page(assignee_branches(agency_id, status), after, limit)

    def obligations_in(
        self, residences: Iterable[str], after: int = 0, limit: int = 100, status: str = "all"
    ) -> list[QueueRow]:
        """Every obligation (not notice) for patients living in the given org units (``status``:
        open, done or all), by position: one index range per unit, merged."""
        return self._page(oversight_branches(residences, status), after, limit)

    def _page(self, branches: list[tuple[str, list[Any]]], after: int, limit: int) -> list[QueueRow]:
        if not branches:
            return []
        return self.store.select_merged(
            self.projection,
            "rows",
            branches,
            order_by="position",
            after=after,
            limit=limit,
            stale_ok=True,
            into=QueueRow,
        )

    def open_due(self, now: datetime, limit: int = 500) -> list[QueueRow]:
        """Open obligations (not notices) whose deadline has passed and that are not yet
        marked overdue: the scheduler's to-do list (it re-checks each against the store)."""
        return self.select(
            "is_open = ? AND overdue = ? AND due_at <= ? AND kind = 'obligation'",
            [True, False, now],
            0,
            limit,
        )


def assignee_branches(agency_id: str, status: str) -> list[tuple[str, list[Any]]]:
    """The work queue's page query: one range of ``(assignee[, is_open], position)``."""
    return [_with_status("assignee = ?", [agency_id], status)]


def oversight_branches(residences: Iterable[str], status: str) -> list[tuple[str, list[Any]]]:
    """The oversight page query: one range of ``(residence, kind[, is_open], position)`` per unit."""
    return [
        _with_status("residence = ? AND kind = ?", [unit, "obligation"], status) for unit in sorted(set(residences))
    ]


def _with_status(where: str, params: list[Any], status: str) -> tuple[str, list[Any]]:
    """Add the status filter as an equality on ``is_open`` (what the indexes serve)."""
    if status == "all":
        return where, params
    if status not in STATUS_FILTERS:
        raise ValueError(f"status filter must be one of {STATUS_FILTERS}, got {status!r}")
    return f"{where} AND is_open = ?", [*params, status == "open"]
