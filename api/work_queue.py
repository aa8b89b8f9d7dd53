"""`GET /v1/work-queue` and `GET /v1/oversight/obligations`: keyset pages.

A page is ordered by log position (when the obligation or notice was assigned); ``next`` is the
last position on the page and the next page starts after it. Items assigned while a client pages
land after every cursor it holds, so paging on shows each item once and loses none; an item that
changes status between two pages is shown where its position falls, with its status then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.patient_files import Purpose
from api.ports import Port, QueueRowView, WorkQueuePort
from api.reads import Revealed, default_purpose, recorded
from core.restrictions import hidden_from
from domain.read_filter import access

Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=500, description="Items per page (1-500, default 100).")]
PAGING = (
    "Ordered by log position (when each item was assigned). Keyset pages: pass the page's `next` as "
    "`after` for the following page; `next` is null on the last one. Items assigned while you page "
    "come after every cursor you hold, so following `next` shows each item once and misses none; an "
    "item whose status changes between two pages is shown, or filtered out, with its status then."
)
After = Annotated[
    int,
    QueryParameter(
        name="after",
        ge=0,
        le=2**53,  # a log position; larger overflows the stores' integers (a clear 400, not a 500)
        description="Cursor: `next` of the previous page (0 or absent: the first page). Pass the same "
        "`status` on every page.",
    ),
]
StatusFilter = Literal["open", "done", "all"]
QueueStatus = Annotated[
    StatusFilter,
    QueryParameter(
        name="status",
        description="`open`: assigned or acknowledged obligations and unread notices (the default); "
        "`done`: completed, cancelled or read; `all`: both.",
    ),
]
OversightStatus = Annotated[
    StatusFilter,
    QueryParameter(
        name="status",
        description="`open`: assigned or acknowledged; `done`: completed or cancelled; `all`: both (the default).",
    ),
]


class QueueItem(msgspec.Struct):
    """An obligation or notice; no personal data (look the patient up by id if allowed). The
    risk level is null for a kind that may not see risk levels (docs/decisions/021)."""

    obligation_id: UUID
    kind: str
    rule: str
    action: str
    patient_id: UUID
    assignee: str
    residence: str
    due_at: datetime | None
    risk_level: int | None
    status: str
    assigned_at: datetime
    episode_key: str
    overdue: bool = False
    escalated_to: str | None = None
    closed_note: str | None = None


class QueuePage(msgspec.Struct):
    """One page, by position; pass `next` as `after` for the following page (null: no more)."""

    items: list[QueueItem]
    next: int | None


RECORDED = (
    "Each page is recorded in the access log before it is answered (the patient ids on it, the "
    "fields `obligations` and `residence`, and `risk` when your kind sees risk levels). `X-Purpose` "
    "defaults to `assigned-duty` (`audit` for an auditor)."
)


def page(
    rows: Sequence[QueueRowView],
    limit: int,
    kind: str,
    hidden: Collection[UUID] = frozenset(),
    patients: dict[UUID, None] | None = None,
) -> tuple[QueuePage, Revealed]:
    """The page as the caller's kind may see it, and what it reveals (for the access log).
    ``hidden``: patients left out (restricted: ``core.restrictions.hidden_from``); the cursor
    still moves past their rows. ``patients``: the rows' patient ids in order, each once, if
    the caller has them already (``patients_of``)."""
    sees_risk = access(kind, "risk") is not None
    full, rows = rows, [r for r in rows if r.patient_id not in hidden] if hidden else rows
    items = [
        QueueItem(
            obligation_id=r.obligation_id,
            kind=r.kind,
            rule=r.rule,
            action=r.action,
            patient_id=r.patient_id,
            assignee=r.assignee,
            residence=r.residence,
            due_at=r.due_at,
            risk_level=r.risk_level if sees_risk else None,
            status=r.status,
            assigned_at=r.assigned_at,
            episode_key=r.episode_key,
            overdue=r.overdue,
            escalated_to=r.escalated_to,
            closed_note=r.closed_note,
        )
        for r in rows
    ]
    fields = ("obligations", "residence", "risk") if sees_risk else ("obligations", "residence")
    shown = patients if patients is not None and not hidden else (r.patient_id for r in rows)
    revealed = Revealed.of(shown, fields)
    return QueuePage(items=items, next=full[-1].position if len(full) == limit else None), revealed


def patients_of(rows: Sequence[QueueRowView]) -> dict[UUID, None]:
    """The rows' patient ids in order, each once: a dict, which the restriction check and the
    access log's list take without hashing the ids again (a UUID's hash runs Python code)."""
    return dict.fromkeys(r.patient_id for r in rows)


class WorkQueueController(Controller):
    """Each agency's own obligations and notices; the governance center's oversight."""

    tags = ["work queue"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/work-queue",
        operation_id="workQueue",
        summary="The caller's own obligations and notices (open ones unless `status` says otherwise)",
        description=f"{PAGING}\n\n{RECORDED}",
    )
    async def work_queue(
        self,
        caller: NamedDependency[Caller],
        services: Port[WorkQueuePort],
        after: After = 0,
        limit: Limit = 100,
        status: QueueStatus = "open",
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> QueuePage:
        async def read() -> tuple[QueuePage, Revealed]:
            def rows() -> tuple[Sequence[QueueRowView], frozenset[UUID], dict[UUID, None]]:  # one trip to a thread
                found = services.work_queue.for_assignee(caller.agency_id, after, limit, status)
                patients = patients_of(found)
                return found, hidden_from(caller.kind, services.case_record, patients), patients

            found, hidden, patients = await asyncio.to_thread(rows)
            return page(found, limit, caller.kind, hidden, patients)

        stated = default_purpose(caller, purpose)
        return await recorded(services, caller, "GET /v1/work-queue", stated, staff_id, read)

    @get(
        "/v1/oversight/obligations",
        operation_id="oversightObligations",
        summary="Governance center: every obligation for patients in its jurisdiction",
        description=f"{PAGING}\n\n{RECORDED} A refusal (403) is recorded too.",
    )
    async def oversight(
        self,
        caller: NamedDependency[Caller],
        services: Port[WorkQueuePort],
        after: After = 0,
        limit: Limit = 100,
        status: OversightStatus = "all",
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> QueuePage:
        def check() -> None:
            if caller.kind not in ("governance_center", "auditor"):
                raise PermissionDeniedException(
                    detail=f"the oversight view is for governance centers and auditors; {caller.agency_id} is a "
                    f"{caller.kind}: use GET /v1/work-queue for your own obligations"
                )

        def rows() -> tuple[Sequence[QueueRowView], frozenset[UUID], dict[UUID, None]]:  # one trip to a thread
            units = services.units_within(caller.jurisdiction)
            found = services.work_queue.obligations_in(units, after, limit, status)
            patients = patients_of(found)
            return found, hidden_from(caller.kind, services.case_record, patients), patients

        async def read() -> tuple[QueuePage, Revealed]:
            found, hidden, patients = await asyncio.to_thread(rows)
            return page(found, limit, caller.kind, hidden, patients)

        stated = default_purpose(caller, purpose)
        return await recorded(services, caller, "GET /v1/oversight/obligations", stated, staff_id, read, check=check)
