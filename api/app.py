"""The Litestar application, built from the wired services."""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin

from api.health import HealthController
from api.middleware import RequestLogMiddleware
from api.problems import exception_handlers
from ops.bootstrap import Services


def create_app(services: Services) -> Litestar:
    """An app serving the given services (the composition root builds them)."""

    async def provide_services() -> Services:
        return services

    return Litestar(
        route_handlers=[HealthController],
        dependencies={"services": Provide(provide_services)},
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        middleware=[RequestLogMiddleware],
        openapi_config=OpenAPIConfig(
            title="Severe mental disorder coordination API",
            version="1",
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
        ),
        logging_config=None,  # ops.logging configured the root logger; keep it
        debug=False,
    )
