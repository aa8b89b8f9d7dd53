"""Restriction and erasure of a person's data: requested by one agency, approved by another,
one of the two an auditor.

The Mental Health Law keeps clinical records for decades and PIPL then allows only restriction
(DESIGN.md section 7): a patient off the register (deregistered) or a dismissed suspected case
may be *restricted*: the stored facts and keys are kept, every read but the auditor's is
refused, the rules and the outbox do nothing for the person and new facts are refused at the
door. *Lifting* ends it. *Erasure*, only where no retention applies (a registration made in
error, a dismissed suspected case), restricts at once and destroys the data key after a
cooling-off (``core.erasure``). Each act is a ``RestrictionRequest`` (its own aggregate, so an approval
names it by id) whose approval, by a different agency with one of the two an auditor, changes
the subject's ``Restriction`` (one per subject, id derived from the subject's id): both are
saved in one transaction.

Reasons are free text: sealed under the subject's key (``SEALED_UNDER``), like every free-text
field. Everything else (ids, agencies, kinds, key ids, acts, times) stays readable.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.personal import SealedText, sealed_text
from domain.registry import AgencyKind

RESTRICTION_NAMESPACE = uuid5(NAMESPACE_URL, "urn:smd:restriction")

AUDITOR = AgencyKind.AUDITOR


class RestrictionAct(StrEnum):
    """What a request asks for."""

    RESTRICT = "restrict"
    LIFT = "lift"
    ERASE = "erase"


class SubjectKind(StrEnum):
    """Whose data is restricted: a patient's file or a suspected case's report."""

    PATIENT = "patient"
    SUSPECTED_CASE = "suspected_case"


def restriction_id(subject_id: UUID) -> UUID:
    """The id of a subject's restriction (one per patient or suspected case); kept once computed:
    every page of a list asks it for each of its patients (kept by the id's integer: hashing a
    UUID runs Python code, hashing an int does not)."""
    return _restriction_id(subject_id.int)


@lru_cache(maxsize=100_000)
def _restriction_id(subject: int) -> UUID:
    return uuid5(RESTRICTION_NAMESPACE, str(UUID(int=subject)))


# -- errors -----------------------------------------------------------------------------------------


class PatientUnderManagement(DomainError):
    """A patient on the register is processed by legal duty and cannot be restricted."""

    code = "patient-under-management"

    def __init__(self, subject_id: UUID) -> None:
        super().__init__(
            f"patient {subject_id} is on the register (under management, processed by legal duty); only a "
            "patient off the register (deregistered) or a dismissed suspected case can be restricted"
        )


class PatientRestricted(DomainError):
    """The patient's (or suspected case's) data is restricted: no new fact is recorded."""

    code = "patient-restricted"

    def __init__(self, subject_id: UUID) -> None:
        super().__init__(
            f"the data of {subject_id} is restricted: nothing new is recorded about it; to record again, an "
            f"agency requests lifting (POST /v1/audit/patients/{subject_id}/restriction-lift-requests or "
            "`smd restriction request --act lift`) and a different agency approves it, one of the two an auditor"
        )


class AlreadyRestricted(DomainError):
    """The subject is restricted already."""

    code = "already-restricted"

    def __init__(self, subject_id: UUID) -> None:
        super().__init__(f"{subject_id} is restricted already; nothing to approve or request")


class NotRestricted(DomainError):
    """Only a restricted subject can have its restriction lifted."""

    code = "not-restricted"

    def __init__(self, subject_id: UUID) -> None:
        super().__init__(f"{subject_id} is not restricted; a lift applies only while a restriction lasts")


class RetentionApplies(DomainError):
    """Erasure only where no legal retention applies."""

    code = "retention-applies"

    def __init__(self, subject_id: UUID) -> None:
        super().__init__(
            f"{subject_id}'s record falls under the legal retention of clinical records; erasure applies only to "
            "a registration made in error (deregistered with reason registered_in_error) or a dismissed "
            "suspected case; request a restriction instead"
        )


class ErasureApproved(DomainError):
    """Once an erasure is approved, the subject stays restricted until it is carried out."""

    code = "erasure-approved"

    def __init__(self, subject_id: UUID) -> None:
        super().__init__(f"an erasure of {subject_id} was approved; nothing more can be requested or lifted for it")


class RequestAlreadyDecided(DomainError):
    """A request is approved once."""

    code = "restriction-request-decided"

    def __init__(self, request_id: UUID) -> None:
        super().__init__(f"request {request_id} was approved already; file a new request for a new act")


class ApprovalBySameAgency(DomainError):
    """The approving agency must differ from the requesting one."""

    code = "approval-by-requesting-agency"

    def __init__(self, agency_id: str) -> None:
        super().__init__(
            f"{agency_id} requested this act and cannot approve it too; a different agency approves it "
            "(one of the two an auditor)"
        )


class ApprovalNeedsAnAuditor(DomainError):
    """One of the requesting and approving agencies must be an auditor."""

    code = "approval-needs-an-auditor"

    def __init__(self, requested_by: str, approver: str) -> None:
        super().__init__(
            f"neither {requested_by} (requesting) nor {approver} (approving) is an auditor; an auditor must "
            "request or approve restriction, lifting and erasure"
        )


class ReasonRequired(DomainError):
    """A request and an approval each state their reason."""

    code = "reason-required"

    def __init__(self, what: str) -> None:
        super().__init__(f"the {what} needs a non-empty `reason` (at most 2000 characters) saying why")


class RestrictionRequestNotFound(DomainError):
    """No restriction request has this id."""

    code = "restriction-request-not-found"

    def __init__(self, request_id: UUID) -> None:
        super().__init__(f"no restriction request {request_id}; list them with GET /v1/audit/restriction-requests")


def check_reason(what: str, reason: str | None) -> str:
    """The stated reason, non-empty and bounded."""
    if reason is None or not reason.strip() or len(reason) > 2000:
        raise ReasonRequired(what)
    return reason


# -- aggregates -------------------------------------------------------------------------------------


class RestrictionRequest(Aggregate):
    """One agency's request to restrict or lift, and its approval by another."""

    TOPIC = "smd.RestrictionRequest"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.RestrictionRequest.Created"

    class Requested(Aggregate.Created):
        """RestrictionRequested: an agency asked for an act on a subject's data."""

        TOPIC = "smd.RestrictionRequested"
        SEALED_UNDER: ClassVar[str] = "subject_id"  # the reason is the subject's, erased with it
        subject_id: UUID
        subject_kind: str
        act: str
        agency_id: str
        agency_kind: str
        key_id: str
        staff_id: str | None
        reason: SealedText

    class Approved(Aggregate.Event):
        """RestrictionRequestApproved: a second agency approved it; the act took effect."""

        TOPIC = "smd.RestrictionRequestApproved"
        SEALED_UNDER: ClassVar[str] = "subject_id"
        subject_id: UUID
        agency_id: str
        agency_kind: str
        key_id: str
        staff_id: str | None
        reason: SealedText

        def apply(self, aggregate: RestrictionRequest) -> None:
            aggregate.approved_by = self.agency_id
            aggregate.approved_kind = self.agency_kind
            aggregate.approved_at = self.timestamp

    def __init__(
        self,
        subject_id: UUID,
        subject_kind: str,
        act: str,
        agency_id: str,
        agency_kind: str,
        key_id: str,
        staff_id: str | None,
        reason: SealedText,
    ) -> None:
        self.subject_id = subject_id
        self.subject_kind = subject_kind
        self.act = act
        self.requested_by = agency_id
        self.requested_kind = agency_kind
        self.approved_by: str | None = None
        self.approved_kind: str | None = None
        self.approved_at: datetime | None = None

    @classmethod
    def file(
        cls,
        request_id: UUID,
        subject_id: UUID,
        subject_kind: SubjectKind,
        act: RestrictionAct,
        agency_id: str,
        agency_kind: str,
        key_id: str,
        staff_id: str | None,
        reason: str,
        now: datetime,
    ) -> RestrictionRequest:
        """Record a request (the caller checked the subject may take the act)."""
        return cls._create(
            cls.Requested,
            id=request_id,
            timestamp=now,
            subject_id=subject_id,
            subject_kind=str(subject_kind),
            act=str(act),
            agency_id=agency_id,
            agency_kind=agency_kind,
            key_id=key_id,
            staff_id=staff_id,
            reason=sealed_text(check_reason("request", reason)),
        )

    def approve(
        self, agency_id: str, agency_kind: str, key_id: str, staff_id: str | None, reason: str, now: datetime
    ) -> None:
        """Approve by a different agency, one of the two an auditor."""
        if self.approved_at is not None:
            raise RequestAlreadyDecided(self.id)
        if agency_id == self.requested_by:
            raise ApprovalBySameAgency(agency_id)
        if AUDITOR not in (self.requested_kind, agency_kind):
            raise ApprovalNeedsAnAuditor(self.requested_by, agency_id)
        self.trigger_event(
            self.Approved,
            timestamp=now,
            subject_id=self.subject_id,
            agency_id=agency_id,
            agency_kind=agency_kind,
            key_id=key_id,
            staff_id=staff_id,
            reason=sealed_text(check_reason("approval", reason)),
        )


