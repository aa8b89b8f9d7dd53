"""The patient's file, part 2: the care team and its contacts, aid, and the suspected-case link.

Same conventions as ``domain.patient_file``: each fact is an event with a stable topic, recorded
by a command of ``PatientCare`` (mixed into ``Patient``) that checks its rules first and kept as
an entry in ``Patient.facts[<kind>]``; derived state is a fold over the entries by occurred time
(message id breaks ties), so arrival order never changes it. The kinds are stable names too:
snapshots store ``facts`` under them.

Choices (see also README "The patient's file, part 2"):

- Care team (五帮一): one member per role. Assigning a member to a role that is held replaces the
  holder (the history says "replaced"); a removal empties the role. A removal needs an
  assignment of that role dated at or before it (a rule that later arrivals never break).
- Contacts: who (role, and the member's agency when it is not the recording one), when
  (occurred time), how (visit / phone / video / other), outcome (reached / not reached /
  refused). ``last_care_team_contact_at`` counts *reached* contacts only: an attempt that did
  not reach the patient or family is kept in the list but is not contact (R16's monthly
  contact completes on reached contacts).
- Aid: each aid type's status is its latest step by occurred time: applied → pending,
  granted → granted, found ineligible → ineligible, revoked → revoked. A revocation needs a
  grant of the type dated at or before it; so does a guardian-subsidy collection (one per
  month: a second report of the same month is the same fact).
- Hardship (R13): ``hardship_reasons`` is the sorted union of
  ``economic_status:<status>`` when the latest stated economic status (from the recorded circumstances)
  is minimum_living_allowance, extreme_poverty or unable_to_pay_treatment, and
  ``aid:<type>:<status>`` when minimum_living_allowance or extreme_poverty_support is pending or
  granted; ``hardship`` is true when there is any reason. A finding of ineligibility does not
  clear a stated economic status: whoever knows better records new circumstances.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from domain.errors import DomainError
from domain.patient_file import EconomicStatus, FileFact, _choice, _fact, _in_range, _latest
from domain.personal import CareTeamMember, SealedText, sealed_text, sealing_upcast, text_of
from domain.values import Provenance, by_occurred

# -- values -----------------------------------------------------------------------------------------


class CareRole(StrEnum):
    """The five roles of the care team (五帮一 / 关爱帮扶小组)."""

    GUARDIAN = "guardian"
    COMMUNITY_WORKER = "community_worker"  # 村(居)委会干部
    MENTAL_HEALTH_STAFF = "mental_health_staff"  # 精防医生
    COMMUNITY_POLICE = "community_police"  # 社区民警
    GRID_WORKER = "grid_worker"  # 网格员


#: The roles the emergency contact card (应急联系卡) prints, in its order: a change of one of
#: them is a new edition of the card (R23 tells the committee to reissue it).
CONTACT_CARD_ROLES: tuple[CareRole, ...] = (
    CareRole.COMMUNITY_WORKER,
    CareRole.COMMUNITY_POLICE,
    CareRole.MENTAL_HEALTH_STAFF,
)


class ContactMode(StrEnum):
    """How a care-team member was in contact."""

    VISIT = "visit"
    PHONE = "phone"
    VIDEO = "video"
    OTHER = "other"


class ContactOutcome(StrEnum):
    """What a contact attempt came to."""

    REACHED = "reached"  # the patient or the family was reached
    NOT_REACHED = "not_reached"  # 未访到
    REFUSED = "refused"


class AidType(StrEnum):
    """Aid of the glossary (救助)."""

    MINIMUM_LIVING_ALLOWANCE = "minimum_living_allowance"  # 低保
    EXTREME_POVERTY_SUPPORT = "extreme_poverty_support"  # 特困
    TEMPORARY_AID = "temporary_aid"  # 临时救助
    GUARDIAN_SUBSIDY = "guardian_subsidy"  # 监护补助 (以奖代补), collected in person monthly
    DISABILITY_CERTIFICATE = "disability_certificate"  # 残疾证
    LONG_ACTING_INJECTION_COVERAGE = "long_acting_injection_coverage"  # 长效针剂
    SPECIAL_DISEASE_STATUS = "special_disease_status"  # 特殊病种


class AidStatus(StrEnum):
    """Where an aid type stands for the patient."""

    PENDING = "pending"  # applied, not decided
    GRANTED = "granted"
    INELIGIBLE = "ineligible"
    REVOKED = "revoked"


#: Aid whose application or grant flags hardship (R13), with the economic statuses that do.
HARDSHIP_AID = (AidType.MINIMUM_LIVING_ALLOWANCE, AidType.EXTREME_POVERTY_SUPPORT)
HARDSHIP_ECONOMIC_STATUSES = (
    EconomicStatus.LOW_INCOME,
    EconomicStatus.EXTREME_POVERTY,
    EconomicStatus.UNABLE_TO_PAY_TREATMENT,
)
MAX_DISABILITY_GRADE = 4  # 残疾等级 一级 (most severe) to 四级

# -- errors -----------------------------------------------------------------------------------------


class NoMemberAssigned(DomainError):
    """A removal needs someone in the role."""

    code = "care-team-role-empty"

    def __init__(self, role: str, occurred_at: datetime) -> None:
        super().__init__(
            f"no {role} was assigned to the care team at or before {occurred_at.isoformat()}; "
            "assign one first (or check the role and the date)"
        )


class AidNotGranted(DomainError):
    """A revocation or a subsidy collection needs a grant of that aid first."""

    code = "aid-not-granted"

    def __init__(self, what: str, aid_type: str, occurred_at: datetime) -> None:
        super().__init__(
            f"{what} needs a grant of {aid_type} dated at or before {occurred_at.isoformat()}, and none is "
            f"on record; record the grant first (cn.smd.aid.granted.v1 with aid_type {aid_type}), "
            "or check the aid type and the date"
        )


class DisabilityGradeNotApplicable(DomainError):
    """Only a disability certificate has a grade."""

    code = "disability-grade-not-applicable"

    def __init__(self, aid_type: str) -> None:
        super().__init__(f"disability_grade belongs to disability_certificate only; leave it out for {aid_type}")


class InvalidMonth(DomainError):
    """A month is YYYY-MM."""

    code = "invalid-month"

    def __init__(self, month: str) -> None:
        super().__init__(f"month {month!r} is not a month; send YYYY-MM, e.g. 2026-11")


class SubsidyMonthNotStarted(DomainError):
    """A month's subsidy cannot be collected before the month begins."""

    code = "subsidy-month-not-started"

    def __init__(self, month: str, occurred_at: datetime) -> None:
        super().__init__(
            f"the guardian subsidy for {month} cannot have been collected on {occurred_at.date().isoformat()}, "
            "before that month began; send the month the payment is for"
        )


