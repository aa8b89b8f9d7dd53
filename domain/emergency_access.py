"""Break the glass: time-limited emergency access to a patient outside the caller's reach.

DESIGN.md section 4: an agency that finds a person in crisis outside its jurisdiction may read
the file for a few hours, with a reason. The grant is a fact on the patient's stream
(``EmergencyAccessGranted``: the agency, the key id that authenticated it, the staff id it
asserted, the reason — free text, sealed under the patient's key —, when it was granted and
when it ends). While it lasts it lifts only the reach check for that agency and that patient;
the field filter of the agency's kind applies as always (docs/decisions/029).

The governance center covering the residence reviews every grant (R22): its
``cn.smd.emergency-access.reviewed.v1`` records ``EmergencyAccessReviewed`` (justified or not,
remarks sealed). Grants per agency per day are capped: each grant takes one of the day's
numbered slots (``EmergencyAccessSlot``, one aggregate per agency, day and number, saved in the
grant's transaction), so two concurrent grants can never both take the last one.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.patient_file import FileFact, _choice, _fact
from domain.personal import SealedText, sealed_text
from domain.registry import AgencyKind
from domain.values import Provenance, check_not_in_future

#: Namespace of grant ids (= slot ids); never change it (stored grants would stop matching).
GRANT_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:emergency-access")

#: The kinds that never open a patient's file (reports only), or that open every file anyway.
NO_EMERGENCY_ACCESS = frozenset({AgencyKind.DEPARTMENT, AgencyKind.AUDITOR})

MAX_REASON = 500


def grant_id(agency_id: str, day: date, n: int) -> UUID:
    """The id of an agency's ``n``-th grant (1-based) on a day (China time): its cap slot."""
    return uuid5(GRANT_NAMESPACE, f"{agency_id}|{day.isoformat()}|{n}")


def grant_message_id(grant: UUID) -> str:
    """The message id a grant's fact carries (its key in the patient's file and in R22)."""
    return f"emergency-access:{grant}"


class ReviewOutcome(StrEnum):
    """What the governance center found."""

    JUSTIFIED = "justified"
    NOT_JUSTIFIED = "not_justified"


@_fact("smd.EmergencyAccessGranted", "emergency_access")
class EmergencyAccessGranted(FileFact):
    """An agency outside the patient's reach was granted emergency access until ``expires_at``
    (granted at ``occurred_at``), for the reason it gave (sealed), under the API key ``key_id``."""

    grant_id: UUID
    key_id: str
    reason: SealedText
    expires_at: datetime


@_fact("smd.EmergencyAccessReviewed", "emergency_access_review")
class EmergencyAccessReviewed(FileFact):
    """The governance center reviewed a grant: justified or not, with remarks (sealed)."""

    grant_id: UUID
    outcome: str
    remarks: SealedText | None


class EmergencyAccessSlot(Aggregate):
    """One of an agency's grants of a day, by number: the cap's unit (its id is the grant's)."""

    TOPIC = "smd.EmergencyAccessSlot"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.EmergencyAccessSlot.Created"

    class Taken(Aggregate.Created):
        """EmergencyAccessSlotTaken: the agency's ``n``-th grant of ``day`` is for this patient."""

        TOPIC = "smd.EmergencyAccessSlotTaken"
        agency_id: str
        day: date
        n: int
        patient_id: UUID

    def __init__(self, agency_id: str, day: date, n: int, patient_id: UUID) -> None:
        self.agency_id = agency_id
        self.day = day
        self.n = n
        self.patient_id = patient_id

    @classmethod
    def take(cls, agency_id: str, day: date, n: int, patient_id: UUID, now: datetime) -> EmergencyAccessSlot:
        """Take the agency's ``n``-th slot of the day (saving it fails if another took it first)."""
        return cls._create(
            cls.Taken,
            id=grant_id(agency_id, day, n),
            timestamp=now,
            agency_id=agency_id,
            day=day,
            n=n,
            patient_id=patient_id,
        )


