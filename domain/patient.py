"""The Patient aggregate: one event stream per registered patient (在册患者).

Public methods decide (check rules, compute) and record one event; each event's ``apply``
only changes state, because it runs again on every replay. Derived state (current risk level
and class, consecutive missed visits, last visit) is computed by *occurred* time, with the
message id as tie-break, so the order in which agencies' reports arrive never changes it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID

import msgspec
from eventsourcing.domain import Aggregate

from domain.emergency_access import EmergencyAccessFile
from domain.errors import MissedVisitNotYetDue
from domain.identity import EARLIEST_BIRTH_DATE, birth_date_of, china_today, validate_id_number
from domain.identity_errors import BirthDateDoesNotMatchIdNumber, BirthDateInvalid, IdentityAlreadyKnown
from domain.patient_care import PatientCare
from domain.patient_file import PatientFile
from domain.personal import PersonalDetails, ProvisionalIdentity, SealedText, sealed_text, sealing_upcast
from domain.values import (
    Provenance,
    RiskClass,
    by_occurred,
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


def with_birth_date_of_id_number(personal: Any) -> Any:
    """Upcasting: details stored before the birth date was a field get the ID number's (erased
    details, and details without a number, stay as they are)."""
    if isinstance(personal, PersonalDetails) and personal.birth_date is None:
        born = birth_date_of(personal.id_number)
        if born is not None:
            return msgspec.structs.replace(personal, birth_date=born)
    return personal


def identity_checked(personal: PersonalDetails, now: datetime) -> PersonalDetails:
    """The details with the ID number validated and normalised, and the birth date it states (a
    birth date sent beside the number must agree; one sent alone must be a plausible day)."""
    today = china_today(now)
    born = personal.birth_date
    if personal.id_number is not None:
        number = validate_id_number(personal.id_number, today)
        stated = birth_date_of(number)
        if born is not None and born != stated:
            raise BirthDateDoesNotMatchIdNumber()
        return msgspec.structs.replace(personal, id_number=number, birth_date=stated)
    if born is not None and born > today:
        raise BirthDateInvalid("is in the future")
    if born is not None and born < EARLIEST_BIRTH_DATE:
        raise BirthDateInvalid(f"is before {EARLIEST_BIRTH_DATE.isoformat()}")
    return personal


def _order(entry: dict[str, Any]) -> tuple[datetime, int]:
    """Occurred time first; at the same occurred time, the fact recorded later."""
    return by_occurred(entry)


class Patient(Aggregate, PatientFile, PatientCare, EmergencyAccessFile):
    """A registered patient's file (一人一档), kept as the facts agencies recorded."""

    TOPIC = "smd.Patient"

    # Class-level defaults (not annotated: the library reads aggregate annotations): snapshots
    # taken before identity confirmation existed lack these attributes, and snapshots are not upcast per attribute.
    provisional = None  # ProvisionalIdentity of an unidentified person
    identity_confirmed_at = None  # when an IdentityConfirmed fact says the identity was confirmed
    household_region = None  # county code of the household registration (户籍), when stated

    class Registered(Aggregate.Created, Fact):
        """PatientRegistered: the patient enters the register (v2: with an optional provisional
        identity; v3: the birth date inside the sealed details and the household region)."""

        TOPIC = "smd.PatientRegistered"
        class_version: ClassVar[int] = 3
        personal: PersonalDetails
        residence: str
        diagnosis: str | None
        provisional: ProvisionalIdentity | None
        household_region: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["provisional"] = None  # every v1 registration was of an identified person

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["household_region"] = None  # not asked for before v3: unknown, not guessed
            state["personal"] = with_birth_date_of_id_number(state["personal"])

        def apply(self, aggregate: Patient) -> None:
            aggregate.provisional = self.provisional
            aggregate.household_region = self.household_region

    class IdentityConfirmed(Fact):
        """PatientIdentityConfirmed: a patient registered without an ID number is identified
        (v2: the birth date inside the sealed details and the household region)."""

        TOPIC = "smd.PatientIdentityConfirmed"
        class_version: ClassVar[int] = 2
        personal: PersonalDetails
        household_region: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["household_region"] = None
            state["personal"] = with_birth_date_of_id_number(state["personal"])

        def apply(self, aggregate: Patient) -> None:
            if self.household_region is not None:
                aggregate.household_region = self.household_region
            # the confirmed name and number replace the provisional ones; known contacts stay
            given = {k: v for k, v in msgspec.structs.asdict(self.personal).items() if v is not None and k != "erased"}
            aggregate.personal = msgspec.structs.replace(aggregate.personal, **given)
            aggregate.identity_confirmed_at = self.occurred_at

    class VisitRecorded(Fact):
        """VisitRecorded: a follow-up visit took place, with its risk assessment."""

        TOPIC = "smd.VisitRecorded"
        face_to_face: bool
        joint: bool
        risk_level: int
        risk_class: str

        def apply(self, aggregate: Patient) -> None:
            entry = {"at": self.occurred_at, "key": self.message_id, "v": self.originator_version}
            aggregate.visits.append({**entry, "face_to_face": self.face_to_face, "joint": self.joint})
            aggregate.assessments.append({**entry, "level": self.risk_level, "class": self.risk_class})

    class VisitMissed(Fact):
        """VisitMissed: a scheduled visit did not happen (identity: patient + scheduled date; v2:
        the reason sealed)."""

        TOPIC = "smd.VisitMissed"
        class_version: ClassVar[int] = 2
        scheduled_on: date
        reason: SealedText | None
        upcast_v1_v2 = staticmethod(sealing_upcast("reason"))

        def apply(self, aggregate: Patient) -> None:
            aggregate.missed.append(
                {
                    "at": self.occurred_at,
                    "key": self.message_id,
                    "v": self.originator_version,
                    "scheduled_on": self.scheduled_on,
                }
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
                    "v": self.originator_version,
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
        self.facts: dict[str, list[dict[str, Any]]] = {}  # the rest of the file (domain.patient_file)

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
        provisional: ProvisionalIdentity | None = None,
        household_region: str | None = None,
    ) -> Patient:
        """Register a patient living in the org unit ``residence``.

        ``provisional`` is how an unidentified person is known (no ID number yet, Q-15). The
        birth date is the ID number's when one is given (a birth date sent beside it must agree).
        """
        check_not_in_future("the registration", by.occurred_at, now)
        if diagnosis is not None:
            check_known_diagnosis(diagnosis)
        personal = identity_checked(personal, now)
        return cls._create(
            cls.Registered,
            id=patient_id,
            timestamp=now,
            personal=personal,
            residence=residence,
            diagnosis=diagnosis,
            provisional=provisional,
            household_region=household_region,
            **_provenance(by),
        )

    def confirm_identity(
        self, by: Provenance, now: datetime, personal: PersonalDetails, household_region: str | None = None
    ) -> None:
        """Record the real identity (with its ID number) of a patient registered without one."""
        check_not_in_future("the identity confirmation", by.occurred_at, now)
        if self.id_number_known:
            raise IdentityAlreadyKnown(self.id)
        personal = identity_checked(msgspec.structs.replace(personal, id_number=personal.id_number or ""), now)
        self.trigger_event(
            self.IdentityConfirmed,
            timestamp=now,
            personal=personal,
            household_region=household_region,
            **_provenance(by),
        )

    @property
    def birth_date(self) -> date | None:
        """The birth date: as stated, else the ID number's (a snapshot taken before v3 has none)."""
        return self.personal.birth_date or birth_date_of(self.personal.id_number)

    @property
    def id_number_known(self) -> bool:
        """True once the patient has an ID number (given at registration or confirmed later)."""
        return self.personal.id_number is not None or self.identity_confirmed_at is not None

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
        self._check_registered_at("the visit", by.occurred_at)
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
        self._check_registered_at("the missed-visit report", by.occurred_at)
        if scheduled_on > now.date():
            raise MissedVisitNotYetDue(scheduled_on, now.date())
        if any(m["scheduled_on"] == scheduled_on for m in self.missed):
            return False
        self.trigger_event(
            self.VisitMissed,
            timestamp=now,
            scheduled_on=scheduled_on,
            reason=sealed_text(reason),
            **_provenance(by),
        )
        return True

    def assess_risk(self, by: Provenance, now: datetime, *, risk_level: int, risk_class: RiskClass) -> None:
        """Record a risk assessment made outside a visit."""
        check_not_in_future("the risk assessment", by.occurred_at, now)
        self._check_registered_at("the risk assessment", by.occurred_at)
        check_risk_level_in_range(risk_level)
        check_class_consistent_with_level(risk_level, risk_class)
        self.trigger_event(
            self.RiskAssessed,
            timestamp=now,
            risk_level=risk_level,
            risk_class=str(risk_class),
            **_provenance(by),
        )

    def _check_registered_at(self, what: str, occurred_at: datetime) -> None:
        """Facts dated while the patient was off the register are refused."""
        self._check_on_register(what, occurred_at)

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