def _month(value: str) -> tuple[int, int]:
    try:
        year, month = (int(p) for p in value.split("-"))
    except ValueError:
        raise InvalidMonth(value) from None
    if len(value) != 7 or not 1 <= month <= 12 or year < 1900:
        raise InvalidMonth(value)
    return year, month


# -- events -----------------------------------------------------------------------------------------


@_fact("smd.CareTeamMemberAssigned", "care_team_assignment")
class CareTeamMemberAssigned(FileFact):
    """A member takes a role of the care team (replacing the holder, if any)."""

    role: str
    member: CareTeamMember  # personal: sealed in storage
    member_agency: str | None  # the agency the member works for (none for a guardian)


@_fact("smd.CareTeamMemberRemoved", "care_team_removal")
class CareTeamMemberRemoved(FileFact):
    """A role of the care team is left empty (v2: the reason sealed)."""

    class_version: ClassVar[int] = 2
    role: str
    reason: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("reason"))


@_fact("smd.CareTeamContactRecorded", "care_team_contact")
class CareTeamContactRecorded(FileFact):
    """A care-team member was in contact with the patient or the family (or tried; v2: the note
    sealed)."""

    class_version: ClassVar[int] = 2
    role: str
    member_agency: str | None  # None: the recording agency's own member
    mode: str
    outcome: str
    note: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("note"))


@_fact("smd.AidApplied", "aid_applied")
class AidApplied(FileFact):
    """An application for an aid type (v2: the note sealed)."""

    class_version: ClassVar[int] = 2
    aid_type: str
    note: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("note"))


@_fact("smd.AidGranted", "aid_granted")
class AidGranted(FileFact):
    """AidGranted: an aid type granted (a disability certificate with its grade; v2: the note
    sealed)."""

    class_version: ClassVar[int] = 2
    aid_type: str
    amount_yuan: int | None  # monthly amount, when the aid pays one
    disability_grade: int | None
    note: SealedText | None
    upcast_v1_v2 = staticmethod(sealing_upcast("note"))


