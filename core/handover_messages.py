"""The cross-region message: signed by the sender region, personal part sealed to the receiver.

Wire form (JSON, one message per NATS message)::

    {"v": 1, "handover_id": "…", "sender": "990101", "receiver": "990202", "sequence": 7,
     "acked": 3, "kind": "request", "body": {…}, "sealed": "<base64>" | null,
     "key_id": "<hex>", "signature": "<base64>"}

``sequence`` numbers what this sender sent this receiver (1, 2, 3 …); ``acked`` is the last
sequence the sender had applied from the receiver. The signature (Ed25519, the sender region's
``crossregion`` key named by ``key_id``) covers every other field, in this order, as
``smd-xr/v1\\n`` + the JSON of the unsigned message. ``body`` holds only ids and dates; personal
fields travel in ``sealed`` (``core.region_keys``), with the header as associated data so a sealed
part cannot be moved to another message.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import msgspec

from core.region_keys import CrossRegionKeys, SealError, signature_valid
from domain.handover import Refusal

VERSION = 1
_DOMAIN = b"smd-xr/v1\n"


class Unsigned(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Every field the signature covers (field order is the signed order)."""

    v: Literal[1] = 1
    handover_id: UUID
    sender: str
    receiver: str
    sequence: int
    acked: int
    kind: Literal["request", "cancel", "accept", "reject", "feed", "erasure", "police-notice", "police-ack"]
    body: dict[str, Any]
    sealed: str | None = None


class Signed(Unsigned, kw_only=True, forbid_unknown_fields=True):
    """A message as sent: the unsigned fields, the key id and the signature."""

    key_id: str = ""
    signature: str = ""


_encode = msgspec.json.Encoder().encode
_decode_signed = msgspec.json.Decoder(Signed).decode


def _unsigned_bytes(message: Unsigned) -> bytes:
    fields = {f: getattr(message, f) for f in Unsigned.__struct_fields__}
    return _DOMAIN + _encode(Unsigned(**fields))


def _aad(handover_id: UUID, sender: str, receiver: str, sequence: int) -> bytes:
    return f"smd-xr/v1|{handover_id}|{sender}|{receiver}|{sequence}".encode()


def build(
    keys: CrossRegionKeys,
    receiver: str,
    *,
    handover_id: UUID,
    sequence: int,
    acked: int,
    kind: str,
    body: dict[str, Any],
    personal: dict[str, Any] | None = None,
) -> str:
    """The signed wire form of a message from this region to ``receiver``."""
    sealed = None
    if personal is not None:
        aad = _aad(handover_id, keys.region, receiver, sequence)
        sealed = keys.seal_to(receiver, _encode(personal), aad)
    unsigned = Unsigned(
        handover_id=handover_id,
        sender=keys.region,
        receiver=receiver,
        sequence=sequence,
        acked=acked,
        kind=kind,  # type: ignore[arg-type]
        body=body,
        sealed=sealed,
    )
    signature = keys.sign(_unsigned_bytes(unsigned))
    fields = {f: getattr(unsigned, f) for f in Unsigned.__struct_fields__}
    return _encode(Signed(**fields, key_id=keys.key_id, signature=signature)).decode()


def digest(wire: str | bytes) -> str:
    """SHA-256 of the message as received (what is kept of an applied message)."""
    data = wire.encode() if isinstance(wire, str) else wire
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Verified:
    """A message whose signature, addressee and sealed part checked out (not yet its sequence)."""

    message: Signed
    personal: dict[str, Any] | None


class Refused(Exception):
    """The message is refused; ``reason`` says why, ``sequence`` when it could be read."""

    def __init__(self, reason: Refusal, sequence: int | None = None, sender: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.sequence = sequence
        self.sender = sender


def verify(keys: CrossRegionKeys, wire: str | bytes) -> Verified:
    """Check a received message: well formed, for this region, from a known region, signed by one
    of its keys, its sealed part opening with ours. The sequence is the inbox's to check."""
    try:
        message = _decode_signed(wire)
    except (msgspec.ValidationError, msgspec.DecodeError):
        raise Refused(Refusal.MALFORMED) from None
    seq, sender = message.sequence, message.sender
    if not message.signature or not message.key_id:
        raise Refused(Refusal.UNSIGNED, seq, sender)
    peer = keys.peers.get(sender)
    if peer is None:
        raise Refused(Refusal.UNKNOWN_SENDER, seq, sender)
    verifier = peer.verifier(message.key_id)
    if verifier is None:
        raise Refused(Refusal.UNKNOWN_KEY, seq, sender)
    if not signature_valid(verifier, _unsigned_bytes(message), message.signature):
        raise Refused(Refusal.BAD_SIGNATURE, seq, sender)
    if message.receiver != keys.region:
        raise Refused(Refusal.WRONG_REGION, seq, sender)
    personal = None
    if message.sealed is not None:
        try:
            plain = keys.open(message.sealed, _aad(message.handover_id, sender, message.receiver, seq))
        except SealError:
            raise Refused(Refusal.UNDECRYPTABLE, seq, sender) from None
        personal = msgspec.json.decode(plain)
    return Verified(message, personal)
