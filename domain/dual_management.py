"""Dual management (双管控, seed Q-5): the residence region manages, the household region tracks.

After a handover between two regions of one city is accepted, the destination (the residence,
which now manages the patient) feeds the origin (the region the patient came from, which keeps
tracking) the facts it may see: risk level and class, lost and located, incidents, hospital stays
and deregistration. The origin stores each as its own fact type on the patient's file
(``smd.ReportedByRegion``, ``domain.patient_file``), marked with the sender region, the signed
message and the sender's agency and staff as asserted; its rules open nothing from them.

Here: which facts are fed and with which fields (never free text), and ``DualManagement``, the
destination's record of whom it feeds about a patient (docs/decisions/047).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

DUAL_MANAGEMENT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:dual-management")


class FedFact(StrEnum):
    """What kind of fact a region reported (the group of the file it belongs to, below)."""

    RISK = "risk"  # a risk level and class assessed (a visit, an assessment, a three-tier review)
    LOST = "lost"  # whereabouts declared unknown, or lost to follow-up derived from missed visits
    LOCATED = "located"  # whereabouts known again, or the lost episode ended
    INCIDENT = "incident"  # an incident (kind and severity)
    HOSPITAL = "hospital"  # admitted or discharged
    DEREGISTERED = "deregistered"  # left the register there (the feed ends with it)


#: The file's group (``domain.read_filter``) each reported fact is seen with: a kind that may not
#: see the group in its own region's file does not see it reported by another region either.
GROUP_OF: dict[str, str] = {
    FedFact.RISK: "risk",
    FedFact.LOST: "lost",
    FedFact.LOCATED: "lost",
    FedFact.INCIDENT: "incidents",
    FedFact.HOSPITAL: "hospital",
    FedFact.DEREGISTERED: "registration",
}


def _risk(e: Any) -> dict[str, Any]:
    return {"risk_level": e.risk_level, "risk_class": str(e.risk_class)}


#: Stored topic → (what it reports, its fields). Only structured fields: notes, plans and
#: outcomes (free text) never leave the region.
_EXTRACT: dict[str, Callable[[Any], tuple[FedFact, dict[str, Any]]]] = {
    "smd.VisitRecorded": lambda e: (FedFact.RISK, _risk(e)),
    "smd.RiskAssessed": lambda e: (FedFact.RISK, _risk(e)),
    "smd.ReviewRecorded": lambda e: (FedFact.RISK, {**_risk(e), "review_tier": str(e.tier)}),
    "smd.WhereaboutsDeclared": lambda e: (
        (FedFact.LOCATED, {"declared": True}) if e.known else (FedFact.LOST, {"declared": True})
    ),
    "smd.LostToFollowUp": lambda e: (FedFact.LOST, {"derived": True}),
    "smd.LostToFollowUpEnded": lambda e: (FedFact.LOCATED, {"derived": True}),
    "smd.IncidentReported": lambda e: (
        FedFact.INCIDENT,
        {"incident_id": str(e.incident_id), "incident_kind": str(e.incident_kind), "severity": e.severity},
    ),
    "smd.HospitalStayRecorded": lambda e: (
        FedFact.HOSPITAL,
        {"admitted": e.admitted, "hospital": e.hospital, "admission_kind": e.admission_kind},
    ),
    "smd.PatientDeregistered": lambda e: (FedFact.DEREGISTERED, {"reason": str(e.reason)}),
}

#: The stored topics a region feeds (on the patient's stream, or a lost episode's).
FED_TOPICS: tuple[str, ...] = tuple(_EXTRACT)
#: Fed topics whose aggregate is a lost episode, not the patient (its patient is looked up).
EPISODE_TOPICS = frozenset({"smd.LostToFollowUp", "smd.LostToFollowUpEnded"})


def fed(topic: str, event: Any) -> tuple[FedFact, dict[str, Any]] | None:
    """What a stored fact reports to the tracking region, or None (not fed)."""
    extract = _EXTRACT.get(topic)
    return None if extract is None else extract(event)


def same_city(a: str, b: str) -> bool:
    """Two region codes of one city: the first four digits of the administrative code."""
    return len(a) >= 4 and a[:4] == b[:4]


def feeds(here: str, origin: str, by_agreement: Collection[str] = ()) -> bool:
    """Whether this region feeds ``origin`` about the patients it took over from there: regions
    of one city (Q-5), and regions named by agreement (``SMD_DUAL_MANAGEMENT_REGIONS``)."""
    return origin != here and (same_city(here, origin) or origin in by_agreement)


def dual_management_id(patient_id: UUID) -> UUID:
    """The id of a patient's dual-management record (one per patient in the managing region)."""
    return uuid5(DUAL_MANAGEMENT_NAMESPACE, str(patient_id))


class DualManagement(Aggregate):
    """The managing region's record of which region tracks a patient: started when it accepts a
    handover from a region it feeds, ended by the patient's deregistration here or the
    handover's voiding (and started again by a later handover)."""

    TOPIC = "smd.DualManagement"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.DualManagement.Created"

    class Opened(Aggregate.Created):
        """The first time this region feeds a region about the patient."""

        TOPIC = "smd.DualManagementOpened"
        patient_id: UUID

    class Started(Aggregate.Event):
        """DualManagementStarted: from now on ``tracking_region`` is fed (handover accepted)."""

        TOPIC = "smd.DualManagementStarted"
        tracking_region: str
        handover_id: UUID

        def apply(self, aggregate: DualManagement) -> None:
            aggregate.tracking_region = self.tracking_region
            aggregate.handover_id = self.handover_id

    class Ended(Aggregate.Event):
        """DualManagementEnded: the feed stops (deregistered here, or the handover voided)."""

        TOPIC = "smd.DualManagementEnded"
        reason: str

        def apply(self, aggregate: DualManagement) -> None:
            aggregate.tracking_region = None

    def __init__(self, patient_id: UUID) -> None:
        self.patient_id = patient_id
        self.tracking_region: str | None = None
        self.handover_id: UUID | None = None

    @classmethod
    def open(cls, patient_id: UUID, now: datetime) -> DualManagement:
        return cls._create(cls.Opened, id=dual_management_id(patient_id), timestamp=now, patient_id=patient_id)

    def start(self, tracking_region: str, handover_id: UUID, now: datetime) -> None:
        if (self.tracking_region, self.handover_id) != (tracking_region, handover_id):
            self.trigger_event(self.Started, timestamp=now, tracking_region=tracking_region, handover_id=handover_id)

    def end(self, reason: str, now: datetime) -> None:
        if self.tracking_region is not None:
            self.trigger_event(self.Ended, timestamp=now, reason=reason)