@_fact("smd.AidFoundIneligible", "aid_found_ineligible")
class AidFoundIneligible(FileFact):
    """The patient (household) was found ineligible for an aid type (v2: the reason sealed)."""

    class_version: ClassVar[int] = 2
    aid_type: str
    reason: SealedText
    upcast_v1_v2 = staticmethod(sealing_upcast("reason"))


@_fact("smd.AidRevoked", "aid_revoked")
class AidRevoked(FileFact):
    """AidRevoked: a granted aid type was withdrawn (v2: the reason sealed)."""

    class_version: ClassVar[int] = 2
    aid_type: str
    reason: SealedText
    upcast_v1_v2 = staticmethod(sealing_upcast("reason"))


@_fact("smd.GuardianSubsidyCollected", "guardian_subsidy_collected")
class GuardianSubsidyCollected(FileFact):
    """The guardian collected a month's guardian subsidy in person (以奖代补)."""

    month: str  # YYYY-MM
    amount_yuan: int | None


@_fact("smd.PatientLinkedToSuspectedCase", "suspected_case")
class LinkedToSuspectedCase(FileFact):
    """The patient is the person of a suspected case (recorded when the case is registered)."""

    suspected_case_id: UUID


#: The aid steps by the kind of their entries, and the status each leaves.
_AID_STEPS = {
    "aid_applied": AidStatus.PENDING,
    "aid_granted": AidStatus.GRANTED,
    "aid_found_ineligible": AidStatus.INELIGIBLE,
    "aid_revoked": AidStatus.REVOKED,
}


def _until(entries: list[dict[str, Any]], as_of: datetime | None) -> list[dict[str, Any]]:
    return entries if as_of is None else [e for e in entries if e["at"] <= as_of]


def _by_time(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=by_occurred)


# -- commands and derived state ----------------------------------------------------------------------


