"""`POST /v1/events/batch`: many envelopes in one request, each checked and answered on its own.

For agencies that deliver in batches (police stations on isolated networks, weekly village syncs)
and for any system that has many facts at once. The envelopes are live facts, exactly as if each
had been posted to ``POST /v1/events``: the same checks per envelope, the same idempotency, and
the rules treat them as they arrive (unlike ``smd import``, a backfill that opens nothing for the
past). They are decided in order in one unit of work and stored in one transaction
(``core.intake.accept_batch``); the answer has one result per envelope, in order.

The body is NDJSON (``application/x-ndjson``: one envelope per line; blank lines are skipped) or
a JSON array of envelopes (``application/json``); the answer uses the same format.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import psycopg
import structlog
from eventsourcing.persistence import InterfaceError, OperationalError
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import QueryParameter

from api.auth import Caller, agency_guard, provide_caller
from api.bodies import OPT_OWN_CHECKS, UnsupportedMediaType, is_json_media_type, wire_limits
from api.ports import Port, RecordingPort
from api.problems import TYPE_BASE, Problem, status_for
from core.case_record import ConcurrentWriteConflict, Recorded
from core.contract import ContractError, InvalidUtf8, WireLimits, check_bytes, envelope_key
from core.intake import Incoming, Result, accept_batch
from core.waiting import Arrival
from domain.errors import DomainError

DOOR = "http"  # the door's label in the metrics (ops.metrics)
NDJSON = "application/x-ndjson"
NDJSON_TYPES = frozenset({NDJSON, "application/ndjson", "application/jsonl"})
#: Failures of the store for one envelope: it may well be stored when sent again.
TRANSIENT = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
)
log = structlog.get_logger(__name__)


class BatchResult(msgspec.Struct, omit_defaults=True):
    """What became of one envelope of a batch (``index``: its place in the batch, from 0).

    ``recorded`` / ``no-change`` / ``duplicate`` / ``waiting`` (its patient, suspected case,
    incident or move is not recorded yet: ``GET /v1/events/{key}`` follows it) with ``key`` and
    the log ``position``; ``refused`` with the RFC 9457 ``problem`` saying what to fix (nothing of
    it was stored; the other envelopes are not affected); ``failed`` when the service could not
    store it just now (send it again, with the same id)."""

    index: int
    outcome: Literal["recorded", "no-change", "duplicate", "waiting", "refused", "failed"]
    key: str | None = None
    position: int | None = None
    problem: Problem | None = None


class BatchTooLarge(DomainError):
    """The batch carries more envelopes (or bytes) than the service takes in one request."""

    code = "batch-too-large"

    def __init__(self, what: str, limit: str) -> None:
        super().__init__(f"the batch has {what}; this service takes at most {limit} (SMD_BATCH_LIMIT); split it")


class NotABatch(ContractError):
    """The body is neither a JSON array of envelopes nor NDJSON."""

    code = "invalid-batch"


@dataclass
class _BatchBody(Operation):
    """OpenAPI: the body is read by the handler itself (the byte checks come first), so its two
    formats are documented here."""

    def __post_init__(self) -> None:
        envelope = Schema(
            type=OpenAPIType.OBJECT,
            description="a CloudEvents 1.0 envelope: its JSON Schema is at GET /v1/contract/envelope.schema.json",
        )
        self.request_body = RequestBody(
            required=True,
            description="the envelopes, in order: a JSON array, or NDJSON (one envelope per line)",
            content={
                "application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.ARRAY, items=envelope)),
                NDJSON: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, description="one envelope per line")),
            },
        )


_raw_array = msgspec.json.Decoder(list[msgspec.Raw])
_encoder = msgspec.json.Encoder()


class BatchController(Controller):
    """Many inbound facts in one request."""

    path = "/v1/events/batch"
    tags = ["events"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @post(
        operation_id="recordEventBatch",
        summary="Record many facts, each checked and answered on its own",
        description=(
            "Body: a JSON array of envelopes (`application/json`) or NDJSON (`application/x-ndjson`, "
            "one envelope per line), at most `SMD_BATCH_LIMIT` (default 1,000). Each envelope goes "
            "through every check of `POST /v1/events` and is recorded exactly once (`<source>:<id>`); "
            "the facts are live: the rules treat them as they arrive. The answer (200, in the body's "
            "format) has one result per envelope, in order: `recorded`, `no-change`, `duplicate`, "
            "`waiting` (with its status URL key), `refused` with the RFC 9457 problem, or `failed` "
            "(send it again). A refused envelope does not stop the others. `?wait=true`: answer after "
            "the rules and the work queues have processed the batch."
        ),
        status_code=200,
        opt={OPT_OWN_CHECKS: True},
        request_max_body_size=None,  # read against the batch's own limit below
        operation_class=_BatchBody,
    )
    async def record_batch(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        services: Port[RecordingPort],
        wait: Annotated[bool, QueryParameter(name="wait")] = False,
    ) -> Response[list[BatchResult]]:
        limits = wire_limits(request)
        batch_limit = services.settings.batch_limit
        content_type = request.headers.get("content-type")
        ndjson = content_type is not None and content_type.split(";")[0].strip().lower() in NDJSON_TYPES
        if not ndjson and (content_type is None or not is_json_media_type(content_type)):
            raise UnsupportedMediaType(content_type)
        raw = await _read_capped(request, batch_limit * (limits.max_bytes + 2) + 2, batch_limit)
        envelopes = split_ndjson(raw) if ndjson else split_array(raw, limits)
        if len(envelopes) > batch_limit:
            raise BatchTooLarge(f"{len(envelopes)} envelopes", f"{batch_limit} envelopes")
        incoming = [
            Incoming(e, caller.agency_id, "API key", Arrival(door=DOOR), key_id=caller.key_id) for e in envelopes
        ]
        results = await asyncio.to_thread(
            accept_batch,
            services.case_record,
            services.registry,
            incoming,
            earliest=services.settings.earliest_time,
            limits=limits,
            waiting=services.waiting,
        )
        answers = [
            _answer(i, raw_envelope, result, limits)
            for i, (raw_envelope, result) in enumerate(zip(envelopes, results, strict=True))
        ]
        for answer in answers:
            if answer.outcome == "refused" and answer.problem is not None:
                services.metrics.message_rejected(DOOR, answer.problem.type.removeprefix(TYPE_BASE))
            elif answer.outcome != "failed":
                services.metrics.message_accepted(DOOR, answer.outcome)
        positions = [a.position for a in answers if a.position is not None]
        if wait and positions:
            await asyncio.to_thread(services.catch_up, max(positions))
        if ndjson:
            lines = b"".join(_encoder.encode(a) + b"\n" for a in answers)
            return Response(lines, media_type=NDJSON)  # type: ignore[arg-type]
        return Response(answers)


def split_ndjson(raw: bytes) -> list[bytes]:
    """One envelope per line (``\\n`` or ``\\r\\n``); blank lines are skipped."""
    return [line for line in (part.strip() for part in raw.split(b"\n")) if line]


def split_array(raw: bytes, limits: WireLimits) -> list[bytes]:
    """The elements of a JSON array, as bytes (each is checked and decoded as an envelope later).

    The whole body passes the byte checks first (UTF-8, depth: the array adds one level), so the
    splitting decoder never sees what could crash it."""
    try:
        check_bytes(raw, WireLimits(max_bytes=max(len(raw), limits.max_bytes), max_depth=limits.max_depth + 1))
    except InvalidUtf8:
        raise
    except ContractError as e:
        raise NotABatch(f"the batch body failed its byte checks: {e}") from None
    try:
        return [bytes(element) for element in _raw_array.decode(raw)]
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise NotABatch(
            f"a JSON body must be an array of envelopes ({e}); or send NDJSON with 'Content-Type: application/x-ndjson'"
        ) from None


async def _read_capped(request: Request[Any, Any, Any], cap: int, batch_limit: int) -> bytes:
    announced = request.content_length
    if announced is not None and announced > cap:
        raise BatchTooLarge(f"{announced} bytes", f"{batch_limit} envelopes of SMD_MAX_MESSAGE_BYTES each")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise BatchTooLarge("more bytes than that", f"{batch_limit} envelopes of SMD_MAX_MESSAGE_BYTES each")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(index: int, raw: bytes, result: Result, limits: WireLimits) -> BatchResult:
    match result:
        case Recorded():
            return BatchResult(
                index=index,
                outcome=result.outcome,  # type: ignore[arg-type]
                key=result.key,
                position=result.notification_id,
            )
        case ConcurrentWriteConflict():
            problem = Problem(TYPE_BASE + result.code, "Concurrent writes", status_for(result.code), result.detail)
            return BatchResult(index=index, outcome="failed", key=envelope_key(raw, limits), problem=problem)
        case DomainError():
            title = (type(result).__doc__ or result.code).strip().splitlines()[0]
            problem = Problem(TYPE_BASE + result.code, title, status_for(result.code), result.detail)
            return BatchResult(index=index, outcome="refused", key=envelope_key(raw, limits), problem=problem)
        case ContractError():
            problem = Problem(TYPE_BASE + result.code, "The message is not a valid envelope", 400, str(result))
            return BatchResult(index=index, outcome="refused", key=envelope_key(raw, limits), problem=problem)
    if isinstance(result, TRANSIENT):
        problem = Problem(
            TYPE_BASE + "store-unavailable",
            "Store unavailable",
            503,
            f"this envelope could not be stored just now ({type(result).__name__}); send it again with the same id",
        )
    else:
        log.error("batch envelope failed unexpectedly", index=index, error=type(result).__name__)
        problem = Problem(
            TYPE_BASE + "internal-error",
            "Internal error",
            500,
            "the service failed to store this envelope; nothing of it was stored; send it again with the same id",
        )
    return BatchResult(index=index, outcome="failed", key=envelope_key(raw, limits), problem=problem)
