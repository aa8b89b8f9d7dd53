"""Working lists: which patients each list holds, and which agency kinds may read it.

Pure: the catalogue of lists (name, membership rule in words, readers) and the standing of one
patient (``standing``): the derived statuses the lists filter and sort on, computed with the same
folds the file shows (``domain.focus``, the patient's own derived properties), so that a list
and ``GET /v1/patients/{id}`` never disagree. No names or other personal values: a list row's
personal fields are read from the file at answer time, through ``domain.read_filter``.

Who may read which list is a table (``LISTS[...].readers``), decided per list from DESIGN.md
section 4 and the read filter's table (docs/decisions/028-working-lists.md): a kind may read a
list when it may see the list's basis (the police see risk levels, so the high-risk list; not
medication, so not the irregular-medication list), or when the list is the agency's own work
(the committee is warned when a pickup is overdue, R6). Each row still passes the file's filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from domain import focus
from domain.errors import DomainError
from domain.identity import CHINA_TZ
from domain.patient_file import Adherence, GuardianStatus, RefusalKind
from domain.registry import AgencyKind
from domain.rules.entries import Known, cared_for, latest, of
from domain.values import by_occurred

_HC = AgencyKind.HEALTH_CENTER
_POLICE = AgencyKind.POLICE_STATION
_CIVIL = AgencyKind.CIVIL_AFFAIRS
_COMMITTEE = AgencyKind.COMMITTEE
_HOSPITAL = AgencyKind.PSYCHIATRIC_HOSPITAL
_GOV = AgencyKind.GOVERNANCE_CENTER
_AUDITOR = AgencyKind.AUDITOR

#: "Recently discharged": discharged within this many days (and not admitted again).
RECENTLY_DISCHARGED_DAYS = 30

#: "Moved in": the residence changed into the caller's jurisdiction (an accepted move inside the
#: region, ``smd.ResidenceChanged``), or the patient arrived by an accepted handover from another
#: region (``smd.ArrivedFromRegion``, registered or registered again here), within this many days.
#: 90: a quarter, the longest visit interval (a stable patient is visited every 3 months, R4), so
#: a newcomer stays on the list at least until the new agencies' first full visit cycle has passed.
MOVED_IN_DAYS = 90

#: R5's default threshold, as the file shows the derived lost status (core.patient_read).
LOST_AFTER_MISSES = 3

#: The rules whose open, overdue obligations make a patient's pickup or visit overdue.
PICKUP_RULE = "R6"  # medication_pickup_due: the first day without medication passed
VISIT_RULE = "R4"  # the visit interval by class passed


@dataclass(frozen=True, slots=True)
class WorkingList:
    """One working list: its name, its membership rule in words, who may read it and why."""

    name: str
    rule: str
    readers: frozenset[AgencyKind]
    why: str


def _list(name: str, rule: str, readers: set[AgencyKind], why: str) -> WorkingList:
    return WorkingList(name, rule, frozenset(readers | {_AUDITOR}), why)


#: Every list, in the order the catalogue shows them. Every list but ``managed-elsewhere`` holds
#: registered patients only (a deregistered patient is on none) within the caller's jurisdiction.
LISTS: dict[str, WorkingList] = {
    w.name: w
    for w in (
        # R16: one or more of the ten focus categories, as the file's ``focus.categories`` shows
        _list(
            "focus",
            "in one or more of the ten focus categories (R16), as the file's focus.categories shows them",
            {_HC, _GOV},
            "the focus categories are the file's `focus` field: the health center and the governance center",
        ),
        # R16's key grade: 2+ categories, or lost, or incident history, or level >= 3
        _list(
            "key",
            "graded key (重点): two or more focus categories, or lost, or an incident on record, or risk level 3+",
            {_HC, _GOV},
            "the key grade is the file's `focus` field",
        ),
        # the latest assessed risk level is 3 or more
        _list(
            "high-risk",
            "the latest assessed risk level is 3 or more",
            {_HC, _POLICE, _HOSPITAL, _GOV},
            "every kind that sees `risk`; the police take level 3+ patients under management (R1)",
        ),
        # class unstable, and neither in hospital nor in institutional care (R2's condition)
        _list(
            "unstable-at-home",
            "the latest class is unstable and the patient is neither in hospital nor in institutional care (R2)",
            {_HC, _POLICE, _HOSPITAL, _GOV},
            "every kind that sees `risk`: the community police join R2's fortnightly joint visits",
        ),
        # whereabouts declared unknown, or R5's consecutive missed visits
        _list(
            "lost",
            "lost to follow-up: an agency's latest declaration says whereabouts unknown, or 3+ consecutive "
            "missed visits (R5), as the file's lost.lost shows",
            {_HC, _POLICE, _GOV},
            "every kind that sees `lost`; the police locate lost patients (R5)",
        ),
        # the focus category irregular medication
        _list(
            "irregular-medication",
            "irregular or no medication: the latest adherence is intermittent or none, or the patient is on "
            "medication at home and the supply ran out (the focus category irregular_medication)",
            {_HC, _HOSPITAL},
            "the basis is `medication`: clinical detail the police, committee and civil affairs may not see",
        ),
        # an open R6 obligation marked overdue
        _list(
            "pickup-overdue",
            "an open R6 obligation (medication_pickup_due) is overdue: the first day without medication passed "
            "with no new pickup",
            {_HC, _HOSPITAL, _COMMITTEE, _GOV},
            "the committee gets R6's run-out warning for the guardian, the governance center oversees every "
            "obligation; the rows show neither of them the medication itself",
        ),
        # an open R4 obligation marked overdue
        _list(
            "visit-overdue",
            "an open R4 obligation (the visit interval by class) is overdue",
            {_HC, _COMMITTEE, _GOV},
            "the basis is `visit_schedule` (the committee sees it) or the obligation itself (the governance "
            "center oversees every obligation)",
        ),
        # admitted and not discharged since
        _list(
            "in-hospital",
            "in hospital now: the latest hospital stay fact is an admission",
            {_HC, _HOSPITAL},
            "the basis is `hospital`",
        ),
        # discharged within the last RECENTLY_DISCHARGED_DAYS days and not admitted again
        _list(
            "recently-discharged",
            f"discharged within the last {RECENTLY_DISCHARGED_DAYS} days and not admitted again (R11)",
            {_HC, _HOSPITAL},
            "the basis is `hospital`",
        ),
        # the latest guardian status is none or weak
        _list(
            "no-guardian",
            "no or weak guardian: the latest guardian status is none or weak (a designated social guardian is a "
            "guardian)",
            {_HC, _POLICE, _CIVIL, _COMMITTEE, _GOV},
            "every kind that sees `guardian`; the governance center sees the focus category no_or_weak_guardian",
        ),
        # a refusal of visits, management or admission that holds
        _list(
            "refusing",
            "the latest report of a refusal of visits, of management or of admission by the family says it holds",
            {_HC, _COMMITTEE, _GOV},
            "every kind that sees `refusals`; the governance center is notified of refusals (R12)",
        ),
        # in institutional care now
        _list(
            "institutional-care",
            "in institutional care now: the latest institutional-care fact is a start",
            {_HC, _CIVIL},
            "civil affairs places patients in institutional care; the health center follows them up",
        ),
        # the latest accepted move inside the region brought the patient into the caller's
        # jurisdiction (from a residence outside it), or an accepted handover from another region
        # brought the patient here, within the last MOVED_IN_DAYS days
        _list(
            "moved-in",
            f"moved in: within the last {MOVED_IN_DAYS} days, the latest of these brought the patient into "
            "your jurisdiction: an accepted move inside the region (the residence change, from a residence "
            "outside your jurisdiction), or an accepted handover from another region (the patient registered "
            "here, or registered again after a move back)",
            {_HC, _POLICE, _COMMITTEE, _GOV},
            "every kind that sees `moves` (the health center, the police, the committee: a newcomer is their "
            "own work: first visit, R1's 列管, the care team), and the governance center, which oversees the "
            "receiving health center's accept-or-reject obligation (R8) and its escalation",
        ),
        # deregistered here as moved out to a region that still reports about the patient
        # (dual management, Q-5): tracked here, managed there
        _list(
            "managed-elsewhere",
            "managed by another region now: moved out to a linked region, which reports what it records "
            "(risk, lost and located, incidents, hospital stays) to this one, and has not reported the "
            "patient's deregistration there; the row shows the latest reported facts",
            {_HC, _POLICE, _GOV},
            "the household region keeps tracking (双管控): the kinds that see `risk` or `lost`; each reported "
            "fact is still shown only to the kinds that see its group",
        ),
    )
}

#: The one list of patients off this region's register (every other list holds registered
#: patients only).
TRACKED_LIST = "managed-elsewhere"

#: The orders a list can be read in (``sort=``), each with its meaning.
SORTS: dict[str, str] = {
    "risk": "highest risk level first (no assessment last), then by patient id",
    "residence": "by residence org unit, then by patient id",
    "since": "by registration time, oldest first, then by patient id",
}


class UnknownList(DomainError):
    """No list by that name."""

    code = "unknown-list"

    def __init__(self) -> None:
        super().__init__(f"no such working list; use one of: {', '.join(LISTS)} (GET /v1/lists)")


class ListNotAllowed(DomainError):
    """The caller's kind may not read this list (it may not see the list's basis)."""

    code = "list-not-allowed"

    def __init__(self, kind: str, name: str) -> None:
        readers = ", ".join(sorted(str(k) for k in LISTS[name].readers))
        super().__init__(
            f"a {kind} may not read the list {name!r} (its basis is not in what a {kind} may see); "
            f"it is read by: {readers}. GET /v1/lists shows the lists your kind may read"
        )


class UnknownSort(DomainError):
    """The order asked for is not one of the documented ones."""

    code = "unknown-sort"

    def __init__(self) -> None:
        super().__init__(f"sort must be one of: {', '.join(SORTS)}")


class InvalidCursor(DomainError):
    """The cursor is not one this service gave for this list and order."""

    code = "invalid-cursor"

    def __init__(self) -> None:
        super().__init__("pass `next` of the previous page as `after`, with the same list and `sort`")


class OrgUnitOutsideJurisdiction(DomainError):
    """The org unit filter names a unit outside the caller's jurisdiction."""

    code = "org-unit-outside-jurisdiction"

    def __init__(self) -> None:
        super().__init__("org_unit is not within your agency's jurisdiction; use one of your own org units")


