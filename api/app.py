"""The Litestar application, built from the wired services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from api.auth import FailedAuthentications
from api.bodies import json_body_hook
from api.events import EventsController, envelope_schema
from api.health import HealthController
from api.me import MeController
from api.metrics import Exposition, metrics
from api.middleware import RequestLogMiddleware
from api.obligations import ObligationsController
from api.patients import PatientSearchController
from api.problems import exception_handlers
from api.status import StatusController
from api.work_queue import WorkQueueController
from ops.bootstrap import Services
from ops.workers import background


def create_app(services: Services, run_background: bool = True) -> Litestar:
    """An app serving the given services (the composition root builds them); it runs the
    followers of the global log in the background unless told not to."""

    async def provide_services() -> Services:
        return services

    exposition = Exposition(services)  # this app's own Prometheus registry (ops.metrics)
    limits = services.settings.wire_limits  # SMD_MAX_MESSAGE_BYTES, SMD_MAX_JSON_DEPTH

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            if not run_background:
                yield
                return
            async with background(services):
                yield
        finally:
            exposition.close()

    return Litestar(
        route_handlers=[
            HealthController,
            StatusController,
            metrics,
            MeController,
            EventsController,
            envelope_schema,
            WorkQueueController,
            PatientSearchController,
            ObligationsController,
        ],
        state=State(
            {
                "services": services,  # api.auth.agency_guard reads services
                "metrics": exposition,
                "wire_limits": limits,  # api.bodies
                "auth_failures": FailedAuthentications(  # api.auth
                    services.settings.auth_failures_per_address, services.settings.auth_failures_per_key
                ),
            }
        ),
        before_request=json_body_hook,  # media type and byte-level checks of every other JSON body
        request_max_body_size=limits.max_bytes,  # Litestar stops reading a body past it
        dependencies={"services": Provide(provide_services)},
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        middleware=[DefineMiddleware(RequestLogMiddleware, metrics=services.metrics)],
        openapi_config=OpenAPIConfig(
            title="Severe mental disorder coordination API",
            version="1",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        logging_config=None,  # ops.logging configured the root logger; keep it
        lifespan=[lifespan],
        debug=False,
    )
