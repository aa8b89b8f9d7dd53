"""The integration contract: CloudEvents 1.0 envelopes in structured JSON mode.

One msgspec tagged union (tag field ``type``) decodes every inbound event type, over HTTP and
NATS alike. Each type name is reverse-DNS style and versioned (``.v1``); a changed payload gets
a new type (``.v2``) decoded beside the old one, never a changed meaning. Unknown fields are
rejected at every level, so a typo in an agency's system is an error, not silently lost data.

The idempotency key of a message is ``<source>:<id>``: ``id`` is a UUID the sender chooses,
``source`` is the agency id, so two agencies can never collide.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

SPECVERSION = "1.0"

AgencyId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9][a-z0-9-]{1,62}$",
        description="The recording agency's id (lowercase letters, digits and '-').",
    ),
]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 time with a UTC offset.")]
RiskLevel = Annotated[int, msgspec.Meta(ge=0, le=5, description="Risk level 0-5 (危险性评估).")]
RiskClassName = Literal["stable", "basically_stable", "unstable"]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
OrgUnitId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="An org unit id of the registry.")]


class Contract(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Base of every wire struct.

    forbid_unknown_fields: a field we do not know is an error that names it.
    kw_only: fields can be added with defaults in any order without breaking subclasses.
    omit_defaults: encoded output carries only what was set.
    """


# -- payloads (the ``data`` member) -------------------------------------------------------------


class PatientRegisteredData(Contract, kw_only=True):
    """A patient enters the register (health center or psychiatric hospital)."""

    name: ShortText
    residence: OrgUnitId
    id_number: Annotated[str, msgspec.Meta(max_length=18)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    diagnosis: str | None = None


RegionCode = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9]{6}$", description="A county-level region code (6 digits, GB/T 2260).")
]
BirthDate = Annotated[date, msgspec.Meta(description="The birth date (YYYY-MM-DD); sealed like the ID number.")]


class PatientRegisteredV2Data(Contract, kw_only=True):
    """A patient enters the register, with the birth date and the household-registration region
    (户籍所在地) that dual management (人户分离) and identity matching need. When an ID number is
    given, the birth date must be the one its digits state."""

    name: ShortText
    residence: OrgUnitId
    birth_date: BirthDate
    household_region: RegionCode
    id_number: Annotated[str, msgspec.Meta(max_length=18)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    diagnosis: str | None = None


class VisitRecordedData(Contract, kw_only=True):
    """A follow-up visit took place, with its risk assessment."""

    face_to_face: bool
    risk_level: RiskLevel
    risk_class: RiskClassName
    joint: bool = False


class VisitMissedData(Contract, kw_only=True):
    """A scheduled visit did not happen; the scheduled date identifies it."""

    scheduled_on: date
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class RiskAssessedData(Contract, kw_only=True):
    """A risk assessment outside a visit."""

    risk_level: RiskLevel
    risk_class: RiskClassName


# -- envelopes ------------------------------------------------------------------------------------


class Envelope(Contract, tag_field="type", kw_only=True):
    """CloudEvents 1.0 attributes shared by every inbound event."""

    specversion: Literal["1.0"]
    id: UUID
    source: AgencyId
    subject: UUID
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    region: str | None = None
    actor: Annotated[str, msgspec.Meta(max_length=64, description="Staff id asserted by the agency.")] | None = None

    @property
    def idempotency_key(self) -> str:
        """``<source>:<id>``: the store's marker and the NATS ``Nats-Msg-Id``."""
        return f"{self.source}:{self.id}"

    @property
    def event_type(self) -> str:
        """The CloudEvents ``type`` (the union tag)."""
        return self.__struct_config__.tag  # type: ignore[return-value]


class PatientRegisteredV1(Envelope, tag="cn.smd.patient.registered.v1", kw_only=True):
    data: PatientRegisteredData


class PatientRegisteredV2(Envelope, tag="cn.smd.patient.registered.v2", kw_only=True):
    data: PatientRegisteredV2Data


class VisitRecordedV1(Envelope, tag="cn.smd.visit.recorded.v1", kw_only=True):
    data: VisitRecordedData


class VisitMissedV1(Envelope, tag="cn.smd.visit.missed.v1", kw_only=True):
    data: VisitMissedData


class RiskAssessedV1(Envelope, tag="cn.smd.risk.assessed.v1", kw_only=True):
    data: RiskAssessedData


# -- identity -----------------------------------------------------------------------------------


class PatientRegisteredUnidentifiedData(Contract, kw_only=True):
    """An unidentified person enters the register with a provisional identity (Q-15)."""

    label: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="How staff refer to the person until identified.")
    ]
    residence: OrgUnitId
    found_at: Annotated[str, msgspec.Meta(max_length=200, description="Where the person was found.")] | None = None
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    name: Annotated[str, msgspec.Meta(max_length=200, description="A name the person gives, if any.")] | None = None
    diagnosis: str | None = None


