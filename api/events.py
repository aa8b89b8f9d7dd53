"""`POST /v1/events`: an agency's system records one fact (a CloudEvents envelope)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.bodies import OPT_OWN_CHECKS, read_json_body, wire_limits
from core.contract import ContractError, InboundEvent, decode_event
from core.intake import accept
from domain.errors import DomainError
from ops.bootstrap import Services

DOOR = "http"  # the door's label in the metrics (ops.metrics)


class EventRecorded(msgspec.Struct):
    """What recording the message did."""

    key: str
    outcome: str  # recorded | duplicate | no-change
    position: int | None
    processed: bool | None = None  # with ?wait=true: the rules and views have caught up


class IdempotencyKeyMismatch(DomainError):
    """The Idempotency-Key header must name the envelope it comes with."""

    code = "idempotency-key-mismatch"
    status = 422

    def __init__(self, header: str, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {header!r} does not match the envelope ({key!r} or its id); "
            "send the envelope's id, or leave the header out"
        )


class EventsController(Controller):
    """Inbound facts over HTTP: the same decoding, checks and idempotency as over NATS."""

    path = "/v1/events"
    tags = ["events"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @post(
        operation_id="recordEvent",
        summary="Record one fact",
        description=(
            "Body: a CloudEvents 1.0 envelope in structured JSON mode; its JSON Schema is at "
            "`GET /v1/contract/envelope.schema.json` (README lists the types). "
            "`source` must be the caller's agency id. The same `<source>:<id>` twice records once. "
            "With `?wait=true` the answer comes after the coordination rules and the work queues "
            "have processed the fact (read-your-writes). Content-Type `application/json` or "
            "`application/cloudevents+json` (else 415); a body that is too large, not UTF-8, nested "
            "too deep or that repeats a member is a 400 problem, checked before it is decoded."
        ),
        status_code=201,
        opt={OPT_OWN_CHECKS: True},  # counted per door: the checks are in the try below
    )
    async def record(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        services: NamedDependency[Services],
        wait: Annotated[bool, QueryParameter(name="wait")] = False,
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[EventRecorded]:
        # The raw bytes go through the one contract decoder shared with NATS and the import, so
        # every door gives the same errors (with the JSON path of the field to fix).
        limits = wire_limits(request)
        try:
            raw = await read_json_body(request)
            if idempotency_key is not None:
                event = decode_event(raw, limits)
                if idempotency_key not in (event.idempotency_key, str(event.id)):
                    raise IdempotencyKeyMismatch(idempotency_key, event.idempotency_key)
            recorded = await asyncio.to_thread(
                accept,
                services.case_record,
                services.registry,
                raw,
                caller.agency_id,
                "API key",
                earliest=services.settings.earliest_time,
                limits=limits,
            )
        except (ContractError, DomainError) as e:  # refused for good (a store failure is not counted)
            services.metrics.message_rejected(DOOR, e.code)
            raise
        services.metrics.message_accepted(DOOR, recorded.outcome)
        processed = None
        if wait and recorded.notification_id is not None:
            processed = await asyncio.to_thread(services.catch_up, recorded.notification_id)
        body = EventRecorded(
            key=recorded.key, outcome=recorded.outcome, position=recorded.notification_id, processed=processed
        )
        return Response(body, status_code=200 if recorded.outcome == "duplicate" else 201)


@get(
    "/v1/contract/envelope.schema.json",
    operation_id="envelopeSchema",
    tags=["events"],
    summary="JSON Schema of every envelope POST /v1/events and NATS intake accept",
    media_type="application/json",
)
async def envelope_schema() -> dict[str, Any]:
    return _SCHEMA


_SCHEMA: dict[str, Any] = msgspec.json.schema(InboundEvent)
