"""The byte-level checks every JSON message passes before a decoder sees it (core.contract).

msgspec raises RecursionError on very deep JSON and UnicodeDecodeError on invalid UTF-8 (not a
DecodeError); these checks turn both, oversize and duplicate members into ContractErrors with a
stable code, so no door can be crashed by what it reads.
"""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from core.contract import (
    DEFAULT_LIMITS,
    ContractError,
    DuplicateKey,
    InvalidUtf8,
    MessageTooLarge,
    TooDeeplyNested,
    VisitRecordedV1,
    WireLimits,
    check_bytes,
    check_json_body,
    decode_event,
)
from integrations.intake import correlation_id
from ops.settings import SettingsError, load_settings


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


def raw(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


class TestDepth:
    @pytest.mark.parametrize(
        "body",
        [
            nested(1000),
            b'{"a":' * 1000 + b"1" + b"}" * 1000,
            # deep inside an otherwise valid envelope, where msgspec would recurse into it
            raw(envelope()).replace(b'"risk_class": "unstable"', b'"x": ' + nested(100_000)),
            nested(100_000, b'{"k":[', b"]}"),
        ],
        ids=["array-1000", "object-1000", "inside-data", "mixed-200000"],
    )
    def test_deep_nesting_is_refused_before_decoding(self, body: bytes) -> None:
        limits = WireLimits(max_bytes=10_000_000, max_depth=32)
        with pytest.raises(TooDeeplyNested, match="more than 32 deep") as e:
            decode_event(body, limits)
        assert e.value.code == "too-deeply-nested"

    def test_exactly_the_limit_passes_the_byte_check_and_one_more_does_not(self) -> None:
        limits = WireLimits(max_depth=5)
        check_bytes(nested(5), limits)
        with pytest.raises(TooDeeplyNested):
            check_bytes(nested(6), limits)

    def test_brackets_inside_strings_do_not_count(self) -> None:
        doc = envelope(actor="[[[[{{{{" * 8)  # 64 brackets in a string, 2 levels of structure
        assert isinstance(decode_event(raw(doc)), VisitRecordedV1)
        escaped = envelope(actor='\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"')  # escaped quotes stay in the string
        assert isinstance(decode_event(raw(escaped)), VisitRecordedV1)

    def test_many_shallow_siblings_are_not_deep(self) -> None:
        check_json_body(b"[" + b",".join([b"[1]"] * 5000) + b"]")


class TestUtf8:
    @pytest.mark.parametrize(
        "body",
        [
            b"\xff\xfe",
            raw(envelope()).replace(b"unstable", b"un\xc3stable"),  # a broken two-byte sequence
            raw(envelope()).replace(b"hc-east", b"hc-\xed\xa0\x80east"),  # an encoded surrogate
            raw(envelope(data={"face_to_face": True, "risk_level": 4, "risk_class": "\x00"})).replace(
                b"\\u0000", b"\xc0\x80"
            ),  # overlong NUL
        ],
        ids=["bom-like", "truncated", "surrogate", "overlong"],
    )
    def test_invalid_utf8_is_refused_with_its_position(self, body: bytes) -> None:
        with pytest.raises(InvalidUtf8, match=r"not valid UTF-8 \(byte \d+\)") as e:
            decode_event(body)
        assert e.value.code == "invalid-utf8"

    def test_text_with_a_lone_surrogate_is_invalid_utf8(self) -> None:
        with pytest.raises(InvalidUtf8):
            check_bytes('{"a": "\ud800"}')

    def test_valid_multibyte_text_passes(self) -> None:
        doc = envelope(
            type="cn.smd.patient.registered.v1",
            data={"name": "张三", "residence": "990101-001-v01"},
        )
        event = decode_event(json.dumps(doc, ensure_ascii=False).encode())
        assert event.data.name == "张三"


class TestSize:
    def test_a_message_over_the_limit_is_refused_whatever_it_holds(self) -> None:
        body = raw(envelope(actor="x" * 64))
        with pytest.raises(MessageTooLarge, match=f"has {len(body)} bytes.*at most 100 bytes") as e:
            decode_event(body, WireLimits(max_bytes=100))
        assert e.value.code == "message-too-large"

    def test_the_size_is_checked_first(self) -> None:
        with pytest.raises(MessageTooLarge):
            check_bytes(b"\xff" + nested(100), WireLimits(max_bytes=50))

    def test_the_default_limit_takes_a_large_envelope(self) -> None:
        assert DEFAULT_LIMITS == WireLimits(max_bytes=65536, max_depth=32)
        doc = envelope(type="cn.smd.patient.registered.v1", data={"name": "x" * 200, "residence": "r" * 64})
        decode_event(raw(doc))


class TestDuplicateKeys:
    def test_a_duplicate_envelope_attribute_is_refused_naming_it(self) -> None:
        body = raw(envelope()).replace(b'"source": "hc-east"', b'"source": "hc-east", "source": "hc-west"')
        with pytest.raises(DuplicateKey, match="'source' more than once") as e:
            decode_event(body)
        assert e.value.code == "duplicate-key"

    def test_a_duplicate_inside_data_is_refused(self) -> None:
        body = raw(envelope()).replace(b'"risk_level": 4', b'"risk_level": 4, "risk_level": 1')
        with pytest.raises(DuplicateKey, match="risk_level"):
            decode_event(body)

    def test_escaped_spellings_of_the_same_member_are_duplicates(self) -> None:
        body = raw(envelope()).replace(b'"risk_level": 4', b'"risk_level": 4, "risk_\\u006cevel": 1')
        with pytest.raises(DuplicateKey):
            decode_event(body)

    def test_the_same_member_in_different_objects_is_fine(self) -> None:
        doc = envelope(
            type="cn.smd.suspected-case.reported.v1",
            data={
                "observed": "seen",
                "seen_in": "990101-001-v01",
                "person": {"name": "A"},
                "reporter": {"name": "B", "phone": "1"},
            },
        )
        decode_event(raw(doc))

    def test_a_duplicate_in_any_json_body_is_refused(self) -> None:
        with pytest.raises(DuplicateKey, match="'id_number'"):
            check_json_body(b'{"id_number": "1", "id_number": "2"}')
        check_json_body(b'{"id_number": "1"}')

    def test_a_non_ascii_member_name_is_shown_escaped(self) -> None:
        with pytest.raises(DuplicateKey, match=r"\\\\u59d3"):
            check_json_body('{"姓": 1, "姓": 2}'.encode())

    def test_malformed_json_is_left_to_the_decoder_to_report(self) -> None:
        check_json_body(b'{"a": 1, "a": ')  # no DuplicateKey: the decoder says what is wrong
        with pytest.raises(ContractError, match="not valid JSON"):
            decode_event(b'{"specversion": "1.0", "specversion": ')

    def test_huge_numbers_do_not_trip_the_scan(self) -> None:
        check_json_body(b'{"n": ' + b"9" * 20_000 + b"}")


class TestEveryErrorIsAContractError:
    @pytest.mark.parametrize(
        "body",
        [nested(5000), b"\x80", b"x" * 70_000, b'{"a":1,"a":1}', b"", b"null", b"[]", b'"\\ud800"'],
    )
    def test_nothing_escapes_as_another_exception(self, body: bytes) -> None:
        with pytest.raises(ContractError) as e:
            decode_event(body)
        assert e.value.code in {
            "invalid-envelope",
            "invalid-utf8",
            "too-deeply-nested",
            "message-too-large",
            "duplicate-key",
        }


class TestSettings:
    def test_the_defaults_are_64_kib_and_depth_32(self, tmp_path) -> None:
        settings = load_settings({"SMD_DATA_DIR": str(tmp_path)})
        assert settings.wire_limits == WireLimits(max_bytes=65536, max_depth=32)
        assert (settings.auth_failures_per_address, settings.auth_failures_per_key) == ("20/minute", "10/minute")

    def test_the_limits_are_taken_from_the_environment(self, tmp_path) -> None:
        env = {
            "SMD_DATA_DIR": str(tmp_path),
            "SMD_MAX_MESSAGE_BYTES": "8192",
            "SMD_MAX_JSON_DEPTH": "8",
            "SMD_AUTH_FAILURES_PER_ADDRESS": "100 per hour",
            "SMD_AUTH_FAILURES_PER_KEY": "3/second",
        }
        settings = load_settings(env)
        assert settings.wire_limits == WireLimits(max_bytes=8192, max_depth=8)
        assert (settings.auth_failures_per_address, settings.auth_failures_per_key) == ("100 per hour", "3/second")

    @pytest.mark.parametrize(
        ("var", "value"),
        [
            ("SMD_MAX_MESSAGE_BYTES", "100"),
            ("SMD_MAX_MESSAGE_BYTES", "64k"),
            ("SMD_MAX_MESSAGE_BYTES", str(2 * 1024 * 1024)),
            ("SMD_MAX_JSON_DEPTH", "1"),
            ("SMD_MAX_JSON_DEPTH", "1000"),
            ("SMD_AUTH_FAILURES_PER_ADDRESS", "20"),
            ("SMD_AUTH_FAILURES_PER_KEY", "0/minute"),
            ("SMD_AUTH_FAILURES_PER_KEY", "often"),
        ],
    )
    def test_a_bad_value_stops_start_up_naming_the_variable(self, tmp_path, var: str, value: str) -> None:
        with pytest.raises(SettingsError, match=rf"^{var}: "):
            load_settings({"SMD_DATA_DIR": str(tmp_path), var: value})


class TestTheIntakeNamesUnreadableBytesBySequence:
    @pytest.mark.parametrize("body", [nested(5000), b'{"id": "\xff"}', b"x" * 70_000])
    def test_the_correlation_id_of_unreadable_bytes_is_the_stream_sequence(self, body: bytes) -> None:
        assert correlation_id(body, 42) == "seq:42"

    def test_a_readable_envelope_is_named_by_its_source_and_id(self) -> None:
        doc = envelope()
        assert correlation_id(raw(doc), 42) == f"hc-east:{doc['id']}"
