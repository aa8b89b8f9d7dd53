"""The monthly and quarterly reports (docs/decisions/038): `GET /v1/reports/monthly`,
`/v1/reports/quarterly`, `/v1/reports/risk-analysis` (JSON, CSV with BOM, printable HTML with SVG
charts), each as recorded up to a log position; `POST /v1/reports/submissions`: the caller
submits its monthly or quarterly report — the document is computed at a position, its digest
becomes the reference of a `cn.smd.report.submitted.v1`, and R21's duty for the period is
completed by it as by any submitted report.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Annotated, Any, Literal
from uuid import uuid4

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException, ValidationException
from litestar.params import JSONBody, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.indicators import AtPosition, Format
from api.patient_files import _builtins
from api.ports import PeriodicReportsPort, Port
from api.report_documents import to_csv, to_html
from core.audit.checkpoints import holding
from core.intake import accept
from domain.lists import OrgUnitOutsideJurisdiction
from domain.rules.r21_reporting_duties import duty_obligation_id

Unit = Annotated[str, QueryParameter(name="unit", description="An org unit (its figures count everything under it).")]
Agency = Annotated[str, QueryParameter(name="agency", description="A health center.")]
Month = Annotated[
    str, QueryParameter(name="period", pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="A month, 2026-06.")
]
Quarter = Annotated[str, QueryParameter(name="period", pattern=r"^\d{4}-Q[1-4]$", description="A quarter, 2026-Q2.")]

READERS = ("governance_center", "auditor")


def _check_unit(services: Any, caller: Caller, unit: str) -> None:
    if caller.kind not in READERS:
        raise PermissionDeniedException(
            detail=f"for the governance center and the auditor; {caller.agency_id} is a {caller.kind}"
        )
    if caller.kind == "governance_center" and unit not in services.units_within(caller.jurisdiction):
        raise OrgUnitOutsideJurisdiction()


def _answer(report: dict[str, Any], output: str, name: str, checkpoint: dict[str, Any] | None = None) -> Response[Any]:
    if output == "csv":
        return Response(
            to_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{report["position"]}.csv"'},
        )
    if output == "html":
        return Response(to_html(report), media_type="text/html; charset=utf-8")
    # the checkpoint is beside the document, not in it: the digest of a submitted report stays
    # the same when a later checkpoint is signed
    return Response({**_builtins(report), "checkpoint": checkpoint}, media_type="application/json")


async def _checkpoint(services: Any, report: dict[str, Any]) -> dict[str, Any] | None:
    """The first signed checkpoint holding the report's position (None: none yet)."""
    return await asyncio.to_thread(holding, services.chain_store, report["position"])


