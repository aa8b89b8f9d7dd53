"""What each agency kind may record (DESIGN.md section 4, "may record" column).

The "may read" side (field filters for answers, lists, exports and outbound messages) grows
with the read models; recording is checked here, for HTTP and NATS alike.
"""

from __future__ import annotations

from domain.errors import DomainError
from domain.registry import AgencyKind

PATIENT_REGISTERED = "cn.smd.patient.registered.v1"
VISIT_RECORDED = "cn.smd.visit.recorded.v1"
VISIT_MISSED = "cn.smd.visit.missed.v1"
RISK_ASSESSED = "cn.smd.risk.assessed.v1"

def _t(*names: str) -> frozenset[str]:
    return frozenset(f"cn.smd.{n}.v1" for n in names)


# The file's facts (issue 7), grouped by who DESIGN.md section 4 lets record them.
CLINICAL = _t("diagnosis.recorded", "diagnosis.revoked", "patient.admitted", "patient.discharged")
MEDICATION = _t("medication.dispensed", "adherence.recorded")
WHEREABOUTS = _t("whereabouts.unknown-declared", "patient.located")
CARE_TEAM = _t("circumstances.recorded", "confinement.recorded", "guardian.assigned", "guardian.none-recorded",
               "guardianship-agreement.signed", "legal-duty-notice.given", "refusal.recorded", "move.reported")

#: Inbound event types each kind may record. A type missing here is recordable by nobody.
#: Choices where DESIGN.md is silent: the health center also records circumstances, guardians,
#: whereabouts, moves, refusals, incidents and deregistration (it keeps the one file per patient,
#: 一人一档); the committee records incidents it witnesses; the three-tier review is recorded by
#: whoever holds the tier (community: health center or committee; township: health center or
#: governance center; city: psychiatric hospital) — the tier itself is not checked per kind yet.
MAY_RECORD: dict[AgencyKind, frozenset[str]] = {
    AgencyKind.HEALTH_CENTER: frozenset({PATIENT_REGISTERED, VISIT_RECORDED, VISIT_MISSED, RISK_ASSESSED})
    | CLINICAL | MEDICATION | WHEREABOUTS | CARE_TEAM
    | _t("incident.reported", "handover.accepted", "handover.rejected", "review.recorded", "patient.deregistered"),
    AgencyKind.PSYCHIATRIC_HOSPITAL: frozenset({PATIENT_REGISTERED}) | CLINICAL | _t("review.recorded"),
    AgencyKind.COMMITTEE: frozenset({VISIT_MISSED}) | CARE_TEAM | WHEREABOUTS
    | _t("guardian.social-designated", "incident.reported", "review.recorded"),
    AgencyKind.POLICE_STATION: WHEREABOUTS
    | _t("incident.reported", "incident.police-responded", "patient.taken-under-management",
         "patient.released-from-management", "move.reported"),
    AgencyKind.CIVIL_AFFAIRS: _t("guardian.social-designated", "guardian.none-recorded", "circumstances.recorded"),
    AgencyKind.GOVERNANCE_CENTER: _t("incident.reviewed", "review.recorded"),
    AgencyKind.DISABLED_PERSONS_FEDERATION: frozenset(),
    AgencyKind.AUDITOR: frozenset(),
}

# -- identity (issue 6): part of MAY_RECORD, kept together so the reasoning stays in one place ----
PATIENT_REGISTERED_UNIDENTIFIED = "cn.smd.patient.registered-unidentified.v1"
IDENTITY_CONFIRMED = "cn.smd.patient.identity-confirmed.v1"

