"""Break the glass: granting emergency access, and listing the grants for review.

``grant`` checks who asks (not a department or an auditor), why (a reason), whom (a patient on
record, outside the caller's own reach), for how long (the region's default, at most its
longest) and how often (the day's cap, by numbered slots), then saves the grant on the patient's
stream and its slot in one transaction; the policy process then opens R22's review for the
governance center. ``grants`` pages through the recorded grants for the audit listing, each with
its review's state (the review fact, and R22's obligation: due, overdue, escalated).

The reason and the remarks are free text, sealed under the patient's key: they leave only
through ``grants``, to those the API lets see them. Nothing here logs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from core.case_record import CaseRecord, ConcurrentWriteConflict
from core.patient_read import reaches
from core.registry import REGION_TZ, RegistryView
from core.restrictions import hidden_from
from core.rule_settings_view import RuleSettingsView
from domain.emergency_access import (
    NO_EMERGENCY_ACCESS,
    EmergencyAccessCapReached,
    EmergencyAccessGranted,
    EmergencyAccessNeedsAReason,
    EmergencyAccessNotForKind,
    EmergencyAccessNotNeeded,
    EmergencyAccessSlot,
    EmergencyAccessTooLong,
    grant_id,
    grant_message_id,
)
from domain.jurisdiction import covers
from domain.patient import Patient
from domain.personal import text_of
from domain.read_filter import PatientNotVisible
from domain.registry import AgencyKind
from domain.rules.r22_emergency_access_review import review_id
from domain.rules.settings import RuleSettings
from domain.values import Provenance

GRANTED = EmergencyAccessGranted.TOPIC
MAX_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant as recorded (the reason is not here: it is read back only by ``grants``)."""

    grant_id: UUID
    patient_id: UUID
    agency_id: str
    key_id: str
    staff_id: str | None
    granted_at: datetime
    expires_at: datetime


def settings_on(rule_settings: RuleSettingsView | None, now: datetime) -> RuleSettings:
    """The region's rule settings in force today (the defaults when none are recorded)."""
    if rule_settings is None:
        return RuleSettings()
    return rule_settings.settings(now.astimezone(REGION_TZ).date())


def grant(
    case_record: CaseRecord,
    registry: RegistryView,
    settings: RuleSettings,
    *,
    kind: str,
    agency_id: str,
    key_id: str,
    staff_id: str | None,
    patient_id: UUID,
    reason: str,
    hours: float | None = None,
) -> Grant:
    """Record emergency access for the caller's agency to one patient (module docstring)."""
    if AgencyKind(kind) in NO_EMERGENCY_ACCESS:
        raise EmergencyAccessNotForKind(kind)
    if not reason.strip():
        raise EmergencyAccessNeedsAReason()
    longest = settings.r22_emergency_access_longest
    if hours is not None and not 0 < hours <= longest.total_seconds() / 3600:  # before timedelta can overflow
        raise EmergencyAccessTooLong(longest)
    length = settings.r22_emergency_access_hours if hours is None else timedelta(hours=hours)
    if not timedelta(0) < length <= longest:
        raise EmergencyAccessTooLong(longest)
    cap = settings.r22_emergency_access_per_agency_per_day
    if hidden_from(kind, case_record, (patient_id,)):  # restricted: no read, so no grant either
        raise PatientNotVisible()
    for _ in range(MAX_ATTEMPTS):
        now = case_record.clock()
        try:
            patient = case_record.repository.get(patient_id)
        except AggregateNotFoundError:
            raise PatientNotVisible() from None
        if not isinstance(patient, Patient):
            raise PatientNotVisible()
        if reaches(registry, kind, agency_id, patient, now):
            raise EmergencyAccessNotNeeded()
        day = now.astimezone(REGION_TZ).date()
        slots = [grant_id(agency_id, day, n) for n in range(1, cap + 1)]
        taken = case_record.existing(slots)
        free = next((n for n, s in enumerate(slots, start=1) if s not in taken), None)
        if free is None:
            raise EmergencyAccessCapReached(cap)
        slot = EmergencyAccessSlot.take(agency_id, day, free, patient_id, now)
        by = Provenance(agency_id, staff_id, now, grant_message_id(slot.id))
        patient.grant_emergency_access(by, now, grant=slot.id, key_id=key_id, reason=reason, hours=length)
        try:
            case_record.save(patient, slot)
        except IntegrityError:
            continue  # another grant took the slot, or the patient changed: look again
        return Grant(slot.id, patient_id, agency_id, key_id, staff_id, now, now + length)
    raise ConcurrentWriteConflict(f"emergency access to patient {patient_id}", MAX_ATTEMPTS)