class IdentityConfirmedData(Contract, kw_only=True):
    """The real identity of a patient registered without an ID number."""

    id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=18)]
    name: ShortText
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class IdentityConfirmedV2Data(Contract, kw_only=True):
    """The real identity of a patient registered without an ID number, with the household-
    registration region; the birth date, if sent, must be the one the ID number's digits state."""

    id_number: Annotated[str, msgspec.Meta(min_length=1, max_length=18)]
    name: ShortText
    household_region: RegionCode
    birth_date: date | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class PatientRegisteredUnidentifiedV1(Envelope, tag="cn.smd.patient.registered-unidentified.v1", kw_only=True):
    data: PatientRegisteredUnidentifiedData


class IdentityConfirmedV1(Envelope, tag="cn.smd.patient.identity-confirmed.v1", kw_only=True):
    data: IdentityConfirmedData


class IdentityConfirmedV2(Envelope, tag="cn.smd.patient.identity-confirmed.v2", kw_only=True):
    data: IdentityConfirmedV2Data


# -- the rest of the patient's file --------------------------------------------------------------

Note = Annotated[str, msgspec.Meta(max_length=500)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CircumstancesData(Contract, kw_only=True):
    """What is known of the patient's circumstances; leave out what this report does not state."""

    lives_alone: bool | None = None
    can_drive: bool | None = None
    family_history: bool | None = None
    economic_status: (
        Literal["ordinary", "minimum_living_allowance", "extreme_poverty", "unable_to_pay_treatment"] | None
    ) = None


class ConfinementData(Contract, kw_only=True):
    """Confinement at home (关锁) found (true) or released (false)."""

    confined: bool


class DiagnosisData(Contract, kw_only=True):
    """A diagnosis: one of the six disorders (see README)."""

    diagnosis: str


class RevocationData(Contract, kw_only=True):
    """Why the diagnosis was revoked."""

    reason: ShortText


class AdmissionData(Contract, kw_only=True):
    """An admission to hospital."""

    hospital: ShortText
    admission_kind: Literal["voluntary", "involuntary"]


class DischargeData(Contract, kw_only=True):
    """A discharge, with the discharge plan."""

    discharge_plan: Note | None = None


class InstitutionalCareStartedData(Contract, kw_only=True):
    """Civil affairs placed the patient in institutional care (集中照料救治); the place is sealed."""

    place: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="The institution (free text).")]
    care_kind: Literal["homeless", "minimum_living_allowance", "extreme_poverty"]


class InstitutionalCareEndedData(Contract, kw_only=True):
    """The patient's institutional care ended; the reason is sealed."""

    reason: Note | None = None


class RiskEscalatedData(Contract, kw_only=True):
    """The patient is dangerous to self or others now (the emergency flow); what was seen is sealed."""

    danger: Literal["to_self", "to_others", "both"]
    observed: Annotated[str, msgspec.Meta(min_length=1, max_length=500, description="What was seen (free text).")]


class EmergencyRespondedData(Contract, kw_only=True):
    """The police's response to the emergency: the outcome, and what was done (sealed)."""

    outcome: Literal["sent_for_treatment", "calmed_on_site", "not_found", "other"]
    action: Note | None = None


class EmergencyCoordinatedData(Contract, kw_only=True):
    """The governance center coordinated the emergency (会商确定具体措施): the measures (sealed)."""

    measures: Note | None = None


class GuardianContactData(Contract, kw_only=True):
    """How to reach the guardian (stored encrypted)."""

    name: ShortText
    relation: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class GuardianAssignedData(Contract, kw_only=True):
    """The guardian (assigned or changed); weak when the guardian cannot carry the duty."""

    contact: GuardianContactData
    weak: bool = False


class NoData(Contract, kw_only=True):
    """This fact carries no fields: send {}."""


