"""The reconciliation (三网比对, Qingyang task 1): the source lists against the register.

Pure: ``reconcile`` takes each mental-health source row with what matching it against the
register found (by ID number, or by name and birth date only) and the registered patients, and
plans the findings:

- **not registered**: on a list, matched by nobody → a suspected-case lead for the health
  center (the case's report fires R18);
- **unknown to the police**: registered, risk level ≥ 3, on no live police key-person list of
  the police station responsible for the residence → the police take the patient under
  management;
- **placed elsewhere**: registered here, the grid platform places the person in another org
  unit → the committee checks the whereabouts;
- **recorded dead**: registered, a source says the person died → the health center checks
  before deregistering;
- **confirm identity**: a row matched a registered patient by name and birth date only (no ID
  number, or an ID number the register does not hold) → never a lead: the health center
  confirms who it is.

A finding's id is derived from its kind and its subject (the patient, or the row's keyed blind
index), so a re-run plans the same ids and records nothing twice. A finding is a fact with its
sources (``Finding``); its action is an obligation the policy process opens (R15 escalates it).
Who may read a finding follows DESIGN.md section 4 (``finding_readers``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.obligation import obligation_id
from domain.personal import SealedText
from domain.registry import AgencyKind
from domain.sources import CLINICAL_LISTS, REGISTER, ListKind, SourceRow

FINDING_NAMESPACE = UUID("4f6b0d55-2f0a-4d3c-9b7e-3c1f5a0e2b28")
RULE = "RECON"


class FindingKind(StrEnum):
    """What the reconciliation found."""

    NOT_REGISTERED = "not_registered"
    UNKNOWN_TO_POLICE = "unknown_to_police"
    PLACED_ELSEWHERE = "placed_elsewhere"
    RECORDED_DEAD = "recorded_dead"
    CONFIRM_IDENTITY = "confirm_identity"


@dataclass(frozen=True, slots=True)
class Action:
    """The obligation a finding opens: who (by kind, responsible for the finding's place), what, how soon."""

    kind: AgencyKind
    action: str
    within: timedelta


#: Each finding's obligation (NOT_REGISTERED: none here; its suspected case opens R18's).
#: Our defaults (the seeds say 及时): not yet rule settings with effective dates.
ACTIONS: dict[FindingKind, Action] = {
    FindingKind.UNKNOWN_TO_POLICE: Action(AgencyKind.POLICE_STATION, "take_under_management", timedelta(days=3)),
    FindingKind.PLACED_ELSEWHERE: Action(AgencyKind.COMMITTEE, "check_whereabouts", timedelta(days=7)),
    FindingKind.RECORDED_DEAD: Action(AgencyKind.HEALTH_CENTER, "check_before_deregistration", timedelta(days=10)),
    FindingKind.CONFIRM_IDENTITY: Action(AgencyKind.HEALTH_CENTER, "confirm_identity", timedelta(days=10)),
}

#: What the police may see a finding from: the register, their own list, the grid platform.
_POLICE_SOURCES = frozenset({REGISTER, ListKind.POLICE_KEY_PERSONS.value, ListKind.GRID_PLATFORM.value})
_COMMITTEE_SOURCES = frozenset({REGISTER, ListKind.GRID_PLATFORM.value})
_ALWAYS = frozenset({AgencyKind.HEALTH_CENTER, AgencyKind.GOVERNANCE_CENTER, AgencyKind.AUDITOR})


def finding_readers(kind: FindingKind | str, sources: Iterable[str]) -> frozenset[AgencyKind]:
    """The agency kinds that may read a finding (within their jurisdiction): the health center,
    the governance center and the auditor always; the police only findings about a person they
    must act on or may see (never from pharmacy, special-outpatient or reimbursement lists, nor
    an unconfirmed identity); the committee the whereabouts checks from the grid platform."""
    found = set(sources)
    readers = set(_ALWAYS)
    if (
        kind != FindingKind.CONFIRM_IDENTITY
        and found <= _POLICE_SOURCES
        and not found & {k.value for k in CLINICAL_LISTS}
    ):
        readers.add(AgencyKind.POLICE_STATION)
    if kind == FindingKind.PLACED_ELSEWHERE and found <= _COMMITTEE_SOURCES:
        readers.add(AgencyKind.COMMITTEE)
    return frozenset(readers)


# -- the planning -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisteredPatient:
    """What the reconciliation needs of a patient on the register (no personal value)."""

    patient_id: UUID
    residence: str
    risk_level: int | None


@dataclass(frozen=True, slots=True)
class MatchedRow:
    """A mental-health source row and what matching it against the register found."""

    kind: ListKind
    row: SourceRow
    subject_key: str  # the row's keyed blind index (ID number, else name and birth date): never a value
    by_id_number: UUID | None = None  # the registered patient holding its ID number
    by_name_only: tuple[UUID, ...] = ()  # registered patients with its name and birth date (no ID match)


@dataclass
class PlannedFinding:
    """A finding the reconciliation would record (its id is the same on every run)."""

    id: UUID
    kind: FindingKind
    place: str
    patient_id: UUID | None
    sources: list[str] = field(default_factory=list)
    rows: list[MatchedRow] = field(default_factory=list)  # the rows it came from (for the lead's details)

    def add(self, source: str, row: MatchedRow | None = None) -> None:
        if source not in self.sources:
            self.sources.append(source)
        if row is not None:
            self.rows.append(row)


def finding_id(kind: FindingKind, subject: str) -> UUID:
    """The one id a finding about ``subject`` (a patient id, or a row's blind index) can have."""
    return uuid5(FINDING_NAMESPACE, f"{kind.value}|{subject}")


def reconcile(
    rows: Iterable[MatchedRow],
    patients: dict[UUID, RegisteredPatient],
    police_lists_cover: Iterable[UUID] = (),
) -> list[PlannedFinding]:
    """The findings the mental-health rows and the register give (module docstring), in a
    stable order. ``police_lists_cover``: the registered patients whose responsible police
    station has a live key-person list (only they can be "unknown to the police")."""
    planned: dict[UUID, PlannedFinding] = {}

    def plan(kind: FindingKind, subject: str, place: str, patient: UUID | None) -> PlannedFinding:
        fid = finding_id(kind, subject)
        if fid not in planned:
            planned[fid] = PlannedFinding(fid, kind, place, patient)
        return planned[fid]

    on_police_list: set[UUID] = set()
    for m in rows:
        if not m.row.is_mental_health(m.kind):
            continue  # only mental-health rows become findings
        patient = patients.get(m.by_id_number) if m.by_id_number is not None else None
        if patient is not None:
            if m.kind == ListKind.POLICE_KEY_PERSONS:
                on_police_list.add(patient.patient_id)
            if m.row.dead:
                plan(FindingKind.RECORDED_DEAD, str(patient.patient_id), patient.residence, patient.patient_id).add(
                    m.kind.value, m
                )
            elif m.kind == ListKind.GRID_PLATFORM and m.row.org_unit != patient.residence:
                f = plan(FindingKind.PLACED_ELSEWHERE, str(patient.patient_id), patient.residence, patient.patient_id)
                f.add(REGISTER)
                f.add(m.kind.value, m)
            continue
        named = [p for p in m.by_name_only if p in patients]
        if named:  # a match by name and birth date only is never a lead
            for p in named:
                f = plan(FindingKind.CONFIRM_IDENTITY, f"{p}|{m.subject_key}", patients[p].residence, p)
                f.add(m.kind.value, m)
            continue
        if not m.row.dead:
            plan(FindingKind.NOT_REGISTERED, m.subject_key, m.row.org_unit, None).add(m.kind.value, m)
    for patient_id in sorted(set(police_lists_cover) - on_police_list):
        patient = patients[patient_id]
        if patient.risk_level is not None and patient.risk_level >= 3:
            f = plan(FindingKind.UNKNOWN_TO_POLICE, str(patient_id), patient.residence, patient_id)
            f.add(REGISTER)
            f.add(ListKind.POLICE_KEY_PERSONS.value)
    return sorted(planned.values(), key=lambda f: (f.kind.value, f.place, str(f.id)))


# -- the fact ---------------------------------------------------------------------------------------


class Finding(Aggregate):
    """A reconciliation finding (FindingRecorded): what was found, where, about whom, from which sources."""

    TOPIC = "smd.ReconciliationFinding"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.ReconciliationFinding.Created"

    class Recorded(Aggregate.Created):
        """FindingRecorded. ``details`` (sealed under the finding's own key): the matched rows'
        names, birth dates and ID numbers as the sources gave them, for the confirming agency;
        ``suspected_case_id``: the lead a not-registered finding reported."""

        TOPIC = "smd.ReconciliationFindingRecorded"
        agency_id: str
        staff_id: str | None
        occurred_at: datetime
        message_id: str
        finding_kind: str
        place: str
        patient_id: UUID | None
        suspected_case_id: UUID | None
        sources: list[str]
        run_id: UUID
        details: SealedText | None

    def __init__(
        self,
        agency_id: str,
        staff_id: str | None,
        occurred_at: datetime,
        message_id: str,
        finding_kind: str,
        place: str,
        patient_id: UUID | None,
        suspected_case_id: UUID | None,
        sources: list[str],
        run_id: UUID,
        details: SealedText | None,
    ) -> None:
        self.recorded_by = agency_id
        self.occurred_at = occurred_at
        self.message_id = message_id
        self.finding_kind = FindingKind(finding_kind)
        self.place = place
        self.patient_id = patient_id
        self.suspected_case_id = suspected_case_id
        self.sources = list(sources)
        self.run_id = run_id
        self.details = details

    @classmethod
    def record(
        cls,
        planned: PlannedFinding,
        *,
        agency_id: str,
        now: datetime,
        run_id: UUID,
        details: str | None,
        suspected_case_id: UUID | None = None,
    ) -> Finding:
        """Record a planned finding (the run's agent as its author; the run's time)."""
        return cls._create(
            cls.Recorded,
            id=planned.id,
            timestamp=now,
            agency_id=agency_id,
            staff_id=None,
            occurred_at=now,
            message_id=f"reconciliation:{run_id}:{planned.id}",
            finding_kind=planned.kind.value,
            place=planned.place,
            patient_id=planned.patient_id,
            suspected_case_id=suspected_case_id,
            sources=list(planned.sources),
            run_id=run_id,
            details=None if details is None else SealedText(text=details),
        )

    @property
    def readers(self) -> frozenset[AgencyKind]:
        """The agency kinds that may read this finding."""
        return finding_readers(self.finding_kind, self.sources)

    @property
    def action(self) -> Action | None:
        """The obligation this finding opens (None: a lead, whose suspected case opens R18's)."""
        return ACTIONS.get(self.finding_kind)


def finding_obligation_id(finding_id_: UUID) -> UUID:
    """The one obligation a finding opens."""
    return obligation_id(finding_id_, RULE, str(finding_id_), "assignee")