class Restriction(Aggregate):
    """Whether a subject's data is restricted now, and by which approved requests."""

    TOPIC = "smd.Restriction"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.Restriction.Created"

    class Opened(Aggregate.Created):
        """RestrictionOpened: the first approved act on a subject (it holds no state change)."""

        TOPIC = "smd.RestrictionOpened"
        subject_id: UUID
        subject_kind: str

    class Restricted(Aggregate.Event):
        """DataRestricted: from now on only storage and the auditor's reads."""

        TOPIC = "smd.DataRestricted"
        subject_id: UUID
        request_id: UUID

        def apply(self, aggregate: Restriction) -> None:
            aggregate.restricted = True
            aggregate.since = self.timestamp
            aggregate.request_id = self.request_id

    class Lifted(Aggregate.Event):
        """RestrictionLifted: reads and intake are back."""

        TOPIC = "smd.RestrictionLifted"
        subject_id: UUID
        request_id: UUID

        def apply(self, aggregate: Restriction) -> None:
            aggregate.restricted = False
            aggregate.since = None
            aggregate.request_id = self.request_id

    class ErasureApproved(Aggregate.Event):
        """ErasureApproved: the data key is destroyed after the cooling-off; processing stops now."""

        TOPIC = "smd.ErasureApproved"
        subject_id: UUID
        request_id: UUID
        erase_after: datetime

        def apply(self, aggregate: Restriction) -> None:
            aggregate.restricted = True
            aggregate.since = aggregate.since or self.timestamp
            aggregate.request_id = self.request_id
            aggregate.erase_after = self.erase_after

    class ErasureNoticed(Aggregate.Event):
        """ErasureByNotice: a linked region erased the patient and told this one (a signed notice);
        no retention applies here, so the data key is destroyed at the next `smd erasure run`
        (no cooling-off of our own: the sender's has passed); processing stops now."""

        TOPIC = "smd.ErasureByNotice"
        subject_id: UUID
        notice_id: UUID  # the ``CrossRegionErasure`` that recorded the notice
        sender_region: str
        erase_after: datetime

        def apply(self, aggregate: Restriction) -> None:
            aggregate.restricted = True
            aggregate.since = aggregate.since or self.timestamp
            aggregate.request_id = self.notice_id
            due = aggregate.erase_after
            aggregate.erase_after = self.erase_after if due is None else min(due, self.erase_after)
            aggregate.noticed_by = self.sender_region

    class Erased(Aggregate.Event):
        """DataErased: the subject's data key is destroyed; its personal and free-text values read
        as erased everywhere, its ID-number markers answer nothing."""

        TOPIC = "smd.DataErased"
        subject_id: UUID
        request_id: UUID
        markers_retired: int

        def apply(self, aggregate: Restriction) -> None:
            aggregate.erased_at = self.timestamp

    #: restrictions stored before erasure existed have none of these
    erase_after = None
    erased_at = None
    noticed_by = None  # the linked region whose erasure notice made this erasure due

    def __init__(self, subject_id: UUID, subject_kind: str) -> None:
        self.subject_id = subject_id
        self.subject_kind = subject_kind
        self.restricted = False
        self.since: datetime | None = None
        self.request_id: UUID | None = None
        self.erase_after: datetime | None = None
        self.erased_at: datetime | None = None
        self.noticed_by: str | None = None

    @classmethod
    def open(cls, subject_id: UUID, subject_kind: SubjectKind, now: datetime) -> Restriction:
        return cls._create(
            cls.Opened,
            id=restriction_id(subject_id),
            timestamp=now,
            subject_id=subject_id,
            subject_kind=str(subject_kind),
        )

    def check_may_take(self, act: RestrictionAct) -> None:
        """Refuse an act that would change nothing, or any act once an erasure was approved."""
        if self.erase_after is not None:
            raise ErasureApproved(self.subject_id)
        if act == RestrictionAct.RESTRICT and self.restricted:
            raise AlreadyRestricted(self.subject_id)
        if act == RestrictionAct.LIFT and not self.restricted:
            raise NotRestricted(self.subject_id)

    def take(self, act: RestrictionAct, request_id: UUID, now: datetime, cooling_off: timedelta) -> None:
        """Apply an approved act (an erasure is carried out after ``cooling_off``)."""
        self.check_may_take(act)
        if act == RestrictionAct.ERASE:
            self.trigger_event(
                self.ErasureApproved,
                timestamp=now,
                subject_id=self.subject_id,
                request_id=request_id,
                erase_after=now + cooling_off,
            )
            return
        event = self.Restricted if act == RestrictionAct.RESTRICT else self.Lifted
        self.trigger_event(event, timestamp=now, subject_id=self.subject_id, request_id=request_id)

    def erase_by_notice(self, notice_id: UUID, sender_region: str, now: datetime) -> None:
        """A linked region's erasure notice, accepted here: restricted now, the key destroyed by the
        next run (an erasure approved here and still cooling off is brought forward)."""
        if self.erased_at is not None:
            return
        self.trigger_event(
            self.ErasureNoticed,
            timestamp=now,
            subject_id=self.subject_id,
            notice_id=notice_id,
            sender_region=sender_region,
            erase_after=now,
        )

    def erase_due(self, now: datetime) -> bool:
        """Whether the approved erasure's cooling-off has passed and it is not carried out yet."""
        return self.erase_after is not None and self.erased_at is None and self.erase_after <= now

    def record_erased(self, markers_retired: int, now: datetime) -> None:
        """Record that the data key was (about to be) destroyed."""
        if self.request_id is None or not self.erase_due(now):
            return
        self.trigger_event(
            self.Erased,
            timestamp=now,
            subject_id=self.subject_id,
            request_id=self.request_id,
            markers_retired=markers_retired,
        )


#: The topics that change whether a subject is restricted (what a follower watches).
RESTRICTION_CHANGE_TOPICS = frozenset(
    {
        Restriction.Restricted.TOPIC,
        Restriction.Lifted.TOPIC,
        Restriction.ErasureApproved.TOPIC,
        Restriction.ErasureNoticed.TOPIC,
    }
)
#: The topics that make an erasure due (what ``smd erasure run`` looks for).
ERASURE_TOPICS = (Restriction.ErasureApproved.TOPIC, Restriction.ErasureNoticed.TOPIC)
