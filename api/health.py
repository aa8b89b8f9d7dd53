"""Liveness and readiness.

``/readyz`` is for a load balancer: 503 only when this instance cannot reach its store (the
case record) within a short time; NATS not connected, parked or held events, a stopped follower
or a follower lagging more than ``SMD_LAG_DEGRADED_SECONDS`` answer 200 with ``"degraded"`` and
name the check in ``checks`` (core.readiness). No personal data, no patient ids.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Controller, Response, get
from litestar.openapi import ResponseSpec

from api.ports import Port, ReadinessPort
from core.readiness import READY_BUDGET, UNAVAILABLE


class Health(msgspec.Struct):
    """The process is alive, or the instance's state and each check ("ok" or what is wrong)."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class HealthController(Controller):
    """`/healthz` answers while the process runs; `/readyz` checks the store, NATS and followers."""

    tags = ["health"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @get("/healthz", operation_id="healthz", summary="Process alive")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get(
        "/readyz",
        operation_id="readyz",
        summary="Ready: 503 only when the store is unreachable; NATS, parked events and lag are degraded",
        description=(
            "200 `ok`; 200 `degraded` when NATS (if configured) is not connected, a follower has "
            "parked or held events, is stopped, or lags more than SMD_LAG_DEGRADED_SECONDS; "
            "503 `unavailable` when the store gives no answer within 0.6 s; it answers within 1 s. "
            "`checks` names each."
        ),
        responses={503: ResponseSpec(Health, generate_examples=False, description="The store is unreachable")},
    )
    async def readyz(self, services: Port[ReadinessPort]) -> Response[Health]:
        ready = await services.readiness(budget=READY_BUDGET)  # answers within a second
        return Response(
            Health(status=ready.status, checks=ready.checks),  # type: ignore[arg-type]
            status_code=503 if ready.status == UNAVAILABLE else 200,
        )
