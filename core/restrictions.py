"""Restriction of a patient's (or a dismissed suspected case's) data: the one check every read,
the door and the followers call, and the request and approval commands.

The check (``hidden_from``, ``is_restricted``, ``restricted_among``) reads the subjects'
``Restriction`` aggregates from the case record in one query, never a cache: an approval is
seen by the next read. Only the auditor reads past a restriction (DESIGN.md section 4).

Commands follow the application shape: load, call the aggregates, save both in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from core.case_record import CaseRecord, ConcurrentWriteConflict
from domain.errors import PatientNotFound
from domain.patient import Patient
from domain.patient_file import DeregistrationReason
from domain.personal import text_of
from domain.restriction import (
    AUDITOR,
    NotRestricted,
    PatientRestricted,
    PatientUnderManagement,
    Restriction,
    RestrictionAct,
    RestrictionRequest,
    RestrictionRequestNotFound,
    RetentionApplies,
    SubjectKind,
    restriction_id,
)
from domain.suspected_case import SuspectedCase

#: SMD_ERASURE_COOLING_OFF_DAYS's default: an approved erasure is carried out 30 days later
DEFAULT_COOLING_OFF = timedelta(days=30)

# -- the check ----------------------------------------------------------------------------------------


def restricted_among(case_record: CaseRecord, subject_ids: Iterable[UUID]) -> frozenset[UUID]:
    """Which of these patients (or suspected cases) are restricted now: one query."""
    subjects = [s for s in dict.fromkeys(subject_ids) if s is not None]
    if not subjects:
        return frozenset()
    restrictions = [restriction_id(s) for s in subjects]  # distinct, as the subjects are
    found = case_record.load_many(restrictions, distinct=True)
    if not found:  # no restriction was ever requested for any of them: the usual page
        return frozenset()
    return frozenset(
        s for s, r in zip(subjects, restrictions, strict=True) if getattr(found.get(r), "restricted", False)
    )


def is_restricted(case_record: CaseRecord, subject_id: UUID) -> bool:
    """Whether this patient (or suspected case) is restricted now."""
    return subject_id in restricted_among(case_record, (subject_id,))


def hidden_from(kind: str, case_record: CaseRecord, subject_ids: Iterable[UUID]) -> frozenset[UUID]:
    """The patients a read by ``kind`` must refuse or leave out: the restricted ones, for every
    kind but the auditor. Lists call it once per page with the page's patient ids."""
    if kind == AUDITOR:
        return frozenset()
    return restricted_among(case_record, subject_ids)


def check_not_restricted(case_record: CaseRecord, subject_ids: Collection[UUID]) -> None:
    """The door: refuse a new fact about a restricted patient (``patient-restricted``)."""
    check_not_restricted_in(restricted_among(case_record, subject_ids), subject_ids)


def check_not_restricted_in(restricted: Collection[UUID], subject_ids: Iterable[UUID]) -> None:
    """``check_not_restricted`` against a set already read (a batch reads it once)."""
    for s in subject_ids:
        if s in restricted:
            raise PatientRestricted(s)


def subjects_of(event: Any) -> tuple[UUID, ...]:
    """The patients and suspected cases an inbound fact is about: its subject, and the patient
    its data names (a task about a patient, a suspected case registered as a patient)."""
    named = getattr(getattr(event, "data", None), "patient_id", None)
    return tuple(s for s in (getattr(event, "subject", None), named) if isinstance(s, UUID))


# -- the commands ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requester:
    """Who acts: the agency, its kind, the API key that authenticated it, the asserted staff id."""

    agency_id: str
    kind: str
    key_id: str
    staff_id: str | None = None


@dataclass(frozen=True, slots=True)
class RequestView:
    """A request as the auditor lists it (its reasons unsealed: the auditor sees everything)."""

    request_id: UUID
    subject_id: UUID
    subject_kind: str
    act: str
    requested_by: str
    requested_at: datetime
    request_reason: str | None
    approved_by: str | None
    approved_at: datetime | None
    approval_reason: str | None
    restricted_now: bool
    erase_after: datetime | None = None  # an approved erasure: when the key is destroyed
    erased_at: datetime | None = None


def _subject_kind(case_record: CaseRecord, subject_id: UUID) -> SubjectKind:
    """The subject's kind, checking it is off the register (deregistered, or a dismissed case)."""
    try:
        found = case_record.repository.get(subject_id)
    except AggregateNotFoundError:
        raise PatientNotFound(subject_id) from None
    if isinstance(found, Patient):
        if found.deregistered_at is None:
            raise PatientUnderManagement(subject_id)
        return SubjectKind.PATIENT
    if isinstance(found, SuspectedCase):
        if found.dismissal_reason is None:
            raise PatientUnderManagement(subject_id)
        return SubjectKind.SUSPECTED_CASE
    raise PatientNotFound(subject_id)


def _erasable(case_record: CaseRecord, subject_id: UUID) -> SubjectKind:
    """The subject's kind, checking no retention applies: a registration made in error, or a
    dismissed suspected case (``retention-applies`` otherwise)."""
    kind = _subject_kind(case_record, subject_id)  # off the register, at least
    if kind == SubjectKind.PATIENT:
        patient = case_record.repository.get(subject_id)
        if patient.deregistration_reason != DeregistrationReason.REGISTERED_IN_ERROR:
            raise RetentionApplies(subject_id)
    return kind