@dataclass(frozen=True, slots=True)
class GrantRow:
    """A grant for the audit listing, with its review's state."""

    position: int
    grant_id: UUID
    patient_id: UUID
    agency_id: str
    key_id: str
    staff_id: str | None
    granted_at: datetime
    expires_at: datetime
    reason: str | None
    review: dict[str, Any]


def grants(
    case_record: CaseRecord,
    registry: RegistryView,
    *,
    area_of: str | None,
    after: int = 0,
    limit: int = 100,
    scan: int = 500,
) -> tuple[list[GrantRow], int | None]:
    """Recorded grants in log order after the cursor (a log position); only those of patients
    living in ``area_of``'s jurisdiction today when given (a governance center), and then none of
    a restricted patient. Returns the rows and the next cursor (None: the end)."""
    rows: list[GrantRow] = []
    cursor = after
    today = case_record.clock().astimezone(REGION_TZ).date()
    state = registry.state()
    patients: dict[UUID, Patient] = {}
    while len(rows) < limit:
        found = case_record.recorder.select_notifications(cursor + 1, scan, topics=[GRANTED])
        if not found:
            return rows, None
        reader = AgencyKind.AUDITOR if area_of is None else AgencyKind.GOVERNANCE_CENTER
        restricted = hidden_from(reader, case_record, {n.originator_id for n in found})
        for n in found:
            cursor = n.id
            if n.originator_id in restricted:
                continue
            patient = patients.get(n.originator_id)
            if patient is None:
                patient = patients[n.originator_id] = case_record.repository.get(n.originator_id)
            if area_of is not None and not covers(state, area_of, patient.residence, today):
                continue
            fact: Any = case_record.mapper.to_domain_event(n)
            rows.append(_row(case_record, n.id, patient, fact))
            if len(rows) == limit:
                break
    more = case_record.recorder.select_notifications(cursor + 1, 1, topics=[GRANTED])
    return rows, (cursor if more else None)


def _row(case_record: CaseRecord, position: int, patient: Patient, fact: Any) -> GrantRow:
    review = patient.emergency_review(fact.grant_id)
    try:
        obligation: Any = case_record.repository.get(review_id(patient.id, fact.grant_id))
    except AggregateNotFoundError:
        obligation = None  # not opened yet (the policy process is behind), or no governance center
    state: dict[str, Any] = {
        "outcome": None if review is None else review["outcome"],
        "reviewed_at": None if review is None else review["at"],
        "reviewed_by": None if review is None else review["by"],
        "remarks": None if review is None else text_of(review["remarks"]),
        "reviewer": None if obligation is None else obligation.assignee,
        "due_at": None if obligation is None else obligation.due_at,
        "overdue": False if obligation is None else obligation.overdue,
        "escalated_to": None if obligation is None else obligation.escalated_to,
    }
    return GrantRow(
        position=position,
        grant_id=fact.grant_id,
        patient_id=patient.id,
        agency_id=fact.agency_id,
        key_id=fact.key_id,
        staff_id=fact.staff_id,
        granted_at=fact.occurred_at,
        expires_at=fact.expires_at,
        reason=text_of(fact.reason),
        review=state,
    )
