"""Liveness and readiness."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency

from ops.bootstrap import Services


class Health(msgspec.Struct):
    """The process is alive, or each dependency's state."""

    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


class HealthController(Controller):
    """`/healthz` answers while the process runs; `/readyz` checks the store and NATS."""

    tags = ["health"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @get("/healthz", operation_id="healthz", summary="Process alive")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get("/readyz", operation_id="readyz", summary="Store (and NATS, when configured) reachable")
    async def readyz(self, services: NamedDependency[Services]) -> Response[Health]:
        checks = await services.readiness()
        ok = all(v == "ok" for v in checks.values())
        return Response(Health(status="ok" if ok else "unavailable", checks=checks), status_code=200 if ok else 503)
