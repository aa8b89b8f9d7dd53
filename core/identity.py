"""Registration and identity confirmation with the one-patient-per-ID-number marker, and the
name-and-birth-date marker a search by name goes through.

The case record's ``_decide`` calls these: each returns the aggregates to save in one
``save()`` (the patient and, when an ID number is known, its marker). A second claim of the
same number conflicts on the marker's first version, the whole batch is refused, and the retry
finds the marker and refuses with ``IdNumberAlreadyRegistered`` (which names no patient until
``core.intake`` knows the caller may see it).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

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
from domain.identity import (
    IdNumberMarker,
    NameMarker,
    china_today,
    id_number_marker_id,
    name_marker_id,
    normalise_name,
    validate_id_number,
)
from domain.identity_errors import IdNumberAlreadyRegistered, IdNumberBirthDateInvalid, NameInvalid
from domain.patient import Patient, identity_checked
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
        if not marker.retired:  # a retired marker's holder was erased: it answers nothing
            found.append(marker.patient_id)
    return found


def find_by_id_number(record: CaseRecord, id_number: str, now: datetime) -> list[UUID]:
    """Search: the ids of patients holding ``id_number`` (validated first, so typos say where)."""
    return holders(record, validate_id_number(id_number, china_today(now)))


def find_by_name(record: CaseRecord, name: str, birth_date: date, now: datetime) -> list[UUID]:
    """Search: the ids of patients whose name and birth date are these (through the keyed name
    index; each candidate's own file decides, so a name since corrected or erased is not found)."""
    wanted = normalise_name(name)
    if birth_date > china_today(now):
        raise IdNumberBirthDateInvalid("is in the future")
    found: list[UUID] = []
    for value in blind_index(record).all_name_indexes(wanted, birth_date):
        try:
            marker: NameMarker = record.repository.get(name_marker_id(value))
        except AggregateNotFoundError:
            continue
        for patient_id in marker.patient_ids:
            if patient_id in found:
                continue
            try:
                patient: Patient = record.repository.get(patient_id)
            except AggregateNotFoundError:
                continue
            known = patient.personal.name
            if known is not None and patient.birth_date == birth_date and normalise_name(known) == wanted:
                found.append(patient_id)
    return found


def name_claims(record: Any, patient: Patient, by: Provenance, now: datetime) -> list[Any]:
    """The name marker to save beside ``patient`` (none without both a name and a birth date, or
    when the patient is already under it): what makes the patient findable by name."""
    name, born = patient.personal.name, patient.birth_date
    if not name or born is None:
        return []
    try:
        value = blind_index(record).name_index(name, born)
    except NameInvalid:  # a name that normalises to nothing (or too long) is simply not searchable
        return []
    try:
        marker: NameMarker = record.repository.get(name_marker_id(value))
    except AggregateNotFoundError:
        return [NameMarker.claim(value, patient.id, agency_id=by.agency_id, message_id=by.message_id, now=now)]
    return [marker] if marker.also(patient.id, agency_id=by.agency_id, message_id=by.message_id, now=now) else []


#: Who the markers added by ``index_names`` name as their author (no agency asked for them).
REINDEX_AGENT = "smd-operator"


def index_names(record: CaseRecord, now: datetime, batch: int = 500) -> int:
    """Put every patient registered or identified before name search existed under its name
    marker (patients already under it are left alone); the number of markers written. Safe to
    run again, and while the service runs (a marker changed meanwhile is read again)."""
    topics = (Patient.Registered.TOPIC, Patient.IdentityConfirmed.TOPIC)
    seen: set[UUID] = set()
    written, start = 0, 1
    while True:
        page = record.recorder.select_notifications(start, batch, topics=topics)
        for notification in page:
            patient_id = notification.originator_id
            if patient_id in seen:
                continue
            seen.add(patient_id)
            by = Provenance(REINDEX_AGENT, None, now, f"{REINDEX_AGENT}:index-names:{patient_id}")
            for _attempt in range(5):
                try:
                    markers = name_claims(record, record.repository.get(patient_id), by, now)
                    if markers:
                        record.save(*markers)
                        written += len(markers)
                    break
                except IntegrityError:
                    continue  # a registration of the same name and birth date got there first
        if len(page) < batch:
            return written
        start = page[-1].id + 1


def _claim(record: CaseRecord, number: str, patient_id: UUID, by: Provenance, now: datetime) -> IdNumberMarker:
    existing = holders(record, number)
    if existing:
        raise IdNumberAlreadyRegistered(existing[0])
    value = blind_index(record).index(number)
    retired = _marker(record, value)
    if retired is not None:  # its holder was erased: the number is free, on the same marker
        retired.reclaim(patient_id, agency_id=by.agency_id, message_id=by.message_id, now=now)
        return retired
    return IdNumberMarker.claim(value, patient_id, agency_id=by.agency_id, message_id=by.message_id, now=now)


def _marker(record: CaseRecord, value: str) -> IdNumberMarker | None:
    try:
        found = record.repository.get(id_number_marker_id(value))
    except AggregateNotFoundError:
        return None
    return found if isinstance(found, IdNumberMarker) else None


def markers_held(record: CaseRecord, id_number: str, patient_id: UUID) -> list[IdNumberMarker]:
    """The live markers of ``id_number`` held by ``patient_id`` (every index algorithm): what an
    erasure retires."""
    found = (_marker(record, value) for value in blind_index(record).all_indexes(id_number))
    return [m for m in found if m is not None and not m.retired and m.patient_id == patient_id]


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
    names = name_claims(record, patient, by, now)
    if number is None:
        return [patient, *names]
    return [patient, _claim(record, number, patient.id, by, now), *names]


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
    return [patient, _claim(record, number, patient.id, by, now), *name_claims(record, patient, by, now)]


def reregister(
    record: Any,
    patient: Patient,
    by: Provenance,
    now: datetime,
    *,
    handover_id: UUID,
    origin_region: str,
    residence: str,
    personal: PersonalDetails,
    household_region: str | None,
) -> list[Any]:
    """A deregistered patient registered again on the same stream (a move back), with what a
    registration saves beside it: the marker of its ID number (kept from the first registration
    unless erasure retired it, then reclaimed; a number now held by another patient refuses the
    whole) and its name marker for the details now on file."""
    before = patient.personal.id_number
    patient.reregister(
        by,
        now,
        handover_id=handover_id,
        origin_region=origin_region,
        residence=residence,
        personal=identity_checked(personal, now),
        household_region=household_region,
    )
    out: list[Any] = [patient]
    number = patient.personal.id_number
    if number is not None and (number != before or patient.id not in holders(record, number)):
        out.append(_claim(record, number, patient.id, by, now))
    return out + name_claims(record, patient, by, now)
