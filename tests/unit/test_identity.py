"""ID numbers (GB 11643-1999), provisional identities and the blind index, without a store."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from uuid import NAMESPACE_URL, uuid4, uuid5

import pytest

from api.problems import status_for
from core.blind_index import ALG, BlindIndex
from core.contract import IdentityConfirmedV1, PatientRegisteredUnidentifiedV1, decode_event
from domain.access import MAY_RECORD, may_search_by_id_number
from domain.identity import (
    ID_NUMBER_MARKER_NAMESPACE,
    PROVINCE_CODES,
    check_character,
    id_number_marker_id,
    validate_id_number,
)
from domain.identity_errors import (
    IdentityAlreadyKnown,
    IdNumberAdminCodeInvalid,
    IdNumberAlreadyRegistered,
    IdNumberBirthDateInvalid,
    IdNumberChecksumInvalid,
    IdNumberInvalid,
    IdNumberMalformed,
)
from domain.patient import Patient
from domain.personal import PersonalDetails, ProvisionalIdentity
from domain.registry import AgencyKind
from domain.values import Provenance
from tests.support.id_numbers import fictional_id_number, mod11_2, with_x_check

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
TODAY = date(2026, 11, 20)
VALID = fictional_id_number(date(1980, 1, 1), 1)
WRONG_CHECK = VALID[:17] + ("0" if VALID[17] != "0" else "1")


def with_check(first17: str) -> str:
    return first17 + mod11_2(first17)


def by(agency: str = "civil-east", n: int = 1, occurred: datetime = NOW - timedelta(hours=1)) -> Provenance:
    return Provenance(agency_id=agency, staff_id="s-01", occurred_at=occurred, message_id=f"{agency}:{n}")


class TestValidIdNumbers:
    def test_a_fictional_number_with_its_check_digit_is_accepted_as_it_is(self) -> None:
        assert validate_id_number(VALID, TODAY) == VALID

    def test_a_lower_case_x_and_surrounding_spaces_are_normalised(self) -> None:
        number = with_x_check()
        assert validate_id_number(f"  {number.lower()} ", TODAY) == number

    def test_the_check_character_matches_the_worked_example_of_the_standard(self) -> None:
        # GB 11643-1999's own example body (not a person's number) has the check character X
        assert check_character("11010519491231002") == "X"

    @pytest.mark.parametrize("province", sorted(PROVINCE_CODES))
    def test_every_province_level_code_is_accepted(self, province: str) -> None:
        number = fictional_id_number(province=province)
        assert validate_id_number(number, TODAY) == number

    def test_a_person_born_today_in_china_is_accepted(self) -> None:
        assert validate_id_number(fictional_id_number(TODAY), TODAY)


class TestInvalidIdNumbers:
    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "11990119800101001",
            "1199011980010100123",
            "11990119800101001-",
            "X19901198001010012",
            "119901198001010X12",
            "１１９９０１" + VALID[6:],
        ],
    )
    def test_a_number_that_is_not_17_digits_and_a_digit_or_x_is_malformed(self, raw: str) -> None:
        with pytest.raises(IdNumberMalformed, match=r"17 digits \(0-9, half-width\), then a digit or X"):
            validate_id_number(raw, TODAY)

    def test_the_malformed_message_says_how_many_characters_were_sent(self) -> None:
        with pytest.raises(IdNumberMalformed, match="has 17 characters; a resident ID number is 18 characters"):
            validate_id_number("11990119800101001", TODAY)

    def test_the_malformed_message_points_at_a_character_when_the_length_is_right(self) -> None:
        with pytest.raises(IdNumberMalformed, match="has a character that is not allowed"):
            validate_id_number("119901198001010X12", TODAY)

    @pytest.mark.parametrize("province", ["99", "00", "10", "16", "20", "24", "38", "47", "55", "66", "72", "83", "90"])
    def test_a_code_that_is_no_province_is_refused_naming_the_administrative_code(self, province: str) -> None:
        expected = f"administrative code \\(digits 1-6\\) starts with {province}"
        with pytest.raises(IdNumberAdminCodeInvalid, match=expected):
            validate_id_number(fictional_id_number(province=province), TODAY)

    def test_our_demo_region_990101_is_not_a_place_of_birth_registration(self) -> None:
        with pytest.raises(IdNumberAdminCodeInvalid, match="where the holder was registered at birth"):
            validate_id_number(with_check("99010119800101001"), TODAY)

    @pytest.mark.parametrize("birth", ["19800230", "19801301", "19800001", "19800100", "20250229"])
    def test_a_birth_date_that_is_not_a_calendar_date_is_refused(self, birth: str) -> None:
        with pytest.raises(IdNumberBirthDateInvalid, match=r"birth date \(digits 7-14, YYYYMMDD\) is not a real"):
            validate_id_number(with_check(f"119901{birth}001"), TODAY)

    def test_a_birth_date_before_1900_is_refused(self) -> None:
        with pytest.raises(IdNumberBirthDateInvalid, match="is before 1900"):
            validate_id_number(with_check("11990118991231001"), TODAY)

    def test_a_birth_date_after_today_is_refused(self) -> None:
        with pytest.raises(IdNumberBirthDateInvalid, match="is in the future"):
            validate_id_number(fictional_id_number(TODAY + timedelta(days=1)), TODAY)

    @pytest.mark.parametrize("position", range(17))
    def test_a_mistyped_digit_is_caught_by_the_check_character(self, position: int) -> None:
        digits = list(VALID)
        digits[position] = str((int(digits[position]) + 1) % 10)
        typo = "".join(digits)
        try:
            validate_id_number(typo, TODAY)
        except IdNumberChecksumInvalid as e:
            assert "mistyped" in e.detail
        except (IdNumberAdminCodeInvalid, IdNumberBirthDateInvalid):
            pass  # the typo made the place or the date impossible: caught earlier, as it should be
        else:
            pytest.fail(f"a typo at position {position + 1} was accepted")

    def test_a_wrong_check_character_is_refused_with_advice_not_to_change_only_it(self) -> None:
        with pytest.raises(IdNumberChecksumInvalid, match="do not change only the last character"):
            validate_id_number(WRONG_CHECK, TODAY)

    @pytest.mark.parametrize("raw", [VALID[:17], "99" + VALID[2:], VALID[:10] + "13" + VALID[12:], WRONG_CHECK])
    def test_no_message_repeats_the_number(self, raw: str) -> None:
        with pytest.raises(IdNumberInvalid) as caught:
            validate_id_number(raw, TODAY)
        assert raw not in caught.value.detail and raw[:14] not in caught.value.detail
        assert status_for(caught.value.code) == 422 and caught.value.code.startswith("id-number-")


class TestUnidentifiedPatient:
    def unidentified(self) -> Patient:
        return Patient.register(
            uuid4(),
            by(),
            NOW,
            PersonalDetails(),
            "v-01",
            provisional=ProvisionalIdentity(label="man, about 40", found_at="bus station"),
        )

    def test_an_unidentified_person_is_registered_with_a_provisional_identity_and_no_id_number(self) -> None:
        patient = self.unidentified()
        assert patient.provisional == ProvisionalIdentity(label="man, about 40", found_at="bus station")
        assert not patient.id_number_known and patient.personal.id_number is None

    def test_a_confirmation_gives_the_real_name_and_id_number_and_keeps_where_the_person_was_found(self) -> None:
        patient = self.unidentified()
        patient.confirm_identity(
            by("police-east", 2), NOW, PersonalDetails(name="Test Person Zs", id_number=VALID.lower())
        )
        born = date(int(VALID[6:10]), int(VALID[10:12]), int(VALID[12:14]))  # the number's own digits
        assert patient.personal == PersonalDetails(name="Test Person Zs", id_number=VALID.upper(), birth_date=born)
        assert patient.id_number_known and patient.identity_confirmed_at == NOW - timedelta(hours=1)
        assert patient.provisional is not None and patient.provisional.found_at == "bus station"
        replayed = None
        for event in patient.collect_events():
            replayed = event.mutate(replayed)
        assert replayed is not None and replayed.personal == patient.personal

    def test_a_confirmation_with_an_invalid_number_records_nothing(self) -> None:
        patient = self.unidentified()
        with pytest.raises(IdNumberChecksumInvalid):
            patient.confirm_identity(
                by("police-east", 2), NOW, PersonalDetails(name="Test Person Zs", id_number=WRONG_CHECK)
            )
        assert patient.version == 1 and not patient.id_number_known

    def test_a_patient_registered_with_an_id_number_cannot_have_it_confirmed_again(self) -> None:
        patient = Patient.register(
            uuid4(), by("hc-east"), NOW, PersonalDetails(name="Test Person Ls", id_number=VALID), "v-01"
        )
        with pytest.raises(IdentityAlreadyKnown, match="already has an ID number"):
            patient.confirm_identity(by("police-east", 2), NOW, PersonalDetails(name="Test Person Ls", id_number=VALID))

    def test_a_registration_with_an_invalid_id_number_is_refused(self) -> None:
        with pytest.raises(IdNumberAdminCodeInvalid):
            Patient.register(
                uuid4(), by("hc-east"), NOW, PersonalDetails(name="Test Person Ls", id_number="99" + VALID[2:]), "v-01"
            )


class TestWhoMayDoWhat:
    def test_civil_affairs_may_register_only_unidentified_persons(self) -> None:
        civil = MAY_RECORD[AgencyKind.CIVIL_AFFAIRS]
        assert "cn.smd.patient.registered-unidentified.v1" in civil
        assert "cn.smd.patient.registered.v1" not in civil

    @pytest.mark.parametrize("kind", [AgencyKind.HEALTH_CENTER, AgencyKind.CIVIL_AFFAIRS, AgencyKind.POLICE_STATION])
    def test_the_health_center_civil_affairs_and_police_may_confirm_an_identity(self, kind: AgencyKind) -> None:
        assert "cn.smd.patient.identity-confirmed.v1" in MAY_RECORD[kind]

    @pytest.mark.parametrize("kind", list(AgencyKind))
    def test_committees_and_the_disabled_persons_federation_may_not_search_by_id_number(self, kind: AgencyKind) -> None:
        hidden = {AgencyKind.COMMITTEE, AgencyKind.DISABLED_PERSONS_FEDERATION, AgencyKind.DEPARTMENT}
        assert may_search_by_id_number(kind) is (kind not in hidden)

    def test_the_conflict_names_the_holder_only_to_a_caller_that_may_see_it(self) -> None:
        holder = uuid4()
        refused = IdNumberAlreadyRegistered(holder)
        assert str(holder) not in refused.detail and "already registered" in refused.detail
        assert str(holder) in refused.for_caller(True).detail
        assert str(holder) not in refused.for_caller(False).detail
        assert status_for(refused.code) == 409


class TestBlindIndex:
    key = bytes(range(32))

    def test_the_value_names_its_algorithm_and_does_not_contain_the_number(self) -> None:
        value = BlindIndex(self.key).index(VALID)
        assert value.startswith(f"{ALG}:") and VALID not in value and VALID[:14] not in value

    def test_a_lower_case_x_and_spaces_give_the_same_value(self) -> None:
        number = with_x_check()
        index = BlindIndex(self.key)
        assert index.index(f" {number.lower()}") == index.index(number)

    def test_another_key_gives_another_value(self) -> None:
        assert BlindIndex(self.key).index(VALID) != BlindIndex(bytes(32)).index(VALID)

    def test_the_marker_id_is_not_a_plain_uuid5_or_hash_of_the_number(self) -> None:
        marker = id_number_marker_id(BlindIndex(self.key).index(VALID))
        plain = {uuid5(ns, VALID) for ns in (ID_NUMBER_MARKER_NAMESPACE, NAMESPACE_URL)}
        assert marker not in plain
        assert marker.hex not in hashlib.sha256(VALID.encode()).hexdigest()

    def test_a_marker_id_needs_a_value_that_names_its_algorithm(self) -> None:
        with pytest.raises(ValueError, match="names its algorithm"):
            id_number_marker_id(VALID)


class TestIdentityEnvelopes:
    def envelope(self, event_type: str, data: str) -> str:
        return (
            f'{{"specversion":"1.0","id":"{uuid4()}","source":"civil-east","type":"{event_type}",'
            f'"subject":"{uuid4()}","time":"2026-11-20T09:00:00+08:00","data":{data}}}'
        )

    def test_an_unidentified_registration_needs_a_label_and_a_residence(self) -> None:
        event = decode_event(
            self.envelope(
                "cn.smd.patient.registered-unidentified.v1",
                '{"label":"woman, about 30","residence":"v-01","found_at":"market"}',
            )
        )
        assert isinstance(event, PatientRegisteredUnidentifiedV1) and event.data.name is None

    def test_a_confirmation_needs_an_id_number_and_a_name(self) -> None:
        event = decode_event(
            self.envelope("cn.smd.patient.identity-confirmed.v1", f'{{"id_number":"{VALID}","name":"Test Person Zs"}}')
        )
        assert isinstance(event, IdentityConfirmedV1)


class TestChineseAlgorithmsAreAvailable:
    """Crypto agility (docs/decisions/007): SM4 and SM3 through the installed `cryptography`.

    Not used yet; these tests say so loudly if a build without them is ever installed.
    """

    def test_sm4_gcm_gives_the_rfc_8998_test_vector(self) -> None:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        key, iv = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210"), bytes.fromhex("00001234567800000000ABCD")
        plain = bytes.fromhex(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
            "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
        )
        encryptor = Cipher(algorithms.SM4(key), modes.GCM(iv)).encryptor()
        encryptor.authenticate_additional_data(bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2"))
        cipher_text = encryptor.update(plain) + encryptor.finalize()
        assert cipher_text.hex().upper().startswith("17F399F08C67D5EE19D0DC9969C4BB7D")
        assert encryptor.tag.hex().upper() == "83DE3541E4C2B58177E065A9BF7B62EC"

    def test_sm3_gives_the_standards_abc_digest_and_works_in_hmac(self) -> None:
        from cryptography.hazmat.primitives import hashes, hmac

        digest = hashes.Hash(hashes.SM3())
        digest.update(b"abc")
        assert digest.finalize().hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        mac = hmac.HMAC(bytes(32), hashes.SM3())
        mac.update(b"abc")
        assert len(mac.finalize()) == 32