class SocialGuardianData(Contract, kw_only=True):
    """The body designated as social guardian (committee or civil affairs id)."""

    designated_by: Token
    contact: GuardianContactData | None = None


class AgreementData(Contract, kw_only=True):
    """The day the guardianship agreement was signed."""

    signed_on: date


class LegalDutyNoticeData(Contract, kw_only=True):
    """The day the guardian was told of the legal duty."""

    given_on: date


class MedicationData(Contract, kw_only=True):
    """A pickup (or long-acting injection) and the days it covers."""

    dispensed_on: date
    days_supplied: Annotated[int, msgspec.Meta(ge=1, le=180)]
    long_acting_injection: bool = False


class AdherenceData(Contract, kw_only=True):
    """Assessed medication adherence."""

    adherence: Literal["regular", "intermittent", "none"]


class IncidentData(Contract, kw_only=True):
    """An incident; ``incident_id`` (a UUID the reporter chooses) identifies it."""

    incident_id: UUID
    incident_kind: Literal["minor_trouble", "causing_trouble", "causing_disaster", "self_harm", "attempted_suicide"]
    severity: Annotated[int, msgspec.Meta(ge=1, le=3)]


class IncidentReviewData(Contract, kw_only=True):
    """The governance center's review of an incident."""

    incident_id: UUID
    outcome: Note


class EmergencyAccessReviewData(Contract, kw_only=True):
    """The governance center's review of an emergency access grant (break the glass): whether it
    was justified, and remarks (sealed)."""

    grant_id: UUID
    outcome: Literal["justified", "not_justified"]
    remarks: Note | None = None


class IncidentResponseData(Contract, kw_only=True):
    """The police response to an incident."""

    incident_id: UUID
    action: Note


class MoveData(Contract, kw_only=True):
    """A move; ``move_id`` (a UUID the reporter chooses) identifies it."""

    move_id: UUID
    destination_region: Token
    moving_on: date
    destination_unit: OrgUnitId | None = None


class HandoverAnswerData(Contract, kw_only=True):
    """The destination's answer to a reported move."""

    move_id: UUID
    reason: Note | None = None


class HandoverContactData(Contract, kw_only=True):
    """The origin's contact with the health commission of a region without this system about a
    reported move (the reference of the letter, call or filing: free text, sealed)."""

    move_id: UUID
    contacted_on: date
    channel: Literal["letter", "phone", "fax", "email", "in_person", "online_platform"]
    reference: Note | None = None


class RelayedAnswerData(Contract, kw_only=True):
    """The answer of a region without this system, relayed by hand: the day it was given and the
    evidence it rests on (a document number or scan reference: free text, sealed)."""

    move_id: UUID
    accepted: bool
    answered_on: date
    evidence: ShortText
    reason: Note | None = None


class RefusalData(Contract, kw_only=True):
    """A refusal, or (ended=true) its end."""

    refusal: Literal["visits", "management", "admission_by_family"]
    ended: bool = False


class ReviewData(Contract, kw_only=True):
    """A tier of the three-tier review with its outcome."""

    tier: Literal["community", "township", "city"]
    risk_level: RiskLevel
    risk_class: RiskClassName
    outcome: Note | None = None


class DeregistrationData(Contract, kw_only=True):
    """Why the patient leaves the register."""

    reason: Literal["death", "moved_out", "diagnosis_revoked", "other", "registered_in_error"]
    note: Note | None = None


class CircumstancesRecordedV1(Envelope, tag="cn.smd.circumstances.recorded.v1", kw_only=True):
    data: CircumstancesData


class ConfinementRecordedV1(Envelope, tag="cn.smd.confinement.recorded.v1", kw_only=True):
    data: ConfinementData


class DiagnosisRecordedV1(Envelope, tag="cn.smd.diagnosis.recorded.v1", kw_only=True):
    data: DiagnosisData


class DiagnosisRevokedV1(Envelope, tag="cn.smd.diagnosis.revoked.v1", kw_only=True):
    data: RevocationData


class AdmittedV1(Envelope, tag="cn.smd.patient.admitted.v1", kw_only=True):
    data: AdmissionData


class DischargedV1(Envelope, tag="cn.smd.patient.discharged.v1", kw_only=True):
    data: DischargeData


class InstitutionalCareStartedV1(Envelope, tag="cn.smd.institutional-care.started.v1", kw_only=True):
    data: InstitutionalCareStartedData


