"""Registration and identity confirmation with the one-patient-per-ID-number marker.

The case record's ``_decide`` calls these: each returns the aggregates to save in one
``save()`` (the patient and, when an ID number is known, its marker). A second claim of the
same number conflicts on the marker's first version, the whole batch is refused, and the retry
finds the marker and refuses with ``IdNumberAlreadyRegistered`` (which names no patient until
``core.intake`` knows the caller may see it).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from core.blind_index import BlindIndex
from core.contract import (
    IdentityConfirmedV1,
    IdentityConfirmedV2,
    IdentityConfirmedV2Data,
    PatientRegisteredUnidentifiedV1,
    PatientRegisteredV1,
    PatientRegisteredV2,
    PatientRegisteredV2Data,
)
from domain.identity import IdNumberMarker, china_today, id_number_marker_id, validate_id_number
from domain.identity_errors import IdNumberAlreadyRegistered
from domain.patient import Patient
from domain.personal import PersonalDetails, ProvisionalIdentity
from domain.values import Provenance

if TYPE_CHECKING:
    from core.case_record import CaseRecord


def blind_index(record: CaseRecord) -> BlindIndex:
    """The blind index under the record's key (derived per call: one HMAC, no state to share)."""
    return BlindIndex(record.digest_key)


def holders(record: CaseRecord, id_number: str) -> list[UUID]:
    """Patients holding a (valid, normalised) ID number: markers under every index algorithm."""
    found: list[UUID] = []
    for value in blind_index(record).all_indexes(id_number):
        try:
            marker: IdNumberMarker = record.repository.get(id_number_marker_id(value))
        except AggregateNotFoundError:
            continue
        found.append(marker.patient_id)
    return found


def find_by_id_number(record: CaseRecord, id_number: str, now: datetime) -> list[UUID]:
    """Search: the ids of patients holding ``id_number`` (validated first, so typos say where)."""
    return holders(record, validate_id_number(id_number, china_today(now)))


def _claim(record: CaseRecord, number: str, patient_id: UUID, by: Provenance, now: datetime) -> IdNumberMarker:
    existing = holders(record, number)
    if existing:
        raise IdNumberAlreadyRegistered(existing[0])
    return IdNumberMarker.claim(
        blind_index(record).index(number), patient_id, agency_id=by.agency_id, message_id=by.message_id, now=now
    )


def register(
    record: CaseRecord, event: PatientRegisteredV1 | PatientRegisteredV2, by: Provenance, now: datetime
) -> list[Any]:
    """A patient, with the marker of its ID number when one is given (v1 states no birth date
    and no household region: the birth date is the ID number's, the region unknown)."""
    d = event.data
    born, region = (d.birth_date, d.household_region) if isinstance(d, PatientRegisteredV2Data) else (None, None)
    personal = PersonalDetails(name=d.name, id_number=d.id_number, phone=d.phone, address=d.address, birth_date=born)
    patient = Patient.register(event.subject, by, now, personal, d.residence, d.diagnosis, household_region=region)
    number = patient.personal.id_number  # validated and normalised by the domain
    if number is None:
        return [patient]
    return [patient, _claim(record, number, patient.id, by, now)]


def register_unidentified(
    record: CaseRecord, event: PatientRegisteredUnidentifiedV1, by: Provenance, now: datetime
) -> list[Any]:
    """A patient known only by a provisional identity (no ID number, so no marker yet)."""
    d = event.data
    provisional = ProvisionalIdentity(label=d.label, found_at=d.found_at, description=d.description)
    patient = Patient.register(
        event.subject, by, now, PersonalDetails(name=d.name), d.residence, d.diagnosis, provisional=provisional
    )
    return [patient]


def confirm(
    record: CaseRecord, event: IdentityConfirmedV1 | IdentityConfirmedV2, by: Provenance, now: datetime
) -> list[Any]:
    """The patient's confirmed identity and the marker of its ID number, saved together."""
    d = event.data
    born, region = (d.birth_date, d.household_region) if isinstance(d, IdentityConfirmedV2Data) else (None, None)
    patient = record.patient(event.subject)
    patient.confirm_identity(
        by,
        now,
        PersonalDetails(name=d.name, id_number=d.id_number, phone=d.phone, address=d.address, birth_date=born),
        household_region=region,
    )
    number = patient.personal.id_number
    assert number is not None  # confirm_identity refuses a confirmation without a valid number
    return [patient, _claim(record, number, patient.id, by, now)]