def working_list(kind: str, name: str) -> WorkingList:
    """The list, if the kind may read it; else the error that says why."""
    found = LISTS.get(name)
    if found is None:
        raise UnknownList()
    if AgencyKind(kind) not in found.readers:
        raise ListNotAllowed(kind, name)
    return found


# -- one patient's standing -------------------------------------------------------------------------

#: Before every supply's end: the categories as they stand without a run-out supply.
_BEFORE_EVERY_SUPPLY = datetime(1900, 1, 1, tzinfo=UTC)
_IRREGULAR = (Adherence.INTERMITTENT, Adherence.NONE)
_NO_OR_WEAK = (GuardianStatus.NONE, GuardianStatus.WEAK)


def standing(patient: Any) -> dict[str, Any]:
    """What the lists filter and sort on for one registered patient (no personal values).

    The only status that changes with the clock alone is a run-out medication supply (the focus
    category irregular_medication, and so the key grade): it is kept as the instant the supply
    runs out (``supply_out_at``) beside the categories and grade without it, and the list decides
    at read time, as the file does.
    """
    known = Known()
    known.add(focus.entries(patient))
    without = focus.categories_of(known, _BEFORE_EVERY_SUPPLY, LOST_AFTER_MISSES)
    level = patient.risk_level
    end = focus.supply_runs_out_on(of(known, "medication"))
    supply_out_at = None if end is None or cared_for(known) else datetime.combine(end, time(0), CHINA_TZ)
    adherence = latest(known, "adherence")
    lost = patient.declared_whereabouts_unknown or patient.consecutive_missed_visits >= LOST_AFTER_MISSES
    hospital = patient.in_hospital
    facts = getattr(patient, "facts", {})
    moved = max([*facts.get("residence", []), *facts.get("arrival", [])], key=by_occurred, default=None)
    institution = patient.in_institutional_care
    return {
        "residence": patient.residence,
        "registered_at": patient.registered_at,
        "risk_level": level,
        "risk_sort": -level if level is not None else 1,  # ascending: highest level first, none last
        "risk_class": str(patient.risk_class) if patient.risk_class else None,
        "focus_without_supply": bool(without),
        "key_without_supply": focus.is_key(without, level),
        "key_with_supply": focus.is_key(without | {focus.IRREGULAR_MEDICATION}, level),
        "irregular_adherence": adherence is not None and adherence["adherence"] in _IRREGULAR,
        "supply_out_at": supply_out_at,
        "lost": lost,
        "in_hospital": hospital,
        "institutional_care": institution,
        "discharged_at": None if hospital else patient.last_discharged_at,
        "guardian_weak": patient.guardian_status in _NO_OR_WEAK,
        "refusing": any(patient.refuses(r) for r in RefusalKind),
        # the latest residence change (an accepted move inside the region) or arrival from another
        # region: when, and from which org unit (None for an arrival) or which region
        "moved_in_at": None if moved is None else moved["at"],
        "moved_from": None if moved is None else moved.get("previous"),
        "arrived_from_region": None if moved is None else moved.get("origin_region"),
    }


def managed_by_region(patient: Any) -> str | None:
    """The region that manages a patient this region moved out and still tracks: the sender of
    the latest reported fact, unless that fact is its deregistration (the feed ended)."""
    if getattr(patient, "deregistration_reason", None) != "moved_out":
        return None
    reported = patient.reported_by_region() if hasattr(patient, "reported_by_region") else []
    if not reported or reported[-1]["fact"] == "deregistered":
        return None
    return str(reported[-1]["region"])


def recently_discharged_since(now: datetime) -> datetime:
    """The earliest discharge that still counts as recent."""
    return now - timedelta(days=RECENTLY_DISCHARGED_DAYS)


def moved_in_since(now: datetime) -> datetime:
    """The earliest residence change that still counts as a recent move in."""
    return now - timedelta(days=MOVED_IN_DAYS)