class InstitutionalCareEndedV1(Envelope, tag="cn.smd.institutional-care.ended.v1", kw_only=True):
    data: InstitutionalCareEndedData


class RiskEscalatedV1(Envelope, tag="cn.smd.risk.escalated.v1", kw_only=True):
    data: RiskEscalatedData


class EmergencyRespondedV1(Envelope, tag="cn.smd.emergency.responded.v1", kw_only=True):
    data: EmergencyRespondedData


class EmergencyCoordinatedV1(Envelope, tag="cn.smd.emergency.coordinated.v1", kw_only=True):
    data: EmergencyCoordinatedData


class GuardianAssignedV1(Envelope, tag="cn.smd.guardian.assigned.v1", kw_only=True):
    data: GuardianAssignedData


class NoGuardianRecordedV1(Envelope, tag="cn.smd.guardian.none-recorded.v1", kw_only=True):
    data: NoData


class SocialGuardianDesignatedV1(Envelope, tag="cn.smd.guardian.social-designated.v1", kw_only=True):
    data: SocialGuardianData


class GuardianshipAgreementSignedV1(Envelope, tag="cn.smd.guardianship-agreement.signed.v1", kw_only=True):
    data: AgreementData


class LegalDutyNoticeGivenV1(Envelope, tag="cn.smd.legal-duty-notice.given.v1", kw_only=True):
    data: LegalDutyNoticeData


class MedicationDispensedV1(Envelope, tag="cn.smd.medication.dispensed.v1", kw_only=True):
    data: MedicationData


class AdherenceRecordedV1(Envelope, tag="cn.smd.adherence.recorded.v1", kw_only=True):
    data: AdherenceData


class IncidentReportedV1(Envelope, tag="cn.smd.incident.reported.v1", kw_only=True):
    data: IncidentData


class IncidentReviewedV1(Envelope, tag="cn.smd.incident.reviewed.v1", kw_only=True):
    data: IncidentReviewData


class EmergencyAccessReviewedV1(Envelope, tag="cn.smd.emergency-access.reviewed.v1", kw_only=True):
    data: EmergencyAccessReviewData


class PoliceRespondedV1(Envelope, tag="cn.smd.incident.police-responded.v1", kw_only=True):
    data: IncidentResponseData


class TakenUnderManagementV1(Envelope, tag="cn.smd.patient.taken-under-management.v1", kw_only=True):
    data: NoData


class ReleasedFromManagementV1(Envelope, tag="cn.smd.patient.released-from-management.v1", kw_only=True):
    data: NoData


class WhereaboutsUnknownDeclaredV1(Envelope, tag="cn.smd.whereabouts.unknown-declared.v1", kw_only=True):
    data: NoData


class LocatedV1(Envelope, tag="cn.smd.patient.located.v1", kw_only=True):
    data: NoData


class MoveReportedV1(Envelope, tag="cn.smd.move.reported.v1", kw_only=True):
    data: MoveData


class HandoverAcceptedV1(Envelope, tag="cn.smd.handover.accepted.v1", kw_only=True):
    data: HandoverAnswerData


class HandoverRejectedV1(Envelope, tag="cn.smd.handover.rejected.v1", kw_only=True):
    data: HandoverAnswerData


class HandoverContactRecordedV1(Envelope, tag="cn.smd.handover.contact-recorded.v1", kw_only=True):
    data: HandoverContactData


class HandoverAnswerReceivedV1(Envelope, tag="cn.smd.handover.answer-received.v1", kw_only=True):
    data: RelayedAnswerData


class RefusalRecordedV1(Envelope, tag="cn.smd.refusal.recorded.v1", kw_only=True):
    data: RefusalData


class ReviewRecordedV1(Envelope, tag="cn.smd.review.recorded.v1", kw_only=True):
    data: ReviewData


class PatientDeregisteredV1(Envelope, tag="cn.smd.patient.deregistered.v1", kw_only=True):
    data: DeregistrationData


