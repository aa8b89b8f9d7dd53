"""The door: what can never become valid is refused before anything is stored.

A message that names an org unit the registry does not know, or dates a fact where no fact can
be, would be stored and then fail every rule that reads it, forever (the rules follow the log in
order: one poisoned fact stops them for every patient). ``core.intake.accept`` (HTTP, NATS, the
ledger import) calls these checks after decoding and authorising, before recording.

The checks are pure: the caller passes the registry as recorded now (``RegistryView.state``),
the date the rules will use (the recorded day, in the region's zone) and the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from core import contract as c
from domain.registry import RegistryState
from domain.registry_errors import UnknownAgencyReference, UnknownOrgUnitReference
from domain.values import check_date_not_before, check_occurred_in_range


@dataclass(frozen=True, slots=True)
class Reference:
    """A field of ``data`` that names an org unit or an agency of the registry."""

    field: str
    names: Literal["org unit", "agency"]
    #: a field of ``data`` naming a region: the reference is ours to check only when it is our region
    in_region_of: str | None = None


#: Every field of the contract that holds an org-unit id or an agency id, and so must be in the
#: registry as recorded now. Not checked here, on purpose:
#:   ``source``                  the sender, authenticated and checked by core.intake (403 unknown-agency)
#:   ``region``                  the envelope's region extension (core.intake: wrong-region)
#:   ``destination_region``      another region's code: its registry is not ours
#:   ``household_region``        a county code (GB/T 2260) of the household registration, anywhere in China
#:   ``destination_unit``        when ``destination_region`` is another region (its unit, not ours)
#:   ``hospital`` (admitted)     the hospital's name, free text, not an id
#:   ``actor``                   a staff id the agency asserts
#:   ``patient_id`` (suspected-case.registered)  a patient, checked by the domain
REFERENCES: dict[type[c.Envelope], tuple[Reference, ...]] = {
    c.PatientRegisteredV1: (Reference("residence", "org unit"),),
    c.PatientRegisteredV2: (Reference("residence", "org unit"),),
    c.PatientRegisteredUnidentifiedV1: (Reference("residence", "org unit"),),
    c.SuspectedCaseReportedV1: (Reference("seen_in", "org unit"),),
    c.MoveReportedV1: (Reference("destination_unit", "org unit", in_region_of="destination_region"),),
    c.CareTeamMemberAssignedV1: (Reference("member_agency", "agency"),),
    c.CareTeamContactRecordedV1: (Reference("member_agency", "agency"),),
    # the committee or civil affairs that designated the social guardian (contract: "... id")
    c.SocialGuardianDesignatedV1: (Reference("designated_by", "agency"),),
    c.TaskAssignedV1: (Reference("assignee", "agency"), Reference("place", "org unit")),
}

#: Every date field of ``data``: not before the earliest accepted day (upper bounds are the
#: domain's: a pickup or a missed visit cannot be in the future, a move may be).
DATES: dict[type[c.Envelope], tuple[str, ...]] = {
    c.PatientRegisteredV2: ("birth_date",),
    c.IdentityConfirmedV2: ("birth_date",),
    c.VisitMissedV1: ("scheduled_on",),
    c.GuardianshipAgreementSignedV1: ("signed_on",),
    c.LegalDutyNoticeGivenV1: ("given_on",),
    c.MedicationDispensedV1: ("dispensed_on",),
    c.MoveReportedV1: ("moving_on",),
    c.HandoverContactRecordedV1: ("contacted_on",),
    c.HandoverAnswerReceivedV1: ("answered_on",),
}


def check_times(event: Any, now: datetime, earliest: datetime) -> None:
    """``$.time`` between ``earliest`` and now plus the clock skew; data dates not before it."""
    check_occurred_in_range("$.time", event.time, now, earliest)
    for name in DATES.get(type(event), ()):
        day: date | None = getattr(event.data, name)
        if day is not None:
            check_date_not_before(f"$.data.{name}", day, earliest)


def check_references(event: Any, state: RegistryState, on: date) -> None:
    """Every org unit and agency the message names is in the registry on ``on``."""
    for ref in REFERENCES.get(type(event), ()):
        value: str | None = getattr(event.data, ref.field)
        if value is None:
            continue
        if ref.in_region_of is not None and getattr(event.data, ref.in_region_of) != state.region:
            continue
        path = f"$.data.{ref.field}"
        if ref.names == "org unit" and state.org_unit(value, on) is None:
            raise UnknownOrgUnitReference(path, value, state.region, on)
        if ref.names == "agency" and state.agency(value, on) is None:
            raise UnknownAgencyReference(path, value, state.region, on)


def check_at_the_door(event: Any, state: RegistryState, now: datetime, on: date, earliest: datetime) -> None:
    """Refuse (a DomainError naming the JSON path) what no later message could make valid."""
    check_times(event, now, earliest)
    check_references(event, state, on)
