"""Request logging: method, path, status, duration and a correlation id; never bodies.

The same middleware times each request for the metrics (``ops.metrics``), labelled by Litestar's
route template (``/v1/obligations/{obligation_id}/complete``), never the raw path with its ids.
"""

from __future__ import annotations

import time
import uuid
from typing import Protocol

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("api.request")


class RequestTimer(Protocol):
    """Records one request's duration (``ops.metrics.Metrics``)."""

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request, by Litestar's route template (never the raw path)."""
        ...


class RequestLogMiddleware:
    """Binds a correlation id for the request (X-Request-Id if sane), logs one line and, given
    ``metrics``, records the request's duration by route template, method and status class."""

    def __init__(self, app: ASGIApp, metrics: RequestTimer | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        correlation_id = (
            given
            if given and len(given) <= 64 and given.isascii() and given.replace("-", "").isalnum()
            else uuid.uuid4().hex
        )
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", correlation_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                seconds = time.perf_counter() - started
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope.get("path"),  # path only: query strings may carry identifiers
                    status=status,
                    ms=round(seconds * 1000, 1),
                )
                if self.metrics is not None:
                    # routing ran before this middleware: the template of the matched route
                    route = scope.get("path_template") or "unmatched"
                    self.metrics.request(route, str(scope.get("method", "")), status, seconds)