FILE_EVENTS = (
    CircumstancesRecordedV1,
    ConfinementRecordedV1,
    DiagnosisRecordedV1,
    DiagnosisRevokedV1,
    AdmittedV1,
    DischargedV1,
    InstitutionalCareStartedV1,
    InstitutionalCareEndedV1,
    RiskEscalatedV1,
    EmergencyRespondedV1,
    EmergencyCoordinatedV1,
    GuardianAssignedV1,
    NoGuardianRecordedV1,
    SocialGuardianDesignatedV1,
    GuardianshipAgreementSignedV1,
    LegalDutyNoticeGivenV1,
    MedicationDispensedV1,
    AdherenceRecordedV1,
    IncidentReportedV1,
    IncidentReviewedV1,
    EmergencyAccessReviewedV1,
    PoliceRespondedV1,
    TakenUnderManagementV1,
    ReleasedFromManagementV1,
    WhereaboutsUnknownDeclaredV1,
    LocatedV1,
    MoveReportedV1,
    HandoverAcceptedV1,
    HandoverRejectedV1,
    HandoverContactRecordedV1,
    HandoverAnswerReceivedV1,
    RefusalRecordedV1,
    ReviewRecordedV1,
    PatientDeregisteredV1,
)


# -- the patient's file, part 2: care team, contacts, aid; suspected cases ---------------------

CareRoleName = Literal["guardian", "community_worker", "mental_health_staff", "community_police", "grid_worker"]
AidTypeName = Literal[
    "minimum_living_allowance",
    "extreme_poverty_support",
    "temporary_aid",
    "guardian_subsidy",
    "disability_certificate",
    "long_acting_injection_coverage",
    "special_disease_status",
]
Yuan = Annotated[int, msgspec.Meta(ge=0, le=1_000_000, description="An amount in whole yuan.")]
Month = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="A month, YYYY-MM.")]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class CareTeamMemberData(Contract, kw_only=True):
    """Who the member is (stored encrypted)."""

    name: ShortText
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None


class CareTeamMemberAssignedData(Contract, kw_only=True):
    """A member takes a role of the care team (replacing the holder, if any)."""

    role: CareRoleName
    member: CareTeamMemberData
    member_agency: AgencyId | None = None


class CareTeamMemberRemovedData(Contract, kw_only=True):
    """A role of the care team is left empty."""

    role: CareRoleName
    reason: Note | None = None


class CareTeamContactData(Contract, kw_only=True):
    """A care-team contact: who (role; the member's agency when not the sender), how, with what outcome."""

    role: CareRoleName
    mode: Literal["visit", "phone", "video", "other"]
    outcome: Literal["reached", "not_reached", "refused"]
    member_agency: AgencyId | None = None
    note: Note | None = None


class AidAppliedData(Contract, kw_only=True):
    """An application for an aid type."""

    aid_type: AidTypeName
    note: Note | None = None


class AidGrantedData(Contract, kw_only=True):
    """An aid type granted; a disability certificate may carry its grade (1 most severe - 4)."""

    aid_type: AidTypeName
    amount_yuan: Yuan | None = None
    disability_grade: Annotated[int, msgspec.Meta(ge=1, le=4)] | None = None
    note: Note | None = None


class AidDecisionData(Contract, kw_only=True):
    """A finding of ineligibility or a revocation, with the reason."""

    aid_type: AidTypeName
    reason: Reason


class GuardianSubsidyCollectedData(Contract, kw_only=True):
    """The month whose guardian subsidy the guardian collected in person."""

    month: Month
    amount_yuan: Yuan | None = None


class SuspectedPersonData(Contract, kw_only=True):
    """What is known of the person (stored encrypted); all optional."""

    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    description: Note | None = None


class CaseReporterData(Contract, kw_only=True):
    """A person who reported the case to the sending agency (stored encrypted)."""

    name: ShortText
    phone: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    relation: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class SuspectedCaseReportedData(Contract, kw_only=True):
    """A suspected case: what was seen (stored encrypted), where (org unit), and who, if known."""

    observed: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    seen_in: OrgUnitId
    person: SuspectedPersonData | None = None
    reporter: CaseReporterData | None = None


class SuspectedCaseAssessedData(Contract, kw_only=True):
    """The health center's assessment of a suspected case."""

    outcome: Literal["suspected_severe_disorder", "no_severe_disorder", "not_assessable"]
    note: Note | None = None


class SuspectedCaseRegisteredData(Contract, kw_only=True):
    """The registered patient the suspected case became (registered first, with its own id)."""

    patient_id: UUID


class SuspectedCaseDismissedData(Contract, kw_only=True):
    """Why a suspected case ends without a registration."""

    reason: Literal["no_severe_disorder", "not_found", "duplicate_report", "other"]
    note: Note | None = None


class CareTeamMemberAssignedV1(Envelope, tag="cn.smd.care-team-member.assigned.v1", kw_only=True):
    data: CareTeamMemberAssignedData


