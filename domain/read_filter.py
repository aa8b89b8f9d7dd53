"""What each agency kind may read of a patient's file (DESIGN.md section 4, "may read" column).

Pure: the caller's kind, whether the patient is within its reach (jurisdiction today, or for a
psychiatric hospital its own patient), and the file as plain data in; only the allowed fields
out. The same table filters the file (``GET /v1/patients/{id}``) and the timeline: a fact type
whose group the kind may not see is absent from its timeline, never shown redacted.

The choices where section 4 is vague are in docs/decisions/021-read-filter.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from domain.dual_management import GROUP_OF
from domain.errors import DomainError
from domain.registry import AgencyKind


class Access(StrEnum):
    """How much of a field a kind sees."""

    FULL = "full"
    MASKED = "masked"  # the ID number with its middle hidden (committees)
    OWN = "own"  # obligations and notices: only the caller's own


#: The fields of the file, in the order the answer lists them.
FIELDS: tuple[str, ...] = (
    "registration",  # registered when and by whom, residence's registration state, deregistration
    "name",
    "id_number",
    "phone",
    "address",  # the address detail (free text)
    "residence",  # the org unit the patient lives in
    "provisional_identity",  # how an unidentified person is known (label, where found, description)
    "circumstances",  # household: lives alone, family history, economic status, can drive
    "confinement",  # 关锁
    "diagnosis",
    "risk",  # level and class
    "review",  # the three-tier review
    "visit_schedule",  # last visit, missed visits (dates), consecutive misses
    "medication",  # pickups, supply end, adherence
    "hospital",  # stays (admitted, discharged, plan)
    "guardian",  # status and contact
    "guardian_exists",  # whether a guardian (of any kind) is on record
    "agreement",  # guardianship agreement and legal-duty notice
    "care_team",
    "care_team_contacts",
    "aid",
    "aid_exists",  # whether any aid is granted
    "disability",  # disability certificate and grade
    "incidents",
    "police_management",  # 列管
    "moves",  # moves and handover answers
    "refusals",
    "lost",  # declared and derived
    "focus",  # categories and key grade
    "suspected_case",  # the suspected case the patient came from
    "obligations",  # obligations and notices about the patient
)

_F, _M, _O = Access.FULL, Access.MASKED, Access.OWN


def _all(access: Access = Access.FULL) -> dict[str, Access]:
    return dict.fromkeys(FIELDS, access)


#: kind → field → access; a field not listed is not shown to the kind.
READ: dict[AgencyKind, dict[str, Access]] = {
    # the one file per patient (一人一档) is the health center's: everything
    AgencyKind.HEALTH_CENTER: _all(),
    # identity, address, risk level and class, guardian contact, lost status, its obligations;
    # no diagnosis or medication detail. Incidents, 列管 and moves are its own work (R1, R7, R14).
    AgencyKind.POLICE_STATION: {
        "registration": _F,
        "name": _F,
        "id_number": _F,
        "phone": _F,
        "address": _F,
        "residence": _F,
        "provisional_identity": _F,
        "risk": _F,
        "guardian": _F,
        "guardian_exists": _F,
        "incidents": _F,
        "police_management": _F,
        "moves": _F,
        "lost": _F,
        "obligations": _O,
    },
    # identity, household, aid, guardian; no clinical detail
    AgencyKind.CIVIL_AFFAIRS: {
        "registration": _F,
        "name": _F,
        "id_number": _F,
        "phone": _F,
        "address": _F,
        "residence": _F,
        "provisional_identity": _F,
        "circumstances": _F,
        "guardian": _F,
        "guardian_exists": _F,
        "agreement": _F,
        "aid": _F,
        "aid_exists": _F,
        "disability": _F,
        "obligations": _O,
    },
    # name, address, visit schedule, guardian, its obligations; ID number masked. The care team
    # is the committee's to organise, and it records what its team sees at home.
    AgencyKind.COMMITTEE: {
        "registration": _F,
        "name": _F,
        "id_number": _M,
        "address": _F,
        "residence": _F,
        "visit_schedule": _F,
        "guardian": _F,
        "guardian_exists": _F,
        "agreement": _F,
        "care_team": _F,
        "care_team_contacts": _F,
        "confinement": _F,
        "circumstances": _F,
        "moves": _F,
        "refusals": _F,
        "obligations": _O,
    },
    # its own patients' clinical file (who they are, and the clinical facts)
    AgencyKind.PSYCHIATRIC_HOSPITAL: {
        "registration": _F,
        "name": _F,
        "id_number": _F,
        "phone": _F,
        "address": _F,
        "residence": _F,
        "provisional_identity": _F,
        "diagnosis": _F,
        "risk": _F,
        "review": _F,
        "medication": _F,
        "hospital": _F,
        "obligations": _O,
    },
    # summaries: name, residence, risk level and class, lost status, focus categories and grade,
    # whether a guardian and aid exist, obligations and notices; incidents it must review (R14)
    AgencyKind.GOVERNANCE_CENTER: {
        "registration": _F,
        "name": _F,
        "residence": _F,
        "risk": _F,
        "review": _F,
        "lost": _F,
        "focus": _F,
        "guardian_exists": _F,
        "aid_exists": _F,
        "incidents": _F,
        "obligations": _F,
    },
    # identity, disability status
    AgencyKind.DISABLED_PERSONS_FEDERATION: {
        "registration": _F,
        "name": _F,
        "id_number": _F,
        "residence": _F,
        "disability": _F,
        "obligations": _O,
    },
    # everything, read-only; every read recorded
    AgencyKind.AUDITOR: _all(),
}


def access(kind: str, field: str) -> Access | None:
    """How much of ``field`` the kind sees (None: nothing)."""
    return READ.get(AgencyKind(kind), {}).get(field)


def visible_fields(kind: str) -> tuple[str, ...]:
    """The fields the kind sees, in the file's order."""
    table = READ.get(AgencyKind(kind), {})
    return tuple(f for f in FIELDS if f in table)


