"""What each agency kind may record (DESIGN.md section 4, "may record" column).

The "may read" side (field filters for answers, lists, exports and outbound messages) grows
with the read models; recording is checked here, for HTTP and NATS alike.
"""

from __future__ import annotations

from domain.errors import DomainError
from domain.registry import AgencyKind

PATIENT_REGISTERED = "cn.smd.patient.registered.v1"
#: v2 adds the birth date and the household region; both versions are taken, from the same kinds.
PATIENT_REGISTERED_V2 = "cn.smd.patient.registered.v2"
VISIT_RECORDED = "cn.smd.visit.recorded.v1"
VISIT_MISSED = "cn.smd.visit.missed.v1"
RISK_ASSESSED = "cn.smd.risk.assessed.v1"


def _t(*names: str) -> frozenset[str]:
    return frozenset(f"cn.smd.{n}.v1" for n in names)


# The file's facts, grouped by who DESIGN.md section 4 lets record them.
CLINICAL = _t("diagnosis.recorded", "diagnosis.revoked", "patient.admitted", "patient.discharged")
MEDICATION = _t("medication.dispensed", "adherence.recorded")
WHEREABOUTS = _t("whereabouts.unknown-declared", "patient.located")
CARE_TEAM = _t(
    "circumstances.recorded",
    "confinement.recorded",
    "guardian.assigned",
    "guardian.none-recorded",
    "guardianship-agreement.signed",
    "legal-duty-notice.given",
    "refusal.recorded",
    "move.reported",
)

#: A move to a region without this system (docs/decisions/042): the origin's health center (or its
#: governance center) records the contact with that region's health commission and its answer.
MANUAL_HANDOVER = _t("handover.contact-recorded", "handover.answer-received")

#: The emergency flow (J 措施 (三)): whoever finds the patient dangerous reports it (the
#: committee, the health center, the police); the police respond; the governance center
#: coordinates.
EMERGENCY_REPORT = _t("risk.escalated")

#: Inbound event types each kind may record. A type missing here is recordable by nobody.
#: Choices where DESIGN.md is silent: the health center also records circumstances, guardians,
#: whereabouts, moves, refusals, incidents and deregistration (it keeps the one file per patient,
#: 一人一档); the committee records incidents it witnesses; the three-tier review is recorded by
#: whoever holds the tier (community: health center or committee; township: health center or
#: governance center; city: psychiatric hospital) — the tier itself is not checked per kind yet.
MAY_RECORD: dict[AgencyKind, frozenset[str]] = {
    AgencyKind.HEALTH_CENTER: frozenset(
        {PATIENT_REGISTERED, PATIENT_REGISTERED_V2, VISIT_RECORDED, VISIT_MISSED, RISK_ASSESSED}
    )
    | CLINICAL
    | MEDICATION
    | WHEREABOUTS
    | CARE_TEAM
    | EMERGENCY_REPORT
    | _t("incident.reported", "handover.accepted", "handover.rejected", "review.recorded", "patient.deregistered")
    | MANUAL_HANDOVER,
    AgencyKind.PSYCHIATRIC_HOSPITAL: frozenset({PATIENT_REGISTERED, PATIENT_REGISTERED_V2})
    | CLINICAL
    | _t("review.recorded"),
    AgencyKind.COMMITTEE: frozenset({VISIT_MISSED})
    | CARE_TEAM
    | WHEREABOUTS
    | EMERGENCY_REPORT
    | _t("guardian.social-designated", "incident.reported", "review.recorded"),
    AgencyKind.POLICE_STATION: WHEREABOUTS
    | _t(
        "incident.reported",
        "incident.police-responded",
        "patient.taken-under-management",
        "patient.released-from-management",
        "move.reported",
        "risk.escalated",
        "emergency.responded",
    ),
    AgencyKind.CIVIL_AFFAIRS: _t(
        "guardian.social-designated",
        "guardian.none-recorded",
        "circumstances.recorded",
        "institutional-care.started",
        "institutional-care.ended",
    ),
    AgencyKind.GOVERNANCE_CENTER: _t(
        "incident.reviewed", "review.recorded", "emergency.coordinated", "task.assigned", "emergency-access.reviewed"
    )
    | MANUAL_HANDOVER,
    AgencyKind.DISABLED_PERSONS_FEDERATION: frozenset(),
    AgencyKind.AUDITOR: frozenset(),
    AgencyKind.DEPARTMENT: frozenset(),
}

# -- identity: part of MAY_RECORD, kept together so the reasoning stays in one place ----
PATIENT_REGISTERED_UNIDENTIFIED = "cn.smd.patient.registered-unidentified.v1"
IDENTITY_CONFIRMED = "cn.smd.patient.identity-confirmed.v1"
IDENTITY_CONFIRMED_V2 = "cn.smd.patient.identity-confirmed.v2"

