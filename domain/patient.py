"""The Patient aggregate: one event stream per registered patient (在册患者).

Public methods decide (check rules, compute) and record one event; each event's ``apply``
only changes state, because it runs again on every replay. Derived state (current risk level
and class, consecutive missed visits, last visit) is computed by *occurred* time, with the
message id as tie-break, so the order in which agencies' reports arrive never changes it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import MissedVisitNotYetDue
from domain.personal import PersonalDetails
from domain.values import (
    Provenance,
    RiskClass,
    check_class_consistent_with_level,
    check_known_diagnosis,
    check_not_in_future,
    check_risk_level_in_range,
)


class Fact(Aggregate.Event):
    """Base of every patient fact: who recorded it, when it occurred, which message carried it.

    ``timestamp`` (eventsourcing's own field) is our ``recorded_at``.
    """

    agency_id: str
    staff_id: str | None
    occurred_at: datetime
    message_id: str

    @property
    def recorded_at(self) -> datetime:
        """When our service recorded the fact (our clock)."""
        return self.timestamp


def _provenance(p: Provenance) -> dict[str, Any]:
    return {
        "agency_id": p.agency_id,
        "staff_id": p.staff_id,
        "occurred_at": p.occurred_at,
        "message_id": p.message_id,
    }


def _order(entry: dict[str, Any]) -> tuple[datetime, str]:
    """Occurred time first; the message id breaks ties the same way in every arrival order."""
    return entry["at"], entry["key"]


class Patient(Aggregate):
    """A registered patient's file (一人一档), kept as the facts agencies recorded."""

    TOPIC = "smd.Patient"

    class Registered(Aggregate.Created, Fact):
        """PatientRegistered: the patient enters the register."""

        TOPIC = "smd.PatientRegistered"
        personal: PersonalDetails
        residence: str
        diagnosis: str | None

    class VisitRecorded(Fact):
        """VisitRecorded: a follow-up visit took place, with its risk assessment."""

        TOPIC = "smd.VisitRecorded"
        face_to_face: bool
        joint: bool
        risk_level: int
        risk_class: str

        def apply(self, aggregate: Patient) -> None:
            entry = {"at": self.occurred_at, "key": self.message_id}
            aggregate.visits.append(
                {**entry, "face_to_face": self.face_to_face, "joint": self.joint}
            )
            aggregate.assessments.append(
                {**entry, "level": self.risk_level, "class": self.risk_class}
            )

    class VisitMissed(Fact):
        """VisitMissed: a scheduled visit did not happen (identity: patient + scheduled date)."""

        TOPIC = "smd.VisitMissed"
        scheduled_on: date
        reason: str | None

        def apply(self, aggregate: Patient) -> None:
            aggregate.missed.append(
                {"at": self.occurred_at, "key": self.message_id, "scheduled_on": self.scheduled_on}
            )

    class RiskAssessed(Fact):
        """RiskAssessed: a risk assessment outside a visit (level 0-5 with class)."""

        TOPIC = "smd.RiskAssessed"
        risk_level: int
        risk_class: str

        def apply(self, aggregate: Patient) -> None:
            aggregate.assessments.append(
                {
                    "at": self.occurred_at,
                    "key": self.message_id,
                    "level": self.risk_level,
                    "class": self.risk_class,
                }
            )

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.Patient.Created"

    def __init__(
        self,
        agency_id: str,
        staff_id: str | None,
        occurred_at: datetime,
        message_id: str,
        personal: PersonalDetails,
        residence: str,
        diagnosis: str | None,
    ) -> None:
        self.registered_by = agency_id
        self.registered_at = occurred_at
        self.personal = personal
        self.residence = residence
        self.diagnosis = diagnosis
        self.visits: list[dict[str, Any]] = []
        self.assessments: list[dict[str, Any]] = []
        self.missed: list[dict[str, Any]] = []

    # -- commands -------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        patient_id: UUID,
        by: Provenance,
        now: datetime,
        personal: PersonalDetails,
        residence: str,
        diagnosis: str | None = None,
    ) -> Patient:
        """Register a patient living in the org unit ``residence``."""
        check_not_in_future("the registration", by.occurred_at, now)
        if diagnosis is not None:
            check_known_diagnosis(diagnosis)
        return cls._create(
            cls.Registered,
            id=patient_id,
            timestamp=now,
            personal=personal,
            residence=residence,
            diagnosis=diagnosis,
            **_provenance(by),
        )

    def record_visit(
        self,
        by: Provenance,
        now: datetime,
        *,
        face_to_face: bool,
        joint: bool,
        risk_level: int,
        risk_class: RiskClass,
    ) -> None:
        """Record a follow-up visit with the risk assessment made during it."""
        check_not_in_future("the visit", by.occurred_at, now)
        check_risk_level_in_range(risk_level)
        check_class_consistent_with_level(risk_level, risk_class)
        self.trigger_event(
            self.VisitRecorded,
            timestamp=now,
            face_to_face=face_to_face,
            joint=joint,
            risk_level=risk_level,
            risk_class=str(risk_class),
            **_provenance(by),
        )

    def record_missed_visit(
        self, by: Provenance, now: datetime, *, scheduled_on: date, reason: str | None = None
    ) -> bool:
        """Record that the visit scheduled for ``scheduled_on`` did not happen.

        A second report of the same scheduled visit is the same fact: nothing is recorded and
        False is returned.
        """
        check_not_in_future("the missed-visit report", by.occurred_at, now)
        if scheduled_on > now.date():
            raise MissedVisitNotYetDue(scheduled_on, now.date())
        if any(m["scheduled_on"] == scheduled_on for m in self.missed):
            return False
        self.trigger_event(
            self.VisitMissed,
            timestamp=now,
            scheduled_on=scheduled_on,
            reason=reason,
            **_provenance(by),
        )
        return True

    def assess_risk(self, by: Provenance, now: datetime, *, risk_level: int, risk_class: RiskClass) -> None:
        """Record a risk assessment made outside a visit."""
        check_not_in_future("the risk assessment", by.occurred_at, now)
        check_risk_level_in_range(risk_level)
        check_class_consistent_with_level(risk_level, risk_class)
        self.trigger_event(
            self.RiskAssessed,
            timestamp=now,
            risk_level=risk_level,
            risk_class=str(risk_class),
            **_provenance(by),
        )

    # -- derived state, by occurred time ----------------------------------------------------

    def _latest_assessment(self) -> dict[str, Any] | None:
        return max(self.assessments, key=_order, default=None)

    @property
    def risk_level(self) -> int | None:
        """The level of the latest assessment by occurred time (None before any)."""
        latest = self._latest_assessment()
        return None if latest is None else latest["level"]

    def risk_level_before(self, message_id: str) -> int | None:
        """The current level as it was without the fact carried by ``message_id``.

        The state just before a fact, by occurred time, is the fold of every other fact known
        at that point: what a policy compares with to see whether the fact changed the level.
        """
        others = [a for a in self.assessments if a["key"] != message_id]
        latest = max(others, key=_order, default=None)
        return None if latest is None else latest["level"]

    @property
    def risk_class(self) -> RiskClass | None:
        """The class of the latest assessment by occurred time (None before any)."""
        latest = self._latest_assessment()
        return None if latest is None else RiskClass(latest["class"])

    @property
    def last_visit_at(self) -> datetime | None:
        """When the latest visit took place."""
        latest = max(self.visits, key=_order, default=None)
        return None if latest is None else latest["at"]

    @property
    def last_joint_visit_at(self) -> datetime | None:
        """When the latest joint visit (health staff + care team + police) took place."""
        joint = [v for v in self.visits if v["joint"]]
        latest = max(joint, key=_order, default=None)
        return None if latest is None else latest["at"]

    @property
    def consecutive_missed_visits(self) -> int:
        """Missed visits scheduled after the day of the latest visit that took place."""
        last = self.last_visit_at
        return sum(1 for m in self.missed if last is None or m["scheduled_on"] > last.date())