class EmergencyAccessFile:
    """Commands and derived state of the patient's emergency access (mixed into ``Patient``)."""

    id: UUID

    def grant_emergency_access(
        self,
        by: Provenance,
        now: datetime,
        *,
        grant: UUID,
        key_id: str,
        reason: str,
        hours: timedelta,
    ) -> None:
        """Record a grant from now for ``hours`` (the caller checked reach, kind, cap and length)."""
        if not reason.strip():
            raise EmergencyAccessNeedsAReason()
        self._record(  # type: ignore[attr-defined]
            EmergencyAccessGranted,
            "the emergency access",
            by,
            now,
            grant_id=grant,
            key_id=key_id,
            reason=SealedText(text=reason),
            expires_at=by.occurred_at + hours,
        )

    def review_emergency_access(
        self, by: Provenance, now: datetime, *, grant_id: UUID, outcome: str, remarks: str | None = None
    ) -> None:
        """Record the governance center's review of a grant (also after the patient left the
        register: the access happened while the patient was on it)."""
        if self.emergency_grant(grant_id) is None:
            raise UnknownEmergencyAccess(grant_id)
        found = _choice("outcome", outcome, ReviewOutcome)
        check_not_in_future("the emergency access review", by.occurred_at, now)
        self.trigger_event(  # type: ignore[attr-defined]
            EmergencyAccessReviewed,
            timestamp=now,
            agency_id=by.agency_id,
            staff_id=by.staff_id,
            occurred_at=by.occurred_at,
            message_id=by.message_id,
            grant_id=grant_id,
            outcome=found,
            remarks=sealed_text(remarks),
        )

    def _grants(self) -> list[dict[str, Any]]:
        return self.__dict__.setdefault("facts", {}).get("emergency_access", [])

    def emergency_grant(self, grant: UUID) -> dict[str, Any] | None:
        """The grant with this id (None: not granted for this patient)."""
        return next((e for e in self._grants() if e["grant_id"] == grant), None)

    def emergency_grants(self) -> list[dict[str, Any]]:
        """Every grant, in the order recorded."""
        return list(self._grants())

    def active_emergency_grant(self, agency_id: str, now: datetime) -> dict[str, Any] | None:
        """The agency's grant in force now (the one lasting longest), if any."""
        live = [e for e in self._grants() if e["by"] == agency_id and e["at"] <= now < e["expires_at"]]
        return max(live, key=lambda e: e["expires_at"], default=None)

    def emergency_review(self, grant: UUID) -> dict[str, Any] | None:
        """The latest review of a grant (a later review corrects an earlier one)."""
        found = [e for e in self.__dict__.get("facts", {}).get("emergency_access_review", []) if e["grant_id"] == grant]
        return max(found, key=lambda e: e["v"], default=None)


# -- errors -------------------------------------------------------------------------------------


class EmergencyAccessNeedsAReason(DomainError):
    """A grant states why."""

    code = "emergency-access-needs-a-reason"

    def __init__(self) -> None:
        super().__init__(
            f"send reason: why your agency must read this patient's file now (free text, 1-{MAX_REASON} characters)"
        )


class EmergencyAccessNotForKind(DomainError):
    """Departments never open a file; auditors open every file already."""

    code = "emergency-access-not-for-kind"

    def __init__(self, kind: str) -> None:
        super().__init__(
            f"a {kind} is not granted emergency access: departments never read a patient's file, "
            "auditors read every file already"
        )


class EmergencyAccessNotNeeded(DomainError):
    """A grant to an agency that already reaches the patient is refused (it would only dilute the
    governance center's reviews and use up the day's cap)."""

    code = "emergency-access-not-needed"

    def __init__(self) -> None:
        super().__init__("your agency already reaches this patient: read the file with GET /v1/patients/{id}")


class EmergencyAccessTooLong(DomainError):
    """A grant lasts at most the region's longest setting."""

    code = "emergency-access-too-long"

    def __init__(self, longest: timedelta) -> None:
        hours = longest.total_seconds() / 3600
        super().__init__(f"hours must be more than 0 and at most {hours:g}; send fewer hours, or none for the default")


class EmergencyAccessCapReached(DomainError):
    """An agency's grants per day are capped (r22_emergency_access_per_agency_per_day)."""

    code = "emergency-access-cap-reached"

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"your agency has had its {cap} emergency grants for today (China time); ask the agency "
            "responsible for the patient, or the governance center"
        )


class UnknownEmergencyAccess(DomainError):
    """A review names a grant of this patient."""

    code = "unknown-emergency-access"

    def __init__(self, grant: UUID) -> None:
        super().__init__(
            f"no emergency access {grant} was granted for this patient; check data.grant_id "
            "(GET /v1/audit/emergency-access lists the grants)"
        )
