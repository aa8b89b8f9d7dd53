"""Suspected cases: load, decide and hand back what to save, for ``CaseRecord._decide``.

The registration of a case saves the case and the patient together: the case records the
patient id and the patient records ``PatientLinkedToSuspectedCase``, in one ``save()``, so the
link exists both ways or not at all. The patient is registered first through
``cn.smd.patient.registered.v1`` with its own id.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from msgspec.structs import asdict

from core.contract import (
    SUSPECTED_CASE_EVENTS,
    SuspectedCaseAssessedV1,
    SuspectedCaseDismissedV1,
    SuspectedCaseRegisteredV1,
    SuspectedCaseReportedV1,
)
from domain.patient import Patient
from domain.personal import CaseReporter, SuspectedPerson
from domain.suspected_case import (
    PatientToLinkNotFound,
    SuspectedCase,
    SuspectedCaseAlreadyReported,
    SuspectedCaseNotFound,
)
from domain.values import Provenance

if TYPE_CHECKING:
    from core.case_record import CaseRecord

EVENTS: frozenset[type] = frozenset(SUSPECTED_CASE_EVENTS)


def load(record: CaseRecord, case_id: UUID) -> SuspectedCase:
    """The suspected case, or SuspectedCaseNotFound."""
    try:
        case = record.repository.get(case_id)
    except AggregateNotFoundError:
        raise SuspectedCaseNotFound(case_id) from None
    if not isinstance(case, SuspectedCase):
        raise SuspectedCaseNotFound(case_id)
    return case


def _patient(record: CaseRecord, patient_id: UUID) -> Patient:
    try:
        patient = record.repository.get(patient_id)
    except AggregateNotFoundError:
        raise PatientToLinkNotFound(patient_id) from None
    if not isinstance(patient, Patient):
        raise PatientToLinkNotFound(patient_id)
    return patient


def _taken(record: CaseRecord, aggregate_id: UUID) -> bool:
    try:
        record.repository.get(aggregate_id)
    except AggregateNotFoundError:
        return False
    return True


def decide(record: CaseRecord, event: Any, by: Provenance, now: datetime) -> list[Any]:
    """Call the domain for one suspected-case message; return the aggregates to save."""
    match event:
        case SuspectedCaseReportedV1(data=d):
            if _taken(record, event.subject):
                raise SuspectedCaseAlreadyReported(event.subject)
            person = SuspectedPerson(observed=d.observed, **(asdict(d.person) if d.person else {}))
            reporter = CaseReporter(**asdict(d.reporter)) if d.reporter else None
            return [SuspectedCase.report(event.subject, by, now, seen_in=d.seen_in, person=person, reporter=reporter)]
        case SuspectedCaseAssessedV1(data=d):
            case = load(record, event.subject)
            case.assess(by, now, outcome=d.outcome, note=d.note)
            return [case]
        case SuspectedCaseRegisteredV1(data=d):
            case = load(record, event.subject)
            case.register_as_patient(by, now, patient_id=d.patient_id)  # the case's rules first
            patient = _patient(record, d.patient_id)
            patient.link_suspected_case(by, now, suspected_case_id=case.id)
            return [case, patient]
        case SuspectedCaseDismissedV1(data=d):
            case = load(record, event.subject)
            case.dismiss(by, now, reason=d.reason, note=d.note)
            return [case]
    raise TypeError(f"not a suspected-case event: {type(event).__name__}")  # pragma: no cover
