"""The integration contract: CloudEvents 1.0 envelopes in structured JSON mode.

One msgspec tagged union (tag field ``type``) decodes every inbound event type, over HTTP and
NATS alike. Each type name is reverse-DNS style and versioned (``.v1``); a changed payload gets
a new type (``.v2``) decoded beside the old one, never a changed meaning. Unknown fields are
rejected at every level, so a typo in an agency's system is an error, not silently lost data.

The idempotency key of a message is ``<source>:<id>``: ``id`` is a UUID the sender chooses,
``source`` is the agency id, so two agencies can never collide.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

SPECVERSION = "1.0"

AgencyId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9][a-z0-9-]{1,62}$",
        description="The recording agency's id (lowercase letters, digits and '-').",
    ),
]
AwareDatetime = Annotated[
    datetime, msgspec.Meta(tz=True, description="RFC 3339 time with a UTC offset.")
]
RiskLevel = Annotated[int, msgspec.Meta(ge=0, le=5, description="Risk level 0-5 (危险性评估).")]
RiskClassName = Literal["stable", "basically_stable", "unstable"]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
OrgUnitId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="An org unit id of the registry.")]


class Contract(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Base of every wire struct.

    forbid_unknown_fields: a field we do not know is an error that names it.
    kw_only: fields can be added with defaults in any order without breaking subclasses.
    omit_defaults: encoded output carries only what was set.
    """


# -- payloads (the ``data`` member) -------------------------------------------------------------


class PatientRegisteredData(Contract, kw_only=True):
    """A patient enters the register (health center or psychiatric hospital)."""

    name: ShortText
    residence: OrgUnitId
    id_number: Annotated[str, msgspec.Meta(max_length=18)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    diagnosis: str | None = None


class VisitRecordedData(Contract, kw_only=True):
    """A follow-up visit took place, with its risk assessment."""

    face_to_face: bool
    risk_level: RiskLevel
    risk_class: RiskClassName
    joint: bool = False


class VisitMissedData(Contract, kw_only=True):
    """A scheduled visit did not happen; the scheduled date identifies it."""

    scheduled_on: date
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class RiskAssessedData(Contract, kw_only=True):
    """A risk assessment outside a visit."""

    risk_level: RiskLevel
    risk_class: RiskClassName


# -- envelopes ------------------------------------------------------------------------------------


class Envelope(Contract, tag_field="type", kw_only=True):
    """CloudEvents 1.0 attributes shared by every inbound event."""

    specversion: Literal["1.0"]
    id: UUID
    source: AgencyId
    subject: UUID
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    region: str | None = None
    actor: Annotated[str, msgspec.Meta(max_length=64, description="Staff id asserted by the agency.")] | None = None

    @property
    def idempotency_key(self) -> str:
        """``<source>:<id>``: the store's marker and the NATS ``Nats-Msg-Id``."""
        return f"{self.source}:{self.id}"

    @property
    def event_type(self) -> str:
        """The CloudEvents ``type`` (the union tag)."""
        return self.__struct_config__.tag  # type: ignore[return-value]


class PatientRegisteredV1(Envelope, tag="cn.smd.patient.registered.v1", kw_only=True):
    data: PatientRegisteredData


class VisitRecordedV1(Envelope, tag="cn.smd.visit.recorded.v1", kw_only=True):
    data: VisitRecordedData


class VisitMissedV1(Envelope, tag="cn.smd.visit.missed.v1", kw_only=True):
    data: VisitMissedData


class RiskAssessedV1(Envelope, tag="cn.smd.risk.assessed.v1", kw_only=True):
    data: RiskAssessedData


InboundEvent = PatientRegisteredV1 | VisitRecordedV1 | VisitMissedV1 | RiskAssessedV1
EVENT_TYPES: tuple[str, ...] = tuple(t.__struct_config__.tag for t in InboundEvent.__args__)  # type: ignore[attr-defined,misc]

_decoder = msgspec.json.Decoder(InboundEvent)
_encoder = msgspec.json.Encoder(order="deterministic")


class ContractError(ValueError):
    """The message is not a valid envelope; the message says where and what to fix."""

    code = "invalid-envelope"


def decode_event(raw: bytes | str) -> InboundEvent:
    """Decode one envelope, or raise ContractError naming the offending path."""
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as e:
        text = str(e)
        if "Invalid value" in text and "$.type" in text:
            text += f"; known types: {', '.join(EVENT_TYPES)}"
        raise ContractError(text) from None
    except msgspec.DecodeError as e:
        raise ContractError(f"not valid JSON: {e}") from None


def canonical_bytes(event: InboundEvent) -> bytes:
    """A canonical encoding: same content, same bytes, whatever the sender's key order."""
    return _encoder.encode(event)


def encode(event: InboundEvent) -> bytes:
    """Encode an envelope as an agency's system would send it."""
    return msgspec.json.encode(event)
