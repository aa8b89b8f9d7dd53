"""Acting on an obligation or notice of one's own work queue.

The answer names the obligation (about one patient) and its status: each action is recorded in
the access log before it is answered, like every read that reveals a patient (``api.reads``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, JSONBody

from api.auth import Caller, agency_guard, provide_caller
from api.ports import AccessLogPort, Port
from api.reads import Purpose, Revealed, default_purpose, recorded
from core.obligations import act
from domain.obligation import Obligation

StaffId = Annotated[
    str | None,
    HeaderParameter(
        name="X-Staff-Id", max_length=64, description="The staff id your system asserts (not verified by us)."
    ),
]


class CompletionNote(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What was done (optional; no personal data please)."""

    note: str | None = None


class ObligationState(msgspec.Struct):
    """The obligation after the action; ``changed`` is false when it was already so."""

    obligation_id: UUID
    status: str
    overdue: bool
    changed: bool


def _answer(obligation: Obligation, changed: bool) -> Response[ObligationState]:
    body = ObligationState(
        obligation_id=obligation.id, status=obligation.status, overdue=obligation.overdue, changed=changed
    )
    return Response(body, status_code=200)


async def _acted(
    services: AccessLogPort,
    caller: Caller,
    action: str,
    obligation_id: UUID,
    purpose: str | None,
    staff_id: str | None,
    note: str | None = None,
) -> Response[ObligationState]:
    """Act, record the answer in the access log (the obligation's patient; refusals reveal none)."""

    async def run() -> tuple[Response[ObligationState], Revealed]:
        obligation, changed = await asyncio.to_thread(
            act, services.case_record, obligation_id, caller.agency_id, staff_id, action, note
        )
        return _answer(obligation, changed), Revealed.of([obligation.patient_id], ["obligations"])

    endpoint = f"POST /v1/obligations/{{obligation_id}}/{action}"
    return await recorded(services, caller, endpoint, default_purpose(caller, purpose), staff_id, run)


class ObligationsController(Controller):
    """Acknowledge or complete an obligation; mark a notice read (the owning agency only)."""

    path = "/v1/obligations"
    tags = ["work queue"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @post(
        "/{obligation_id:uuid}/acknowledge",
        operation_id="acknowledgeObligation",
        status_code=200,
        summary="Take an obligation on (it stays on the record when it was late)",
    )
    async def acknowledge(
        self,
        obligation_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[AccessLogPort],
        staff_id: StaffId = None,
        purpose: Purpose = None,
    ) -> Response[ObligationState]:
        return await _acted(services, caller, "acknowledge", obligation_id, purpose, staff_id)

    @post(
        "/{obligation_id:uuid}/complete",
        operation_id="completeObligation",
        status_code=200,
        summary="Declare an obligation done (most complete themselves when the fulfilling fact arrives)",
    )
    async def complete(
        self,
        obligation_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[AccessLogPort],
        data: JSONBody[CompletionNote | None] = None,
        staff_id: StaffId = None,
        purpose: Purpose = None,
    ) -> Response[ObligationState]:
        note = data.note if data else None
        return await _acted(services, caller, "complete", obligation_id, purpose, staff_id, note)

    @post(
        "/{obligation_id:uuid}/read",
        operation_id="readNotice",
        status_code=200,
        summary="Mark a notice read (a read receipt)",
    )
    async def read(
        self,
        obligation_id: FromPath[UUID],
        caller: NamedDependency[Caller],
        services: Port[AccessLogPort],
        staff_id: StaffId = None,
        purpose: Purpose = None,
    ) -> Response[ObligationState]:
        return await _acted(services, caller, "read", obligation_id, purpose, staff_id)
