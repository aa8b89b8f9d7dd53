"""Writes within jurisdiction: an agency records facts only where it works (docs/decisions/014).

An agency records a fact about a patient (or a suspected case) only if its jurisdiction covered
the patient's residence (the place the suspected person was seen) on the day the fact occurred,
or covers it today, in the registry as recorded now. A registration, or a report of a suspected
case, names the place itself: it must be in the sender's jurisdiction on one of those days.

The deliberate exceptions (each with its reason in docs/decisions/014):

- the psychiatric hospital registers, diagnoses and admits whoever is brought to it, and records
  everything it may record for its own patients (those it registered, diagnosed or admitted);
- a police station reports where the patient is found (``patient.located``) and the incidents it
  attended where they happened (``incident.reported``), and then its response to an incident it
  reported itself, wherever the patient lives;
- the destination of a move inside the region reports the move and answers the handover;
- region-wide kinds need no exception: their jurisdiction is the region's unit in the registry
  (the demo's hospital, disabled persons' federation and auditor; a region-level governance
  center), which covers every village.

Pure: the caller (``core.jurisdiction``) reads the registry as recorded now and the subject.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from domain.errors import DomainError
from domain.registry import AgencyKind, RegistryState
from domain.registry_errors import UnknownOrgUnit


def _t(*names: str) -> frozenset[str]:
    return frozenset(f"cn.smd.{n}.v1" for n in names)


#: Types that name the place themselves (``data.<field>``): a new patient's residence, the place a
#: suspected person was seen. The subject does not exist yet; the place given must be covered.
PLACE_IN_DATA: dict[str, str] = {
    "cn.smd.patient.registered.v1": "residence",
    "cn.smd.patient.registered.v2": "residence",
    "cn.smd.patient.registered-unidentified.v1": "residence",
    "cn.smd.suspected-case.reported.v1": "seen_in",
}

#: Types whose subject is a suspected case (its place is where the person was seen).
SUSPECTED_CASE_TYPES = _t("suspected-case.assessed", "suspected-case.registered", "suspected-case.dismissed")

#: The hospital's own acts, recorded wherever the person lives: the person is in front of it.
HOSPITAL_ANYWHERE = frozenset({"cn.smd.patient.registered.v2"}) | _t(
    "patient.registered",
    "patient.registered-unidentified",
    "diagnosis.recorded",
    "patient.admitted",
    "suspected-case.registered",
    "suspected-case.dismissed",
)

#: What a police station records where it happened, wherever the patient lives (J 派出所 3, 4).
POLICE_WHERE_IT_HAPPENED = _t("patient.located", "incident.reported")

#: The response to an incident, by the station that reported it (it attended the scene).
POLICE_RESPONDED = "cn.smd.incident.police-responded.v1"

#: What the destination of a move inside the region records (``data.destination_unit`` for the
#: report; the reported move's destination for the answer).
MOVE_REPORTED = "cn.smd.move.reported.v1"
HANDOVER_ANSWERS = _t("handover.accepted", "handover.rejected")


class OutsideJurisdiction(DomainError):
    """Outside the agency's jurisdiction: facts are recorded only where the agency works."""

    # The docstring is the problem's title. The detail names only what the caller sent (its
    # agency, the type, the day, the place it gave for a registration or a report): never the
    # patient's residence, the agency responsible for it, or anything else on file.
    code = "outside-jurisdiction"

    def __init__(self, agency_id: str, event_type: str, occurred_on: date, place: tuple[str, str] | None) -> None:
        if place is not None:  # the caller's own data: the place it named
            path, unit = place
            what = (
                f"{path} is {unit!r}, which agency {agency_id}'s jurisdiction did not cover on "
                f"{occurred_on.isoformat()} (the fact's day) and does not cover today"
            )
            fix = "the agency whose jurisdiction covers that place records it (or check the org unit id)"
        else:
            what = (
                f"agency {agency_id}'s jurisdiction did not cover this subject's place on "
                f"{occurred_on.isoformat()} (the fact's day) and does not cover it today"
            )
            fix = (
                "send it to the agency responsible for the patient; if the patient now lives in your area, "
                "the move is reported and answered first (docs/decisions/014 lists the exceptions)"
            )
        super().__init__(f"{event_type} refused: {what}; an agency records facts only where it works: {fix}")


