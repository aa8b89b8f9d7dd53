"""`GET /metrics`: Prometheus text exposition, without a key (scrapers usually have none).

What is exposed is described in ``ops.metrics`` (which builds the registry): counts by door,
refusal code, route template, follower and rule; never personal data, never an id of a patient, obligation or message.
"""

from __future__ import annotations

from typing import Any, Protocol

from litestar import Request, Response, get
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from api.ports import Port, ReadinessPort
from api.problems import Problem, problem_response
from core.readiness import Readiness, SingleFlight

#: How long a scrape waits for the store's numbers before it gives up (a 503).
RENDER_TIMEOUT = 10.0


class StoreGauges(Protocol):
    """The collector of the store's numbers: told the readiness result before each scrape, it
    skips its queries when the store did not answer (``ops.metrics.StoreCollector``)."""

    readiness: Readiness | None


class Exposition:
    """One app's registry, its store collector, and the thread that renders the text."""

    def __init__(self, registry: CollectorRegistry, store: StoreGauges) -> None:
        self.registry, self.store = registry, store
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
async def metrics(request: Request[Any, Any, Any], services: Port[ReadinessPort]) -> Response[Any]:
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
