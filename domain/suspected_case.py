"""The SuspectedCase aggregate (疑似患者): a report of a possible patient, its assessment, its outcome.

J 村居 2, J 措施 (三)①: a committee, the police or anyone reports a person who may have a severe
mental disorder; the health center assesses (screens) the person; the case ends registered as a
patient (the person's file is the ``Patient`` it names) or dismissed with a reason.

Identity: the case id is the envelope subject, a UUID the reporter chooses. What the reporter
saw and who the person and the reporter are is personal (``SuspectedPerson``, ``CaseReporter``):
sealed under the case's own key. Where (an org unit), when, who recorded, the assessment
outcome and the dismissal reason stay readable for indicators and R18.

Rules: an assessment, a registration and a dismissal are dated at or after the report; a case
is assessed before it is registered or dismissed (by an assessment dated at or before); a
registered or dismissed case is closed: nothing more is recorded on it (a person reported again
is a new case). Several assessments may be recorded; the latest by occurred time stands.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import DomainError, ReferenceNotKnownYet, patient_reference
from domain.patient_file import _choice
from domain.personal import CaseReporter, SealedText, SuspectedPerson, sealed_text, sealing_upcast
from domain.values import Provenance, check_not_in_future


class AssessmentOutcome(StrEnum):
    """What the health center's assessment (screening) found."""

    SUSPECTED_SEVERE_DISORDER = "suspected_severe_disorder"  # screening positive: refer for diagnosis
    NO_SEVERE_DISORDER = "no_severe_disorder"
    NOT_ASSESSABLE = "not_assessable"  # the person was not found, or refused to be seen


class DismissalReason(StrEnum):
    """Why a suspected case ends without a registration."""

    NO_SEVERE_DISORDER = "no_severe_disorder"
    NOT_FOUND = "not_found"
    DUPLICATE_REPORT = "duplicate_report"  # another suspected case is about the same person
    OTHER = "other"


class CaseStatus(StrEnum):
    """Where a suspected case stands."""

    REPORTED = "reported"
    ASSESSED = "assessed"
    REGISTERED = "registered"
    DISMISSED = "dismissed"


# -- errors -----------------------------------------------------------------------------------------


def suspected_case_reference(case_id: UUID) -> str:
    """What a fact about the suspected case ``case_id`` waits for (core.waiting)."""
    return f"suspected-case:{case_id}"


class SuspectedCaseNotFound(ReferenceNotKnownYet):
    """Facts about a suspected case need its report first."""

    code = "suspected-case-not-found"

    def __init__(self, case_id: UUID) -> None:
        super().__init__(
            f"no suspected case {case_id} was reported; report it first "
            "(cn.smd.suspected-case.reported.v1), or check the subject",
            suspected_case_reference(case_id),
        )


class SuspectedCaseAlreadyReported(DomainError):
    """A case id is reported once."""

    code = "suspected-case-already-reported"

    def __init__(self, case_id: UUID) -> None:
        super().__init__(
            f"{case_id} is already taken (a suspected case was reported with it, or another record "
            "uses it); a new report needs a new subject (a fresh UUID); to continue that case, "
            "record its assessment"
        )


class SuspectedCaseNotAssessed(DomainError):
    """A case is assessed before it is registered or dismissed."""

    code = "suspected-case-not-assessed"

    def __init__(self, case_id: UUID, what: str, occurred_at: datetime) -> None:
        super().__init__(
            f"suspected case {case_id} has no assessment dated at or before {occurred_at.isoformat()}; "
            f"the health center records the assessment (cn.smd.suspected-case.assessed.v1) "
            f"before the case is {what}"
        )


