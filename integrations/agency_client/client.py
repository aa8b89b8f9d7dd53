"""The agency client: what an agency's system does with this service, over NATS and HTTP.

See the package docstring for an example and README "Integrating with the agency client".
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

import httpx
import msgspec
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from core.contract import InboundEvent, decode_event, encode
from integrations.agency_client.seen import SeenIds
from integrations.nats_identities import durable, inbox_prefix
from integrations.streams import Names

#: Envelope types are named ``cn.smd.<fact>.v<n>``; the prefix may be left out when building one.
TYPE_PREFIX = "cn.smd."
#: How long one pull waits for messages before asking again (the server holds the request).
POLL_SECONDS = 5.0
NDJSON = "application/x-ndjson"


class ServiceRefused(Exception):
    """The service answered an HTTP request with a problem (RFC 9457): ``status``, ``type``,
    ``detail`` say what to fix."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        self.type = str(self.problem.get("type", ""))
        self.detail = str(self.problem.get("detail", ""))
        super().__init__(f"{status} {self.type}: {self.detail}")


class BatchOutcome(msgspec.Struct, frozen=True, omit_defaults=True):
    """What became of one envelope of a batch (``POST /v1/events/batch``), in the batch's order.

    ``outcome``: ``recorded`` / ``no-change`` / ``duplicate`` / ``waiting`` (with ``key`` and the
    log ``position``), ``refused`` with the ``problem`` (fix it; sending it again is refused
    again), or ``failed`` (the service could not store it just now: send it again, same id)."""

    index: int
    outcome: Literal["recorded", "no-change", "duplicate", "waiting", "refused", "failed"]
    key: str | None = None
    position: int | None = None
    problem: dict[str, Any] | None = None

    @property
    def to_send_again(self) -> bool:
        """Whether sending the same envelope again may succeed."""
        return self.outcome == "failed"


class ObligationState(msgspec.Struct, frozen=True):
    """An obligation after ``acknowledge`` or ``complete``; ``changed`` is false when it was already so."""

    obligation_id: UUID
    status: str
    overdue: bool
    changed: bool


class _CloudEvent(msgspec.Struct):
    """An outbound message as sent; unknown attributes are kept out, not refused (the service
    may add some), ``data`` stays a mapping."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    region: str | None = None


_cloud_event = msgspec.json.Decoder(_CloudEvent)
_results = msgspec.json.Decoder(BatchOutcome)
_state = msgspec.json.Decoder(ObligationState)


@dataclass(eq=False)
class Received:
    """One message from the agency's own durable. Call ``await done()`` once it is handled: its
    key is written to the dedup file, then the message is acknowledged. One never marked done
    comes back after the durable's AckWait (60 s), to this process or the next."""

    key: str
    subject: str
    payload: bytes
    headers: dict[str, str]
    redelivered: bool
    _client: AgencyClient = field(repr=False)
    _msg: Msg = field(repr=False)
    _durable: str = field(repr=False)

    async def done(self) -> None:
        """Handled: remember the key (committed to disk), then acknowledge the message."""
        self._client.seen.record(self.key, self._durable)
        await self._msg.ack_sync()


@dataclass(eq=False)
class Message(Received):
    """An obligation or notice (or a change to one, or a risk escalation): a CloudEvent whose
    ``id`` is the dedup key. ``data`` holds ids, rule, action, deadline, risk level; never a
    name or an ID number."""

    id: str = ""
    type: str = ""
    time: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def obligation_id(self) -> UUID | None:
        """The obligation (or notice) it is about, for ``acknowledge`` / ``complete``."""
        value = self.data.get("obligation_id")
        return UUID(value) if value else None


@dataclass(eq=False)
class Rejection(Received):
    """An envelope the service refused: the original bytes, the stable ``reason`` code and the
    ``detail`` saying what to fix; ``original_key`` is the refused envelope's ``Nats-Msg-Id``."""

    reason: str = ""
    detail: str = ""
    original_key: str | None = None
    original_subject: str | None = None

    @property
    def original(self) -> bytes:
        """The refused message's bytes, as sent."""
        return self.payload


