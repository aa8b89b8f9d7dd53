"""The patient's file, part 1: the facts beyond registration, visits and risk.

Each fact is an event with a stable topic, recorded by a command of ``PatientFile`` (mixed into
``Patient``) that checks its rules first. Every fact is kept as an entry (occurred time,
message id, fields) in ``Patient.facts[<kind>]``; derived state is a fold over those entries
by occurred time (message id breaks ties), so arrival order never changes it.

Values follow DESIGN.md's glossary and the values seen in deployed follow-up systems.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

import msgspec
from eventsourcing.domain import Aggregate
from eventsourcing.utils import register_topic

from domain.errors import DomainError, ReferenceNotKnownYet
from domain.personal import GuardianContact, PersonalDetails, SealedText, sealed_text, sealing_upcast
from domain.values import Diagnosis, Provenance, by_occurred, check_known_diagnosis, check_not_in_future

# -- values -----------------------------------------------------------------------------------------


class EconomicStatus(StrEnum):
    """Household economic status (feeds hardship and the focus categories)."""

    ORDINARY = "ordinary"
    LOW_INCOME = "minimum_living_allowance"  # 低保
    EXTREME_POVERTY = "extreme_poverty"  # 特困
    UNABLE_TO_PAY_TREATMENT = "unable_to_pay_treatment"


class AdmissionKind(StrEnum):
    """How a patient came into hospital (forced admission is a focus category)."""

    VOLUNTARY = "voluntary"
    INVOLUNTARY = "involuntary"  # 强制住院 / 非自愿住院


class InstitutionalCareKind(StrEnum):
    """Why civil affairs places a patient in institutional care (集中照料救治)."""

    HOMELESS = "homeless"  # 流浪乞讨
    MINIMUM_LIVING_ALLOWANCE = "minimum_living_allowance"  # 低保
    EXTREME_POVERTY = "extreme_poverty"  # 特困


class Danger(StrEnum):
    """Whom a patient is dangerous to now (the emergency flow, J 措施 (三))."""

    TO_SELF = "to_self"
    TO_OTHERS = "to_others"
    BOTH = "both"


class EmergencyOutcome(StrEnum):
    """How the police's response to an emergency ended."""

    SENT_FOR_TREATMENT = "sent_for_treatment"  # 送医
    CALMED_ON_SITE = "calmed_on_site"
    NOT_FOUND = "not_found"
    OTHER = "other"


class GuardianStatus(StrEnum):
    """Who stands behind the patient."""

    CAPABLE = "capable"
    WEAK = "weak"  # 弱监护
    NONE = "none"  # 无监护
    SOCIAL = "social"  # 社会监护人 designated
    UNKNOWN = "unknown"


class Adherence(StrEnum):
    """Medication adherence (规律 / 间断 / 不服药)."""

    REGULAR = "regular"
    INTERMITTENT = "intermittent"
    NONE = "none"


class IncidentKind(StrEnum):
    """Incidents caused by a patient (轻度滋事, 肇事, 肇祸, 自伤, 自杀未遂)."""

    MINOR_TROUBLE = "minor_trouble"
    CAUSING_TROUBLE = "causing_trouble"
    CAUSING_DISASTER = "causing_disaster"
    SELF_HARM = "self_harm"
    ATTEMPTED_SUICIDE = "attempted_suicide"


class RefusalKind(StrEnum):
    """What a patient or family refuses."""

    VISITS = "visits"
    MANAGEMENT = "management"
    ADMISSION_BY_FAMILY = "admission_by_family"


class ReviewTier(StrEnum):
    """The three-tier review (三级三评)."""

    COMMUNITY = "community"
    TOWNSHIP = "township"
    CITY = "city"


class ContactChannel(StrEnum):
    """How the origin contacted another region's health commission (对接市卫健局)."""

    LETTER = "letter"
    PHONE = "phone"
    FAX = "fax"
    EMAIL = "email"
    IN_PERSON = "in_person"
    ONLINE_PLATFORM = "online_platform"


class DeregistrationReason(StrEnum):
    """Why a patient leaves the register."""

    DEATH = "death"
    MOVED_OUT = "moved_out"  # only after the destination accepted
    DIAGNOSIS_REVOKED = "diagnosis_revoked"
    OTHER = "other"
    # the registration should never have been made (wrong person, no disorder): no legal
    # retention applies, so the file may be erased (docs/decisions/030)
    REGISTERED_IN_ERROR = "registered_in_error"


MAX_DAYS_SUPPLIED = 180
MAX_INCIDENT_SEVERITY = 3

# -- errors -----------------------------------------------------------------------------------------


class FactAfterDeregistration(DomainError):
    """Nothing can happen to a patient after leaving the register (by occurred time)."""

    code = "fact-after-deregistration"

    def __init__(self, what: str, occurred_at: datetime, deregistered_at: datetime) -> None:
        super().__init__(
            f"{what} is dated {occurred_at.isoformat()}, after the patient left the register on "
            f"{deregistered_at.isoformat()}; check the patient id or the date"
        )


class InvalidValue(DomainError):
    """A value is not one of the allowed ones."""

    code = "invalid-value"

    def __init__(self, field: str, value: object, allowed: type[StrEnum]) -> None:
        super().__init__(f"{field} {value!r} is not allowed; use one of: {', '.join(v.value for v in allowed)}")


class OutOfRange(DomainError):
    """A number is outside its range."""

    code = "out-of-range"

    def __init__(self, field: str, value: int, low: int, high: int) -> None:
        super().__init__(f"{field} {value} is outside {low}-{high}; send a value from {low} to {high}")


class NothingToRecord(DomainError):
    """A fact must say something."""

    code = "nothing-to-record"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} carries no value; send at least one field")


def incident_reference(patient_id: UUID, incident_id: UUID) -> str:
    """What a review or response of an incident waits for (core.waiting)."""
    return f"incident:{patient_id}:{incident_id}"


def move_reference(patient_id: UUID, move_id: UUID) -> str:
    """What a handover answer waits for (core.waiting)."""
    return f"move:{patient_id}:{move_id}"