def _eligible(case_record: CaseRecord, subject_id: UUID, act: RestrictionAct) -> SubjectKind | None:
    if act == RestrictionAct.RESTRICT:
        return _subject_kind(case_record, subject_id)
    if act == RestrictionAct.ERASE:
        return _erasable(case_record, subject_id)
    return None


def _restriction(case_record: CaseRecord, subject_id: UUID) -> Restriction | None:
    try:
        return case_record.repository.get(restriction_id(subject_id))  # type: ignore[no-any-return]
    except AggregateNotFoundError:
        return None


def request(
    case_record: CaseRecord, subject_id: UUID, act: RestrictionAct, by: Requester, reason: str
) -> RestrictionRequest:
    """File a request to restrict, lift or erase; refused when the act could not be approved now."""
    kind = _eligible(case_record, subject_id, act)
    current = _restriction(case_record, subject_id)
    if current is not None:
        current.check_may_take(act)
    elif act == RestrictionAct.LIFT:
        raise NotRestricted(subject_id)
    if kind is None:
        kind = SubjectKind(current.subject_kind) if current is not None else SubjectKind.PATIENT
    filed = RestrictionRequest.file(
        uuid4(), subject_id, kind, act, by.agency_id, by.kind, by.key_id, by.staff_id, reason, case_record.clock()
    )
    case_record.save(filed)
    return filed


def approve(
    case_record: CaseRecord,
    request_id: UUID,
    by: Requester,
    reason: str,
    cooling_off: timedelta = DEFAULT_COOLING_OFF,
) -> RestrictionRequest:
    """Approve a request: the act takes effect in the same transaction (an erasure is carried out
    by ``core.erasure`` once ``cooling_off`` has passed; the subject is restricted meanwhile)."""
    for _ in range(case_record.max_attempts):
        now = case_record.clock()
        filed = load_request(case_record, request_id)
        act = RestrictionAct(filed.act)
        restriction = _restriction(case_record, filed.subject_id)
        _eligible(case_record, filed.subject_id, act)  # still off the register, still no retention
        filed.approve(by.agency_id, by.kind, by.key_id, by.staff_id, reason, now)
        if restriction is None:
            restriction = Restriction.open(filed.subject_id, SubjectKind(filed.subject_kind), now)
        restriction.take(act, request_id, now, cooling_off)
        try:
            case_record.save(filed, restriction)
        except IntegrityError:
            continue  # another approval or request landed meanwhile: decide again
        return filed
    raise ConcurrentWriteConflict(f"restriction-request:{request_id}", case_record.max_attempts)


def load_request(case_record: CaseRecord, request_id: UUID) -> RestrictionRequest:
    """The request, or ``restriction-request-not-found``."""
    try:
        found = case_record.repository.get(request_id)
    except AggregateNotFoundError:
        raise RestrictionRequestNotFound(request_id) from None
    if not isinstance(found, RestrictionRequest):
        raise RestrictionRequestNotFound(request_id)
    return found


def requests(case_record: CaseRecord, subject_id: UUID | None = None) -> list[RequestView]:
    """Every request (or one subject's), oldest first, with whether the subject is restricted now."""
    ids = case_record.originators_of(RestrictionRequest.Requested.TOPIC)
    loaded = [r for r in case_record.load_many(ids).values() if isinstance(r, RestrictionRequest)]
    if subject_id is not None:
        loaded = [r for r in loaded if r.subject_id == subject_id]
    states = case_record.load_many({restriction_id(r.subject_id) for r in loaded})
    by_subject = {s.subject_id: s for s in states.values() if isinstance(s, Restriction)}
    views = []
    for r in loaded:
        events = list(case_record.events.get(r.id))
        requested, approved = events[0], (events[1] if len(events) > 1 else None)
        views.append(
            RequestView(
                request_id=r.id,
                subject_id=r.subject_id,
                subject_kind=r.subject_kind,
                act=r.act,
                requested_by=r.requested_by,
                requested_at=r.created_on,
                request_reason=text_of(requested.reason),  # type: ignore[attr-defined]
                approved_by=r.approved_by,
                approved_at=r.approved_at,
                approval_reason=text_of(approved.reason) if approved is not None else None,  # type: ignore[attr-defined]
                restricted_now=getattr(by_subject.get(r.subject_id), "restricted", False),
                erase_after=getattr(by_subject.get(r.subject_id), "erase_after", None) if r.act == "erase" else None,
                erased_at=getattr(by_subject.get(r.subject_id), "erased_at", None) if r.act == "erase" else None,
            )
        )
    return sorted(views, key=lambda v: (v.requested_at, str(v.request_id)))


def restricted_subjects(case_record: CaseRecord) -> frozenset[UUID]:
    """Every subject restricted now (a follower's starting set; one query for the restrictions)."""
    ids = case_record.originators_of(Restriction.Opened.TOPIC)
    found = case_record.load_many(ids)
    return frozenset(r.subject_id for r in found.values() if getattr(r, "restricted", False))