class AgencyClient:
    """One agency's system talking to the service of one region.

    Give it a NATS connection (``nats``) for publishing and receiving, an HTTP client
    (``http``, with the service's base URL) and the agency's API key for the HTTP calls, and a
    dedup file (``seen``) for receiving; or let ``connect`` open them. Only the parts given are
    usable."""

    def __init__(
        self,
        agency_id: str,
        *,
        region: str = "990101",
        root: str = "smd",
        nats: Client | None = None,
        http: httpx.AsyncClient | None = None,
        api_key: str | None = None,
        seen: SeenIds | Path | str | None = None,
    ) -> None:
        self.agency_id = agency_id
        self.names = Names(root, region)
        self.nc = nats
        self.http = http
        self.api_key = api_key
        self.seen = seen if isinstance(seen, SeenIds) or seen is None else SeenIds(seen)
        #: copies of messages already handled: acknowledged without being handed out again
        self.skipped = 0
        self._owned: list[Any] = []
        self._subs: dict[str, JetStreamContext.PullSubscription] = {}
        self._waiting: dict[str, deque[Any]] = {}

    @classmethod
    async def connect(
        cls,
        agency_id: str,
        *,
        nats_url: str | None = None,
        password: str | None = None,
        http_url: str | None = None,
        api_key: str | None = None,
        seen: Path | str | None = None,
        region: str = "990101",
        root: str = "smd",
    ) -> AgencyClient:
        """Open what is given: NATS as the agency's user (``password`` from `smd nats config`;
        replies on the agency's own inbox prefix), HTTP at ``http_url``, the dedup file ``seen``."""
        nc = None
        if nats_url is not None:
            nc = await nats.connect(
                nats_url,
                user=agency_id if password is not None else None,
                password=password,
                inbox_prefix=inbox_prefix(agency_id),
                name=f"agency-client {agency_id}",
            )
        http = httpx.AsyncClient(base_url=http_url, timeout=30.0) if http_url is not None else None
        client = cls(agency_id, region=region, root=root, nats=nc, http=http, api_key=api_key, seen=seen)
        client._owned = [x for x in (nc, http) if x is not None]
        return client

    async def close(self) -> None:
        """Stop receiving; close what ``connect`` opened and the dedup file."""
        for sub in self._subs.values():
            await sub.unsubscribe()
        self._subs.clear()
        self._waiting.clear()  # pulled, never handed out: back after the AckWait
        for owned in self._owned:
            if isinstance(owned, httpx.AsyncClient):
                await owned.aclose()
            else:
                await owned.drain()
        self._owned = []
        if self.seen is not None:
            self.seen.close()

    async def __aenter__(self) -> AgencyClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- envelopes ------------------------------------------------------------------------------

    def envelope(
        self,
        event_type: str,
        subject: UUID,
        data: Mapping[str, Any] | msgspec.Struct,
        *,
        occurred: datetime | None = None,
        actor: str | None = None,
        id: UUID | None = None,
    ) -> InboundEvent:
        """An envelope from this agency, checked against the contract here: a mistake raises
        ``core.contract.ContractError`` with the message the service would answer (the JSON path
        of the field and what to fix). ``event_type`` may leave out ``cn.smd.``; ``occurred``
        (when it happened, with a UTC offset) defaults to now; ``id`` to a new UUID; keep the
        envelope (or its id) to send it again after a failure: the same id is recorded once."""
        if occurred is not None and occurred.tzinfo is None:
            # the contract's own message, without building anything: the time needs an offset
            occurred_text: Any = occurred.isoformat()
        else:
            occurred_text = (occurred or datetime.now(UTC)).isoformat()
        doc: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(id or uuid4()),
            "source": self.agency_id,
            "type": event_type if event_type.startswith(TYPE_PREFIX) else TYPE_PREFIX + event_type,
            "subject": str(subject),
            "time": occurred_text,
            "data": msgspec.to_builtins(data),
        }
        if actor is not None:
            doc["actor"] = actor
        return decode_event(msgspec.json.encode(doc))

    # -- NATS -----------------------------------------------------------------------------------

    def _js(self) -> JetStreamContext:
        if self.nc is None:
            raise RuntimeError("this client has no NATS connection: give nats= or connect(nats_url=...)")
        return self.nc.jetstream()

    async def publish(self, envelope: InboundEvent, *, timeout: float = 10.0) -> PubAck:
        """Publish on ``<root>.<region>.in.<agency>.<type>`` with ``Nats-Msg-Id: <source>:<id>``
        and return the stream's ack (``seq``; ``duplicate`` when the same id came within the
        duplicate window). Stored means in the stream: the service decides it next, and a
        refusal comes back through ``rejections()``."""
        if envelope.source != self.agency_id:
            raise ValueError(
                f"the envelope's source is {envelope.source!r}, not this client's agency {self.agency_id!r}; "
                "the service refuses an envelope published under another agency's subject"
            )
        return await self._js().publish(
            self.names.intake(self.agency_id, envelope.event_type),
            encode(envelope),
            headers={"Nats-Msg-Id": envelope.idempotency_key},
            stream=self.names.intake_stream,
            timeout=timeout,
        )

    def obligations(self, *, idle: float | None = None, batch: int = 10) -> AsyncIterator[Message]:
        """Obligations and notices for this agency (and changes to them), from its durable
        ``agency-<id>-out``, each handed out once across restarts: a copy of a message marked
        ``done`` before (by this process or an earlier one using the same dedup file) is
        acknowledged and skipped. Stops after ``idle`` seconds without a message (None: never)."""
        return self._receive(self.names.out_stream, durable(self.agency_id, "out"), self._message, idle, batch)

    def rejections(self, *, idle: float | None = None, batch: int = 10) -> AsyncIterator[Rejection]:
        """What the service refused from this agency, from its durable ``agency-<id>-rejected``,
        with the same dedup as ``obligations`` (the key is the rejection's ``rejected:<seq>``)."""
        return self._receive(
            self.names.rejected_stream, durable(self.agency_id, "rejected"), self._rejection, idle, batch
        )

    async def fetch_obligations(self, batch: int = 10, *, timeout: float = POLL_SECONDS) -> list[Message]:
        """One pull: up to ``batch`` new obligations and notices, waiting at most ``timeout``."""
        return await self._fetch(self.names.out_stream, durable(self.agency_id, "out"), self._message, batch, timeout)

    async def fetch_rejections(self, batch: int = 10, *, timeout: float = POLL_SECONDS) -> list[Rejection]:
        """One pull: up to ``batch`` new rejections, waiting at most ``timeout``."""
        name = durable(self.agency_id, "rejected")
        return await self._fetch(self.names.rejected_stream, name, self._rejection, batch, timeout)

    async def _receive(self, stream: str, name: str, make: Any, idle: float | None, batch: int) -> AsyncIterator[Any]:
        quiet_since = time.monotonic()
        while True:
            wait = POLL_SECONDS if idle is None else max(0.1, min(POLL_SECONDS, idle))
            got = await self._fetch(stream, name, make, 1, wait, pull=batch)
            if got:
                yield got[0]
                quiet_since = time.monotonic()
            elif idle is not None and time.monotonic() - quiet_since >= idle:
                return

    async def _fetch(
        self, stream: str, name: str, make: Any, batch: int, timeout: float, *, pull: int | None = None
    ) -> list[Any]:
        """Up to ``batch`` new messages: first those pulled before and not handed out yet (an
        iteration stopped early leaves them here, not waiting for the AckWait), else one pull
        of up to ``pull`` (default ``batch``)."""
        if self.seen is None:
            raise RuntimeError("receiving needs a dedup file: give seen= (a path that survives restarts)")
        waiting = self._waiting.setdefault(name, deque())
        if not waiting:
            waiting.extend(await self._pull(stream, name, make, pull or batch, timeout))
        handed: list[Any] = []
        while waiting and len(handed) < batch:
            item = waiting.popleft()
            if self.seen.seen(item.key):  # a copy pulled with the original, which is done now
                self.skipped += 1
                await item._msg.ack_sync()
                continue
            handed.append(item)
        return handed

    async def _pull(self, stream: str, name: str, make: Any, batch: int, timeout: float) -> list[Any]:
        assert self.seen is not None
        sub = self._subs.get(name)
        if sub is None:
            # bind to the durable the service created: an agency's user may not create consumers
            sub = self._subs[name] = await self._js().pull_subscribe_bind(durable=name, stream=stream)
        try:
            msgs = await sub.fetch(batch, timeout=timeout)
        except TimeoutError:  # nothing arrived meanwhile (nats-py's TimeoutError is one)
            return []
        fresh = []
        for msg in msgs:
            item = make(msg, name)
            if self.seen.seen(item.key):
                self.skipped += 1
                await msg.ack_sync()  # handled before: only the acknowledgement was missing
                continue
            fresh.append(item)
        return fresh

    def _common(self, msg: Msg, name: str) -> dict[str, Any]:
        return {
            "subject": msg.subject,
            "payload": msg.data,
            "headers": dict(msg.headers or {}),
            "redelivered": msg.metadata.num_delivered > 1,
            "_client": self,
            "_msg": msg,
            "_durable": name,
        }

    def _message(self, msg: Msg, name: str) -> Message:
        try:
            event = _cloud_event.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # not a CloudEvent (never sent by the service): handed out once, by its place in the stream
            return Message(key=f"out:{msg.metadata.sequence.stream}", **self._common(msg, name))
        return Message(
            key=event.id, id=event.id, type=event.type, time=event.time, data=event.data, **self._common(msg, name)
        )

    def _rejection(self, msg: Msg, name: str) -> Rejection:
        headers = msg.headers or {}
        key = headers.get("Nats-Msg-Id") or f"rejected-seq:{msg.metadata.sequence.stream}"
        return Rejection(
            key=key,
            reason=headers.get("Smd-Reason", ""),
            detail=headers.get("Smd-Detail", ""),
            original_key=headers.get("Smd-Original-Msg-Id"),
            original_subject=headers.get("Smd-Original-Subject"),
            **self._common(msg, name),
        )

    # -- HTTP -----------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self.http is None or self.api_key is None:
            raise RuntimeError("this client has no HTTP access: give http= and api_key= or connect(http_url=...)")
        return self.http

    def _headers(self, staff_id: str | None = None, content_type: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if staff_id is not None:
            headers["X-Staff-Id"] = staff_id
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    async def send_batch(self, envelopes: Iterable[InboundEvent], *, wait: bool = False) -> list[BatchOutcome]:
        """``POST /v1/events/batch`` as NDJSON: one outcome per envelope, in order. A refused
        envelope does not stop the others. ``wait``: answer once the rules have processed it."""
        body = b"".join(encode(e) + b"\n" for e in envelopes)
        response = await self._http().post(
            "/v1/events/batch",
            content=body,
            params={"wait": "true"} if wait else None,
            headers=self._headers(content_type=NDJSON),
        )
        if response.status_code != 200:
            raise _refused(response)
        return [_results.decode(line) for line in response.content.splitlines() if line.strip()]

    async def acknowledge(self, obligation_id: UUID, *, staff_id: str | None = None) -> ObligationState:
        """Take an obligation on (``POST /v1/obligations/{id}/acknowledge``)."""
        return await self._act(obligation_id, "acknowledge", staff_id, None)

    async def complete(
        self, obligation_id: UUID, *, note: str | None = None, staff_id: str | None = None
    ) -> ObligationState:
        """Declare an obligation done (``POST /v1/obligations/{id}/complete``); the ``note`` says
        what was done (no personal data)."""
        return await self._act(obligation_id, "complete", staff_id, {"note": note} if note is not None else {})

    async def _act(
        self, obligation_id: UUID, action: str, staff_id: str | None, body: dict[str, Any] | None
    ) -> ObligationState:
        response = await self._http().post(
            f"/v1/obligations/{obligation_id}/{action}",
            content=msgspec.json.encode(body) if body is not None else None,
            headers=self._headers(staff_id, "application/json" if body is not None else None),
        )
        if response.status_code != 200:
            raise _refused(response)
        return _state.decode(response.content)


def _refused(response: httpx.Response) -> ServiceRefused:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"type": "about:blank", "detail": response.text[:500]}
    return ServiceRefused(response.status_code, problem)


__all__ = [
    "AgencyClient",
    "BatchOutcome",
    "Message",
    "ObligationState",
    "Received",
    "Rejection",
    "ServiceRefused",
]