class UnknownIncident(ReferenceNotKnownYet):
    """A review or response must name a reported incident."""

    code = "unknown-incident"

    def __init__(self, incident_id: UUID, patient_id: UUID) -> None:
        super().__init__(
            f"no incident {incident_id} was reported for this patient; report it first (or check the id)",
            incident_reference(patient_id, incident_id),
        )


class NoAcceptedMove(DomainError):
    """Moved out means the destination accepted the handover first (no "accepted by nobody")."""

    code = "move-not-accepted"

    def __init__(self) -> None:
        super().__init__(
            "a patient can be deregistered as moved out only after the destination accepted the "
            "handover; record the acceptance first, or keep the patient registered"
        )


class NoMoveReported(ReferenceNotKnownYet):
    """A handover answer needs a reported move."""

    code = "no-move-reported"

    def __init__(self, move_id: UUID, patient_id: UUID) -> None:
        super().__init__(
            "no move was reported for this patient; record the move report first", move_reference(patient_id, move_id)
        )


class NotAManualHandover(DomainError):
    """A contact and a relayed answer are for a move to another region (not this one)."""

    code = "not-a-manual-handover"

    def __init__(self) -> None:
        super().__init__(
            "a contact with another region's health commission, and the answer relayed from it, are "
            "for a move to another region; a move inside this region is answered by the receiving "
            "health center (handover.accepted / handover.rejected)"
        )


class NoHandoverContact(DomainError):
    """A relayed answer comes after the contact it answers."""

    code = "no-handover-contact"

    def __init__(self) -> None:
        super().__init__(
            "no contact with the destination's health commission was recorded for this move; "
            "record the contact (handover.contact-recorded) first"
        )


class NoInstitutionalCare(DomainError):
    """An end of institutional care needs a start dated at or before it."""

    code = "no-institutional-care"

    def __init__(self) -> None:
        super().__init__(
            "no institutional care was recorded as started on or before this end; record the start "
            "first (cn.smd.institutional-care.started.v1) or check the date"
        )


class NoEmergency(DomainError):
    """A response or a coordination answers an emergency: a danger report, or an assessment at
    level 4 or 5, dated at or before it."""

    code = "no-emergency"

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} answers an emergency, but none is on file at or before its time (a "
            "cn.smd.risk.escalated.v1 report or an assessment at level 4 or 5); record that first, or check the time"
        )


class NotDeregistered(DomainError):
    """Only a patient who left the register can be registered again."""

    code = "not-deregistered"

    def __init__(self) -> None:
        super().__init__("the patient is on the register; a re-registration is for a patient who left it")


class ReregisteredBeforeDeregistration(DomainError):
    """A re-registration begins after the deregistration it ends."""

    code = "reregistration-before-deregistration"

    def __init__(self, at: datetime, deregistered_at: datetime) -> None:
        super().__init__(
            f"the re-registration is dated {at.isoformat()}, not after the patient left the register on "
            f"{deregistered_at.isoformat()}; check the date"
        )


class AlreadyDeregistered(DomainError):
    """A patient leaves the register once."""

    code = "already-deregistered"

    def __init__(self) -> None:
        super().__init__("the patient has already left the register")


def _choice(field: str, value: str, allowed: type[StrEnum]) -> str:
    try:
        return str(allowed(value))
    except ValueError:
        raise InvalidValue(field, value, allowed) from None


def _in_range(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise OutOfRange(field, value, low, high)
    return value


# -- events -----------------------------------------------------------------------------------------

_BASE_FIELDS = {
    "originator_id",
    "originator_version",
    "timestamp",
    "agency_id",
    "staff_id",
    "occurred_at",
    "message_id",
}


class FileFact(Aggregate.Event):
    """A fact of the file: appended to ``facts[KIND]`` with its fields."""

    KIND = ""
    agency_id: str
    staff_id: str | None
    occurred_at: datetime
    message_id: str

    def apply(self, aggregate: Any) -> None:
        entry = {"at": self.occurred_at, "key": self.message_id, "by": self.agency_id, "v": self.originator_version}
        for f in dataclasses.fields(self):
            if f.name not in _BASE_FIELDS:
                entry[f.name] = getattr(self, f.name)
        aggregate.facts.setdefault(self.KIND, []).append(entry)


def _fact(topic: str, kind: str):
    """Register a fact class under its stable topic (stored rows name it, never the module)."""

    def register(cls):
        cls.TOPIC = topic
        cls.KIND = kind
        register_topic(topic, cls)
        return cls

    return register


@_fact("smd.CircumstancesRecorded", "circumstances")
class CircumstancesRecorded(FileFact):
    """Lives alone, can drive, family history, economic status (None: not stated this time)."""

    lives_alone: bool | None
    can_drive: bool | None
    family_history: bool | None
    economic_status: str | None


@_fact("smd.ConfinementRecorded", "confinement")
class ConfinementRecorded(FileFact):
    """Confinement at home (关锁) found, or released: a rights issue, tracked."""

    confined: bool


@_fact("smd.DiagnosisRecorded", "diagnosis")
class DiagnosisRecorded(FileFact):
    """A diagnosis (one of the six), e.g. the psychiatric hospital's new-diagnosis push (v2: the
    revocation's reason sealed)."""

    class_version: ClassVar[int] = 2
    diagnosis: str | None
    revoked: bool
    reason: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("reason"))


@_fact("smd.HospitalStayRecorded", "hospital")
class HospitalStayRecorded(FileFact):
    """AdmittedToHospital (admitted=True) or Discharged (admitted=False, with the plan; v2: the
    plan sealed)."""

    class_version: ClassVar[int] = 2
    admitted: bool
    hospital: str | None
    admission_kind: str | None
    discharge_plan: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("discharge_plan"))


@_fact("smd.InstitutionalCareRecorded", "institution")
class InstitutionalCareRecorded(FileFact):
    """InstitutionalCareStarted (started=True: the place and the kind) or InstitutionalCareEnded
    (started=False, with an optional reason). The place's name and the reason are free text:
    sealed."""

    started: bool
    care_kind: str | None
    place: SealedText | None
    reason: SealedText | None


