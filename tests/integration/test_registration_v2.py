"""The birth date and the household region, on SQLite and PostgreSQL: a v2 registration and a
v2 identity confirmation through the shared intake path, the birth date sealed in storage, and
registrations stored before v3 of the event still loading, with the birth date of their ID
number."""

from __future__ import annotations

import json
from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from core.intake import accept
from core.registry import load_file
from domain.identity_errors import BirthDateDoesNotMatchIdNumber
from domain.personal import PersonalDetails
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.id_numbers import fictional_id_number
from tests.support.stores import NOW

HC, CIVIL, VILLAGE = "hc-north", "civil-willowbrook", "990101-001-v01"
BORN = date(1968, 2, 29)
NUMBER = fictional_id_number(BORN, 41)


def send(services, agency: str, event_type: str, subject: UUID, data: dict):
    doc = agency_envelope(agency, event_type, subject, data, occurred=NOW - timedelta(hours=2), actor=None)
    return accept(services.case_record, services.registry, doc, agency, "test")


@pytest.fixture
def region(services):
    load_file(services.case_record, DEMO_DISTRICT)
    return services


class TestRegisteredV2:
    def test_the_birth_date_and_household_region_are_on_file_and_the_birth_date_is_sealed(
        self, region, settings
    ) -> None:
        patient = uuid4()
        data = {
            "name": "Test Person",
            "residence": VILLAGE,
            "birth_date": "1968-02-29",
            "household_region": "370281",
            "id_number": NUMBER,
        }
        assert send(region, HC, "cn.smd.patient.registered.v2", patient, data).outcome == "recorded"
        p = region.case_record.patient(patient)
        assert (p.birth_date, p.household_region) == (BORN, "370281")
        from tests.integration.test_no_plaintext import stored_bytes

        assert b"1968-02-29" not in stored_bytes(settings)

    def test_a_birth_date_that_disagrees_with_the_id_number_is_refused(self, region) -> None:
        data = {
            "name": "Test Person",
            "residence": VILLAGE,
            "birth_date": "1968-03-01",
            "household_region": "370281",
            "id_number": NUMBER,
        }
        with pytest.raises(BirthDateDoesNotMatchIdNumber):
            send(region, HC, "cn.smd.patient.registered.v2", uuid4(), data)

    def test_a_v1_registration_is_still_taken_with_the_birth_date_of_its_id_number(self, region) -> None:
        patient = uuid4()
        data = {"name": "Test Person", "residence": VILLAGE, "id_number": NUMBER}
        send(region, HC, "cn.smd.patient.registered.v1", patient, data)
        p = region.case_record.patient(patient)
        assert (p.birth_date, p.household_region) == (BORN, None)

    def test_a_v2_identity_confirmation_brings_both(self, region) -> None:
        patient = uuid4()
        send(
            region,
            CIVIL,
            "cn.smd.patient.registered-unidentified.v1",
            patient,
            {"label": "man, about 50", "residence": VILLAGE},
        )
        confirmed = {"id_number": NUMBER, "name": "Test Person", "household_region": "350582"}
        send(region, CIVIL, "cn.smd.patient.identity-confirmed.v2", patient, confirmed)
        p = region.case_record.patient(patient)
        assert (p.birth_date, p.household_region, p.id_number_known) == (BORN, "350582", True)


class TestStoredBefore:
    @pytest.mark.parametrize("class_version", [1, 2])
    def test_a_registration_stored_before_loads_with_the_birth_date_of_its_id_number(
        self, services, class_version
    ) -> None:
        record, patient = services.case_record, uuid4()
        sealed = record.mapper.seal(patient, PersonalDetails(name="Test Person", id_number=NUMBER))
        state = {
            "timestamp": {"_type_": "datetime_iso", "_data_": "2026-11-01T00:00:00+00:00"},
            "originator_topic": "smd.Patient",
            "agency_id": HC,
            "staff_id": None,
            "occurred_at": {"_type_": "datetime_iso", "_data_": "2026-10-01T00:00:00+00:00"},
            "message_id": f"{HC}:{uuid4()}",
            "personal": sealed,
            "residence": VILLAGE,
            "diagnosis": None,
        }
        if class_version == 2:  # as stored between the provisional identity and the birth date
            state |= {"provisional": None, "class_version": 2}
        row = StoredEvent(
            originator_id=patient,
            originator_version=1,
            topic="smd.PatientRegistered",
            state=json.dumps(state).encode(),
        )
        record.recorder.insert_events([row])
        p = record.patient(patient)
        assert (p.personal.name, p.birth_date, p.personal.birth_date, p.household_region) == (
            "Test Person",
            BORN,
            BORN,
            None,
        )
