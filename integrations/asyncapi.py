"""The AsyncAPI 3.0 document of one region's NATS side, generated from what the code declares.

Channels are the subjects of ``integrations.streams.Names``; their messages' payloads are the
JSON Schemas of the same msgspec types the intake decodes (``core.contract``) and the outbox
encodes (``integrations.outbox``); the streams that keep them are ``stream_configs`` itself
(the ``x-smd-streams`` extension: AsyncAPI has no word for a JetStream stream). Nothing is
written by hand twice, so the document cannot drift from the code; a test checks it against
the declared streams and against messages really sent through a server.

Operations are the service's: it *receives* envelopes and *sends* rejections, obligation and
notice messages, risk escalations and cosignature requests.
"""

from __future__ import annotations

from typing import Any, get_args

import msgspec

from core.contract import InboundEvent
from core.handover_messages import Signed
from integrations.crossregion.link import LinkNames, out_stream_config
from integrations.intake import H_DETAIL, H_MSG_ID, H_REASON, H_SEQ, H_SUBJECT
from integrations.outbox import CHANGES, OutboundEvent, OutboundRiskEvent
from integrations.streams import REPLICAS, Names, stream_configs

ASYNCAPI_VERSION = "3.0.0"
REF = "#/components/schemas/{name}"
#: The verbs of obligation and notice messages: assigned, then the lifecycle changes; an overdue
#: obligation is also sent to the governance center it was escalated to, as ``escalated``.
VERBS = ("assigned", *CHANGES.values(), "escalated")


def _envelope_classes() -> list[type]:
    return list(get_args(InboundEvent))


def _tag(cls: type) -> str:
    return str(cls.__struct_config__.tag)  # type: ignore[attr-defined]


def _message_name(event_type: str) -> str:
    """A component name for an event type: ``cn.smd.visit.recorded.v1`` → ``visit_recorded_v1``."""
    return event_type.removeprefix("cn.smd.").replace(".", "_").replace("-", "_")


def _stream_doc(config: Any) -> dict[str, Any]:
    return {
        "name": config.name,
        "description": config.description,
        "subjects": list(config.subjects),
        "retention": str(config.retention.value),
        "storage": str(config.storage.value),
        "discard": str(config.discard.value),
        "replicas": config.num_replicas,
        "max_age_seconds": config.max_age,
        "duplicate_window_seconds": config.duplicate_window,
    }


def declared_streams(names: Names, replicas: int = REPLICAS) -> list[Any]:
    """Every stream of the region the document describes: the region's own (intake, rejections,
    outbound) and the one it publishes its handover messages to (its copies of a linked region's
    are sourced from that region's, declared there)."""
    return [*stream_configs(names, replicas), out_stream_config(LinkNames(names.root, names.region), replicas)]