class PatientCare:
    """Commands and derived state of the care team, contacts and aid (mixed into ``Patient``).

    Relies on ``PatientFile._record`` and ``PatientFile._entries`` (both mixed into ``Patient``).
    """

    facts: dict[str, list[dict[str, Any]]]

    if TYPE_CHECKING:  # provided by PatientFile in Patient

        def _record(self, event: type[FileFact], what: str, by: Provenance, now: datetime, **fields: Any) -> None: ...
        def _entries(self, kind: str) -> list[dict[str, Any]]: ...

    # care team
    def assign_care_team_member(
        self, by: Provenance, now: datetime, *, role: str, member: CareTeamMember, member_agency: str | None = None
    ) -> None:
        """Record who holds a role of the care team from the occurred time (replacing the holder)."""
        self._record(
            CareTeamMemberAssigned,
            "the care-team assignment",
            by,
            now,
            role=_choice("role", role, CareRole),
            member=member,
            member_agency=member_agency,
        )

    def remove_care_team_member(self, by: Provenance, now: datetime, *, role: str, reason: str | None = None) -> None:
        """Record that a role of the care team is empty from the occurred time."""
        role = _choice("role", role, CareRole)
        if not any(e["role"] == role and e["at"] <= by.occurred_at for e in self._entries("care_team_assignment")):
            raise NoMemberAssigned(role, by.occurred_at)
        self._record(CareTeamMemberRemoved, "the care-team removal", by, now, role=role, reason=sealed_text(reason))

    def _team_changes(self, as_of: datetime | None) -> list[dict[str, Any]]:
        changes = [{**e, "removed": False} for e in self._entries("care_team_assignment")]
        changes += [{**e, "removed": True} for e in self._entries("care_team_removal")]
        return _by_time(_until(changes, as_of))

    def care_team(self, as_of: datetime | None = None) -> dict[CareRole, dict[str, Any]]:
        """The team by role (``member``, ``member_agency``, ``since``), now or as of an occurred time."""
        team: dict[CareRole, dict[str, Any]] = {}
        for change in self._team_changes(as_of):
            role = CareRole(change["role"])
            if change["removed"]:
                team.pop(role, None)
            else:
                team[role] = {
                    "member": change["member"],
                    "member_agency": change["member_agency"],
                    "since": change["at"],
                }
        return team

    def missing_care_team_roles(self, as_of: datetime | None = None) -> tuple[CareRole, ...]:
        """Roles nobody holds (all five: the team is complete when this is empty)."""
        team = self.care_team(as_of)
        return tuple(r for r in CareRole if r not in team)

    @property
    def care_team_history(self) -> list[dict[str, Any]]:
        """Every change by occurred time: ``change`` is assigned, replaced or removed."""
        held: set[str] = set()
        history: list[dict[str, Any]] = []
        for change in self._team_changes(None):
            role = change["role"]
            if change["removed"]:
                kind = "removed"
                held.discard(role)
            else:
                kind = "replaced" if role in held else "assigned"
                held.add(role)
            history.append(
                {
                    "at": change["at"],
                    "role": role,
                    "change": kind,
                    "by": change["by"],
                    "member_agency": change.get("member_agency"),
                }
            )
        return history

    # contacts
    def record_care_team_contact(
        self,
        by: Provenance,
        now: datetime,
        *,
        role: str,
        mode: str,
        outcome: str,
        member_agency: str | None = None,
        note: str | None = None,
    ) -> None:
        """Record a care-team contact (who by role and agency, when, how, with what outcome)."""
        self._record(
            CareTeamContactRecorded,
            "the care-team contact",
            by,
            now,
            role=_choice("role", role, CareRole),
            member_agency=member_agency,
            mode=_choice("mode", mode, ContactMode),
            outcome=_choice("outcome", outcome, ContactOutcome),
            note=sealed_text(note),
        )

    @property
    def care_team_contacts(self) -> list[dict[str, Any]]:
        """Every contact by occurred time: at, role, agency (the member's), mode, outcome, note, by."""
        return [
            {
                "at": e["at"],
                "role": e["role"],
                "agency": e["member_agency"] or e["by"],
                "mode": e["mode"],
                "outcome": e["outcome"],
                "note": text_of(e["note"]),
                "by": e["by"],
            }
            for e in _by_time(self._entries("care_team_contact"))
        ]

    @property
    def last_care_team_contact_at(self) -> datetime | None:
        """When the care team last reached the patient or family (attempts that did not reach: no)."""
        reached = [e for e in self._entries("care_team_contact") if e["outcome"] == ContactOutcome.REACHED]
        latest = _latest(reached)
        return None if latest is None else latest["at"]

    # aid
    def apply_for_aid(self, by: Provenance, now: datetime, *, aid_type: str, note: str | None = None) -> None:
        """Record an application for an aid type."""
        self._record(
            AidApplied,
            "the aid application",
            by,
            now,
            aid_type=_choice("aid_type", aid_type, AidType),
            note=sealed_text(note),
        )

    def grant_aid(
        self,
        by: Provenance,
        now: datetime,
        *,
        aid_type: str,
        amount_yuan: int | None = None,
        disability_grade: int | None = None,
        note: str | None = None,
    ) -> None:
        """Record that an aid type was granted (a disability certificate with its grade 1-4)."""
        kind = _choice("aid_type", aid_type, AidType)
        if disability_grade is not None:
            if kind != AidType.DISABILITY_CERTIFICATE:
                raise DisabilityGradeNotApplicable(kind)
            _in_range("disability_grade", disability_grade, 1, MAX_DISABILITY_GRADE)
        if amount_yuan is not None:
            _in_range("amount_yuan", amount_yuan, 0, 1_000_000)
        self._record(
            AidGranted,
            "the aid grant",
            by,
            now,
            aid_type=kind,
            amount_yuan=amount_yuan,
            disability_grade=disability_grade,
            note=sealed_text(note),
        )

    def find_ineligible_for_aid(self, by: Provenance, now: datetime, *, aid_type: str, reason: str) -> None:
        """Record that the patient (household) is not eligible for an aid type."""
        self._record(
            AidFoundIneligible,
            "the ineligibility finding",
            by,
            now,
            aid_type=_choice("aid_type", aid_type, AidType),
            reason=SealedText(text=reason),
        )

    def revoke_aid(self, by: Provenance, now: datetime, *, aid_type: str, reason: str) -> None:
        """Record that a granted aid type was withdrawn."""
        kind = _choice("aid_type", aid_type, AidType)
        self._check_granted("the revocation", kind, by.occurred_at)
        self._record(AidRevoked, "the aid revocation", by, now, aid_type=kind, reason=SealedText(text=reason))

    def _check_granted(self, what: str, aid_type: str, occurred_at: datetime) -> None:
        if not any(e["aid_type"] == aid_type and e["at"] <= occurred_at for e in self._entries("aid_granted")):
            raise AidNotGranted(what, aid_type, occurred_at)

    def record_guardian_subsidy_collected(
        self, by: Provenance, now: datetime, *, month: str, amount_yuan: int | None = None
    ) -> bool:
        """Record that the guardian collected a month's subsidy in person.

        A second report of the same month is the same fact: nothing is recorded, False returned.
        """
        year, number = _month(month)
        if (year, number) > (by.occurred_at.year, by.occurred_at.month):
            raise SubsidyMonthNotStarted(month, by.occurred_at)
        if amount_yuan is not None:
            _in_range("amount_yuan", amount_yuan, 0, 1_000_000)
        self._check_granted("a guardian-subsidy collection", AidType.GUARDIAN_SUBSIDY, by.occurred_at)
        if any(e["month"] == month for e in self._entries("guardian_subsidy_collected")):
            return False
        self._record(
            GuardianSubsidyCollected, "the guardian-subsidy collection", by, now, month=month, amount_yuan=amount_yuan
        )
        return True

    def _aid_steps(self, as_of: datetime | None) -> list[dict[str, Any]]:
        steps = [{**e, "status": status} for kind, status in _AID_STEPS.items() for e in self._entries(kind)]
        return _until(steps, as_of)

    def aid_status(self, aid_type: AidType | str, as_of: datetime | None = None) -> AidStatus | None:
        """Where an aid type stands (None: nothing recorded), now or as of an occurred time."""
        latest = _latest([s for s in self._aid_steps(as_of) if s["aid_type"] == aid_type])
        return None if latest is None else latest["status"]

    def aid(self, as_of: datetime | None = None) -> dict[AidType, AidStatus]:
        """Every aid type with a status, now or as of an occurred time."""
        statuses = {t: self.aid_status(t, as_of) for t in AidType}
        return {t: s for t, s in statuses.items() if s is not None}

    @property
    def disability_grade(self) -> int | None:
        """The grade of the disability certificate in force (None: no certificate granted)."""
        if self.aid_status(AidType.DISABILITY_CERTIFICATE) != AidStatus.GRANTED:
            return None
        grants = [e for e in self._entries("aid_granted") if e["aid_type"] == AidType.DISABILITY_CERTIFICATE]
        return _latest(grants)["disability_grade"]  # type: ignore[index]

    @property
    def guardian_subsidy_months(self) -> tuple[str, ...]:
        """The months whose guardian subsidy was collected, in order."""
        return tuple(sorted({e["month"] for e in self._entries("guardian_subsidy_collected")}))

    # hardship (R13) and the extreme-poverty focus category (R16)
    def _economic_status_as_of(self, as_of: datetime | None) -> str | None:
        stated = [e for e in _until(self._entries("circumstances"), as_of) if e["economic_status"] is not None]
        latest = _latest(stated)
        return None if latest is None else latest["economic_status"]

    def hardship_reasons(self, as_of: datetime | None = None) -> tuple[str, ...]:
        """Why the patient is in hardship (empty: not), now or as of an occurred time (module doc)."""
        reasons = []
        status = self._economic_status_as_of(as_of)
        if status in HARDSHIP_ECONOMIC_STATUSES:
            reasons.append(f"economic_status:{status}")
        for aid_type in HARDSHIP_AID:
            aid = self.aid_status(aid_type, as_of)
            if aid in (AidStatus.PENDING, AidStatus.GRANTED):
                reasons.append(f"aid:{aid_type}:{aid}")
        return tuple(sorted(reasons))

    @property
    def hardship(self) -> bool:
        """Hardship flagged (R13): any of ``hardship_reasons``."""
        return bool(self.hardship_reasons())

    @property
    def in_extreme_poverty(self) -> bool:
        """The extreme-poverty focus category (R16): stated, or 特困 support pending or granted."""
        return self._economic_status_as_of(None) == EconomicStatus.EXTREME_POVERTY or self.aid_status(
            AidType.EXTREME_POVERTY_SUPPORT
        ) in (AidStatus.PENDING, AidStatus.GRANTED)

    # the suspected case the patient came from
    def link_suspected_case(self, by: Provenance, now: datetime, *, suspected_case_id: UUID) -> None:
        """Record that this patient is the person of a suspected case (called on its registration)."""
        self._record(
            LinkedToSuspectedCase, "the link to the suspected case", by, now, suspected_case_id=suspected_case_id
        )

    @property
    def suspected_case_ids(self) -> tuple[UUID, ...]:
        """Suspected cases registered as this patient, by occurred time (two reports of one person: two)."""
        return tuple(e["suspected_case_id"] for e in _by_time(self._entries("suspected_case")))

    @property
    def suspected_case_id(self) -> UUID | None:
        """The first suspected case registered as this patient (None: registered without one)."""
        ids = self.suspected_case_ids
        return ids[0] if ids else None