#: An unidentified person (Q-15: a homeless patient brought in by civil affairs) is registered
#: with a provisional identity by civil affairs, which brings them in, and by the health center
#: and the psychiatric hospital, which meet such patients themselves. It is a type of its own,
#: not a flag on the registration, so that this table can say that civil affairs may register
#: *only* unidentified persons: registering a known, diagnosed patient stays a health act.
#: The real identity is confirmed by the health center, by civil affairs (which traces families
#: and household registration in its aid work) and by the police (who hold the household
#: register, 户籍, and identify people): each of them may come to know who the person is first.
IDENTITY_MAY_RECORD: dict[AgencyKind, frozenset[str]] = {
    AgencyKind.HEALTH_CENTER: frozenset({PATIENT_REGISTERED_UNIDENTIFIED, IDENTITY_CONFIRMED, IDENTITY_CONFIRMED_V2}),
    AgencyKind.PSYCHIATRIC_HOSPITAL: frozenset({PATIENT_REGISTERED_UNIDENTIFIED}),
    AgencyKind.CIVIL_AFFAIRS: frozenset({PATIENT_REGISTERED_UNIDENTIFIED, IDENTITY_CONFIRMED, IDENTITY_CONFIRMED_V2}),
    AgencyKind.POLICE_STATION: frozenset({IDENTITY_CONFIRMED, IDENTITY_CONFIRMED_V2}),
}
for _kind, _types in IDENTITY_MAY_RECORD.items():
    MAY_RECORD[_kind] = MAY_RECORD[_kind] | _types

# -- the patient's file, part 2, and suspected cases --------------------------------------------------
CARE_TEAM_MEMBERSHIP = _t("care-team-member.assigned", "care-team-member.removed")
CARE_TEAM_CONTACT = _t("care-team-contact.recorded")
AID = _t("aid.applied", "aid.granted", "aid.found-ineligible", "aid.revoked")
GUARDIAN_SUBSIDY_COLLECTED = _t("guardian-subsidy.collected")
SUSPECTED_CASE_REPORTED = "cn.smd.suspected-case.reported.v1"
SUSPECTED_CASE_OUTCOME = _t("suspected-case.registered", "suspected-case.dismissed")

#: Care team: the committee organises the care team (关爱帮扶小组) and the health center keeps the
#: file, so both record who is on it; each member's contacts are recorded by the agency the member
#: works through: the committee (community worker, grid worker, guardian), the health center
#: (mental-health staff) and the police station (community police). The role a contact names is
#: not checked against the sender's kind yet.
#: Aid: the kinds of section 4 per aid type (``AID_TYPES_MAY_RECORD`` below, checked by
#: ``check_may_record_aid`` on every aid message): civil affairs for 低保, 特困, temporary aid and the
#: guardian subsidy; the disabled persons' federation for the disability certificate; the health
#: center for long-acting injection coverage and special-disease status. The guardian collects the
#: subsidy in person from civil affairs or through the village committee: both record it.
#: Suspected cases (J 村居 2: "a committee, police or anyone"): every kind in the registry that
#: records anything may report one (the auditor records nothing); the health center assesses;
#: the health center or the psychiatric hospital (both register patients) registers or dismisses.
CARE_MAY_RECORD: dict[AgencyKind, frozenset[str]] = {
    AgencyKind.HEALTH_CENTER: CARE_TEAM_MEMBERSHIP
    | CARE_TEAM_CONTACT
    | AID
    | SUSPECTED_CASE_OUTCOME
    | frozenset({SUSPECTED_CASE_REPORTED})
    | _t("suspected-case.assessed"),
    AgencyKind.COMMITTEE: CARE_TEAM_MEMBERSHIP
    | CARE_TEAM_CONTACT
    | GUARDIAN_SUBSIDY_COLLECTED
    | frozenset({SUSPECTED_CASE_REPORTED}),
    AgencyKind.POLICE_STATION: CARE_TEAM_CONTACT | frozenset({SUSPECTED_CASE_REPORTED}),
    AgencyKind.CIVIL_AFFAIRS: AID | GUARDIAN_SUBSIDY_COLLECTED | frozenset({SUSPECTED_CASE_REPORTED}),
    AgencyKind.DISABLED_PERSONS_FEDERATION: AID | frozenset({SUSPECTED_CASE_REPORTED}),
    AgencyKind.PSYCHIATRIC_HOSPITAL: SUSPECTED_CASE_OUTCOME | frozenset({SUSPECTED_CASE_REPORTED}),
    AgencyKind.GOVERNANCE_CENTER: frozenset({SUSPECTED_CASE_REPORTED}),
}
for _kind, _types in CARE_MAY_RECORD.items():
    MAY_RECORD[_kind] = MAY_RECORD[_kind] | _types

