"""`GET /metrics`: Prometheus text exposition, without a key (scrapers usually have none).

What is exposed is described in ``ops.metrics``: counts by door, refusal code, route template,
follower and rule; never personal data, never an id of a patient, obligation or message.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from api.problems import Problem, problem_response
from ops.bootstrap import Services
from ops.metrics import registry_for
from ops.readiness import SingleFlight

#: How long a scrape waits for the store's numbers before it gives up (a 503).
RENDER_TIMEOUT = 10.0


class Exposition:
    """One app's registry, its store collector, and the thread that renders the text."""

    def __init__(self, services: Services) -> None:
        self.registry, self.store = registry_for(services)
        self.render = SingleFlight[bytes]("smd-metrics", self._generate)

    def _generate(self) -> bytes:
        return generate_latest(self.registry)

    def close(self) -> None:
        self.render.close()


@get(
    "/metrics",
    operation_id="metrics",
    tags=["health"],
    summary="Prometheus metrics (text format 0.0.4)",
    description=(
        "Messages accepted and refused by door and reason, request latency by route template, each "
        "follower's position, lag, parked and held events and stop, obligations by rule. No key."
    ),
    media_type=CONTENT_TYPE_PLAIN_0_0_4,
)
async def metrics(request: Request[Any, Any, Any], services: NamedDependency[Services]) -> Response[Any]:
    exposition: Exposition = request.app.state.metrics
    # the store's short check first: with the store unreachable, the store collector skips its
    # queries (a hung PostgreSQL would hang the scrape) and reports smd_store_up 0
    exposition.store.readiness = await services.readiness()
    try:
        body = await exposition.render(RENDER_TIMEOUT)
    except TimeoutError:
        problem: Response[Problem] = problem_response(
            503,
            "metrics-timeout",
            "Metrics not ready",
            f"the store's numbers took more than {RENDER_TIMEOUT:g} s; the next scrape waits for the same query",
            request,
        )
        return problem
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