class SuspectedCaseClosed(DomainError):
    """A registered or dismissed case takes no more facts."""

    code = "suspected-case-closed"

    def __init__(self, case: SuspectedCase, what: str) -> None:
        if case.patient_id is not None:
            assert case.closed_at is not None
            detail = (
                f"suspected case {case.id} was registered as patient {case.patient_id} on "
                f"{case.closed_at.isoformat()}, so it cannot be {what}; record facts on the patient's file"
            )
        else:
            assert case.closed_at is not None
            detail = (
                f"suspected case {case.id} was dismissed ({case.dismissal_reason}) on "
                f"{case.closed_at.isoformat()}, so it cannot be {what}; if the person needs assessing again, "
                "report a new suspected case"
            )
        super().__init__(detail)


class DatedBeforeReport(DomainError):
    """Nothing happens to a case before it was reported."""

    code = "dated-before-report"

    def __init__(self, what: str, occurred_at: datetime, reported_at: datetime) -> None:
        super().__init__(
            f"{what} is dated {occurred_at.isoformat()}, before the case was reported "
            f"({reported_at.isoformat()}); check the date or the subject"
        )


class PatientToLinkNotFound(ReferenceNotKnownYet):
    """A case is registered as a patient who is already on the register."""

    code = "patient-not-found"

    def __init__(self, patient_id: UUID) -> None:
        super().__init__(
            f"no registered patient {patient_id}; register the patient first "
            "(cn.smd.patient.registered.v1 with a new subject), then send this again with that id",
            patient_reference(patient_id),
        )


# -- the aggregate ----------------------------------------------------------------------------------


class _Fact(Aggregate.Event):
    agency_id: str
    staff_id: str | None
    occurred_at: datetime
    message_id: str


def _provenance(by: Provenance) -> dict[str, Any]:
    return {
        "agency_id": by.agency_id,
        "staff_id": by.staff_id,
        "occurred_at": by.occurred_at,
        "message_id": by.message_id,
    }