@_fact("smd.RiskEscalationReported", "danger")
class RiskEscalationReported(FileFact):
    """A committee, health center or police station reports the patient dangerous to self or
    others now, with what was seen (sealed): the emergency flow begins."""

    danger: str
    observed: SealedText | None


@_fact("smd.EmergencyResponded", "emergency_response")
class EmergencyResponded(FileFact):
    """The police responded to the patient's emergency: the outcome, and what was done (sealed)."""

    outcome: str
    action: SealedText | None


@_fact("smd.EmergencyCoordinated", "emergency_coordination")
class EmergencyCoordinated(FileFact):
    """The governance center coordinated the emergency (会商确定具体措施): the measures (sealed)."""

    measures: SealedText | None


@_fact("smd.GuardianRecorded", "guardian")
class GuardianRecorded(FileFact):
    """GuardianAssigned / changed, or no / weak guardian, or a social guardian designated."""

    status: str
    contact: GuardianContact | None
    designated_by: str | None


@_fact("smd.GuardianshipAgreementSigned", "agreement")
class GuardianshipAgreementSigned(FileFact):
    """Guardianship agreement (监护责任书) signed by village, guardian and care team."""

    signed_on: date


@_fact("smd.LegalDutyNoticeGiven", "legal_duty_notice")
class LegalDutyNoticeGiven(FileFact):
    """The guardian was told of the legal duty of guardianship."""

    given_on: date


@_fact("smd.MedicationDispensed", "medication")
class MedicationDispensed(FileFact):
    """A pickup with the days it supplies; or a long-acting injection (its days of cover)."""

    dispensed_on: date
    days_supplied: int
    long_acting_injection: bool


@_fact("smd.AdherenceRecorded", "adherence")
class AdherenceRecorded(FileFact):
    """Medication adherence as assessed."""

    adherence: str


@_fact("smd.IncidentReported", "incident")
class IncidentReported(FileFact):
    """IncidentReported (肇事肇祸 and others) with its severity 1-3."""

    incident_id: UUID
    incident_kind: str
    severity: int


@_fact("smd.IncidentReviewed", "incident_review")
class IncidentReviewed(FileFact):
    """The governance center reviewed an incident (v2: the outcome sealed)."""

    class_version: ClassVar[int] = 2
    incident_id: UUID
    outcome: SealedText
    upcast_v1_v2 = staticmethod(sealing_upcast("outcome"))


@_fact("smd.PoliceRespondedToIncident", "incident_response")
class PoliceRespondedToIncident(FileFact):
    """The police responded to an incident (v2: the action sealed)."""

    class_version: ClassVar[int] = 2
    incident_id: UUID
    action: SealedText
    upcast_v1_v2 = staticmethod(sealing_upcast("action"))


@_fact("smd.PoliceManagementRecorded", "police_management")
class PoliceManagementRecorded(FileFact):
    """TakenUnderManagement (列管, under=True) or released from it (under=False)."""

    under: bool


@_fact("smd.WhereaboutsDeclared", "whereabouts")
class WhereaboutsDeclared(FileFact):
    """An agency declared the whereabouts unknown (known=False) or the patient located."""

    known: bool


@_fact("smd.MoveReported", "move")
class MoveReported(FileFact):
    """MoveReported: the patient moves (or moved) to another region or org unit."""

    move_id: UUID
    destination_region: str
    destination_unit: str | None
    moving_on: date


@_fact("smd.HandoverAnswered", "handover")
class HandoverAnswered(FileFact):
    """HandoverAccepted / HandoverRejected, recorded by the destination in this deployment, or
    relayed by hand into the origin's file for a move to another region (v2: the reason sealed;
    v3: a relayed answer's day and evidence reference, sealed; None for the destination's own
    answer and for every answer stored before v3 — docs/decisions/042)."""

    class_version: ClassVar[int] = 3
    move_id: UUID
    accepted: bool
    reason: SealedText | None
    answered_on: date | None
    evidence: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("reason"))

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["answered_on"] = None  # not relayed with a day and evidence before v3: unknown
        state["evidence"] = None


@_fact("smd.HandoverContactRecorded", "handover_contact")
class HandoverContactRecorded(FileFact):
    """The origin contacted the health commission of a region without this system about a move
    there (a handover with a manual counterpart, docs/decisions/042): the day, the channel and
    the reference of the letter, call or filing (sealed: free text)."""

    move_id: UUID
    contacted_on: date
    channel: str
    reference: SealedText | None


@_fact("smd.ResidenceChanged", "residence")
class ResidenceChanged(FileFact):
    """The patient's residence changed: a move inside this region was accepted by the receiving
    health center (recorded with its acceptance, docs/decisions/042). ``Registered.residence``
    keeps its meaning (the residence as registered); this fact says where the patient lives from
    the acceptance on."""

    move_id: UUID
    residence: str
    previous: str

    def apply(self, aggregate: Any) -> None:
        super().apply(aggregate)
        aggregate.residence = self.residence


@_fact("smd.ReportedByRegion", "reported_by_region")
class ReportedByRegion(FileFact):
    """A fact recorded by the region that manages the patient now, fed to this region, which
    keeps tracking them (dual management, seed Q-5; ``domain.dual_management``). The recording
    agency is ``region:<code>`` (the signed message's sender); ``reported_by`` and
    ``reported_staff`` are the sender's agency and staff id as that region asserts them;
    ``occurred_at`` is when it occurred there. ``details``: the fact's fields (JSON), sealed like
    the file's other health data. This region's rules open nothing from it."""

    region: str
    handover_id: UUID
    fact: str
    reported_by: str
    reported_staff: str | None
    details: SealedText


@_fact("smd.RefusalRecorded", "refusal")
class RefusalRecorded(FileFact):
    """A refusal (of visits, of management, of admission by the family), or its end."""

    refusal: str
    ended: bool


@_fact("smd.ReviewRecorded", "review")
class ReviewRecorded(FileFact):
    """A tier of the three-tier review, with its outcome (level and class; v2: the outcome's
    text sealed)."""

    class_version: ClassVar[int] = 2
    tier: str
    risk_level: int
    risk_class: str
    outcome: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("outcome"))


