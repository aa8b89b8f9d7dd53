"""The file's missing fields: the birth date (sealed with the other personal details) and the
household-registration region, in ``cn.smd.patient.registered.v2`` and
``cn.smd.patient.identity-confirmed.v2``; registrations stored before get the birth date their
ID number states when they are read."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import msgspec
import pytest

from core.contract import ContractError, IdentityConfirmedV2, PatientRegisteredV2, decode_event
from domain.access import MAY_RECORD
from domain.identity import birth_date_of
from domain.identity_errors import BirthDateDoesNotMatchIdNumber, BirthDateInvalid
from domain.patient import Patient
from domain.personal import PersonalDetails, ProvisionalIdentity
from domain.registry import AgencyKind
from domain.values import Provenance
from tests.support.id_numbers import fictional_id_number

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
BORN = date(1975, 6, 30)
NUMBER = fictional_id_number(BORN, 7)


def by(agency: str = "hc-north") -> Provenance:
    return Provenance(agency, None, NOW - timedelta(hours=1), f"{agency}:{uuid4()}")


def envelope(event_type: str, data: dict) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid4()),
            "source": "hc-north",
            "type": event_type,
            "subject": str(uuid4()),
            "time": NOW.isoformat(),
            "data": data,
        }
    ).encode()


class TestTheContract:
    def test_a_v2_registration_needs_the_birth_date_and_a_six_digit_household_region(self) -> None:
        data = {"name": "Test Person", "residence": "990101-001-v01", "birth_date": "1975-06-30"}
        with pytest.raises(ContractError, match="household_region"):
            decode_event(envelope("cn.smd.patient.registered.v2", data))
        with pytest.raises(ContractError, match="household_region"):
            decode_event(envelope("cn.smd.patient.registered.v2", {**data, "household_region": "3702"}))
        event = decode_event(envelope("cn.smd.patient.registered.v2", {**data, "household_region": "370281"}))
        assert isinstance(event, PatientRegisteredV2)
        assert (event.data.birth_date, event.data.household_region) == (BORN, "370281")

    def test_a_v2_identity_confirmation_carries_the_household_region(self) -> None:
        data = {"id_number": NUMBER, "name": "Test Person", "household_region": "350582"}
        event = decode_event(envelope("cn.smd.patient.identity-confirmed.v2", data))
        assert isinstance(event, IdentityConfirmedV2) and event.data.birth_date is None

    def test_the_kinds_that_record_v1_record_v2(self) -> None:
        for kind, types in MAY_RECORD.items():
            assert ("cn.smd.patient.registered.v1" in types) == ("cn.smd.patient.registered.v2" in types), kind
            assert ("cn.smd.patient.identity-confirmed.v1" in types) == (
                "cn.smd.patient.identity-confirmed.v2" in types
            ), kind
        assert "cn.smd.patient.registered.v2" in MAY_RECORD[AgencyKind.PSYCHIATRIC_HOSPITAL]


class TestRegistration:
    def test_the_birth_date_is_the_id_numbers_and_the_household_region_is_kept(self) -> None:
        p = Patient.register(
            uuid4(), by(), NOW, PersonalDetails(name="Test Person", id_number=NUMBER), "v-01", household_region="370281"
        )
        assert (p.personal.birth_date, p.birth_date, p.household_region) == (BORN, BORN, "370281")

    def test_a_birth_date_that_disagrees_with_the_id_number_is_refused_without_echoing_either(self) -> None:
        wrong = PersonalDetails(name="Test Person", id_number=NUMBER, birth_date=date(1975, 7, 1))
        with pytest.raises(BirthDateDoesNotMatchIdNumber) as caught:
            Patient.register(uuid4(), by(), NOW, wrong, "v-01")
        assert NUMBER not in str(caught.value) and "1975" not in str(caught.value)

    def test_a_birth_date_without_an_id_number_must_be_a_plausible_day(self) -> None:
        Patient.register(uuid4(), by(), NOW, PersonalDetails(name="Test Person", birth_date=BORN), "v-01")
        for day in (date(2027, 1, 1), date(1899, 12, 31)):
            with pytest.raises(BirthDateInvalid):
                Patient.register(uuid4(), by(), NOW, PersonalDetails(name="Test Person", birth_date=day), "v-01")

    def test_a_confirmed_identity_brings_the_birth_date_and_the_household_region(self) -> None:
        p = Patient.register(
            uuid4(), by("civil-willowbrook"), NOW, PersonalDetails(), "v-01", provisional=ProvisionalIdentity(label="x")
        )
        assert p.birth_date is None and p.household_region is None
        p.confirm_identity(by(), NOW, PersonalDetails(name="Test Person", id_number=NUMBER), household_region="350582")
        assert (p.birth_date, p.household_region) == (BORN, "350582")


class TestUpcasting:
    def test_a_registration_stored_as_version_one_gets_the_birth_date_of_its_id_number(self) -> None:
        state = {"personal": PersonalDetails(name="Test Person", id_number=NUMBER)}
        Patient.Registered.upcast_v1_v2(state)
        Patient.Registered.upcast_v2_v3(state)
        assert state["personal"].birth_date == BORN
        assert (state["provisional"], state["household_region"]) == (None, None)

    def test_without_an_id_number_or_with_erased_details_nothing_is_guessed(self) -> None:
        for personal in (PersonalDetails(name="Test Person"), PersonalDetails(erased=True)):
            state = {"personal": personal, "provisional": None}
            Patient.Registered.upcast_v2_v3(state)
            assert state["personal"] == personal and state["household_region"] is None

    def test_an_identity_confirmation_stored_as_version_one_gets_the_birth_date_too(self) -> None:
        state = {"personal": PersonalDetails(name="Test Person", id_number=NUMBER)}
        Patient.IdentityConfirmed.upcast_v1_v2(state)
        assert (state["personal"].birth_date, state["household_region"]) == (BORN, None)

    def test_details_sealed_before_the_field_existed_decode(self) -> None:
        old = b'{"name":"Test Person","id_number":"' + NUMBER.encode() + b'"}'
        assert msgspec.json.decode(old, type=PersonalDetails).birth_date is None
        assert birth_date_of(NUMBER) == BORN and birth_date_of(None) is None and birth_date_of("11990119751399") is None
