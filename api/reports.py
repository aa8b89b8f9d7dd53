"""`GET /v1/reports`: reports submitted (R21) and progress recorded on the work plan's tasks.

Who sees whose: every agency its own; a governance center those of every agency whose
jurisdiction lies in its own (反馈督办: it collects the departments' reports); an auditor every
agency's. The texts (a report's reference, a progress record's text) are sealed in the case
record and read from there for the page; the read model holds none.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.ports import Port, ReportsPort
from api.work_queue import After, Limit
from core.registry import REGION_TZ

What = Annotated[
    Literal["report", "task_progress"] | None,
    QueryParameter(name="what", description="`report` or `task_progress` (absent: both)."),
]
Period = Annotated[
    str | None,
    QueryParameter(
        name="period",
        pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$",
        description="Only the reports of this period (2026-12, or 2026-Q4 for quarterly reports).",
    ),
]
Agency = Annotated[
    str | None, QueryParameter(name="agency", description="Only this agency's (one the caller may see).")
]


class ReportItem(msgspec.Struct, omit_defaults=True):
    """A report (duty, period, reference) or a progress record (task number, text)."""

    id: UUID
    what: str
    agency_id: str
    occurred_at: datetime
    recorded_at: datetime
    message_id: str
    duty: str | None = None
    period: str | None = None
    reference: str | None = None
    task_number: int | None = None
    text: str | None = None


class ReportPage(msgspec.Struct):
    """One page, by position; pass `next` as `after` for the following page (null: no more)."""

    items: list[ReportItem]
    next: int | None


def visible_agencies(services: Any, caller: Caller) -> set[str]:
    """The agencies whose reports the caller may see."""
    if caller.kind not in ("governance_center", "auditor"):
        return {caller.agency_id}
    state = services.registry.state()
    today = datetime.now(REGION_TZ).date()
    everyone = {a for a in state.agencies if state.agency(a, today) is not None}
    if caller.kind == "auditor":
        return everyone
    units = services.units_within(caller.jurisdiction)
    return {a for a in everyone if set(state.agency(a, today).jurisdiction) & units} | {caller.agency_id}


def _text(sealed: Any) -> str | None:
    return getattr(sealed, "text", None) if sealed is not None else None


class ReportsController(Controller):
    """Reports and task progress, for the agency, its governance center and auditors."""

    tags = ["reports"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/reports",
        operation_id="reports",
        summary="Reports submitted (R21) and progress recorded on the work plan's tasks",
        description="Your own; a governance center's: every agency's in its jurisdiction; an auditor's: "
        "every agency's. Ordered by log position; keyset pages: pass `next` as `after`.",
    )
    async def reports(
        self,
        caller: NamedDependency[Caller],
        services: Port[ReportsPort],
        after: After = 0,
        limit: Limit = 100,
        what: What = None,
        period: Period = None,
        agency: Agency = None,
    ) -> ReportPage:
        def read() -> ReportPage:
            agencies = visible_agencies(services, caller)
            if agency is not None:
                agencies &= {agency}
            rows = list(services.reports.of_agencies(agencies, after=after, limit=limit, what=what, period=period))
            loaded = services.case_record.load_many([r.item_id for r in rows])
            items = []
            for r in rows:
                found = loaded.get(r.item_id)
                items.append(
                    ReportItem(
                        id=r.item_id,
                        what=r.what,
                        agency_id=r.agency_id,
                        occurred_at=r.occurred_at,
                        recorded_at=r.recorded_at,
                        message_id=r.message_id,
                        duty=r.duty,
                        period=r.period,
                        reference=_text(getattr(found, "reference", None)),
                        task_number=r.task_number,
                        text=_text(getattr(found, "text", None)),
                    )
                )
            return ReportPage(items=items, next=rows[-1].position if len(rows) == limit else None)

        return await asyncio.to_thread(read)
