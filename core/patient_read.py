"""Reading a patient's file and timeline, as the caller's kind may see them.

Loads the patient (read only), decides reach with ``domain.read_filter.may_open`` (the
jurisdiction today, read from the registry as recorded now; a hospital's own patients) and
builds the whole file as plain data; ``domain.read_filter`` then keeps what the kind may see.
Personal values are unsealed by the case record's mapper on load and leave only through the
filter; nothing here logs them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError

from core.case_record import CaseRecord
from core.registry import REGION_TZ, RegistryView
from core.restrictions import hidden_from
from domain import focus
from domain.jurisdiction import agencies_in, covers
from domain.patient import Patient
from domain.patient_care import AidStatus
from domain.patient_file import ReportedByRegion, ReviewTier
from domain.personal import Personal, SealedText, text_of
from domain.read_filter import CLINICAL_AID, PatientNotVisible, filter_fact_data, filter_file, may_open, sees_fact

#: R5's default threshold (``RuleSettings.r5_misses_that_mean_lost``): the derived lost status
#: shown in a file is the same fold R5 makes with the default setting.
LOST_AFTER_MISSES = 3
OPEN_STATUSES = ("assigned", "acknowledged")

#: Fields every event has; the timeline shows them beside the data, not inside it.
_BASE = {
    "originator_id",
    "originator_topic",
    "originator_version",
    "timestamp",
    "agency_id",
    "staff_id",
    "occurred_at",
    "message_id",
}


class ObligationRow(Protocol):
    """What the file shows of an obligation or notice (the work-queue read model's row)."""

    obligation_id: UUID
    kind: str
    rule: str
    action: str
    assignee: str
    due_at: datetime | None
    status: str
    assigned_at: datetime
    overdue: bool
    escalated_to: str | None
    trigger_message_id: str


def _plain(value: Any) -> Any:
    if isinstance(value, SealedText):  # free text is shown as text (null once erased)
        return value.text
    if isinstance(value, Personal):
        return {k: v for k, v in msgspec.structs.asdict(value).items() if k != "erased" and v is not None}
    return value


def load_visible(
    case_record: CaseRecord, registry: RegistryView, kind: str, agency_id: str, patient_id: UUID, now: datetime
) -> Patient:
    """The patient, if the caller may open the file; else ``PatientNotVisible`` (the same as for
    an id that does not exist, and for a restricted patient to every kind but the auditor)."""
    return load_reachable(case_record, registry, kind, agency_id, patient_id, now)[0]


def load_reachable(
    case_record: CaseRecord,
    registry: RegistryView,
    kind: str,
    agency_id: str,
    patient_id: UUID,
    now: datetime,
    events: Sequence[Any] | None = None,
) -> tuple[Patient, UUID | None]:
    """The patient, if the caller may open the file, and the emergency access grant it opens it
    under (None: its own reach); else ``PatientNotVisible``. A grant is used only where the reach
    alone would refuse, so a read is marked as under emergency access only when it needed one.
    A restricted patient is hidden from every kind but the auditor, grant or no grant.
    ``events``: every event of the patient's stream, already read (the timeline's first page):
    the patient is made from them, with no query of its own."""
    if hidden_from(kind, case_record, (patient_id,)):
        raise PatientNotVisible()
    try:  # read only: the cached patient itself, no copy (the cache is never changed in place)
        if events is not None:
            patient = case_record.repository.read_from(patient_id, events)  # type: ignore[attr-defined]
        else:
            patient = case_record.repository.get(patient_id, deepcopy_from_cache=False)
    except AggregateNotFoundError:
        raise PatientNotVisible() from None
    if not isinstance(patient, Patient):
        raise PatientNotVisible()
    if reaches(registry, kind, agency_id, patient, now):
        return patient, None
    grant = patient.active_emergency_grant(agency_id, now)
    if grant is None or not may_open(kind, covered_today=False, own_patient=False, emergency_access=True):
        raise PatientNotVisible()
    return patient, grant["grant_id"]


def reaches(registry: RegistryView, kind: str, agency_id: str, patient: Patient, now: datetime) -> bool:
    """Whether the caller opens the file by its own reach (jurisdiction today, own patient)."""
    today = now.astimezone(REGION_TZ).date()
    covered = covers(registry.state(), agency_id, patient.residence, today)
    return may_open(kind, covered_today=covered, own_patient=agency_id in own_patient_of(patient))


def own_patient_of(patient: Patient) -> frozenset[str]:
    """The agencies that registered, diagnosed or admitted the patient (a hospital's own)."""
    facts = patient.facts
    admitted = [e for e in facts.get("hospital", ()) if e.get("admitted")]
    return frozenset({patient.registered_by}) | agencies_in(facts.get("diagnosis", ())) | agencies_in(admitted)


def whole_file(patient: Patient, now: datetime, obligations: Iterable[ObligationRow]) -> dict[str, Any]:
    """Every field of the file (``domain.read_filter.FIELDS``), before filtering."""
    p = patient
    personal = p.personal
    guardian = p.guardian_contact
    aid = p.aid()
    grade = focus.grade(p, now, LOST_AFTER_MISSES)
    facts = p.facts
    return {
        "registration": {
            "registered_at": p.registered_at,
            "registered_by": p.registered_by,
            "deregistered_at": p.deregistered_at,
            "deregistration_reason": p.deregistration_reason,
            # registered again after leaving (a move back, docs/decisions/043); None: never
            "reregistered_at": p.reregistered_at,
            # the latest arrival by an accepted handover from another region; None: none
            "arrived_from": p.arrived_from,
        },
        "name": personal.name,
        "id_number": personal.id_number,
        "phone": personal.phone,
        "address": personal.address,
        "residence": p.residence,
        "provisional_identity": _plain(p.provisional) if p.provisional is not None else None,
        "circumstances": {
            "lives_alone": p.lives_alone,
            "can_drive": p.can_drive,
            "family_history": p.family_history,
            "economic_status": p.economic_status,
        },
        "confinement": {"confined": p.confined},
        "diagnosis": str(p.current_diagnosis) if p.current_diagnosis else None,
        "risk": {"level": p.risk_level, "class": str(p.risk_class) if p.risk_class else None},
        "review": {str(t): _review(p.review(t)) for t in ReviewTier},
        "visit_schedule": {
            "last_visit_at": p.last_visit_at,
            "last_joint_visit_at": p.last_joint_visit_at,
            "missed": sorted(m["scheduled_on"] for m in p.missed),
            "consecutive_missed_visits": p.consecutive_missed_visits,
        },
        "medication": {
            "pickups": [
                {
                    "dispensed_on": e["dispensed_on"],
                    "days_supplied": e["days_supplied"],
                    "long_acting_injection": e["long_acting_injection"],
                }
                for e in sorted(facts.get("medication", ()), key=lambda e: (e["dispensed_on"], e["key"]))
            ],
            "supply_ends_on": p.supply_ends_on,
            "adherence": str(p.adherence) if p.adherence else None,
            "coverage": {str(t): str(s) for t, s in aid.items() if str(t) in CLINICAL_AID},
        },
        "hospital": {
            "in_hospital": p.in_hospital,
            "stays": [
                {
                    "at": e["at"],
                    "admitted": e["admitted"],
                    "hospital": e["hospital"],
                    "admission_kind": e["admission_kind"],
                    "discharge_plan": text_of(e["discharge_plan"]),
                }
                for e in sorted(facts.get("hospital", ()), key=lambda e: (e["at"], e["v"]))
            ],
        },
        "guardian": {"status": str(p.guardian_status), "contact": _plain(guardian) if guardian else None},
        "guardian_exists": str(p.guardian_status) in ("capable", "weak", "social"),
        "agreement": {
            "signed_on": p.guardianship_agreement_signed_on,
            "legal_duty_notices": sorted(e["given_on"] for e in facts.get("legal_duty_notice", ())),
        },
        "care_team": {
            str(role): {"member": _plain(m["member"]), "member_agency": m["member_agency"], "since": m["since"]}
            for role, m in p.care_team().items()
        },
        "care_team_contacts": p.care_team_contacts,
        "aid": {str(t): str(s) for t, s in aid.items() if str(t) not in CLINICAL_AID},
        "aid_exists": any(s == AidStatus.GRANTED for t, s in aid.items() if str(t) not in CLINICAL_AID),
        "disability": {
            "certificate": str(aid.get("disability_certificate")) if aid.get("disability_certificate") else None,  # type: ignore[call-overload]
            "grade": p.disability_grade,
        },
        "incidents": [
            {
                "incident_id": e["incident_id"],
                "at": e["at"],
                "incident_kind": e["incident_kind"],
                "severity": e["severity"],
                **p.incident_status(e["incident_id"]),
            }
            for e in sorted(facts.get("incident", ()), key=lambda e: (e["at"], e["v"]))
        ],
        "police_management": {"under_management": p.under_police_management},
        "moves": [
            {
                "move_id": e["move_id"],
                "destination_region": e["destination_region"],
                "destination_unit": e["destination_unit"],
                "moving_on": e["moving_on"],
            }
            for e in sorted(facts.get("move", ()), key=lambda e: (e["at"], e["v"]))
        ],
        "reported_by_region": reported_entries(p),
        "refusals": {
            "visits": p.refuses("visits"),
            "management": p.refuses("management"),  # type: ignore[arg-type]
            "admission_by_family": p.refuses("admission_by_family"),
        },  # type: ignore[arg-type]
        "lost": {
            "declared": p.declared_whereabouts_unknown,
            "derived": p.consecutive_missed_visits >= LOST_AFTER_MISSES,
            "lost": p.declared_whereabouts_unknown or p.consecutive_missed_visits >= LOST_AFTER_MISSES,
        },
        "focus": {"categories": grade["categories"], "key": grade["key"]},
        "suspected_case": p.suspected_case_ids,
        "obligations": [
            {
                "obligation_id": o.obligation_id,
                "kind": o.kind,
                "rule": o.rule,
                "action": o.action,
                "assignee": o.assignee,
                "due_at": o.due_at,
                "status": o.status,
                "assigned_at": o.assigned_at,
                "overdue": o.overdue,
                "escalated_to": o.escalated_to,
            }
            for o in obligations
            if o.status in OPEN_STATUSES
        ],
    }


def reported_entries(patient: Patient) -> list[dict[str, Any]]:
    """What other regions reported about the patient, oldest first, as the file shows it."""
    return [
        {
            "region": e["region"],
            "handover_id": e["handover_id"],
            "fact": e["fact"],
            "occurred_at": e["at"],
            "reported_by": e["reported_by"],  # as the other region asserts it
            "reported_staff": e["reported_staff"],  # as the other region asserts it
            **_details(e["details"]),
        }
        for e in patient.reported_by_region()
    ]


def latest_reported(patient: Patient) -> list[dict[str, Any]]:
    """The latest reported fact of each kind (lost and located count as one), oldest first."""
    latest: dict[str, dict[str, Any]] = {}
    for e in reported_entries(patient):
        latest["lost" if e["fact"] == "located" else e["fact"]] = e
    return sorted(latest.values(), key=lambda e: e["occurred_at"])


def _details(sealed: Any) -> dict[str, Any]:
    """A reported fact's fields (erased: none)."""
    text = text_of(sealed)
    return {} if not text else dict(json.loads(text))


def _review(review: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if review is None else {**review, "outcome": text_of(review["outcome"])}


def visible_file(
    patient: Patient, kind: str, agency_id: str, now: datetime, obligations: Iterable[ObligationRow]
) -> dict[str, Any]:
    """The file as the caller's kind may see it, with the patient's id."""
    return {"patient_id": patient.id, **filter_file(kind, agency_id, whole_file(patient, now, obligations))}


def _data(event: Any) -> dict[str, Any]:
    fields = dataclasses.fields(event) if dataclasses.is_dataclass(event) else ()
    names = [f.name for f in fields] or [k for k in vars(event) if not k.startswith("_")]
    out: dict[str, Any] = {}
    for name in names:
        if name in _BASE:
            continue
        value = getattr(event, name)
        if isinstance(value, Personal) and name == "personal":
            out.update(_plain(value))  # name, id_number, phone, address: filtered one by one
        elif name == "details" and isinstance(event, ReportedByRegion):
            out.update(_details(value))  # what another region reported: its fields, not a text
        else:
            out[name] = _plain(value)
    return out


def _opened_by(kind: str, agency_id: str, rows: Iterable[ObligationRow]) -> list[dict[str, Any]]:
    """Obligations and notices a fact opened, as the kind may see them (its own, or all)."""
    listed = [
        {
            "obligation_id": o.obligation_id,
            "kind": o.kind,
            "rule": o.rule,
            "action": o.action,
            "assignee": o.assignee,
            "status": o.status,
        }
        for o in rows
    ]
    return filter_file(kind, agency_id, {"obligations": listed}).get("obligations", [])


def first_events(case_record: CaseRecord, patient_id: UUID, after: int, limit: int) -> tuple[list[Any], bool]:
    """The events a timeline page reads first (after the cursor, at most twice the page), and
    whether they are the patient's whole stream (the first page of a short stream: the patient
    is then made from them, ``load_reachable``)."""
    events = list(case_record.events.get(patient_id, gt=after, limit=limit * 2))
    return events, after == 0 and len(events) < limit * 2


def timeline(
    case_record: CaseRecord,
    patient_id: UUID,
    kind: str,
    agency_id: str,
    obligations: Iterable[ObligationRow] = (),
    after: int = 0,
    limit: int = 100,
    first: Sequence[Any] | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """The patient's facts in the order they were recorded (stream version), after a cursor, as
    the kind may see them, each with the obligations and notices it opened (and their status now);
    and the cursor of the next page (None: the end). ``first``: the events after the cursor,
    already read (``first_events``)."""
    by_trigger: dict[str, list[ObligationRow]] = {}
    for o in obligations:
        by_trigger.setdefault(o.trigger_message_id, []).append(o)
    items: list[dict[str, Any]] = []
    cursor = after
    while len(items) < limit:
        if first is not None:
            events, first = list(first), None
        else:
            events = list(case_record.events.get(patient_id, gt=cursor, limit=limit * 2))
        if not events:
            return items, None
        read = 0
        for event in events:
            read += 1
            cursor = event.originator_version
            topic = getattr(type(event), "TOPIC", "")
            data = _data(event)
            if not sees_fact(kind, topic, data):
                continue
            items.append(
                {
                    "version": event.originator_version,
                    "type": topic.removeprefix("smd."),
                    "occurred_at": getattr(event, "occurred_at", None),
                    "recorded_at": event.timestamp,
                    "recorded_by": getattr(event, "agency_id", None),
                    "asserted_staff_id": getattr(event, "staff_id", None),
                    "data": filter_fact_data(kind, topic, data),
                    "obligations": _opened_by(kind, agency_id, by_trigger.get(getattr(event, "message_id", ""), ())),
                }
            )
            if len(items) == limit:
                break
        if read < len(events):  # the page filled before the events read: there are more
            return items, cursor
        if len(events) < limit * 2:  # a short read is the end of the stream: no query to learn it
            return items, None
    more = list(case_record.events.get(patient_id, gt=cursor, limit=1))
    return items, (cursor if more else None)


def revealed_fields(answer: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of the file's fields in an answer (for the access log; never the values)."""
    return tuple(k for k in answer if k != "patient_id")
