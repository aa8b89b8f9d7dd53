"""Source lists and the reconciliation (三网比对) over HTTP (docs/decisions/035).

- ``POST /v1/sources/{kind}``: an agency of the list kind's uploader kind sends a CSV file
  (``Content-Type: text/csv``); its rows are stored sealed until the retention ends. 201 with
  the upload id, the row count and the expiry; never a row back.
- ``POST /v1/reconciliation/runs``: the governance center or the health center runs the
  reconciliation over the live rows; 201 with how many findings were planned and created.
- ``GET /v1/reconciliation/findings``: the findings the caller's kind may read in its
  jurisdiction (DESIGN.md section 4: the police never see pharmacy or reimbursement findings);
  the matched rows' identity only for the health center and the auditor. Recorded in the
  access log (the patients, the field names).
- ``GET /v1/reconciliation/report``: counts per category and unit of those findings, as JSON,
  CSV (UTF-8 with a BOM) or a printable HTML page (``format=json|csv|html``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ClientException
from litestar.params import FromPath, HeaderParameter, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.bodies import OPT_OWN_CHECKS
from api.ports import Port, ReconciliationPort
from api.reads import Purpose, Revealed, default_purpose, recorded
from core.reconciliation import all_findings, finding_view, load_list, readable, report, report_csv, report_html, run
from domain.errors import DomainError
from domain.registry import AgencyKind
from domain.sources import list_kind

StaffId = Annotated[str | None, HeaderParameter(name="X-Staff-Id", max_length=64)]
Format = Annotated[
    Literal["json", "csv", "html"],
    QueryParameter(name="format", description="`json` (default), `csv` (UTF-8 with a BOM) or `html` (printable)."),
]

#: Who may start a run: the agencies that act on its leads and oversee the rest.
RUNNERS = frozenset({AgencyKind.GOVERNANCE_CENTER, AgencyKind.HEALTH_CENTER})


class NotAllowedToRun(DomainError):
    """Only the governance center and the health center run the reconciliation."""

    code = "not-allowed-to-run"

    def __init__(self, kind: str) -> None:
        super().__init__(f"a {kind} may not run the reconciliation; the governance center or the health center does")


class UploadView(msgspec.Struct):
    """What an upload stored."""

    upload_id: str
    kind: str
    rows: int
    expires_at: str


class RunView(msgspec.Struct):
    """What a run found: rows read, rows purged, findings planned, findings newly recorded."""

    run_id: str
    rows: int
    purged: int
    planned: int
    created: int


class FindingsView(msgspec.Struct):
    """The findings the caller may read."""

    items: list[dict[str, Any]]


def _scope(services: Any, caller: Caller) -> set[str] | None:
    return None if caller.kind == AgencyKind.AUDITOR else services.units_within(caller.jurisdiction)


class ReconciliationController(Controller):
    """Source lists in, findings and their report out."""

    tags = ["reconciliation"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @post(
        "/v1/sources/{kind:str}",
        operation_id="uploadSourceList",
        summary="Upload a source list (CSV) for the reconciliation",
        description="Only the list kind's uploader kind (police: police-key-persons; health center: "
        "national-system, pharmacy-purchases, special-outpatient, reimbursements; governance center: "
        "grid-platform). The whole file is refused on its first bad line (422 invalid-source-file, naming "
        "the line and column, never a value). Rows are kept sealed until SMD_SOURCE_RETENTION_DAYS ends.",
        status_code=201,
        opt={OPT_OWN_CHECKS: True},  # a CSV body, not JSON
    )
    async def upload(
        self,
        kind: FromPath[str],
        caller: NamedDependency[Caller],
        services: Port[ReconciliationPort],
        request: Request[Any, Any, Any],
    ) -> UploadView:
        data = await request.body()  # the CSV file as sent (Content-Type: text/csv)

        def load() -> UploadView:
            wanted = list_kind(kind)
            now = services.case_record.clock()
            retention = timedelta(days=services.settings.source_retention_days)
            try:
                text = data.decode("utf-8-sig", errors="strict")
            except UnicodeDecodeError:
                raise ClientException(detail="the list is not UTF-8: save it as UTF-8 (a BOM is fine)") from None
            up = load_list(
                services.sources,
                services.case_record,
                services.registry,
                wanted,
                text,
                caller.agency_id,
                now,
                retention,
            )
            return UploadView(str(up.upload_id), up.kind.value, up.rows, up.expires_at.isoformat())

        return await asyncio.to_thread(load)

    @post(
        "/v1/reconciliation/runs",
        operation_id="runReconciliation",
        summary="Run the reconciliation over the live source rows",
        description="The governance center or the health center. Each new finding is recorded once "
        "(a re-run creates nothing twice) and opens its obligation.",
        status_code=201,
    )
    async def start_run(self, caller: NamedDependency[Caller], services: Port[ReconciliationPort]) -> RunView:
        def go() -> RunView:
            if caller.kind not in RUNNERS:
                raise NotAllowedToRun(caller.kind)
            result = run(services.sources, services.case_record, services.registry, services.case_record.clock())
            services.catch_up(services.case_record.recorder.max_notification_id() or 0)
            return RunView(str(result.run_id), result.rows, result.purged, len(result.planned), len(result.created))

        return await asyncio.to_thread(go)

    @get(
        "/v1/reconciliation/findings",
        operation_id="reconciliationFindings",
        summary="The reconciliation's findings you may read, in your jurisdiction",
        description="Police never see pharmacy, special-outpatient or reimbursement findings, nor unconfirmed "
        "identities; a committee sees the whereabouts checks. `details` (the matched rows' identity as the "
        "sources gave it) only for the health center and the auditor. Recorded in the access log.",
    )
    async def findings(
        self,
        caller: NamedDependency[Caller],
        services: Port[ReconciliationPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> FindingsView:
        show = caller.kind in (AgencyKind.HEALTH_CENTER, AgencyKind.AUDITOR)

        async def read() -> tuple[FindingsView, Revealed]:
            def load() -> list[Any]:
                return readable(all_findings(services.case_record), caller.kind, _scope(services, caller))

            found = await asyncio.to_thread(load)
            items = [finding_view(f, show) for f in found]
            fields = ["finding", *(["details"] if show else [])]
            return FindingsView(items), Revealed.of((f.patient_id for f in found if f.patient_id), fields)

        purpose = default_purpose(caller, purpose)
        return await recorded(services, caller, "GET /v1/reconciliation/findings", purpose, staff_id, read)

    @get(
        "/v1/reconciliation/report",
        operation_id="reconciliationReport",
        summary="Counts of your readable findings per category and org unit (JSON, CSV or printable HTML)",
        description="No patient and no personal value: counts only.",
        media_type=MediaType.JSON,
    )
    async def counts(
        self, caller: NamedDependency[Caller], services: Port[ReconciliationPort], format: Format = "json"
    ) -> Response[Any]:
        def count() -> dict[str, Any]:
            return report(readable(all_findings(services.case_record), caller.kind, _scope(services, caller)))

        counts = await asyncio.to_thread(count)
        if format == "csv":
            return Response(report_csv(counts).encode("utf-8"), media_type="text/csv; charset=utf-8")
        if format == "html":
            return Response(report_html(counts, services.case_record.clock()), media_type=MediaType.HTML)
        return Response(counts, media_type=MediaType.JSON)
