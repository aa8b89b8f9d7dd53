"""Request logging: method, path, status, duration and a correlation id; never bodies."""

from __future__ import annotations

import time
import uuid

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ops.logging import get_logger

log = get_logger("api.request")


class RequestLogMiddleware:
    """Binds a correlation id for the request (X-Request-Id if sane) and logs one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=scope.get("path"),  # path only: query strings may carry identifiers
                    status=status,
                    ms=round((time.perf_counter() - started) * 1000, 1),
                )
