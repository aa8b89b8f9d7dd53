"""The inbound contract: one decoder for HTTP and NATS, errors that name the path."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from core.contract import ContractError, VisitRecordedV1, canonical_bytes, decode_event


def envelope(**overrides: object) -> dict:
    doc = {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "hc-east",
        "type": "cn.smd.visit.recorded.v1",
        "subject": str(uuid4()),
        "time": "2026-11-20T09:30:00+08:00",
        "data": {"face_to_face": True, "risk_level": 4, "risk_class": "unstable"},
    }
    doc.update(overrides)
    return doc


class TestDecoding:
    def test_a_valid_envelope_decodes_to_its_type_with_the_idempotency_key(self) -> None:
        doc = envelope()
        event = decode_event(json.dumps(doc))
        assert isinstance(event, VisitRecordedV1)
        assert event.idempotency_key == f"hc-east:{doc['id']}"
        assert event.event_type == "cn.smd.visit.recorded.v1"

    def test_an_unknown_field_inside_data_is_rejected_by_name(self) -> None:
        doc = envelope(data={"face_to_face": True, "risk_level": 4, "risk_class": "unstable", "riskLevel": 4})
        with pytest.raises(ContractError, match=r"riskLevel.*\$\.data"):
            decode_event(json.dumps(doc))

    def test_a_level_above_five_names_the_field_path(self) -> None:
        doc = envelope(data={"face_to_face": True, "risk_level": 7, "risk_class": "unstable"})
        with pytest.raises(ContractError, match=r"<= 5 - at `\$\.data\.risk_level`"):
            decode_event(json.dumps(doc))

    def test_an_id_that_is_not_a_uuid_is_rejected(self) -> None:
        with pytest.raises(ContractError, match=r"(?i)invalid uuid - at `\$\.id`"):
            decode_event(json.dumps(envelope(id="msg-1")))

    def test_an_unknown_type_lists_the_known_types(self) -> None:
        with pytest.raises(ContractError, match=r"known types: cn\.smd\.patient\.registered\.v1"):
            decode_event(json.dumps(envelope(type="cn.smd.visit.recorded.v9")))

    def test_a_time_without_offset_is_rejected(self) -> None:
        with pytest.raises(ContractError, match=r"timezone.*\$\.time"):
            decode_event(json.dumps(envelope(time="2026-11-20T09:30:00")))

    def test_broken_json_says_so(self) -> None:
        with pytest.raises(ContractError, match="not valid JSON"):
            decode_event(b"{not json")

    def test_the_same_content_in_another_key_order_has_the_same_canonical_bytes(self) -> None:
        doc = envelope()
        reordered = dict(reversed(list(doc.items())))
        assert canonical_bytes(decode_event(json.dumps(doc))) == canonical_bytes(decode_event(json.dumps(reordered)))