def covers(state: RegistryState, agency_id: str, org_unit_id: str, on: date) -> bool:
    """Whether the agency's jurisdiction holds the unit or one of its ancestors on ``on``."""
    agency = state.agency(agency_id, on)
    if agency is None or not agency.jurisdiction:
        return False
    try:
        chain = state.chain(org_unit_id, on)
    except UnknownOrgUnit:
        return False  # the unit did not exist yet on that day
    return not agency.jurisdiction.isdisjoint(chain)


def covers_then_or_now(state: RegistryState, agency_id: str, org_unit_id: str, occurred_on: date, today: date) -> bool:
    """Covered on the fact's day, or today (both in the registry as recorded now)."""
    return covers(state, agency_id, org_unit_id, occurred_on) or covers(state, agency_id, org_unit_id, today)


@dataclass(frozen=True)
class Subject:
    """What the check needs to know about the patient or suspected case a fact is about.

    ``place``: the residence (patient) or the unit the person was seen in (suspected case).
    ``own_patient_of``: agencies that registered, diagnosed or admitted the patient.
    ``move_destinations``: reported moves inside the region, move id → destination unit.
    ``incident_reporters``: incident id → agencies that reported it.
    ``earlier_places``: residences before an accepted move inside the region, each with the last
    day it was the residence (the acceptance's day in the region; docs/decisions/042).
    """

    place: str
    own_patient_of: frozenset[str] = frozenset()
    move_destinations: dict[UUID, str] = field(default_factory=dict)
    incident_reporters: dict[UUID, frozenset[str]] = field(default_factory=dict)
    earlier_places: tuple[tuple[str, date], ...] = ()


@dataclass(frozen=True)
class Write:
    """One fact an agency wants recorded, as the check sees it."""

    agency_id: str
    kind: AgencyKind
    event_type: str
    occurred_on: date  # the fact's day in the region
    today: date  # the recording day in the region
    place_in_data: str | None = None  # PLACE_IN_DATA's field, when the type names the place
    destination_unit: str | None = None  # a move report's destination in this region
    move_id: UUID | None = None  # a handover answer's move
    incident_id: UUID | None = None  # a police response's incident


def may_write(state: RegistryState, write: Write, subject: Subject | None) -> bool:
    """Whether the write is within the agency's jurisdiction, or one of the documented exceptions.

    ``subject`` is None for a type that names its place in ``data`` (``write.place_in_data``).
    """
    if write.kind == AgencyKind.PSYCHIATRIC_HOSPITAL and write.event_type in HOSPITAL_ANYWHERE:
        return True
    if write.kind == AgencyKind.POLICE_STATION and write.event_type in POLICE_WHERE_IT_HAPPENED:
        return True
    place = write.place_in_data if subject is None else subject.place
    if place is not None and _covered(state, write, place):
        return True
    if subject is None:
        return False
    if any(
        write.occurred_on <= until
        and covers_then_or_now(state, write.agency_id, unit, write.occurred_on, write.occurred_on)
        for unit, until in subject.earlier_places
    ):  # the residence before an accepted move: its agencies record what happened while it was
        return True
    if write.kind == AgencyKind.PSYCHIATRIC_HOSPITAL and write.agency_id in subject.own_patient_of:
        return True
    if (
        write.event_type == POLICE_RESPONDED
        and write.kind == AgencyKind.POLICE_STATION
        and write.incident_id is not None
        and write.agency_id in subject.incident_reporters.get(write.incident_id, frozenset())
    ):
        return True
    destination = None
    if write.event_type == MOVE_REPORTED:
        destination = write.destination_unit
    elif write.event_type in HANDOVER_ANSWERS and write.move_id is not None:
        destination = subject.move_destinations.get(write.move_id)
    return destination is not None and _covered(state, write, destination)


def _covered(state: RegistryState, write: Write, unit: str) -> bool:
    return covers_then_or_now(state, write.agency_id, unit, write.occurred_on, write.today)


def check_may_write(state: RegistryState, write: Write, subject: Subject | None) -> None:
    """Refuse (OutsideJurisdiction, 403) a write outside the agency's jurisdiction."""
    if may_write(state, write, subject):
        return
    place = None
    if subject is None and write.place_in_data is not None:
        place = (f"$.data.{PLACE_IN_DATA[write.event_type]}", write.place_in_data)
    raise OutsideJurisdiction(write.agency_id, write.event_type, write.occurred_on, place)


def agencies_in(entries: Iterable[dict[str, object]]) -> frozenset[str]:
    """The agencies (``by``) of a patient file's entries."""
    return frozenset(str(e["by"]) for e in entries if e.get("by"))
