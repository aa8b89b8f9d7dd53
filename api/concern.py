"""People of concern over HTTP (docs/decisions/037).

- ``POST /v1/concern/runs``: the governance center collides the live incident and dispute
  records with the register under the collision rules in force; 201 with what changed.
- ``GET /v1/concern/entries``: the list as the caller may read it (DESIGN.md section 4: the
  police station, the governance center and the health center in their jurisdiction, the
  auditor everywhere; other kinds 403), as JSON or CSV (UTF-8 with a BOM). Every read is
  recorded in the access log (the patients and suspected cases, the field name ``concern``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.ports import Port, ReconciliationPort
from api.reads import Purpose, Revealed, default_purpose, recorded
from core.concern import entries_csv, entry_view, on_the_list, readable, run
from core.registry import REGION_TZ
from domain.concern import READERS
from domain.errors import DomainError
from domain.registry import AgencyKind

StaffId = Annotated[str | None, HeaderParameter(name="X-Staff-Id", max_length=64)]
Format = Annotated[
    Literal["json", "csv"],
    QueryParameter(name="format", description="`json` (default) or `csv` (UTF-8 with a BOM, CRLF)."),
]


class NotAllowedToReadConcern(DomainError):
    """The people of concern are read by the police, the governance center, the health center, the auditor."""

    code = "not-allowed-to-read-concern"

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"a {kind} may not read the people of concern; the police station, the governance center, "
            "the health center and the auditor may"
        )


class NotAllowedToRunConcern(DomainError):
    code = "not-allowed-to-run"

    def __init__(self, kind: str) -> None:
        super().__init__(f"a {kind} may not run the people-of-concern collision; the governance center does")


class ConcernRunView(msgspec.Struct):
    """What a run changed: entries listed (or listed again), revised, taken off; how many are on the list."""

    run_id: str
    rules_version: int
    rows: int
    purged: int
    on_list: int
    listed: int
    revised: int
    taken_off: int


class ConcernView(msgspec.Struct):
    """The entries the caller may read."""

    items: list[dict[str, Any]]


class ConcernController(Controller):
    """The list of people of concern: run, read."""

    tags = ["people of concern"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @post(
        "/v1/concern/runs",
        operation_id="runConcern",
        summary="Collide the live incident and dispute records with the register",
        description="The governance center. The collision rules in force (record types, window, weights, "
        "threshold; each version dated) decide who is on the list; only the differences are recorded. A "
        "listing notifies the police station and the governance center, and obliges the police at level ≥ 3.",
        status_code=201,
    )
    async def start_run(self, caller: NamedDependency[Caller], services: Port[ReconciliationPort]) -> ConcernRunView:
        def go() -> ConcernRunView:
            if caller.kind != AgencyKind.GOVERNANCE_CENTER:
                raise NotAllowedToRunConcern(caller.kind)
            now = services.case_record.clock()
            rules = services.concern_rules(now.astimezone(REGION_TZ).date())
            r = run(services.sources, services.case_record, rules, now)
            services.catch_up(services.case_record.recorder.max_notification_id() or 0)
            return ConcernRunView(
                str(r.run_id),
                r.rules_version,
                r.rows,
                r.purged,
                r.on_list,
                len(r.listed),
                len(r.revised),
                len(r.taken_off),
            )

        return await asyncio.to_thread(go)

    @get(
        "/v1/concern/entries",
        operation_id="concernEntries",
        summary="The people of concern you may read, in your jurisdiction (JSON or CSV)",
        description="Police station, governance center and health center in their jurisdiction; the auditor "
        "everywhere; other kinds 403. Each entry: the patient or suspected case (by id), its place, the reasons "
        "(list, record type, date, weight), the score, the rules version that put it there. Recorded in the "
        "access log.",
    )
    async def entries(
        self,
        caller: NamedDependency[Caller],
        services: Port[ReconciliationPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
        format: Format = "json",
    ) -> Response[Any]:
        def check() -> None:
            if AgencyKind(caller.kind) not in READERS:
                raise NotAllowedToReadConcern(caller.kind)

        async def read() -> tuple[Response[Any], Revealed]:
            def load() -> list[Any]:
                units = None if caller.kind == AgencyKind.AUDITOR else services.units_within(caller.jurisdiction)
                return readable(on_the_list(services.case_record), caller.kind, units)

            found = await asyncio.to_thread(load)
            views = [entry_view(e) for e in found]
            revealed = Revealed.of((e.subject_id for e in found), ["concern"])
            if format == "csv":
                return Response(entries_csv(views).encode("utf-8"), media_type="text/csv; charset=utf-8"), revealed
            return Response(ConcernView(views)), revealed

        purpose = default_purpose(caller, purpose)
        return await recorded(services, caller, "GET /v1/concern/entries", purpose, staff_id, read, check=check)