class SuspectedCase(Aggregate):
    """A suspected case, from its report to its registration or dismissal."""

    TOPIC = "smd.SuspectedCase"

    class Reported(Aggregate.Created, _Fact):
        """SuspectedCaseReported: who reported, where the person was seen, what was seen (sealed)."""

        TOPIC = "smd.SuspectedCaseReported"
        seen_in: str  # org unit id
        person: SuspectedPerson
        reporter: CaseReporter | None

    class Assessed(_Fact):
        """SuspectedCaseAssessed: the health center's assessment with its outcome (v2: the note
        sealed under the case's key, like the report)."""

        TOPIC = "smd.SuspectedCaseAssessed"
        class_version: ClassVar[int] = 2
        outcome: str
        note: SealedText | None
        upcast_v1_v2 = staticmethod(sealing_upcast("note"))

        def apply(self, aggregate: SuspectedCase) -> None:
            aggregate.assessments.append(
                {
                    "at": self.occurred_at,
                    "key": self.message_id,
                    "by": self.agency_id,
                    "outcome": self.outcome,
                    "note": self.note,
                }
            )

    class RegisteredAsPatient(_Fact):
        """SuspectedCaseRegistered: the person is on the register as ``patient_id``."""

        TOPIC = "smd.SuspectedCaseRegistered"
        patient_id: UUID

        def apply(self, aggregate: SuspectedCase) -> None:
            aggregate.patient_id = self.patient_id
            aggregate.closed_at = self.occurred_at
            aggregate.closed_by = self.agency_id

    class Dismissed(_Fact):
        """SuspectedCaseDismissed: no registration, with the reason (v2: the note sealed)."""

        TOPIC = "smd.SuspectedCaseDismissed"
        class_version: ClassVar[int] = 2
        reason: str
        note: SealedText | None
        upcast_v1_v2 = staticmethod(sealing_upcast("note"))

        def apply(self, aggregate: SuspectedCase) -> None:
            aggregate.dismissal_reason = self.reason
            aggregate.dismissal_note = self.note
            aggregate.closed_at = self.occurred_at
            aggregate.closed_by = self.agency_id

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.SuspectedCase.Created"

    def __init__(
        self,
        agency_id: str,
        staff_id: str | None,
        occurred_at: datetime,
        message_id: str,
        seen_in: str,
        person: SuspectedPerson,
        reporter: CaseReporter | None,
    ) -> None:
        self.reported_by = agency_id
        self.reported_at = occurred_at
        self.seen_in = seen_in
        self.person = person
        self.reporter = reporter
        self.assessments: list[dict[str, Any]] = []
        self.patient_id: UUID | None = None
        self.dismissal_reason: str | None = None
        self.dismissal_note: SealedText | None = None
        self.closed_at: datetime | None = None
        self.closed_by: str | None = None

    # -- commands ---------------------------------------------------------------------------------

    @classmethod
    def report(
        cls,
        case_id: UUID,
        by: Provenance,
        now: datetime,
        *,
        seen_in: str,
        person: SuspectedPerson,
        reporter: CaseReporter | None = None,
    ) -> SuspectedCase:
        """A person who may have a severe mental disorder was seen in the org unit ``seen_in``."""
        check_not_in_future("the suspected-case report", by.occurred_at, now)
        return cls._create(
            cls.Reported,
            id=case_id,
            timestamp=now,
            seen_in=seen_in,
            person=person,
            reporter=reporter,
            **_provenance(by),
        )

    def assess(self, by: Provenance, now: datetime, *, outcome: str, note: str | None = None) -> None:
        """Record the health center's assessment."""
        self._check("the assessment", "assessed", by, now)
        self.trigger_event(
            self.Assessed,
            timestamp=now,
            outcome=_choice("outcome", outcome, AssessmentOutcome),
            note=sealed_text(note),
            **_provenance(by),
        )

    def register_as_patient(self, by: Provenance, now: datetime, *, patient_id: UUID) -> None:
        """Record that the person is on the register as ``patient_id`` (the patient links back)."""
        self._check("the registration", "registered", by, now)
        self._check_assessed("registered", by.occurred_at)
        self.trigger_event(self.RegisteredAsPatient, timestamp=now, patient_id=patient_id, **_provenance(by))

    def dismiss(self, by: Provenance, now: datetime, *, reason: str, note: str | None = None) -> None:
        """Record that the case ends without a registration."""
        self._check("the dismissal", "dismissed", by, now)
        self._check_assessed("dismissed", by.occurred_at)
        self.trigger_event(
            self.Dismissed,
            timestamp=now,
            reason=_choice("reason", reason, DismissalReason),
            note=sealed_text(note),
            **_provenance(by),
        )

    def _check(self, what: str, verb: str, by: Provenance, now: datetime) -> None:
        check_not_in_future(what, by.occurred_at, now)
        if self.closed_at is not None:
            raise SuspectedCaseClosed(self, verb + (" again" if verb == self.status else ""))
        if by.occurred_at < self.reported_at:
            raise DatedBeforeReport(what, by.occurred_at, self.reported_at)

    def _check_assessed(self, verb: str, occurred_at: datetime) -> None:
        if not any(a["at"] <= occurred_at for a in self.assessments):
            raise SuspectedCaseNotAssessed(self.id, verb, occurred_at)

    # -- derived state ----------------------------------------------------------------------------

    @property
    def status(self) -> CaseStatus:
        """Reported, assessed, registered or dismissed."""
        if self.patient_id is not None:
            return CaseStatus.REGISTERED
        if self.dismissal_reason is not None:
            return CaseStatus.DISMISSED
        return CaseStatus.ASSESSED if self.assessments else CaseStatus.REPORTED

    @property
    def assessment(self) -> AssessmentOutcome | None:
        """The outcome of the latest assessment by occurred time (None: not assessed)."""
        latest = max(self.assessments, key=lambda a: (a["at"], a["key"]), default=None)
        return None if latest is None else AssessmentOutcome(latest["outcome"])

    @property
    def assessed_at(self) -> datetime | None:
        """When the latest assessment took place."""
        latest = max(self.assessments, key=lambda a: (a["at"], a["key"]), default=None)
        return None if latest is None else latest["at"]
