"""Domain exceptions. Each names the rule it enforces and says, in its message, what to fix.

``code`` is a stable slug: the API turns it into the RFC 9457 problem ``type`` and, through one
table (``api.problems.STATUS_BY_CODE``), an HTTP status; the NATS intake into the rejection
reason, so agency systems can branch on it. No error here knows about HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime


class DomainError(Exception):
    """A command broke a domain rule; nothing was stored."""

    code = "domain-rule"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RiskLevelOutOfRange(DomainError):
    """Risk level must be 0-5."""

    code = "risk-level-out-of-range"

    def __init__(self, level: int) -> None:
        super().__init__(f"risk level {level} is outside 0-5; send the assessed level 0 to 5")


class RiskClassInconsistentWithLevel(DomainError):
    """The class must agree with the risk level (level 3-5 is unstable, 1-2 not stable)."""

    code = "risk-class-inconsistent"

    def __init__(self, level: int, risk_class: str, allowed: Iterable[str]) -> None:
        names = " or ".join(str(a) for a in allowed)
        super().__init__(f"class {risk_class!s} does not fit risk level {level}; at level {level} the class is {names}")


class OccurredInFuture(DomainError):
    """A fact dated after our clock (beyond a small skew) cannot have happened yet."""

    code = "occurred-in-future"

    def __init__(self, what: str, occurred_at: datetime | date, now: datetime) -> None:
        super().__init__(
            f"{what} is dated {occurred_at.isoformat()}, after the server time {now.isoformat()}; "
            "send the time it actually happened (with its UTC offset)"
        )


class TimeOutOfRange(DomainError):
    """A time or date before the earliest this deployment accepts cannot belong to a patient's file."""

    code = "time-out-of-range"

    def __init__(self, what: str, value: datetime | date, earliest: datetime | date) -> None:
        super().__init__(
            f"{what} is {value.isoformat()}, before {earliest.isoformat()}, the earliest this service "
            "accepts (SMD_EARLIEST_TIME); send when it actually happened, with its UTC offset for a time"
        )


class OccurredWithoutTimezone(DomainError):
    """Times must carry an offset, or their meaning changes with the server's zone."""

    code = "time-without-offset"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} has no UTC offset; send e.g. 2026-11-20T09:30:00+08:00")


class UnknownDiagnosis(DomainError):
    """Only the six registered disorders are accepted."""

    code = "unknown-diagnosis"

    def __init__(self, diagnosis: str) -> None:
        from domain.values import Diagnosis

        allowed = ", ".join(d.value for d in Diagnosis)
        super().__init__(f"diagnosis {diagnosis!r} is not one of the six registered disorders: {allowed}")


class PatientAlreadyRegistered(DomainError):
    """A patient id can be registered once."""

    code = "patient-already-registered"

    def __init__(self, patient_id: object) -> None:
        super().__init__(f"patient {patient_id} is already registered; record facts about it instead")


class ReferenceNotKnownYet(DomainError):
    """A fact names a record (a patient, a suspected case, an incident, a move) that is not recorded
    yet. It may simply arrive later (a batch, a sync, a redelivery), so with a waiting store the
    intake holds the fact until it does (core.waiting) instead of refusing it.

    ``reference`` says what is awaited: ``patient:<id>``, ``suspected-case:<id>``,
    ``incident:<patient id>:<incident id>`` or ``move:<patient id>:<move id>`` (ids only).
    """

    reference: str = ""

    def __init__(self, detail: str, reference: str) -> None:
        super().__init__(detail)
        self.reference = reference


def patient_reference(patient_id: object) -> str:
    """What a fact about ``patient_id`` waits for (core.waiting)."""
    return f"patient:{patient_id}"


class PatientNotFound(ReferenceNotKnownYet):
    """A fact about a patient needs the patient to be registered first."""

    code = "patient-not-found"

    def __init__(self, patient_id: object) -> None:
        super().__init__(
            f"no registered patient {patient_id}; register the patient first (or check the subject)",
            patient_reference(patient_id),
        )


class MissedVisitNotYetDue(DomainError):
    """A visit cannot be missed before the day it was scheduled for."""

    code = "missed-visit-not-yet-due"

    def __init__(self, scheduled_on: date, today: date) -> None:
        super().__init__(
            f"the visit scheduled for {scheduled_on.isoformat()} cannot be missed yet (today is "
            f"{today.isoformat()}); report it on or after the scheduled day"
        )


class DuplicateMessageConflict(DomainError):
    """The same idempotency key was sent again with different content."""

    code = "idempotency-key-reused"

    def __init__(self, key: str) -> None:
        super().__init__(
            f"message {key} was already recorded with different content; "
            "use a new id for a new fact (a correction is a new event)"
        )


class ReferenceNotFound(DomainError):
    """A fact waited for the record it refers to, and the record did not come in time."""

    code = "reference-not-found"

    def __init__(self, reference: str, window_seconds: float) -> None:
        super().__init__(
            f"{describe_reference(reference)} within {_duration(window_seconds)} of this message's arrival "
            "(SMD_WAITING_WINDOW_SECONDS); the message waited and is now refused: record what it refers "
            "to first (or check the ids), then send the message again"
        )
        self.reference = reference


def describe_reference(reference: str) -> str:
    """What a waiting fact's reference names, in words (ids only: no personal data)."""
    kind, _, ids = reference.partition(":")
    first, _, second = ids.partition(":")
    match kind:
        case "patient":
            return f"no patient {first} was registered"
        case "suspected-case":
            return f"no suspected case {first} was reported"
        case "incident":
            return f"no incident {second} was reported for patient {first}"
        case "move":
            return f"no move {second} was reported for patient {first}"
    return f"{reference} was not recorded"


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"