def mask_id_number(value: str | None) -> str | None:
    """The first 3 and last 2 characters of an ID number, the rest hidden."""
    if not value:
        return value
    if len(value) <= 5:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 5) + value[-2:]


def filter_file(kind: str, caller_agency: str, file: Mapping[str, Any]) -> dict[str, Any]:
    """The file as the kind may see it: fields it may not see are left out; an ID number masked
    for the kinds that see it masked; obligations narrowed to the caller's own for ``OWN``."""
    table = READ.get(AgencyKind(kind), {})
    out: dict[str, Any] = {}
    for field in FIELDS:
        if field not in file or field not in table:
            continue
        value = file[field]
        how = table[field]
        if how is Access.MASKED and field == "id_number":
            value = mask_id_number(value)
        elif how is Access.OWN and field == "obligations":
            value = [o for o in value if o.get("assignee") == caller_agency]
        out[field] = value
    # what another region reported (dual management): each fact seen with its group here
    reported = [e for e in file.get("reported_by_region", ()) if GROUP_OF.get(e["fact"]) in table]
    if reported:
        out["reported_by_region"] = reported
    return out


# -- the timeline -----------------------------------------------------------------------------------

#: The group each fact type (stored topic) belongs to: a kind sees the fact when it sees the group
#: (``a|b``: either).
FACT_GROUP: dict[str, str] = {
    "smd.PatientRegistered": "registration",
    "smd.PatientIdentityConfirmed": "name",
    "smd.VisitRecorded": "visit_schedule|risk",  # a visit is also a risk assessment
    "smd.VisitMissed": "visit_schedule",
    "smd.RiskAssessed": "risk",
    "smd.CircumstancesRecorded": "circumstances",
    "smd.ConfinementRecorded": "confinement",
    "smd.DiagnosisRecorded": "diagnosis",
    "smd.HospitalStayRecorded": "hospital",
    "smd.GuardianRecorded": "guardian",
    "smd.GuardianshipAgreementSigned": "agreement",
    "smd.LegalDutyNoticeGiven": "agreement",
    "smd.MedicationDispensed": "medication",
    "smd.AdherenceRecorded": "medication",
    "smd.IncidentReported": "incidents",
    "smd.IncidentReviewed": "incidents",
    "smd.PoliceRespondedToIncident": "incidents",
    "smd.PoliceManagementRecorded": "police_management",
    "smd.WhereaboutsDeclared": "lost",
    "smd.MoveReported": "moves",
    "smd.HandoverAnswered": "moves",
    "smd.ResidenceChanged": "moves",  # an accepted move inside the region (docs/decisions/042)
    "smd.HandoverContactRecorded": "moves",  # a handover to a region without this system
    "smd.RefusalRecorded": "refusals",
    "smd.ReviewRecorded": "review",
    "smd.PatientDeregistered": "registration",
    # registered again (a move back, docs/decisions/043): seen with the registration
    "smd.PatientReregistered": "registration",
    # arrived by an accepted handover from another region (043): the file shows it with the
    # registration (``arrived_from``), so it is seen with either
    "smd.ArrivedFromRegion": "registration|moves",
    "smd.HistoryImported": "registration",
    "smd.GoLiveJoined": "registration",
    "smd.CareTeamMemberAssigned": "care_team",
    "smd.CareTeamMemberRemoved": "care_team",
    "smd.CareTeamContactRecorded": "care_team_contacts",
    "smd.AidApplied": "aid",
    "smd.AidGranted": "aid",
    "smd.AidFoundIneligible": "aid",
    "smd.AidRevoked": "aid",
    "smd.GuardianSubsidyCollected": "aid",
    "smd.PatientLinkedToSuspectedCase": "suspected_case",
    "smd.LostToFollowUp": "lost",
    "smd.LostToFollowUpWithdrawn": "lost",
    "smd.LostToFollowUpEnded": "lost",
    "smd.RiskEscalationReported": "risk",  # an agency reports the risk rose: seen with the risk level
    # what the region managing the patient reported (dual management): seen with the group of
    # what it reports (``sees_fact`` reads the fact's ``fact`` field)
    "smd.ReportedByRegion": "reported",
}

