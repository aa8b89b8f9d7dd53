"""The mapper that seals personal values inside stored events and snapshots.

eventsourcing's ``Mapper`` turns a domain event into stored bytes: ``vars(event)`` → transcoder
(JSON) → optional compressor → optional cipher. This subclass adds one step before the
transcoder: every value that is a ``domain.personal.Personal`` (at any depth, so a snapshot's
``state`` dict is covered too) is replaced by a *sealed value*

    {"_sealed": {"v": 1, "alg": "AES-256-GCM", "subject": "<uuid>", "type": "PersonalDetails",
                 "nonce": "<b64>", "ct": "<b64>"}}

encrypted with the data subject's own key (the event's originator). Everything else stays
readable JSON. Reading reverses it; when the subject's key was destroyed (erasure), the value
comes back as ``Personal.erased=True`` with every field None, so replay, indicators and the hash
chain keep working. The library's upcasting loop (``class_version`` / ``upcast_vN_vN+1``) runs
after unsealing, exactly as in the base class.
"""

from __future__ import annotations

import base64
import secrets
from datetime import date
from typing import Any
from uuid import UUID

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoding,
    TranscodingNotRegisteredError,
    find_id_convertor,
)
from eventsourcing.utils import get_topic, resolve_topic

from core.keystore import DATA_KEY_ALG, NONCE_BYTES, KeyStore
from domain.personal import PERSONAL_TYPE_NAMES, PERSONAL_TYPES, Personal, erased

SEALED = "_sealed"
_PARSE = msgspec.json.Decoder().decode  # JSON to dicts, lists, str, int, float, bool, None
SEAL_VERSION = 1