#: Aid types each kind may record (applied, granted, found ineligible, revoked); a kind that may
#: send aid messages is refused aid types not listed here.
AID_TYPES_MAY_RECORD: dict[AgencyKind, frozenset[str]] = {
    AgencyKind.CIVIL_AFFAIRS: frozenset(
        {"minimum_living_allowance", "extreme_poverty_support", "temporary_aid", "guardian_subsidy"}
    ),
    AgencyKind.DISABLED_PERSONS_FEDERATION: frozenset({"disability_certificate"}),
    AgencyKind.HEALTH_CENTER: frozenset({"long_acting_injection_coverage", "special_disease_status"}),
}

#: Kinds that may find a patient by ID number (POST /v1/patients/search), and so may also be
#: told which patient already holds a number when a registration is refused: a caller that
#: could search the same number learns nothing new, and one that cannot must not be able to
#: use registration as a search. DESIGN.md section 4: these kinds read identity; committees and
#: care teams see the ID number masked; the disabled persons' federation reads identity but
#: only for its disability work, which starts from a certificate, not from a search.
MAY_SEARCH_BY_ID_NUMBER: frozenset[AgencyKind] = frozenset(
    {
        AgencyKind.HEALTH_CENTER,
        AgencyKind.POLICE_STATION,
        AgencyKind.CIVIL_AFFAIRS,
        AgencyKind.PSYCHIATRIC_HOSPITAL,
        AgencyKind.GOVERNANCE_CENTER,
        AgencyKind.AUDITOR,
    }
)


def may_search_by_id_number(kind: str) -> bool:
    """Whether the kind may find patients by ID number (and be told who holds one)."""
    return AgencyKind(kind) in MAY_SEARCH_BY_ID_NUMBER


class NotAllowedToSearch(DomainError):
    """The agency's kind may not search patients by ID number."""

    code = "not-allowed-to-search"

    def __init__(self, agency_id: str, kind: str) -> None:
        allowed = ", ".join(sorted(str(k) for k in MAY_SEARCH_BY_ID_NUMBER))
        super().__init__(
            f"agency {agency_id} is a {kind}, which may not search patients by ID number (only {allowed}); "
            "ask the health center that manages the patient"
        )


class NotAllowedToRecord(DomainError):
    """The agency's kind may not record this event type."""

    code = "not-allowed-to-record"

    def __init__(self, agency_id: str, kind: str, event_type: str) -> None:
        allowed = sorted(MAY_RECORD.get(AgencyKind(kind), ()))
        what = ", ".join(allowed) if allowed else "no event types"
        super().__init__(
            f"agency {agency_id} is a {kind}, which may not record {event_type}; a {kind} may record {what}"
        )


class AidTypeNotAllowed(NotAllowedToRecord):
    """The agency's kind may record aid, but not this aid type."""

    def __init__(self, agency_id: str, kind: str, aid_type: str) -> None:
        allowed = ", ".join(sorted(AID_TYPES_MAY_RECORD.get(AgencyKind(kind), ()))) or "no aid types"
        DomainError.__init__(
            self,
            f"agency {agency_id} is a {kind}, which may not record aid of type {aid_type}; "
            f"a {kind} may record {allowed}",
        )


class SourceMismatch(DomainError):
    """The envelope's ``source`` must be the authenticated agency."""

    code = "source-mismatch"

    def __init__(self, source: str, agency_id: str, via: str) -> None:
        super().__init__(
            f"the envelope's source is {source!r} but the {via} belongs to agency {agency_id!r}; "
            f"set source to {agency_id!r}"
        )


def check_may_record(agency_id: str, kind: str, event_type: str) -> None:
    """Refuse an event type the agency's kind may not record."""
    if event_type not in MAY_RECORD.get(AgencyKind(kind), frozenset()):
        raise NotAllowedToRecord(agency_id, kind, event_type)


def check_may_record_aid(agency_id: str, kind: str, aid_type: str) -> None:
    """Refuse an aid type the agency's kind may not record (DESIGN.md section 4)."""
    if aid_type not in AID_TYPES_MAY_RECORD.get(AgencyKind(kind), frozenset()):
        raise AidTypeNotAllowed(agency_id, kind, aid_type)


def check_source(source: str, agency_id: str, via: str) -> None:
    """Refuse an envelope whose source is not the authenticated agency."""
    if source != agency_id:
        raise SourceMismatch(source, agency_id, via)


# -- reporting duties (R21) ------------------------------------------------------------------
#: A report submitted (completes the agency's R21 duty for its period) and progress on a task of
#: the work plan: every kind that may owe a report by the region's settings records them — all
#: but the auditor, which records nothing. The settings decide who *owes* a report; anyone may
#: report progress (Qingyang's task table names every kind as 牵头单位 or 责任单位).
REPORTING = _t("report.submitted", "task-progress.recorded")
for _kind in AgencyKind:
    if _kind != AgencyKind.AUDITOR:
        MAY_RECORD[_kind] = MAY_RECORD[_kind] | REPORTING
