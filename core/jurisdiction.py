"""Writes within jurisdiction, read from the case record (docs/decisions/014).

``check_within_jurisdiction`` is one step of ``core.intake.accept`` (after decoding, authorising
and the door, before recording), and the same check any later path runs before it records a
fact (a fact released after waiting for its patient included). It reads the subject's place
(the patient's residence, the suspected case's ``seen_in``) and what the exceptions need from
the case record, and lets ``domain.jurisdiction`` decide.

What it does not decide:
- a subject not on record yet: the fact goes on to recording, which answers as for any unknown
  subject; it is checked when the subject exists (a fact that waited for it, on release);
- a message already recorded (its receipt exists): it goes on to recording, which answers
  ``duplicate`` (or ``idempotency-key-reused``), so a redelivery is never turned into a refusal
  by a jurisdiction that changed since it was recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.application import AggregateNotFoundError

from core.case_record import CaseRecord
from core.contract import SUSPECTED_CASE_EVENTS, TaskAssignedV1
from core.registry import REGION_TZ, AgencyInfo
from domain.jurisdiction import (
    PLACE_IN_DATA,
    OutsideJurisdiction,
    Subject,
    Write,
    agencies_in,
    check_may_write,
    covers_then_or_now,
)
from domain.patient import Patient
from domain.receipt import receipt_id
from domain.registry import RegistryState
from domain.suspected_case import SuspectedCase
from domain.task import AssigneeDoesNotCoverThePlace

_SUSPECTED_CASE_EVENTS = frozenset(SUSPECTED_CASE_EVENTS)


def check_within_jurisdiction(
    case_record: CaseRecord, state: RegistryState, agency: AgencyInfo, event: Any, now: datetime
) -> None:
    """Refuse (``OutsideJurisdiction``, 403) a fact the agency may not record where the subject is.

    ``state``: the registry as recorded now; ``now``: the recording instant (today is its day in
    the region); the fact's day is its ``time`` in the region.
    """
    if isinstance(event, TaskAssignedV1):
        _check_task(case_record, state, agency, event, now)
        return
    data = event.data
    field = PLACE_IN_DATA.get(event.event_type)
    in_region = getattr(data, "destination_region", None) == state.region  # a move inside the region
    subject = None if field is not None else _subject(case_record, event)
    if field is None and subject is None:
        return  # not on record yet: recording answers (or the fact waits and is checked on release)
    write = Write(
        agency_id=agency.agency_id,
        kind=agency.kind,
        event_type=event.event_type,
        occurred_on=event.time.astimezone(REGION_TZ).date(),
        today=now.astimezone(REGION_TZ).date(),
        place_in_data=getattr(data, field) if field is not None else None,
        destination_unit=getattr(data, "destination_unit", None) if in_region else None,
        move_id=getattr(data, "move_id", None),
        incident_id=getattr(data, "incident_id", None),
    )
    try:
        check_may_write(state, write, subject)
    except OutsideJurisdiction:
        if _already_recorded(case_record, event):
            return  # a redelivery: recording answers duplicate (or a reused key)
        raise


def _check_task(case_record: CaseRecord, state: RegistryState, agency: AgencyInfo, event: Any, now: datetime) -> None:
    """A task is assigned at a place in the governance center's area (the patient's residence, or
    ``data.place``), to an agency whose jurisdiction covers that place (on the task's day or today)."""
    d = event.data
    path: str | None = "$.data.place"
    if d.patient_id is not None:
        try:
            patient = case_record.repository.get(d.patient_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return  # recording answers patient-not-found
        place, path = getattr(patient, "residence", None), None
    else:
        place = d.place
    if place is None:
        return  # recording answers task-needs-a-place
    day, today = event.time.astimezone(REGION_TZ).date(), now.astimezone(REGION_TZ).date()
    if not covers_then_or_now(state, agency.agency_id, place, day, today):
        if _already_recorded(case_record, event):
            return
        raise OutsideJurisdiction(agency.agency_id, event.event_type, day, (path, place) if path else None)
    if not covers_then_or_now(state, d.assignee, place, day, today) and not _already_recorded(case_record, event):
        raise AssigneeDoesNotCoverThePlace(d.assignee, place if path else None)


def _subject(case_record: CaseRecord, event: Any) -> Subject | None:
    """What the check needs about the fact's subject; None when it is not on record."""
    try:
        # read only: no copy of the cached aggregate (nothing here changes it)
        found = case_record.repository.get(event.subject, deepcopy_from_cache=False)
    except AggregateNotFoundError:
        return None
    if type(event) in _SUSPECTED_CASE_EVENTS:
        return Subject(place=found.seen_in) if isinstance(found, SuspectedCase) else None
    if not isinstance(found, Patient):
        return None
    return _patient_subject(found)


def _patient_subject(patient: Patient) -> Subject:
    facts = dict(patient.__dict__.get("facts", {}))
    diagnosed = agencies_in(list(facts.get("diagnosis", ())))
    admitted = agencies_in([e for e in list(facts.get("hospital", ())) if e.get("admitted")])
    moves = {
        e["move_id"]: e["destination_unit"]
        for e in list(facts.get("move", ()))
        if e.get("destination_unit") is not None
    }
    incidents: dict[Any, frozenset[str]] = {}
    for e in list(facts.get("incident", ())):
        incidents[e["incident_id"]] = incidents.get(e["incident_id"], frozenset()) | {str(e["by"])}
    changes = sorted(list(facts.get("residence", ())), key=lambda e: e["v"])
    earlier = tuple((e["previous"], e["at"].astimezone(REGION_TZ).date()) for e in changes)
    return Subject(
        place=patient.residence,
        earlier_places=earlier,
        own_patient_of=frozenset({patient.registered_by}) | diagnosed | admitted,
        move_destinations=moves,
        incident_reporters=incidents,
    )


def _already_recorded(case_record: CaseRecord, event: Any) -> bool:
    try:
        case_record.repository.get(receipt_id(event.idempotency_key), deepcopy_from_cache=False)
    except AggregateNotFoundError:
        return False
    return True