class DateAsISO(Transcoding):
    """Calendar dates (scheduled visits, supply ends) as ISO strings."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def _aad(subject: UUID, type_name: str) -> bytes:
    return b"smd-sealed|" + subject.bytes + b"|" + type_name.encode()


class PersonalDataMapper(Mapper[UUID]):
    """Seals personal values with the originator's data key; the rest stays readable."""

    keystore: KeyStore  # set by the composition root before the first event is mapped

    def seal(self, subject: UUID, value: Personal) -> dict[str, Any]:
        """Encrypt one personal value under the subject's data key."""
        type_name = PERSONAL_TYPE_NAMES[type(value)]
        key = self.keystore.data_key(subject)
        nonce = secrets.token_bytes(NONCE_BYTES)
        ct = AESGCM(key).encrypt(nonce, msgspec.json.encode(value), _aad(subject, type_name))
        return {
            SEALED: {
                "v": SEAL_VERSION,
                "alg": DATA_KEY_ALG,
                "subject": str(subject),
                "type": type_name,
                "nonce": base64.b64encode(nonce).decode(),
                "ct": base64.b64encode(ct).decode(),
            }
        }

    def unseal(self, sealed: dict[str, Any]) -> Personal:
        """Decrypt one sealed value; an erased subject gives the type's erased value."""
        subject = UUID(sealed["subject"])
        kind = PERSONAL_TYPES[sealed["type"]]
        if sealed["alg"] != DATA_KEY_ALG:
            raise ValueError(f"unsupported sealing algorithm {sealed['alg']!r}")
        key = self.keystore.existing_data_key(subject)
        if key is None:
            return erased(kind)
        plain = AESGCM(key).decrypt(
            base64.b64decode(sealed["nonce"]), base64.b64decode(sealed["ct"]), _aad(subject, sealed["type"])
        )
        return msgspec.json.decode(plain, type=kind)

    def _seal_all(self, subject: UUID, value: Any) -> Any:
        if isinstance(value, Personal):
            return self.seal(subject, value)
        if isinstance(value, dict):
            return {k: self._seal_all(subject, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._seal_all(subject, v) for v in value]
        return value

    def _unseal_all(self, value: Any) -> Any:
        if isinstance(value, dict):
            if SEALED in value and len(value) == 1:
                return self.unseal(value[SEALED])
            return {k: self._unseal_all(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._unseal_all(v) for v in value]
        return value

    def _decode(self, data: bytes) -> Any:
        """The transcoder's decode, then ``_unseal_all``: for eventsourcing's ``JSONTranscoder``,
        the same in one walk over msgspec's parse (the stdlib parser calls a Python hook for every
        object, and unsealing walked everything again: most of a replay's time)."""
        transcoder = self.transcoder
        if type(transcoder) is not JSONTranscoder and not isinstance(transcoder, JSONTranscoder):
            return self._unseal_all(transcoder.decode(data))
        try:
            parsed = _PARSE(data)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # what msgspec refuses and the stdlib takes (NaN, lone surrogates, deep nesting)
            return self._unseal_all(transcoder.decode(data))
        return self._revive(parsed, transcoder.names)

    def _revive(self, value: Any, names: dict[str, Transcoding]) -> Any:
        """Bottom-up over parsed JSON, as the stdlib's ``object_hook`` is called: a registered
        ``{"_type_", "_data_"}`` object decoded by its transcoding, a sealed value unsealed."""
        if type(value) is dict:
            for k, v in value.items():
                if type(v) is dict:
                    data = v.get("_data_") if len(v) == 2 else None
                    if data is not None and type(data) is str and type(v.get("_type_")) is str:
                        transcoding = names.get(v["_type_"])  # a value of one string: the usual case
                        if transcoding is not None:
                            value[k] = transcoding.decode(data)
                            continue
                    value[k] = self._revive(v, names)
                elif type(v) is list:
                    value[k] = self._revive(v, names)
            if len(value) == 2 and "_type_" in value and "_data_" in value:
                try:
                    transcoding = names[value["_type_"]]
                except KeyError as e:
                    raise TranscodingNotRegisteredError(f"no transcoding named {value['_type_']!r}") from e
                return transcoding.decode(value["_data_"])
            if len(value) == 1 and SEALED in value:
                return self.unseal(value[SEALED])
            return value
        for k, v in enumerate(value):
            if type(v) is dict or type(v) is list:
                value[k] = self._revive(v, names)
        return value

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        """Map a domain event (or snapshot) to stored bytes, personal values sealed."""
        topic = get_topic(domain_event.__class__)
        event_state = dict(vars(domain_event))
        originator_id = event_state.pop("originator_id")
        originator_version = event_state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            event_state["class_version"] = class_version
        # an event may name another subject for its personal values (an obligation's note is the
        # patient's: ``SEALED_UNDER``); the sealed value records its subject, so reading needs no hint
        under = getattr(type(domain_event), "SEALED_UNDER", None)
        subject = event_state.get(under) if under else None
        event_state = self._seal_all(subject if isinstance(subject, UUID) else originator_id, event_state)
        stored_state = self.transcoder.encode(event_state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        """Map stored bytes back to a domain event, unsealing and upcasting."""
        cls = resolve_topic(stored_event.topic)
        stored_state = stored_event.state
        try:
            if self.cipher:
                stored_state = self.cipher.decrypt(stored_state)
            if self.compressor:
                stored_state = self.compressor.decompress(stored_state)
            event_state: dict[str, Any] = self._decode(stored_state)
        except Exception as e:
            msg = (
                f"Failed to deserialise stored event with topic '{stored_event.topic}', "
                f"originator_id '{stored_event.originator_id}' and version "
                f"{stored_event.originator_version}: {type(e).__name__}"
            )
            raise MapperDeserialisationError(msg) from e
        id_convertor = find_id_convertor(cls, type(stored_event.originator_id))
        event_state["originator_id"] = id_convertor(stored_event.originator_id)
        event_state["originator_version"] = stored_event.originator_version
        class_version = getattr(cls, "class_version", 1)
        from_version = event_state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
            from_version += 1
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", event_state)
        return domain_event


def register_transcodings(transcoder: JSONTranscoder) -> None:
    """The value types our events carry besides the library's defaults."""
    transcoder.register(DateAsISO())