@_fact("smd.PatientDeregistered", "deregistration")
class PatientDeregistered(FileFact):
    """PatientDeregistered: the patient leaves the register (v2: the note sealed)."""

    class_version: ClassVar[int] = 2
    reason: str
    note: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("note"))


@_fact("smd.PatientReregistered", "reregistration")
class PatientReregistered(FileFact):
    """PatientReregistered: a patient who left the register enters it again on the same stream
    (a move back: this region accepted the handover of a patient it had deregistered as moved
    out, docs/decisions/043). The file is registered again from ``occurred_at``; the time
    between the deregistration and this fact is not the region's (no fact may be dated in it).
    ``Registered`` keeps its meaning (the first registration). ``personal``: the details the
    origin region sent, sealed under the patient's key as a registration's are; ``residence``:
    where the patient lives from now on; ``handover_id`` / ``origin_region``: the handover that
    brought the patient back."""

    handover_id: UUID
    origin_region: str
    residence: str
    personal: PersonalDetails
    household_region: str | None

    def apply(self, aggregate: Any) -> None:
        entry = {"at": self.occurred_at, "key": self.message_id, "by": self.agency_id, "v": self.originator_version}
        # the rules read the entry (no personal value in it: entries are compared and logged)
        entry |= {"handover_id": self.handover_id, "origin_region": self.origin_region, "residence": self.residence}
        aggregate.facts.setdefault(self.KIND, []).append(entry)
        aggregate.residence = self.residence
        if self.household_region is not None:
            aggregate.household_region = self.household_region
        if not self.personal.erased:  # the details sent now replace those on file; unknown ones stay
            given = {k: v for k, v in msgspec.structs.asdict(self.personal).items() if v is not None and k != "erased"}
            aggregate.personal = msgspec.structs.replace(aggregate.personal, **given)


@_fact("smd.ArrivedFromRegion", "arrival")
class ArrivedFromRegion(FileFact):
    """The patient arrived here by an accepted handover from another region (recorded with the
    registration or re-registration it brought, in the same transaction, docs/decisions/043):
    the handover, the origin region and the residence here. The "moved-in" list reads it."""

    handover_id: UUID
    origin_region: str
    residence: str


@_fact("smd.HistoryImported", "import")
class HistoryImported(FileFact):
    """An agency's ledger was imported (a backfill): the rules now assess the current state
    (v2: ``owner_kind``, a late join's agency kind: only the rules it owns assess; None: all)."""

    class_version: ClassVar[int] = 2
    ledger: str
    rows: int
    owner_kind: str | None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["owner_kind"] = None  # every v1 import re-assessed all the rules


@_fact("smd.GoLiveJoined", "go_live_joined")
class GoLiveJoined(FileFact):
    """The patient is in a ledger imported for the region's go-live: the rules open nothing for
    the patient until the go-live is declared complete (then ``HistoryImported`` assesses once)."""

    ledger: str