def digest(report: dict[str, Any]) -> str:
    """The SHA-256 of the report's JSON (keys sorted): recomputed at the same position, the same."""
    text = json.dumps(_builtins(report), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class Submission(msgspec.Struct, kw_only=True):
    """What to submit: the duty (`monthly_progress`: the monthly report of the first unit of your
    jurisdiction; `quarterly_report`: a health center's quarterly report), the period, and the log
    position to compute it at (default: the head)."""

    duty: Literal["monthly_progress", "quarterly_report"]
    period: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$")]
    at_position: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Submitted(msgspec.Struct):
    """The report recorded: its id and position, the document's digest (its reference), and the
    R21 obligation it completes with that obligation's status after the rules ran."""

    report_id: str
    position: int | None
    document: str
    computed_at_position: int
    digest: str
    reference: str
    obligation_id: str
    obligation_status: str | None


class PeriodicReportsController(Controller):
    """The monthly and quarterly reports, and submitting them."""

    tags = ["reports"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/reports/monthly",
        operation_id="monthlyReport",
        summary="The monthly report (due the 25th): each agency's progress on the work plan's tasks, with indicators",
        description="Governance center (its area) and auditor. Each task is keyed to what evidences it in the system "
        "(indicators over the agency's jurisdiction, its obligations under the task's rules); a department shows its "
        "own task-progress entries, never a figure. As recorded up to `at_position` (default: the head).",
        media_type="application/json",
    )
    async def monthly(
        self,
        caller: NamedDependency[Caller],
        services: Port[PeriodicReportsPort],
        unit: Unit,
        period: Month,
        at_position: AtPosition = None,
        output: Format = "json",
    ) -> Response[Any]:
        _check_unit(services, caller, unit)
        report = await asyncio.to_thread(services.periodic_reports.document, "monthly", unit, period, at_position)
        return _answer(report, output, f"monthly-{unit}-{period}", await _checkpoint(services, report))

    @get(
        "/v1/reports/quarterly",
        operation_id="healthCenterQuarterlyReport",
        summary="A health center's quarterly report (3/28, 6/28, 9/28, 12/28): its figures against the last quarter",
        description="The health center itself, the governance center covering it, the auditor.",
        media_type="application/json",
    )
    async def quarterly(
        self,
        caller: NamedDependency[Caller],
        services: Port[PeriodicReportsPort],
        agency: Agency,
        period: Quarter,
        at_position: AtPosition = None,
        output: Format = "json",
    ) -> Response[Any]:
        if caller.agency_id != agency:
            if caller.kind not in READERS:
                raise PermissionDeniedException(detail="a health center reads its own quarterly report")
            found = services.registry.agency(agency)
            if caller.kind == "governance_center" and (
                found is None or not set(found.jurisdiction) <= services.units_within(caller.jurisdiction)
            ):
                raise OrgUnitOutsideJurisdiction()
        doc = "health_center_quarterly"
        report = await asyncio.to_thread(services.periodic_reports.document, doc, agency, period, at_position)
        return _answer(report, output, f"quarterly-{agency}-{period}", await _checkpoint(services, report))

    @get(
        "/v1/reports/risk-analysis",
        operation_id="riskAnalysisReport",
        summary="The quarterly joint meeting's risk analysis: high-risk, lost, incidents, overdue obligations by"
        " agency, against the previous quarter",
        description="Governance center (its area) and auditor.",
        media_type="application/json",
    )
    async def risk(
        self,
        caller: NamedDependency[Caller],
        services: Port[PeriodicReportsPort],
        unit: Unit,
        period: Quarter,
        at_position: AtPosition = None,
        output: Format = "json",
    ) -> Response[Any]:
        _check_unit(services, caller, unit)
        report = await asyncio.to_thread(services.periodic_reports.document, "risk_analysis", unit, period, at_position)
        return _answer(report, output, f"risk-analysis-{unit}-{period}", await _checkpoint(services, report))

    @post(
        "/v1/reports/submissions",
        operation_id="submitReport",
        summary="Submit your monthly or quarterly report: records it and completes R21's duty for the period",
        description="The document is computed at `at_position` (default: the head); its SHA-256 and position are the "
        "submitted report's reference (sealed), so anyone can recompute it. The answer comes after the rules ran.",
        status_code=201,
    )
    async def submit(
        self, caller: NamedDependency[Caller], services: Port[PeriodicReportsPort], data: JSONBody[Submission]
    ) -> Submitted:
        if data.duty == "monthly_progress":
            if len(data.period) != 7 or "Q" in data.period:
                raise ValidationException(detail="a monthly report's period is like 2026-06")
            document, scope = "monthly", caller.jurisdiction[0]
        else:
            if "Q" not in data.period:
                raise ValidationException(detail="a quarterly report's period is like 2026-Q2")
            document, scope = "health_center_quarterly", caller.agency_id

        def run() -> Submitted:
            report = services.periodic_reports.document(document, scope, data.period, data.at_position)
            sha = digest(report)
            reference = f"{document} {scope} {data.period} position {report['position']} sha256 {sha}"
            report_id = uuid4()
            raw = json.dumps(
                {
                    "specversion": "1.0",
                    "id": str(uuid4()),
                    "source": caller.agency_id,
                    "type": "cn.smd.report.submitted.v1",
                    "subject": str(report_id),
                    "time": services.case_record.clock().isoformat(),
                    "data": {"duty": data.duty, "period": data.period, "reference": reference},
                }
            ).encode()
            recorded = accept(
                services.case_record, services.registry, raw, caller.agency_id, "API key", key_id=caller.key_id
            )
            if recorded.notification_id is not None:
                services.catch_up(recorded.notification_id)
            oid = duty_obligation_id(caller.agency_id, data.duty, data.period)
            found = services.case_record.load_many([oid]).get(oid)
            return Submitted(
                report_id=str(report_id),
                position=recorded.notification_id,
                document=document,
                computed_at_position=report["position"],
                digest=sha,
                reference=reference,
                obligation_id=str(oid),
                obligation_status=getattr(found, "status", None),
            )

        return await asyncio.to_thread(run)