class CareTeamMemberRemovedV1(Envelope, tag="cn.smd.care-team-member.removed.v1", kw_only=True):
    data: CareTeamMemberRemovedData


class CareTeamContactRecordedV1(Envelope, tag="cn.smd.care-team-contact.recorded.v1", kw_only=True):
    data: CareTeamContactData


class AidAppliedV1(Envelope, tag="cn.smd.aid.applied.v1", kw_only=True):
    data: AidAppliedData


class AidGrantedV1(Envelope, tag="cn.smd.aid.granted.v1", kw_only=True):
    data: AidGrantedData


class AidFoundIneligibleV1(Envelope, tag="cn.smd.aid.found-ineligible.v1", kw_only=True):
    data: AidDecisionData


class AidRevokedV1(Envelope, tag="cn.smd.aid.revoked.v1", kw_only=True):
    data: AidDecisionData


class GuardianSubsidyCollectedV1(Envelope, tag="cn.smd.guardian-subsidy.collected.v1", kw_only=True):
    data: GuardianSubsidyCollectedData


class SuspectedCaseReportedV1(Envelope, tag="cn.smd.suspected-case.reported.v1", kw_only=True):
    """``subject`` is the case id: a UUID the reporter chooses."""

    data: SuspectedCaseReportedData


class SuspectedCaseAssessedV1(Envelope, tag="cn.smd.suspected-case.assessed.v1", kw_only=True):
    data: SuspectedCaseAssessedData


class SuspectedCaseRegisteredV1(Envelope, tag="cn.smd.suspected-case.registered.v1", kw_only=True):
    data: SuspectedCaseRegisteredData


class SuspectedCaseDismissedV1(Envelope, tag="cn.smd.suspected-case.dismissed.v1", kw_only=True):
    data: SuspectedCaseDismissedData


class TaskAssignedData(Contract, kw_only=True):
    """A task the governance center assigns (after a joint consultation): the subject is the
    task id (a UUID the sender chooses); the text is sealed under the task's own key."""

    assignee: AgencyId
    due_at: AwareDatetime
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, description="What to do (free text).")]
    patient_id: UUID | None = None
    place: OrgUnitId | None = None


class TaskAssignedV1(Envelope, tag="cn.smd.task.assigned.v1", kw_only=True):
    data: TaskAssignedData


class ReportSubmittedData(Contract, kw_only=True):
    """A report an agency submitted (R21): the subject is the report's id (a UUID the sender
    chooses); the duty and the period complete the agency's duty for it; the reference is sealed
    under the report's own key."""

    duty: Literal["monthly_progress", "quarterly_report", "suspected_cases"]
    period: Annotated[
        str,
        msgspec.Meta(
            pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$",
            description="The period reported on: a month (2026-12) or, for the quarterly report, a quarter (2026-Q4).",
        ),
    ]
    reference: Note | None = None


class ReportSubmittedV1(Envelope, tag="cn.smd.report.submitted.v1", kw_only=True):
    data: ReportSubmittedData


class TaskProgressRecordedData(Contract, kw_only=True):
    """Progress on a task of the region's work plan (反馈督办): the subject is the record's id (a
    UUID the sender chooses); the text is sealed under the record's own key."""

    task_number: Annotated[int, msgspec.Meta(ge=1, le=999, description="The task's number in the work plan.")]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, description="What was done (free text).")]


class TaskProgressRecordedV1(Envelope, tag="cn.smd.task-progress.recorded.v1", kw_only=True):
    data: TaskProgressRecordedData


#: Facts of the patient's file, part 2 (their subject is the patient; commands in core/file_commands.py).
CARE_EVENTS = (
    CareTeamMemberAssignedV1,
    CareTeamMemberRemovedV1,
    CareTeamContactRecordedV1,
    AidAppliedV1,
    AidGrantedV1,
    AidFoundIneligibleV1,
    AidRevokedV1,
    GuardianSubsidyCollectedV1,
)
#: Facts of a suspected case (their subject is the case; decided in core/suspected_cases.py).
SUSPECTED_CASE_EVENTS = (
    SuspectedCaseReportedV1,
    SuspectedCaseAssessedV1,
    SuspectedCaseRegisteredV1,
    SuspectedCaseDismissedV1,
)


