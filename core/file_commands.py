"""Which Patient command each file fact calls (envelope types → domain commands)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from msgspec.structs import asdict

from core import contract as c
from domain.patient import Patient
from domain.personal import CareTeamMember, GuardianContact
from domain.values import Provenance

#: A command returns False when the fact was already recorded (the same incident or move id).
Command = Callable[[Patient, Provenance, datetime, Any], bool | None]


def _contact(data: c.GuardianContactData | None) -> GuardianContact | None:
    return None if data is None else GuardianContact(**asdict(data))


FILE_COMMANDS: dict[type, Command] = {
    c.CircumstancesRecordedV1: lambda p, by, now, d: p.record_circumstances(by, now, **asdict(d)),
    c.ConfinementRecordedV1: lambda p, by, now, d: p.record_confinement(by, now, confined=d.confined),
    c.DiagnosisRecordedV1: lambda p, by, now, d: p.record_diagnosis(by, now, diagnosis=d.diagnosis),
    c.DiagnosisRevokedV1: lambda p, by, now, d: p.revoke_diagnosis(by, now, reason=d.reason),
    c.AdmittedV1: lambda p, by, now, d: p.admit(by, now, **asdict(d)),
    c.DischargedV1: lambda p, by, now, d: p.discharge(by, now, discharge_plan=d.discharge_plan),
    c.InstitutionalCareStartedV1: lambda p, by, now, d: p.start_institutional_care(by, now, **asdict(d)),
    c.InstitutionalCareEndedV1: lambda p, by, now, d: p.end_institutional_care(by, now, reason=d.reason),
    c.RiskEscalatedV1: lambda p, by, now, d: p.report_danger(by, now, **asdict(d)),
    c.EmergencyRespondedV1: lambda p, by, now, d: p.respond_to_emergency(by, now, **asdict(d)),
    c.EmergencyCoordinatedV1: lambda p, by, now, d: p.coordinate_emergency(by, now, measures=d.measures),
    c.GuardianAssignedV1: lambda p, by, now, d: p.assign_guardian(by, now, contact=_contact(d.contact), weak=d.weak),
    c.NoGuardianRecordedV1: lambda p, by, now, d: p.record_no_guardian(by, now),
    c.SocialGuardianDesignatedV1: lambda p, by, now, d: p.designate_social_guardian(
        by, now, designated_by=d.designated_by, contact=_contact(d.contact)
    ),
    c.GuardianshipAgreementSignedV1: lambda p, by, now, d: p.sign_guardianship_agreement(
        by, now, signed_on=d.signed_on
    ),
    c.LegalDutyNoticeGivenV1: lambda p, by, now, d: p.give_legal_duty_notice(by, now, given_on=d.given_on),
    c.MedicationDispensedV1: lambda p, by, now, d: p.dispense_medication(by, now, **asdict(d)),
    c.AdherenceRecordedV1: lambda p, by, now, d: p.record_adherence(by, now, adherence=d.adherence),
    c.IncidentReportedV1: lambda p, by, now, d: p.report_incident(by, now, **asdict(d)),
    c.IncidentReviewedV1: lambda p, by, now, d: p.review_incident(by, now, **asdict(d)),
    c.EmergencyAccessReviewedV1: lambda p, by, now, d: p.review_emergency_access(by, now, **asdict(d)),
    c.PoliceRespondedV1: lambda p, by, now, d: p.respond_to_incident(by, now, **asdict(d)),
    c.TakenUnderManagementV1: lambda p, by, now, d: p.take_under_management(by, now),
    c.ReleasedFromManagementV1: lambda p, by, now, d: p.release_from_management(by, now),
    c.WhereaboutsUnknownDeclaredV1: lambda p, by, now, d: p.declare_whereabouts_unknown(by, now),
    c.LocatedV1: lambda p, by, now, d: p.declare_located(by, now),
    c.MoveReportedV1: lambda p, by, now, d: p.report_move(by, now, **asdict(d)),
    c.HandoverAcceptedV1: lambda p, by, now, d: p.answer_handover(
        by, now, move_id=d.move_id, accepted=True, reason=d.reason
    ),
    c.HandoverRejectedV1: lambda p, by, now, d: p.answer_handover(
        by, now, move_id=d.move_id, accepted=False, reason=d.reason
    ),
    c.RefusalRecordedV1: lambda p, by, now, d: p.record_refusal(by, now, **asdict(d)),
    c.ReviewRecordedV1: lambda p, by, now, d: p.record_review(by, now, **asdict(d)),
    c.PatientDeregisteredV1: lambda p, by, now, d: p.deregister(by, now, **asdict(d)),
}

# the patient's file, part 2: care team, contacts, aid
FILE_COMMANDS |= {
    c.CareTeamMemberAssignedV1: lambda p, by, now, d: p.assign_care_team_member(
        by, now, role=d.role, member=CareTeamMember(**asdict(d.member)), member_agency=d.member_agency
    ),
    c.CareTeamMemberRemovedV1: lambda p, by, now, d: p.remove_care_team_member(by, now, **asdict(d)),
    c.CareTeamContactRecordedV1: lambda p, by, now, d: p.record_care_team_contact(by, now, **asdict(d)),
    c.AidAppliedV1: lambda p, by, now, d: p.apply_for_aid(by, now, **asdict(d)),
    c.AidGrantedV1: lambda p, by, now, d: p.grant_aid(by, now, **asdict(d)),
    c.AidFoundIneligibleV1: lambda p, by, now, d: p.find_ineligible_for_aid(by, now, **asdict(d)),
    c.AidRevokedV1: lambda p, by, now, d: p.revoke_aid(by, now, **asdict(d)),
    c.GuardianSubsidyCollectedV1: lambda p, by, now, d: p.record_guardian_subsidy_collected(by, now, **asdict(d)),
}

#: Commands that also need this deployment's region (a move to a region without this system,
#: docs/decisions/042): ``(patient, by, now, data, region)``.
REGION_COMMANDS: dict[type[c.Envelope], Callable[..., Any]] = {
    c.HandoverContactRecordedV1: lambda p, by, now, d, region: p.record_handover_contact(
        by, now, **asdict(d), region=region
    ),
    c.HandoverAnswerReceivedV1: lambda p, by, now, d, region: p.record_relayed_answer(
        by, now, **asdict(d), region=region
    ),
}
assert set(FILE_COMMANDS) | set(REGION_COMMANDS) == set(c.FILE_EVENTS) | set(c.CARE_EVENTS), (
    "every file fact has a command"
)
