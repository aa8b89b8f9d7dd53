"""`POST /v1/events`: an agency's system records one fact (a CloudEvents envelope)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.bodies import OPT_OWN_CHECKS, read_json_body, wire_limits
from api.ports import Port, RecordingPort
from api.problems import TYPE_BASE, Problem, problem_response, status_for
from core.contract import ContractError, InboundEvent, decode_event
from core.intake import GroupCommit, Incoming
from core.waiting import WAITING, Arrival, message_status
from domain.errors import DomainError

DOOR = "http"  # the door's label in the metrics (ops.metrics)
STATUS_PATH = "/v1/events/{key}"  # a message's status: recorded, waiting or refused


class EventRecorded(msgspec.Struct):
    """What recording the message did."""

    key: str
    outcome: str  # recorded | duplicate | no-change | waiting
    position: int | None
    processed: bool | None = None  # with ?wait=true: the rules and views have caught up


class MessageState(msgspec.Struct, omit_defaults=True):
    """Where one of the caller's messages stands.

    ``recorded`` (``outcome``: recorded, no-change), ``waiting`` for the record it refers to
    (``waiting_for``: patient, suspected-case, incident or move; refused at ``waiting_until``
    if it has not come), or ``refused`` after waiting, with the ``problem`` (RFC 9457) saying why.
    """

    key: str
    status: Literal["recorded", "waiting", "refused"]
    type: str
    outcome: str | None = None
    recorded_at: datetime | None = None
    waiting_for: str | None = None
    waiting_since: datetime | None = None
    waiting_until: datetime | None = None
    refused_at: datetime | None = None
    problem: Problem | None = None


class NotYourMessage(DomainError):
    """Only the sending agency may read a message's status."""

    code = "not-your-message"

    def __init__(self, agency_id: str) -> None:
        super().__init__(
            f"you may read the status of your own messages only: ask for {agency_id}:<envelope id> "
            "(the key your system sent, or the Location of a 202 answer)"
        )


class MessageNotFound(DomainError):
    """No message with this key was recorded, waits, or was refused after waiting."""

    code = "message-not-found"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"no message {key} was recorded, is waiting or was refused after waiting; a message refused "
            "at the door was answered at once and is not kept: check the id, or send the message"
        )


class IdempotencyKeyMismatch(DomainError):
    """The Idempotency-Key header must name the envelope it comes with."""

    code = "idempotency-key-mismatch"

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
            "too deep or that repeats a member is a 400 problem, checked before it is decoded. A fact "
            "whose patient, suspected case, incident or move is not recorded yet is accepted and waits "
            "for it (202, outcome `waiting`, `Location` = its status URL `GET /v1/events/{source}:{id}`): "
            "it is recorded as soon as that arrives, or refused (`reference-not-found`) when it has not "
            "come within `SMD_WAITING_WINDOW_SECONDS`."
        ),
        status_code=201,
        opt={OPT_OWN_CHECKS: True},  # counted per door: the checks are in the try below
    )
    async def record(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        services: Port[RecordingPort],
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
            # recorded together with the other requests in flight, answered after its commit
            group_commit: GroupCommit = request.app.state.group_commit
            incoming = Incoming(raw, caller.agency_id, "API key", Arrival(door=DOOR), key_id=caller.key_id)
            recorded = await asyncio.wrap_future(group_commit.submit(incoming))
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
        if recorded.outcome == WAITING:
            return Response(body, status_code=202, headers={"Location": STATUS_PATH.format(key=recorded.key)})
        return Response(body, status_code=200 if recorded.outcome == "duplicate" else 201)

    @get(
        "/{key:str}",
        operation_id="messageStatus",
        summary="Where one of your messages stands: recorded, waiting, or refused after waiting",
        description=(
            "`key` is `<source>:<id>` (the envelope's), the `Location` of a 202 answer. Only the "
            "sending agency may ask (403 otherwise). `recorded` with its outcome; `waiting` with "
            "what it waits for and until when; `refused` with the problem saying why "
            "(`reference-not-found` when the window ended, or the refusal on release). 404 when "
            "nothing is known of it (refusals at the door are answered at once and not kept)."
        ),
    )
    async def message_status(
        self, key: FromPath[str], caller: NamedDependency[Caller], services: Port[RecordingPort]
    ) -> Response[MessageState]:
        source, colon, _ = key.partition(":")
        if not colon or source != caller.agency_id:
            refusal = NotYourMessage(caller.agency_id)  # no `instance`: it would echo another agency's id
            status = status_for(refusal.code)
            return problem_response(status, refusal.code, NotYourMessage.__doc__ or "", refusal.detail)  # type: ignore[return-value]
        found = await asyncio.to_thread(message_status, services.case_record, services.waiting, key)
        if found is None or found.agency_id != caller.agency_id:
            raise MessageNotFound(key)
        problem = None
        if found.reason is not None:
            problem = Problem(
                type=TYPE_BASE + found.reason,
                title=found.title or found.reason,
                status=found.problem_status or status_for(found.reason),  # rows refused before codes only
                detail=found.detail or "",
            )
        state = MessageState(
            key=found.key,
            status=found.status,  # type: ignore[arg-type]
            type=found.event_type,
            outcome=found.outcome,
            recorded_at=found.recorded_at,
            waiting_for=found.waiting_for,
            waiting_since=found.waiting_since,
            waiting_until=found.waiting_until,
            refused_at=found.refused_at,
            problem=problem,
        )
        return Response(state)


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
