"""The emergency contact card over HTTP (docs/decisions/037).

``GET /v1/patients/{patient_id}/contact-card?format=html|pdf``: the printable card of a patient
at home (A6, Chinese text): the village's responsible person, the community police officer and
the mental-health staff member of the care team with their phones, and the emergency numbers.
For the kinds that read the patient's name and care team in full (the committee, which produces
it; the health center), within their reach. Each print is recorded in the access log (the
patient, the fields ``name``, ``residence``, ``care_team``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.ports import Port, ReconciliationPort
from api.reads import Purpose, Revealed, default_purpose, recorded
from core.contact_card import card_html, card_of
from core.patient_read import load_visible
from core.registry import REGION_TZ
from domain.errors import DomainError
from domain.read_filter import Access, access

StaffId = Annotated[str | None, HeaderParameter(name="X-Staff-Id", max_length=64)]
Format = Annotated[
    Literal["html", "pdf"],
    QueryParameter(name="format", description="`html` (default, printable) or `pdf` (one A6 page)."),
]
FIELDS = ("name", "residence", "care_team")


class NotAllowedToPrintCard(DomainError):
    code = "not-allowed-to-print-card"

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"a {kind} may not print a contact card: it shows the patient's name and care team, which the "
            "committee and the health center read"
        )


def may_print(kind: str) -> bool:
    """The kinds that read the name and the care team in full (DESIGN.md section 4)."""
    return all(access(kind, f) == Access.FULL for f in ("name", "care_team"))


class ContactCardController(Controller):
    tags = ["contact card"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/patients/{patient_id:uuid}/contact-card",
        operation_id="contactCard",
        summary="The emergency contact card of a patient at home (printable HTML or a one-page A6 PDF)",
        description="The committee (which produces it) and the health center, within their reach. Its edition "
        "changes with the care team. 404 outside your reach, as for an unknown id; 422 patient-not-at-home "
        "in hospital, in institutional care or deregistered. Each print is recorded in the access log.",
        media_type=MediaType.HTML,
    )
    async def card(
        self,
        patient_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[ReconciliationPort],
        purpose: Purpose = None,
        staff_id: StaffId = None,
        format: Format = "html",
    ) -> Response[Any]:
        def check() -> None:
            if not may_print(caller.kind):
                raise NotAllowedToPrintCard(caller.kind)

        def render() -> Response[Any]:
            now = services.case_record.clock()
            patient = load_visible(
                services.case_record, services.registry, caller.kind, caller.agency_id, patient_id, now
            )
            card = card_of(patient)
            unit = services.registry.state().org_unit(patient.residence, now.astimezone(REGION_TZ).date())
            page = card_html(card, getattr(unit, "name", None))
            if format == "pdf":
                return Response(services.render_pdf(page), media_type="application/pdf")
            return Response(page, media_type=MediaType.HTML)

        async def read() -> tuple[Response[Any], Revealed]:
            answer = await asyncio.to_thread(render)
            return answer, Revealed.of([patient_id], FIELDS)

        purpose = default_purpose(caller, purpose)
        return await recorded(
            services, caller, "GET /v1/patients/{patient_id}/contact-card", purpose, staff_id, read, check=check
        )
