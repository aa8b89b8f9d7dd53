"""`GET /v1/indicators`: the indicators of an org unit (and everything under it) or an agency,
for a period, as recorded up to a log position (default: the head), for the governance center
(its area) and the auditor (everywhere). JSON, CSV (UTF-8 with a BOM) or a printable HTML page
with SVG charts (``format``). ``late_facts=true``: also the figures with the facts recorded after
the position, labelled, and where they differ (docs/decisions/036).

The figures hold counts, never a patient's personal values; the late facts name patient ids and
fact kinds only, so the read is not a read of a patient's file.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException, ValidationException
from litestar.params import QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.indicator_documents import to_csv, to_html
from api.patient_files import _builtins
from api.ports import IndicatorsPort, Port
from core.audit.checkpoints import holding
from domain.indicators import parse_period
from domain.lists import OrgUnitOutsideJurisdiction

Unit = Annotated[
    str | None, QueryParameter(name="unit", description="An org unit: its figures count it and everything under it.")
]
AgencyScope = Annotated[
    str | None, QueryParameter(name="agency", description="An agency instead of a unit: its jurisdiction's figures.")
]
PeriodLabel = Annotated[
    str, QueryParameter(name="period", description="A month `2026-06`, a quarter `2026-Q2` or a year `2026`.")
]
AtPosition = Annotated[
    int | None,
    QueryParameter(name="at_position", ge=0, description="The log position to compute at (default: the head)."),
]
LateFacts = Annotated[
    bool,
    QueryParameter(
        name="late_facts", description="Also the figures with the facts recorded after `at_position`, labelled."
    ),
]
Format = Annotated[
    Literal["json", "csv", "html"],
    QueryParameter(name="format", description="`json` (default), `csv` (UTF-8 with BOM) or `html` (printable)."),
]

READERS = ("governance_center", "auditor")


def check_scope(services: Any, caller: Caller, unit: str | None, agency: str | None) -> tuple[str, str]:
    """The scope asked for, refused outside a governance center's area."""
    if caller.kind not in READERS:
        raise PermissionDeniedException(
            detail=f"indicators are for the governance center and the auditor; {caller.agency_id} is a {caller.kind}"
        )
    if (unit is None) == (agency is None):
        raise ValidationException(detail="give exactly one of unit= or agency=")
    if caller.kind == "auditor":
        return ("org_unit", unit) if unit is not None else ("agency", agency or "")
    area = services.units_within(caller.jurisdiction)
    if unit is not None:
        if unit not in area:
            raise OrgUnitOutsideJurisdiction()
        return "org_unit", unit
    found = services.registry.agency(agency)
    if found is not None and not set(found.jurisdiction) <= area:
        raise OrgUnitOutsideJurisdiction()
    return "agency", agency or ""


class IndicatorsController(Controller):
    """Indicators by unit, agency and period, recomputable at any log position."""

    tags = ["reports"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/indicators",
        operation_id="indicators",
        summary="Indicators (在册, 报告患病率, 在管, 管理率, 规范管理率, 面访率, 服药率, 规律服药率, 稳定率, 失访率, "
        "obligations on time) of a unit or agency for a period, at a log position",
        description="Governance center (its area) and auditor. Every figure carries the log position and the "
        "definition version; the same query at the same position gives the same figures whatever was recorded "
        "since. `late_facts=true` adds the figures at the head, labelled, and the differences. 400 "
        "`period-invalid`, `position-beyond-head`; 403 for other kinds and `org-unit-outside-jurisdiction`; "
        "404 `unknown-scope`.",
        media_type="application/json",
    )
    async def indicators(
        self,
        caller: NamedDependency[Caller],
        services: Port[IndicatorsPort],
        period: PeriodLabel,
        unit: Unit = None,
        agency: AgencyScope = None,
        at_position: AtPosition = None,
        late_facts: LateFacts = False,
        output: Format = "json",
    ) -> Response[Any]:
        kind, ident = check_scope(services, caller, unit, agency)
        parse_period(period)  # 400 before anything is computed

        def read() -> dict[str, Any]:
            return services.indicators.report(services.registry, kind, ident, period, at_position, late_facts)

        report = await asyncio.to_thread(read)
        if output == "csv":
            name = f"indicators-{ident}-{period}-{report['position']}.csv"
            return Response(
                to_csv(report),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        if output == "html":
            return Response(to_html(report), media_type="text/html; charset=utf-8")
        # the first signed checkpoint holding the position: what the figures can be checked against
        checkpoint = await asyncio.to_thread(holding, services.chain_store, report["position"])
        return Response({**_builtins(report), "checkpoint": checkpoint}, media_type="application/json")