#: Fact types on a patient's stream that no timeline shows (a fact type in neither table is a
#: test failure: each new type is classified when it is added).
HIDDEN_FROM_TIMELINES: dict[str, str] = {
    "smd.EmergencyAccessGranted": "a grant is read on GET /v1/audit/emergency-access (auditor, governance center)",
    "smd.EmergencyAccessReviewed": "read with its grant on GET /v1/audit/emergency-access",
    "smd.EmergencyResponded": "not yet given a group in DESIGN.md section 4: hidden (deny by default)",
    "smd.EmergencyCoordinated": "not yet given a group in DESIGN.md section 4: hidden (deny by default)",
    "smd.InstitutionalCareRecorded": "not yet given a group in DESIGN.md section 4: hidden (deny by default)",
}

#: Inside a visible fact, data fields that belong to another group (shown only when the kind
#: sees that group too): a visit carries its risk assessment, a registration the identity and
#: the diagnosis, an aid grant a disability grade.
FACT_FIELD_GROUP: dict[str, dict[str, str]] = {
    "smd.PatientRegistered": {
        "name": "name",
        "id_number": "id_number",
        "phone": "phone",
        "address": "address",
        "residence": "residence",
        "diagnosis": "diagnosis",
        "provisional": "provisional_identity",
        "birth_date": "id_number",  # the ID number's own digits: seen with it
        "household_region": "residence",
    },
    "smd.PatientReregistered": {  # the details sent by the origin region, as a registration's
        "name": "name",
        "id_number": "id_number",
        "phone": "phone",
        "address": "address",
        "residence": "residence",
        "birth_date": "id_number",
        "household_region": "residence",
    },
    "smd.PatientIdentityConfirmed": {
        "id_number": "id_number",
        "phone": "phone",
        "address": "address",
        "birth_date": "id_number",
        "household_region": "residence",
    },
    "smd.VisitRecorded": {
        "risk_level": "risk",
        "risk_class": "risk",
        "face_to_face": "visit_schedule",
        "joint": "visit_schedule",
    },
    "smd.AidGranted": {"disability_grade": "disability"},
    "smd.PatientDeregistered": {"note": "diagnosis"},  # free text written by health staff
}

#: Aid types that are the disabled persons' federation's, seen with ``disability``.
DISABILITY_AID = "disability_certificate"
#: Aid types that say how the patient is treated: seen with ``medication``, not with ``aid``
#: (civil affairs reads aid but no clinical detail).
CLINICAL_AID = frozenset({"long_acting_injection_coverage", "special_disease_status"})