def document(names: Names, servers: list[str] | None = None, replicas: int = REPLICAS) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of region ``names.region`` under subject root ``names.root``
    (its streams on ``replicas`` servers each, as ``SMD_NATS_REPLICAS`` declares them)."""
    classes = _envelope_classes()
    (*roots, risk_root, out_root, handover_root), components = msgspec.json.schema_components(
        [*classes, OutboundRiskEvent, OutboundEvent, Signed], ref_template=REF
    )
    schemas: dict[str, Any] = dict(components)
    messages: dict[str, Any] = {}
    msg_id_header = {
        "type": "object",
        "required": ["Nats-Msg-Id"],
        "properties": {
            "Nats-Msg-Id": {
                "type": "string",
                "description": "`<source>:<id>` of the envelope: the server drops a repeat within "
                "the stream's duplicate window, the service stores it once whenever it arrives",
            }
        },
    }
    envelope_refs = []
    for cls, root in zip(classes, roots, strict=True):
        event_type = _tag(cls)
        name = _message_name(event_type)
        messages[name] = {
            "name": event_type,
            "title": event_type,
            "summary": (cls.__doc__ or "").strip().split("\n")[0],
            "contentType": "application/json",
            "headers": msg_id_header,
            "payload": root,
        }
        envelope_refs.append({"$ref": f"#/components/messages/{name}"})
    messages["rejection"] = {
        "name": "rejection",
        "title": "A refused envelope, with the reason",
        "summary": "The original bytes, unchanged, with why they were refused in the headers.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "required": ["Nats-Msg-Id", H_REASON, H_DETAIL, H_SUBJECT, H_SEQ],
            "properties": {
                "Nats-Msg-Id": {"type": "string", "description": "`rejected:<intake stream sequence>`"},
                H_REASON: {
                    "type": "string",
                    "description": "the stable refusal code (the same as the HTTP problem's type "
                    "suffix): e.g. `invalid-envelope`, `unknown-org-unit`, `not-allowed-to-record`, "
                    "`reference-not-found`, `dead-letter`",
                },
                H_DETAIL: {"type": "string", "description": "what to fix, naming the field (never a personal value)"},
                H_SUBJECT: {"type": "string", "description": "the subject the envelope was published on"},
                H_SEQ: {"type": "string", "description": "its sequence in the intake stream"},
                H_MSG_ID: {"type": "string", "description": "its own Nats-Msg-Id, when it had one"},
            },
        },
        "payload": {"description": "the bytes as published (not necessarily JSON: that may be why)"},
    }
    out_headers = {
        "type": "object",
        "required": ["Nats-Msg-Id"],
        "properties": {
            "Nats-Msg-Id": {
                "type": "string",
                "description": "the CloudEvents `id`: stable for one stored event and recipient; "
                "receivers deduplicate on it (a message may come twice after an outage)",
            }
        },
    }
    messages["obligation"] = {
        "name": "obligation",
        "title": "An obligation or notice, or a change of its state",
        "summary": "CloudEvents 1.0, structured JSON: `cn.smd.<obligation|notice>.<verb>.v1`, no personal data.",
        "contentType": "application/json",
        "headers": out_headers,
        "payload": out_root,
    }
    messages["risk_escalated"] = {
        "name": "risk_escalated",
        "title": "A patient's risk worsened",
        "summary": "CloudEvents 1.0: `cn.smd.patient.risk-escalated.v1`, to the agencies that may see risk levels.",
        "contentType": "application/json",
        "headers": out_headers,
        "payload": risk_root,
    }
    messages["cosignature_request"] = {
        "name": "cosignature_request",
        "title": "A checkpoint to cosign",
        "summary": "A signed note of the verifiable log's tree head; the witness replies with its cosignature.",
        "contentType": "text/plain",
        "payload": {"type": "string"},
    }
    messages["handover_message"] = {
        "name": "handover_message",
        "title": "A message between two linked regions about one handover (R8)",
        "summary": "Signed with the sender region's Ed25519 key (`key_id`, `signature` over the other fields); "
        "personal fields only in `sealed`, encrypted to the receiving region's X25519 key; `sequence` is the "
        "sender's own count towards this receiver, `acked` the last it applied from it. A message unsigned, "
        "wrongly signed, for another region, replayed or out of sequence is refused and kept with its reason. "
        "`kind` `erasure`: the sender erased a patient of a handover between the two (the body names only the "
        "patient and handover ids) or answers such a notice (`answer`: erase, already-erased or kept, `reason`).",
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "required": ["Nats-Msg-Id"],
            "properties": {"Nats-Msg-Id": {"type": "string", "description": "`xr:<sender>:<receiver>:<sequence>`"}},
        },
        "payload": handover_root,
    }
    agency = {"description": "the agency's id in the registry (`smd registry show`)"}
    channels = {
        "intake": {
            "address": f"{names.prefix}.in.{{agency}}.{{event}}",
            "title": "Envelopes from agencies",
            "description": "An agency publishes each envelope here with JetStream (a PubAck means it is kept), "
            "`event` being its type without `cn.smd.` (`visit.recorded.v1`). Stored exactly once; refused ones "
            "go to the agency's rejection channel.",
            "parameters": {
                "agency": agency,
                "event": {
                    "enum": [_tag(c).removeprefix("cn.smd.") for c in classes],
                    "description": "the envelope's type without `cn.smd.` (several subject tokens)",
                },
            },
            "messages": {m["$ref"].rsplit("/", 1)[1]: m for m in envelope_refs},
        },
        "rejected": {
            "address": f"{names.prefix}.rejected.{{agency}}",
            "title": "What was refused, per agency",
            "parameters": {"agency": agency},
            "messages": {"rejection": {"$ref": "#/components/messages/rejection"}},
        },
        "obligations": {
            "address": f"{names.prefix}.out.{{agency}}.{{kind}}.{{verb}}",
            "title": "Obligations and notices for an agency",
            "description": "`escalated` goes to the governance center an overdue obligation was escalated to.",
            "parameters": {
                "agency": agency,
                "kind": {"enum": ["obligation", "notice"]},
                "verb": {"enum": list(VERBS)},
            },
            "messages": {"obligation": {"$ref": "#/components/messages/obligation"}},
        },
        "risk_escalated": {
            "address": f"{names.prefix}.out.{{agency}}.risk.escalated",
            "title": "Risk escalations for an agency that may see risk levels",
            "parameters": {"agency": agency},
            "messages": {"risk_escalated": {"$ref": "#/components/messages/risk_escalated"}},
        },
        "crossregion_out": {
            "address": f"{names.root}.xr.{names.region}.{{receiver}}",
            "title": "Handover messages this region sends a linked region (docs/decisions/039)",
            "description": f"Published to this region's own stream `{names.root.upper()}_XR_OUT_{names.region}` on "
            "its own server (publishing never waits for the link); the receiver sources that stream across "
            "JetStream domains over the leaf node (account `XR`).",
            "parameters": {"receiver": {"description": "the receiving region's code"}},
            "messages": {"handover_message": {"$ref": "#/components/messages/handover_message"}},
        },
        "crossregion_in": {
            "address": f"{names.root}.xr.{{sender}}.{names.region}",
            "title": "Handover messages a linked region sends this one",
            "description": f"Sourced from the sender's stream into `{names.root.upper()}_XR_IN_<sender>` (declared "
            "when the link starts, one per linked region) and consumed with the durable `xr-from-<sender>`; "
            "each applied once, a redelivery refused as `replayed` and acknowledged.",
            "parameters": {"sender": {"description": "the sending region's code"}},
            "messages": {"handover_message": {"$ref": "#/components/messages/handover_message"}},
        },
        "witness": {
            "address": f"{names.prefix}.witness.{{key_id}}",
            "title": "Checkpoints to a witness (core NATS request/reply, not a stream)",
            "description": "To each witness of SMD_WITNESSES on the region's own server; to a linked region's "
            "witness (its peer entry's `witness`) in the cross-region account XR, across the leaf node, with the "
            f"reply under `{names.prefix}.witness-reply.>` (decision 046).",
            "parameters": {"key_id": {"description": "the witness key's id, hex"}},
            "messages": {"cosignature_request": {"$ref": "#/components/messages/cosignature_request"}},
        },
        "peer_witness": {
            "address": f"{names.root}.{{peer}}.witness.{{key_id}}",
            "title": "A linked region's checkpoints to this region's witness (core NATS request/reply, account XR)",
            "description": "This region cosigns the checkpoints of each linked region whose peer entry lists its "
            "`checkpoint_verifiers`, with its own witness key (SMD_WITNESS_KEY), keeping them in its own store; "
            "the reply goes to the asking region's `<root>.<peer>.witness-reply.>` (decision 046).",
            "parameters": {
                "peer": {"description": "the witnessed region's code"},
                "key_id": {"description": "this region's witness key id, hex"},
            },
            "messages": {"cosignature_request": {"$ref": "#/components/messages/cosignature_request"}},
        },
    }

    def op(action: str, channel: str, summary: str) -> dict[str, Any]:
        refs = [
            {"$ref": f"#/channels/{channel}/messages/{name}"} for name in channels[channel]["messages"]
        ]  # fmt: skip
        return {"action": action, "channel": {"$ref": f"#/channels/{channel}"}, "summary": summary, "messages": refs}

    operations = {
        "receiveEnvelopes": op("receive", "intake", "Store each envelope exactly once, or refuse it with a reason"),
        "sendRejections": op("send", "rejected", "Tell the sending agency what was refused and why"),
        "sendObligations": op("send", "obligations", "Give an agency its obligations and notices, and their changes"),
        "sendRiskEscalations": op("send", "risk_escalated", "Tell of a worsened risk"),
        "requestCosignatures": op("send", "witness", "Ask a witness to cosign the latest checkpoint"),
        "cosignPeerCheckpoints": op("receive", "peer_witness", "Cosign a linked region's checkpoint, or refuse it"),
        "sendHandoverMessages": op("send", "crossregion_out", "Send a linked region this region's handover messages"),
        "receiveHandoverMessages": op("receive", "crossregion_in", "Apply a linked region's handover messages once"),
    }
    doc: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"Severe mental disorder coordination: NATS of region {names.region}",
            "version": "1",
            "description": 'Subjects, messages and JetStream streams of one deployment (README "NATS"). '
            "Generated from the code: the envelopes' schemas are the HTTP API's too.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
        "x-smd-streams": [_stream_doc(c) for c in declared_streams(names, replicas)],
    }
    if servers:
        doc["servers"] = {
            f"nats{i}": {"host": url.split("://", 1)[-1].rsplit("@", 1)[-1], "protocol": "nats"}
            for i, url in enumerate(servers, 1)
        }
    return doc