#: An unidentified person (Q-15: a homeless patient brought in by civil affairs) is registered
#: with a provisional identity by civil affairs, which brings them in, and by the health center
#: and the psychiatric hospital, which meet such patients themselves. It is a type of its own,
#: not a flag on the registration, so that this table can say that civil affairs may register
#: *only* unidentified persons: registering a known, diagnosed patient stays a health act.
#: The real identity is confirmed by the health center, by civil affairs (which traces families
#: and household registration in its aid work) and by the police (who hold the household
#: register, 户籍, and identify people): each of them may come to know who the person is first.
IDENTITY_MAY_RECORD: dict[AgencyKind, frozenset[str]] = {
    AgencyKind.HEALTH_CENTER: frozenset({PATIENT_REGISTERED_UNIDENTIFIED, IDENTITY_CONFIRMED}),
    AgencyKind.PSYCHIATRIC_HOSPITAL: frozenset({PATIENT_REGISTERED_UNIDENTIFIED}),
    AgencyKind.CIVIL_AFFAIRS: frozenset({PATIENT_REGISTERED_UNIDENTIFIED, IDENTITY_CONFIRMED}),
    AgencyKind.POLICE_STATION: frozenset({IDENTITY_CONFIRMED}),
}
for _kind, _types in IDENTITY_MAY_RECORD.items():
    MAY_RECORD[_kind] = MAY_RECORD[_kind] | _types

#: Kinds that may find a patient by ID number (POST /v1/patients/search), and so may also be
#: told which patient already holds a number when a registration is refused: a caller that
#: could search the same number learns nothing new, and one that cannot must not be able to
#: use registration as a search. DESIGN.md section 4: these kinds read identity; committees and
#: care teams see the ID number masked; the disabled persons' federation reads identity but
#: only for its disability work, which starts from a certificate, not from a search.
MAY_SEARCH_BY_ID_NUMBER: frozenset[AgencyKind] = frozenset({
    AgencyKind.HEALTH_CENTER,
    AgencyKind.POLICE_STATION,
    AgencyKind.CIVIL_AFFAIRS,
    AgencyKind.PSYCHIATRIC_HOSPITAL,
    AgencyKind.GOVERNANCE_CENTER,
    AgencyKind.AUDITOR,
})


def may_search_by_id_number(kind: str) -> bool:
    """Whether the kind may find patients by ID number (and be told who holds one)."""
    return AgencyKind(kind) in MAY_SEARCH_BY_ID_NUMBER


class NotAllowedToSearch(DomainError):
    """The agency's kind may not search patients by ID number."""

    code = "not-allowed-to-search"
    status = 403

    def __init__(self, agency_id: str, kind: str) -> None:
        allowed = ", ".join(sorted(str(k) for k in MAY_SEARCH_BY_ID_NUMBER))
        super().__init__(
            f"agency {agency_id} is a {kind}, which may not search patients by ID number (only {allowed}); "
            "ask the health center that manages the patient"
        )


class NotAllowedToRecord(DomainError):
    """The agency's kind may not record this event type."""

    code = "not-allowed-to-record"
    status = 403

    def __init__(self, agency_id: str, kind: str, event_type: str) -> None:
        allowed = sorted(MAY_RECORD.get(AgencyKind(kind), ()))
        what = ", ".join(allowed) if allowed else "no event types"
        super().__init__(
            f"agency {agency_id} is a {kind}, which may not record {event_type}; a {kind} may record {what}"
        )


class SourceMismatch(DomainError):
    """The envelope's ``source`` must be the authenticated agency."""

    code = "source-mismatch"
    status = 403

    def __init__(self, source: str, agency_id: str, via: str) -> None:
        super().__init__(
            f"the envelope's source is {source!r} but the {via} belongs to agency {agency_id!r}; "
            f"set source to {agency_id!r}"
        )


def check_may_record(agency_id: str, kind: str, event_type: str) -> None:
    """Refuse an event type the agency's kind may not record."""
    if event_type not in MAY_RECORD.get(AgencyKind(kind), frozenset()):
        raise NotAllowedToRecord(agency_id, kind, event_type)


def check_source(source: str, agency_id: str, via: str) -> None:
    """Refuse an envelope whose source is not the authenticated agency."""
    if source != agency_id:
        raise SourceMismatch(source, agency_id, via)