def _latest(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(entries, key=by_occurred, default=None)


# -- commands and derived state ----------------------------------------------------------------------


class PatientFile:
    """Commands and derived state of the file (mixed into ``Patient``)."""

    id: UUID  # the patient's id (the aggregate's)
    facts: dict[str, list[dict[str, Any]]]
    registered_at: datetime
    diagnosis: str | None  # as registered

    def _record(self, event: type[FileFact], what: str, by: Provenance, now: datetime, **fields: Any) -> None:
        check_not_in_future(what, by.occurred_at, now)
        self._check_on_register(what, by.occurred_at)
        self.trigger_event(
            event,
            timestamp=now,
            agency_id=by.agency_id,
            staff_id=by.staff_id,  # type: ignore[attr-defined]
            occurred_at=by.occurred_at,
            message_id=by.message_id,
            **fields,
        )

    def _entries(self, kind: str) -> list[dict[str, Any]]:
        return self.__dict__.setdefault("facts", {}).get(kind, [])

    def _check_on_register(self, what: str, at: datetime) -> None:
        """Facts dated while the patient was off the register are refused: after the
        deregistration in force, or between a deregistration and the re-registration that
        ended it (that time was another region's, or nobody's)."""
        for left, back in self.absences():
            if at > left and (back is None or at < back):
                raise FactAfterDeregistration(what, at, left)

    def absences(self) -> list[tuple[datetime, datetime | None]]:
        """The stretches off the register, by occurred time: (deregistered at, re-registered at or
        None while it lasts)."""
        marks = [(e, False) for e in self._entries("deregistration")] + [
            (e, True) for e in self._entries("reregistration")
        ]
        out: list[tuple[datetime, datetime | None]] = []
        for e, back in sorted(marks, key=lambda m: by_occurred(m[0])):
            if not back and (not out or out[-1][1] is not None):
                out.append((e["at"], None))
            elif back and out and out[-1][1] is None:
                out[-1] = (out[-1][0], e["at"])
        return out

    def mark_history_imported(
        self, by: Provenance, now: datetime, *, ledger: str, rows: int, owner_kind: str | None = None
    ) -> None:
        """Record that the patient's past came from a ledger import (named by its digest)."""
        self._record(HistoryImported, "the import", by, now, ledger=ledger, rows=rows, owner_kind=owner_kind)

    def mark_go_live_joined(self, by: Provenance, now: datetime, *, ledger: str) -> None:
        """Record that a ledger imported for the go-live holds the patient (nothing opens yet)."""
        self._record(GoLiveJoined, "the go-live import", by, now, ledger=ledger)

    @property
    def awaiting_go_live(self) -> bool:
        """Joined a go-live that has not assessed the patient yet."""
        joined = self._entries("go_live_joined")
        if not joined:
            return False
        imported = self._entries("import")
        return max(e["v"] for e in joined) > max((e["v"] for e in imported), default=0)

    # circumstances and confinement
    def record_circumstances(
        self,
        by: Provenance,
        now: datetime,
        *,
        lives_alone: bool | None = None,
        can_drive: bool | None = None,
        family_history: bool | None = None,
        economic_status: str | None = None,
    ) -> None:
        """Record what is known of the patient's circumstances (None: not stated)."""
        if lives_alone is None and can_drive is None and family_history is None and economic_status is None:
            raise NothingToRecord("the circumstances report")
        status = _choice("economic_status", economic_status, EconomicStatus) if economic_status else None
        self._record(
            CircumstancesRecorded,
            "the circumstances report",
            by,
            now,
            lives_alone=lives_alone,
            can_drive=can_drive,
            family_history=family_history,
            economic_status=status,
        )

    def record_confinement(self, by: Provenance, now: datetime, *, confined: bool) -> None:
        """Record that the patient is confined at home (关锁), or was released."""
        self._record(ConfinementRecorded, "the confinement report", by, now, confined=confined)

    def _circumstance(self, name: str) -> Any:
        stated = [e for e in self._entries("circumstances") if e[name] is not None]
        latest = _latest(stated)
        return None if latest is None else latest[name]

    @property
    def lives_alone(self) -> bool | None:
        """Whether the patient lives alone (latest statement)."""
        return self._circumstance("lives_alone")

    @property
    def can_drive(self) -> bool | None:
        """Whether the patient can drive (latest statement)."""
        return self._circumstance("can_drive")

    @property
    def family_history(self) -> bool | None:
        """Whether there is a family history (latest statement)."""
        return self._circumstance("family_history")

    @property
    def economic_status(self) -> str | None:
        """The household's economic status (latest statement)."""
        return self._circumstance("economic_status")

    @property
    def confined(self) -> bool:
        """Confined at home now (关锁)."""
        latest = _latest(self._entries("confinement"))
        return bool(latest and latest["confined"])

    # diagnosis and hospital
    def record_diagnosis(self, by: Provenance, now: datetime, *, diagnosis: str) -> None:
        """Record a diagnosis (one of the six disorders)."""
        self._record(
            DiagnosisRecorded,
            "the diagnosis",
            by,
            now,
            diagnosis=str(check_known_diagnosis(diagnosis)),
            revoked=False,
            reason=None,
        )

    def revoke_diagnosis(self, by: Provenance, now: datetime, *, reason: str) -> None:
        """Record that the diagnosis was revoked."""
        self._record(
            DiagnosisRecorded,
            "the diagnosis revocation",
            by,
            now,
            diagnosis=None,
            revoked=True,
            reason=sealed_text(reason),
        )

    @property
    def current_diagnosis(self) -> Diagnosis | None:
        """The diagnosis in force: the latest recorded or revoked, else the registration's."""
        latest = _latest(self._entries("diagnosis"))
        if latest is None:
            return Diagnosis(self.diagnosis) if self.diagnosis else None
        return None if latest["revoked"] else Diagnosis(latest["diagnosis"])

    def admit(self, by: Provenance, now: datetime, *, hospital: str, admission_kind: str) -> None:
        """Record an admission to hospital (voluntary or involuntary)."""
        kind = _choice("admission_kind", admission_kind, AdmissionKind)
        self._record(
            HospitalStayRecorded,
            "the admission",
            by,
            now,
            admitted=True,
            hospital=hospital,
            admission_kind=kind,
            discharge_plan=None,
        )

    def discharge(self, by: Provenance, now: datetime, *, discharge_plan: str | None = None) -> None:
        """Record a discharge, with the discharge plan."""
        self._record(
            HospitalStayRecorded,
            "the discharge",
            by,
            now,
            admitted=False,
            hospital=None,
            admission_kind=None,
            discharge_plan=sealed_text(discharge_plan),
        )

    @property
    def in_hospital(self) -> bool:
        """In hospital now (else at home)."""
        latest = _latest(self._entries("hospital"))
        return bool(latest and latest["admitted"])

    @property
    def ever_admitted_involuntarily(self) -> bool:
        """Any involuntary (forced) admission on record."""
        return any(e["admission_kind"] == AdmissionKind.INVOLUNTARY for e in self._entries("hospital"))

    @property
    def last_discharged_at(self) -> datetime | None:
        """When the latest discharge took place."""
        latest = _latest([e for e in self._entries("hospital") if not e["admitted"]])
        return None if latest is None else latest["at"]

    # institutional care: cared for like a hospital stay while it lasts
    def start_institutional_care(self, by: Provenance, now: datetime, *, place: str, care_kind: str) -> None:
        """Record that civil affairs placed the patient in institutional care (集中照料救治)."""
        kind = _choice("care_kind", care_kind, InstitutionalCareKind)
        self._record(
            InstitutionalCareRecorded,
            "the start of institutional care",
            by,
            now,
            started=True,
            care_kind=kind,
            place=sealed_text(place),
            reason=None,
        )

    def end_institutional_care(self, by: Provenance, now: datetime, *, reason: str | None = None) -> None:
        """Record that the patient's institutional care ended (a start must be dated at or before it)."""
        if not any(e["started"] and e["at"] <= by.occurred_at for e in self._entries("institution")):
            raise NoInstitutionalCare()
        self._record(
            InstitutionalCareRecorded,
            "the end of institutional care",
            by,
            now,
            started=False,
            care_kind=None,
            place=None,
            reason=sealed_text(reason),
        )

    @property
    def in_institutional_care(self) -> bool:
        """In institutional care now (by occurred time)."""
        latest = _latest(self._entries("institution"))
        return bool(latest and latest["started"])

    # the emergency flow: dangerous to self or others now
    def report_danger(self, by: Provenance, now: datetime, *, danger: str, observed: str) -> None:
        """Record that the patient is dangerous to self or others now (what was seen is sealed)."""
        kind = _choice("danger", danger, Danger)
        self._record(RiskEscalationReported, "the danger report", by, now, danger=kind, observed=sealed_text(observed))

    def respond_to_emergency(self, by: Provenance, now: datetime, *, outcome: str, action: str | None = None) -> None:
        """Record the police's response to the emergency and its outcome."""
        result = _choice("outcome", outcome, EmergencyOutcome)
        self._check_emergency_before("the emergency response", by.occurred_at)
        self._record(EmergencyResponded, "the emergency response", by, now, outcome=result, action=sealed_text(action))

    def coordinate_emergency(self, by: Provenance, now: datetime, *, measures: str | None = None) -> None:
        """Record that the governance center coordinated the emergency (the measures agreed)."""
        self._check_emergency_before("the coordination", by.occurred_at)
        self._record(EmergencyCoordinated, "the coordination", by, now, measures=sealed_text(measures))

    def _check_emergency_before(self, what: str, at: datetime) -> None:
        reported = any(e["at"] <= at for e in self._entries("danger"))
        assessed = any(a["at"] <= at and a["level"] >= 4 for a in self.__dict__.get("assessments", []))
        if not (reported or assessed):
            raise NoEmergency(what)

    # guardianship
    def assign_guardian(self, by: Provenance, now: datetime, *, contact: GuardianContact, weak: bool = False) -> None:
        """Record the guardian (assigned or changed), capable or weak."""
        status = GuardianStatus.WEAK if weak else GuardianStatus.CAPABLE
        self._record(GuardianRecorded, "the guardian", by, now, status=str(status), contact=contact, designated_by=None)

    def record_no_guardian(self, by: Provenance, now: datetime) -> None:
        """Record that the patient has no guardian."""
        self._record(
            GuardianRecorded,
            "the guardian status",
            by,
            now,
            status=str(GuardianStatus.NONE),
            contact=None,
            designated_by=None,
        )

    def designate_social_guardian(
        self, by: Provenance, now: datetime, *, designated_by: str, contact: GuardianContact | None = None
    ) -> None:
        """Record the social guardian designated by a committee or civil affairs (Q-17)."""
        self._record(
            GuardianRecorded,
            "the social guardian",
            by,
            now,
            status=str(GuardianStatus.SOCIAL),
            contact=contact,
            designated_by=designated_by,
        )

    def sign_guardianship_agreement(self, by: Provenance, now: datetime, *, signed_on: date) -> None:
        """Record the signed guardianship agreement."""
        self._record(GuardianshipAgreementSigned, "the guardianship agreement", by, now, signed_on=signed_on)

    def give_legal_duty_notice(self, by: Provenance, now: datetime, *, given_on: date) -> None:
        """Record that the guardian was told of the legal duty."""
        self._record(LegalDutyNoticeGiven, "the legal-duty notice", by, now, given_on=given_on)

    @property
    def guardian_status(self) -> GuardianStatus:
        """The guardian situation now."""
        latest = _latest(self._entries("guardian"))
        return GuardianStatus.UNKNOWN if latest is None else GuardianStatus(latest["status"])

    @property
    def guardian_contact(self) -> GuardianContact | None:
        """How to reach the guardian (personal: sealed in storage)."""
        latest = _latest([e for e in self._entries("guardian") if e["contact"] is not None])
        return None if latest is None else latest["contact"]

    @property
    def guardianship_agreement_signed_on(self) -> date | None:
        """When the latest agreement was signed."""
        latest = _latest(self._entries("agreement"))
        return None if latest is None else latest["signed_on"]

    # medication
    def dispense_medication(
        self,
        by: Provenance,
        now: datetime,
        *,
        dispensed_on: date,
        days_supplied: int,
        long_acting_injection: bool = False,
    ) -> None:
        """Record a pickup (or a long-acting injection) and the days it covers."""
        _in_range("days_supplied", days_supplied, 1, MAX_DAYS_SUPPLIED)
        if dispensed_on > now.date():
            check_not_in_future("the pickup date", datetime.combine(dispensed_on, datetime.min.time(), now.tzinfo), now)
        self._record(
            MedicationDispensed,
            "the medication pickup",
            by,
            now,
            dispensed_on=dispensed_on,
            days_supplied=days_supplied,
            long_acting_injection=long_acting_injection,
        )

    def record_adherence(self, by: Provenance, now: datetime, *, adherence: str) -> None:
        """Record the assessed medication adherence."""
        self._record(AdherenceRecorded, "the adherence", by, now, adherence=_choice("adherence", adherence, Adherence))

    @property
    def supply_ends_on(self) -> date | None:
        """The day the medication runs out: pickups by date, leftover supply carried over."""
        end: date | None = None
        for e in sorted(self._entries("medication"), key=lambda e: (e["dispensed_on"], e["key"])):
            start = e["dispensed_on"] if end is None or end < e["dispensed_on"] else end
            end = start + timedelta(days=e["days_supplied"])
        return end

    @property
    def adherence(self) -> Adherence | None:
        """The latest assessed adherence."""
        latest = _latest(self._entries("adherence"))
        return None if latest is None else Adherence(latest["adherence"])

    # incidents
    def report_incident(
        self, by: Provenance, now: datetime, *, incident_id: UUID, incident_kind: str, severity: int
    ) -> bool:
        """Record an incident; the same incident id again is the same fact (False)."""
        kind = _choice("incident_kind", incident_kind, IncidentKind)
        _in_range("severity", severity, 1, MAX_INCIDENT_SEVERITY)
        if self.has_incident(incident_id):
            return False
        self._record(
            IncidentReported, "the incident", by, now, incident_id=incident_id, incident_kind=kind, severity=severity
        )
        return True

    def has_incident(self, incident_id: UUID) -> bool:
        """Whether an incident with this id was reported for the patient."""
        return any(e["incident_id"] == incident_id for e in self._entries("incident"))

    def _check_incident(self, incident_id: UUID) -> None:
        if not self.has_incident(incident_id):
            raise UnknownIncident(incident_id, self.id)

    def review_incident(self, by: Provenance, now: datetime, *, incident_id: UUID, outcome: str) -> None:
        """Record the governance center's review of an incident."""
        self._check_incident(incident_id)
        self._record(
            IncidentReviewed, "the incident review", by, now, incident_id=incident_id, outcome=SealedText(text=outcome)
        )

    def respond_to_incident(self, by: Provenance, now: datetime, *, incident_id: UUID, action: str) -> None:
        """Record the police response to an incident."""
        self._check_incident(incident_id)
        self._record(
            PoliceRespondedToIncident,
            "the police response",
            by,
            now,
            incident_id=incident_id,
            action=SealedText(text=action),
        )

    def incident_status(self, incident_id: UUID) -> dict[str, bool]:
        """Whether an incident was reviewed and responded to."""
        return {
            "reviewed": any(e["incident_id"] == incident_id for e in self._entries("incident_review")),
            "responded": any(e["incident_id"] == incident_id for e in self._entries("incident_response")),
        }

    @property
    def has_incident_history(self) -> bool:
        """Any incident on record (a focus category)."""
        return bool(self._entries("incident"))

    # police management and whereabouts
    def take_under_management(self, by: Provenance, now: datetime) -> None:
        """Record that the police took the patient under management (列管)."""
        self._record(PoliceManagementRecorded, "the police management", by, now, under=True)

    def release_from_management(self, by: Provenance, now: datetime) -> None:
        """Record that the police released the patient from management."""
        self._record(PoliceManagementRecorded, "the release from police management", by, now, under=False)

    @property
    def under_police_management(self) -> bool:
        """Under police management (列管) now."""
        latest = _latest(self._entries("police_management"))
        return bool(latest and latest["under"])

    def declare_whereabouts_unknown(self, by: Provenance, now: datetime) -> None:
        """An agency declares the patient's whereabouts unknown."""
        self._record(WhereaboutsDeclared, "the whereabouts report", by, now, known=False)

    def declare_located(self, by: Provenance, now: datetime) -> None:
        """An agency declares the patient located."""
        self._record(WhereaboutsDeclared, "the located report", by, now, known=True)

    @property
    def declared_whereabouts_unknown(self) -> bool:
        """An agency's latest declaration says whereabouts unknown (the derived lost status is
        the coordination engine's)."""
        latest = _latest(self._entries("whereabouts"))
        return bool(latest and not latest["known"])

    # moves and handovers
    def has_move(self, move_id: UUID) -> bool:
        """Whether a move with this id was reported for the patient."""
        return any(e["move_id"] == move_id for e in self._entries("move"))

    def report_move(
        self,
        by: Provenance,
        now: datetime,
        *,
        move_id: UUID,
        destination_region: str,
        destination_unit: str | None,
        moving_on: date,
    ) -> bool:
        """Record a move (the same move id again is the same fact: False)."""
        if self.has_move(move_id):
            return False
        self._record(
            MoveReported,
            "the move report",
            by,
            now,
            move_id=move_id,
            destination_region=destination_region,
            destination_unit=destination_unit,
            moving_on=moving_on,
        )
        return True

    def answer_handover(
        self,
        by: Provenance,
        now: datetime,
        *,
        move_id: UUID,
        accepted: bool,
        reason: str | None = None,
        region: str | None = None,
    ) -> None:
        """Record the destination's acceptance or rejection of a reported move.

        ``region``: this deployment's region. An acceptance of a move inside it (its
        ``destination_region``, with a ``destination_unit``) also changes the residence, once per
        move (``ResidenceChanged``; docs/decisions/042). Any other answer changes nothing else.
        """
        if not self.has_move(move_id):
            raise NoMoveReported(move_id, self.id)
        self._record(
            HandoverAnswered,
            "the handover answer",
            by,
            now,
            move_id=move_id,
            accepted=accepted,
            reason=sealed_text(reason),
            answered_on=None,
            evidence=None,
        )
        move = next(e for e in self._entries("move") if e["move_id"] == move_id)
        if (
            accepted
            and region is not None
            and move["destination_region"] == region
            and move["destination_unit"] is not None
            and not any(e["move_id"] == move_id for e in self._entries("residence"))
        ):
            self._record(
                ResidenceChanged,
                "the residence change",
                dataclasses.replace(by, message_id=f"{by.message_id}:residence"),
                now,
                move_id=move_id,
                residence=move["destination_unit"],
                previous=self.residence,  # type: ignore[attr-defined]
            )

    def _move_elsewhere(self, move_id: UUID, region: str) -> dict[str, Any]:
        if not self.has_move(move_id):
            raise NoMoveReported(move_id, self.id)
        move = next(e for e in self._entries("move") if e["move_id"] == move_id)
        if move["destination_region"] == region:
            raise NotAManualHandover()
        return move

    def record_reported_by_region(
        self,
        now: datetime,
        *,
        region: str,
        handover_id: UUID,
        message_id: str,
        fact: str,
        occurred_at: datetime,
        reported_by: str,
        reported_staff: str | None,
        details: str,
    ) -> None:
        """Record what the managing region reported (dual management). Recorded after this
        region deregistered the patient as moved out too: tracking them is the point; the time
        is the other region's, so it is not checked against this region's clock."""
        self.trigger_event(
            ReportedByRegion,
            timestamp=now,
            agency_id=f"region:{region}",
            staff_id=None,
            occurred_at=occurred_at,
            message_id=message_id,
            region=region,
            handover_id=handover_id,
            fact=fact,
            reported_by=reported_by,
            reported_staff=reported_staff,
            details=SealedText(text=details),
        )

    def reported_by_region(self) -> list[dict[str, Any]]:
        """What other regions reported, oldest first (by when it occurred there)."""
        return sorted(self._entries("reported_by_region"), key=lambda e: (e["at"], e["v"]))

    def record_handover_contact(
        self,
        by: Provenance,
        now: datetime,
        *,
        move_id: UUID,
        contacted_on: date,
        channel: str,
        reference: str | None,
        region: str,
    ) -> None:
        """Record the origin's contact with the destination's health commission (a region without
        this system); the origin stays responsible until the answer (docs/decisions/042)."""
        self._move_elsewhere(move_id, region)
        self._record(
            HandoverContactRecorded,
            "the contact",
            by,
            now,
            move_id=move_id,
            contacted_on=contacted_on,
            channel=_choice("channel", channel, ContactChannel),
            reference=sealed_text(reference),
        )

    def record_relayed_answer(
        self,
        by: Provenance,
        now: datetime,
        *,
        move_id: UUID,
        accepted: bool,
        answered_on: date,
        evidence: str,
        reason: str | None,
        region: str,
    ) -> bool:
        """Record the answer of a region without this system, relayed by hand with its evidence.
        An acceptance deregisters the patient as moved out (once, message id + ``:moved-out``);
        a rejection keeps the patient (R8 tells the governance center). The same answer again
        (same move, same decision) records nothing: False."""
        self._move_elsewhere(move_id, region)
        if not any(e["move_id"] == move_id for e in self._entries("handover_contact")):
            raise NoHandoverContact()
        latest = _latest([e for e in self._entries("handover") if e["move_id"] == move_id])
        if latest is not None and latest["accepted"] == accepted and latest.get("answered_on") is not None:
            return False
        self._record(
            HandoverAnswered,
            "the relayed answer",
            by,
            now,
            move_id=move_id,
            accepted=accepted,
            reason=sealed_text(reason),
            answered_on=answered_on,
            evidence=sealed_text(evidence),
        )
        if accepted and self.deregistered_at is None:
            self.deregister(
                dataclasses.replace(by, message_id=f"{by.message_id}:moved-out"),
                now,
                reason=DeregistrationReason.MOVED_OUT,
            )
        return True

    @property
    def move_status(self) -> str | None:
        """The latest move: "pending", "accepted" or "rejected" (None: no move reported)."""
        move = _latest(self._entries("move"))
        if move is None:
            return None
        answer = _latest([e for e in self._entries("handover") if e["move_id"] == move["move_id"]])
        if answer is None:
            return "pending"
        return "accepted" if answer["accepted"] else "rejected"

    # refusals and reviews
    def record_refusal(self, by: Provenance, now: datetime, *, refusal: str, ended: bool = False) -> None:
        """Record a refusal (or that it ended)."""
        self._record(
            RefusalRecorded, "the refusal", by, now, refusal=_choice("refusal", refusal, RefusalKind), ended=ended
        )

    def refuses(self, refusal: RefusalKind) -> bool:
        """Whether the latest report of this refusal says it holds."""
        latest = _latest([e for e in self._entries("refusal") if e["refusal"] == refusal])
        return bool(latest and not latest["ended"])

    def record_review(
        self, by: Provenance, now: datetime, *, tier: str, risk_level: int, risk_class: str, outcome: str | None = None
    ) -> None:
        """Record a tier of the three-tier review with its outcome."""
        from domain.values import RiskClass, check_class_consistent_with_level, check_risk_level_in_range

        check_risk_level_in_range(risk_level)
        check_class_consistent_with_level(risk_level, RiskClass(_choice("risk_class", risk_class, RiskClass)))
        self._record(
            ReviewRecorded,
            "the review",
            by,
            now,
            tier=_choice("tier", tier, ReviewTier),
            risk_level=risk_level,
            risk_class=risk_class,
            outcome=sealed_text(outcome),
        )

    def review(self, tier: ReviewTier) -> dict[str, Any] | None:
        """The latest review of a tier (level, class, outcome, when)."""
        latest = _latest([e for e in self._entries("review") if e["tier"] == tier])
        return None if latest is None else {k: latest[k] for k in ("at", "risk_level", "risk_class", "outcome")}

    # deregistration
    def deregister(self, by: Provenance, now: datetime, *, reason: str, note: str | None = None) -> None:
        """The patient leaves the register; moved out needs an accepted handover first."""
        why = _choice("reason", reason, DeregistrationReason)
        if self.deregistered_at is not None:
            raise AlreadyDeregistered()
        if why == DeregistrationReason.MOVED_OUT and self.move_status != "accepted":
            raise NoAcceptedMove()
        self._record(PatientDeregistered, "the deregistration", by, now, reason=why, note=sealed_text(note))

    def _deregistration_in_force(self) -> dict[str, Any] | None:
        """The latest deregistration, unless a re-registration came after it."""
        left = _latest(self._entries("deregistration"))
        back = _latest(self._entries("reregistration"))
        if left is None or (back is not None and by_occurred(back) > by_occurred(left)):
            return None
        return left

    @property
    def deregistered_at(self) -> datetime | None:
        """When the patient left the register (None: registered, or registered again)."""
        left = self._deregistration_in_force()
        return None if left is None else left["at"]

    @property
    def deregistration_reason(self) -> str | None:
        """Why the patient left the register (None while registered)."""
        left = self._deregistration_in_force()
        return None if left is None else left["reason"]

    @property
    def reregistered_at(self) -> datetime | None:
        """When the patient was last registered again after leaving the register (None: never)."""
        back = _latest(self._entries("reregistration"))
        return None if back is None else back["at"]

    def reregistered_by(self, handover_id: UUID) -> bool:
        """Whether this handover already registered the patient again (a retry records nothing)."""
        return any(e["handover_id"] == handover_id for e in self._entries("reregistration"))

    def reregister(
        self,
        by: Provenance,
        now: datetime,
        *,
        handover_id: UUID,
        origin_region: str,
        residence: str,
        personal: PersonalDetails,
        household_region: str | None = None,
    ) -> None:
        """A patient who left the register enters it again (a move back, accepted here)."""
        check_not_in_future("the re-registration", by.occurred_at, now)
        left = self.deregistered_at
        if left is None:
            raise NotDeregistered()
        if by.occurred_at <= left:
            raise ReregisteredBeforeDeregistration(by.occurred_at, left)
        self.trigger_event(
            PatientReregistered,
            timestamp=now,
            agency_id=by.agency_id,
            staff_id=by.staff_id,  # type: ignore[attr-defined]
            occurred_at=by.occurred_at,
            message_id=by.message_id,
            handover_id=handover_id,
            origin_region=origin_region,
            residence=residence,
            personal=personal,
            household_region=household_region,
        )

    def record_arrival(self, by: Provenance, now: datetime, *, handover_id: UUID, origin_region: str) -> None:
        """Record that the patient arrived by this accepted handover from ``origin_region`` (once)."""
        if any(e["handover_id"] == handover_id for e in self._entries("arrival")):
            return
        self._record(
            ArrivedFromRegion,
            "the arrival",
            by,
            now,
            handover_id=handover_id,
            origin_region=origin_region,
            residence=self.residence,  # type: ignore[attr-defined]
        )

    @property
    def arrived_from(self) -> dict[str, Any] | None:
        """The latest arrival by a handover from another region: when, from where, which handover."""
        latest = _latest(self._entries("arrival"))
        if latest is None:
            return None
        return {"at": latest["at"], "origin_region": latest["origin_region"], "handover_id": latest["handover_id"]}
