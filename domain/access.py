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

#: Inbound event types each kind may record. A type missing here is recordable by nobody.
MAY_RECORD: dict[AgencyKind, frozenset[str]] = {
    AgencyKind.HEALTH_CENTER: frozenset({PATIENT_REGISTERED, VISIT_RECORDED, VISIT_MISSED, RISK_ASSESSED}),
    AgencyKind.PSYCHIATRIC_HOSPITAL: frozenset({PATIENT_REGISTERED}),
    AgencyKind.COMMITTEE: frozenset({VISIT_MISSED}),
    AgencyKind.POLICE_STATION: frozenset(),
    AgencyKind.CIVIL_AFFAIRS: frozenset(),
    AgencyKind.GOVERNANCE_CENTER: frozenset(),
    AgencyKind.DISABLED_PERSONS_FEDERATION: frozenset(),
    AgencyKind.AUDITOR: frozenset(),
}


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