def sees_fact(kind: str, topic: str, data: Mapping[str, Any] | None = None) -> bool:
    """Whether the kind's timeline holds a fact of this topic (unknown topics: no)."""
    group = FACT_GROUP.get(topic)
    if group is None:
        return False
    table = READ.get(AgencyKind(kind), {})
    if group == "reported":
        return data is not None and GROUP_OF.get(str(data.get("fact"))) in table
    if group == "aid" and data is not None and data.get("aid_type") == DISABILITY_AID:
        return "aid" in table or "disability" in table
    if group == "aid" and data is not None and data.get("aid_type") in CLINICAL_AID:
        return "medication" in table
    return any(g in table for g in group.split("|"))


def filter_fact_data(kind: str, topic: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A visible fact's data without the fields of groups the kind may not see."""
    table = READ.get(AgencyKind(kind), {})
    inner = FACT_FIELD_GROUP.get(topic, {})
    out: dict[str, Any] = {}
    for name, value in data.items():
        group = inner.get(name)
        if group is None:
            out[name] = value
            continue
        how = table.get(group)
        if how is None:
            continue
        out[name] = mask_id_number(value) if how is Access.MASKED and name == "id_number" else value
    return out


# -- reach ------------------------------------------------------------------------------------------


def may_open(kind: str, *, covered_today: bool, own_patient: bool, emergency_access: bool = False) -> bool:
    """Whether the kind may open this patient's file at all.

    The auditor reads everything; a psychiatric hospital reads its own patients (those it
    registered, diagnosed or admitted) and no one else; every other kind reads the patients whose
    residence its jurisdiction covers today. An emergency access grant in force for the caller
    and this patient (break the glass) lifts that reach check, and only it: what the kind sees
    of the file is still ``filter_file``'s.
    """
    k = AgencyKind(kind)
    if k == AgencyKind.AUDITOR:
        return True
    if k == AgencyKind.DEPARTMENT:  # reports and task progress only: never a patient's file
        return False
    if emergency_access:
        return True
    if k == AgencyKind.PSYCHIATRIC_HOSPITAL:
        return own_patient
    return covered_today


class PatientNotVisible(DomainError):
    """No such patient (as far as the caller may know)."""

    # One answer for a patient that does not exist and one outside the caller's reach, so that
    # a read never confirms that an id is on record (docs/decisions/021).
    code = "patient-not-found"

    def __init__(self) -> None:
        super().__init__(
            "no patient with this id is within your agency's reach; check the id, or ask the agency "
            "responsible for the patient"
        )


# -- purpose ----------------------------------------------------------------------------------------

#: Why a caller reads (``X-Purpose``), the documented list. The auditor reads for ``audit`` only,
#: and only the auditor does.
PURPOSES: dict[str, str] = {
    "assigned-duty": "work the caller's agency was given: an obligation, a notice, a handover",
    "care": "follow-up, treatment, aid or guardianship of the patient",
    "emergency-response": "a patient reported dangerous now, or missing",
    "incident-review": "reviewing an incident or an obligation's lateness",
    "audit": "an auditor's review (auditors only)",
}


class PurposeRequired(DomainError):
    """A read that reveals a patient states its purpose."""

    code = "purpose-required"

    def __init__(self) -> None:
        super().__init__(f"send X-Purpose with one of: {', '.join(PURPOSES)}")


class UnknownPurpose(DomainError):
    """The purpose is not one of the documented ones."""

    code = "unknown-purpose"

    def __init__(self) -> None:
        super().__init__(f"X-Purpose is not one of the documented purposes; use one of: {', '.join(PURPOSES)}")


class PurposeNotAllowed(DomainError):
    """The agency's kind may not read for this purpose."""

    code = "purpose-not-allowed"

    def __init__(self, kind: str) -> None:
        if AgencyKind(kind) == AgencyKind.AUDITOR:
            what = "an auditor reads for 'audit' only"
        else:
            what = "'audit' is the auditor's purpose; use another"
        super().__init__(f"a {kind} may not read for this purpose: {what}")


def check_purpose(kind: str, purpose: str | None) -> str:
    """The stated purpose, if the kind may read for it; else the error that says what to send."""
    if not purpose:
        raise PurposeRequired()
    if purpose not in PURPOSES:
        raise UnknownPurpose()
    if (purpose == "audit") != (AgencyKind(kind) == AgencyKind.AUDITOR):
        raise PurposeNotAllowed(kind)
    return purpose