InboundEvent = (
    PatientRegisteredV1
    | PatientRegisteredV2
    | VisitRecordedV1
    | VisitMissedV1
    | RiskAssessedV1
    | PatientRegisteredUnidentifiedV1
    | IdentityConfirmedV1
    | IdentityConfirmedV2
    | CircumstancesRecordedV1
    | ConfinementRecordedV1
    | DiagnosisRecordedV1
    | DiagnosisRevokedV1
    | AdmittedV1
    | DischargedV1
    | InstitutionalCareStartedV1
    | InstitutionalCareEndedV1
    | RiskEscalatedV1
    | EmergencyRespondedV1
    | EmergencyCoordinatedV1
    | GuardianAssignedV1
    | NoGuardianRecordedV1
    | SocialGuardianDesignatedV1
    | GuardianshipAgreementSignedV1
    | LegalDutyNoticeGivenV1
    | MedicationDispensedV1
    | AdherenceRecordedV1
    | IncidentReportedV1
    | IncidentReviewedV1
    | EmergencyAccessReviewedV1
    | PoliceRespondedV1
    | TakenUnderManagementV1
    | ReleasedFromManagementV1
    | WhereaboutsUnknownDeclaredV1
    | LocatedV1
    | MoveReportedV1
    | HandoverAcceptedV1
    | HandoverRejectedV1
    | HandoverContactRecordedV1
    | HandoverAnswerReceivedV1
    | RefusalRecordedV1
    | ReviewRecordedV1
    | PatientDeregisteredV1
    | CareTeamMemberAssignedV1
    | CareTeamMemberRemovedV1
    | CareTeamContactRecordedV1
    | AidAppliedV1
    | AidGrantedV1
    | AidFoundIneligibleV1
    | AidRevokedV1
    | GuardianSubsidyCollectedV1
    | SuspectedCaseReportedV1
    | SuspectedCaseAssessedV1
    | SuspectedCaseRegisteredV1
    | SuspectedCaseDismissedV1
    | TaskAssignedV1
    | ReportSubmittedV1
    | TaskProgressRecordedV1
)
EVENT_TYPES: tuple[str, ...] = tuple(t.__struct_config__.tag for t in InboundEvent.__args__)  # type: ignore[attr-defined,misc]

_decoder = msgspec.json.Decoder(InboundEvent)
_encoder = msgspec.json.Encoder(order="deterministic")


class ContractError(ValueError):
    """The message is not a valid envelope; the message says where and what to fix."""

    code = "invalid-envelope"


# -- the bytes before any decoder ---------------------------------------------------------------
#
# Every JSON body the service takes (an envelope over HTTP, NATS or `smd import`, and every other
# JSON request body) passes ``check_bytes`` before a JSON decoder sees it: msgspec and the
# standard library raise RecursionError on very deep nesting and UnicodeDecodeError on invalid
# UTF-8 (not a decode error), and a message must never be able to crash the door that reads it.


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Byte-level limits of one JSON message (SMD_MAX_MESSAGE_BYTES, SMD_MAX_JSON_DEPTH)."""

    max_bytes: int = 64 * 1024
    max_depth: int = 32


DEFAULT_LIMITS = WireLimits()


class MessageTooLarge(ContractError):
    """The message is larger than the service takes."""

    code = "message-too-large"

    def __init__(self, size: int | None, limit: int) -> None:
        size_text = f"{size} bytes" if size is not None else "more bytes than that"
        super().__init__(
            f"the message has {size_text}; this service takes at most {limit} bytes per message "
            "(SMD_MAX_MESSAGE_BYTES); send one envelope per message"
        )


class InvalidUtf8(ContractError):
    """The message is not UTF-8 text."""

    code = "invalid-utf8"

    def __init__(self, position: int) -> None:
        super().__init__(f"the message is not valid UTF-8 (byte {position}); send JSON encoded as UTF-8")


class TooDeeplyNested(ContractError):
    """The message nests objects and arrays deeper than the service takes."""

    code = "too-deeply-nested"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the message nests objects and arrays more than {limit} deep (SMD_MAX_JSON_DEPTH); "
            "an envelope needs 3 or 4 levels"
        )


class DuplicateKey(ContractError):
    """A JSON object names the same member twice."""

    code = "duplicate-key"

    def __init__(self, key: str) -> None:
        # echoed to the sender only (a problem's detail, a rejection header): ASCII, one line, short
        shown = key[:64] if key.isascii() and key.isprintable() else key[:64].encode("unicode_escape").decode("ascii")
        super().__init__(
            f"a JSON object has the member {shown!r} more than once; send each member once "
            "(which value was meant cannot be known)"
        )


#: The bytes that open and close a nesting level, and the ones that delimit strings.
_OPENERS = frozenset(b"[{")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _depth_exceeds(raw: bytes, max_depth: int) -> bool:
    """Whether objects and arrays nest deeper than ``max_depth`` (strings do not count)."""
    if raw.count(b"{") + raw.count(b"[") <= max_depth:
        return False  # the usual case: fewer brackets in all than levels allowed (C speed)
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    for b in brackets:
        if b in _OPENERS:
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_members(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len({k for k, _ in pairs}) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _Duplicate(k)
            seen.add(k)


def _skip(_: str) -> None:
    return None


# The standard library's scanner gives every object's members in order (msgspec keeps the last
# of two silently); numbers are not converted (cheaper, and no int-digits limit to trip on).
_pairs_scanner = json.JSONDecoder(
    object_pairs_hook=_unique_members, parse_int=_skip, parse_float=_skip, parse_constant=_skip
)


def check_duplicate_keys(text: str) -> None:
    """Raise DuplicateKey if an object names a member twice; malformed JSON is the decoder's to report."""
    try:
        _pairs_scanner.decode(text)
    except _Duplicate as e:
        raise DuplicateKey(e.key) from None
    except ValueError:
        return


def _checked(raw: bytes | str, limits: WireLimits) -> tuple[bytes, str]:
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError as e:  # lone surrogates
            raise InvalidUtf8(e.start) from None
    if len(raw) > limits.max_bytes:
        raise MessageTooLarge(len(raw), limits.max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidUtf8(e.start) from None
    if _depth_exceeds(raw, limits.max_depth):
        raise TooDeeplyNested(limits.max_depth)
    return raw, text


def check_bytes(raw: bytes | str, limits: WireLimits = DEFAULT_LIMITS) -> str:
    """The byte-level checks of one JSON message: size, UTF-8, nesting depth (in that order).

    Returns the text. Raises MessageTooLarge, InvalidUtf8 or TooDeeplyNested (ContractErrors).
    """
    return _checked(raw, limits)[1]


def check_json_body(raw: bytes | str, limits: WireLimits = DEFAULT_LIMITS) -> None:
    """Every check of ``decode_event`` that is not about the envelope: for other JSON bodies."""
    check_duplicate_keys(check_bytes(raw, limits))


class _WellFormedIds(msgspec.Struct):
    """An envelope's ``id`` and ``source``, only when well formed (never free text)."""

    id: UUID
    source: AgencyId


_ids_decoder = msgspec.json.Decoder(_WellFormedIds)


def envelope_key(raw: bytes, limits: WireLimits = DEFAULT_LIMITS) -> str | None:
    """``<source>:<id>`` when the bytes carry a well-formed pair (even in an envelope refused for
    another reason), else None. The bytes pass the byte-level checks first."""
    try:
        check_bytes(raw, limits)
        ids = _ids_decoder.decode(raw)
    except (ContractError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return f"{ids.source}:{ids.id}"


def decode_event(raw: bytes | str, limits: WireLimits = DEFAULT_LIMITS) -> InboundEvent:
    """Check the bytes, decode one envelope, refuse duplicate members; or raise ContractError
    (with a stable ``code``) naming what to fix, the JSON path of the field where there is one."""
    data, text = _checked(raw, limits)
    try:
        event = _decoder.decode(data)
    except msgspec.ValidationError as e:
        msg = str(e)
        if "Invalid value" in msg and "$.type" in msg:
            msg += f"; known types: {', '.join(EVENT_TYPES)}"
        raise ContractError(msg) from None
    except msgspec.DecodeError as e:
        raise ContractError(f"not valid JSON: {e}") from None
    except RecursionError:  # not reached: check_bytes bounds the depth (a second line of defence)
        raise TooDeeplyNested(limits.max_depth) from None
    check_duplicate_keys(text)  # only for an otherwise valid envelope
    return event


def canonical_bytes(event: InboundEvent) -> bytes:
    """A canonical encoding: same content, same bytes, whatever the sender's key order."""
    return _encoder.encode(event)


def encode(event: InboundEvent) -> bytes:
    """Encode an envelope as an agency's system would send it."""
    return msgspec.json.encode(event)
