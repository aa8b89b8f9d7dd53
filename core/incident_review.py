"""An incident review for an accountability meeting (问责, Qingyang task 8;
docs/decisions/026).

For the days before an incident: what each agency recorded about the patient and when (occurred
and recorded, and how late), what each was asked to do (obligations and notices: deadline,
acknowledgement, completion or cancellation, lateness — how long after its deadline it was
done, or, still open, how far past its deadline it was when the incident occurred — overdue and
escalation, and how each stood when the incident occurred), and who read the file (the access log). Everything is read
from the case record and the access log as stored; the review reveals no personal detail of the
patient beyond ids, types and times (an auditor opens the file itself when needed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from core.case_record import CaseRecord
from domain.errors import DomainError
from domain.obligation import STATUS_AFTER
from domain.patient_file import IncidentReported

INCIDENT_REPORTED = IncidentReported.TOPIC


class IncidentNotFound(DomainError):
    """No patient has an incident with that id."""

    code = "unknown-incident"

    def __init__(self, incident_id: UUID) -> None:
        super().__init__(f"no incident {incident_id} is recorded; check the id (data.incident_id of its report)")


@dataclass
class Review:
    """The review: the incident, the window, and the three lists."""

    incident: dict[str, Any]
    patient_id: UUID
    window_from: datetime
    window_to: datetime
    facts: list[dict[str, Any]] = field(default_factory=list)
    obligations: list[dict[str, Any]] = field(default_factory=list)
    reads: list[dict[str, Any]] = field(default_factory=list)
    by_agency: dict[str, dict[str, int]] = field(default_factory=dict)


def find_incident(case_record: CaseRecord, incident_id: UUID, patient_id: UUID | None = None) -> tuple[UUID, Any]:
    """The patient and the incident's reported fact (``IncidentNotFound`` when none)."""
    candidates = [patient_id] if patient_id is not None else sorted(case_record.originators_of(INCIDENT_REPORTED))
    for pid in candidates:
        try:
            events = case_record.events.get(pid)
        except AggregateNotFoundError:
            continue
        for e in events:
            if isinstance(e, IncidentReported) and e.incident_id == incident_id:
                return pid, e
    raise IncidentNotFound(incident_id)


def review(
    case_record: CaseRecord,
    access_log: Any,
    incident_id: UUID,
    obligation_ids: Iterable[UUID],
    days: int = 30,
    patient_id: UUID | None = None,
) -> Review:
    """The review of ``incident_id`` over the ``days`` before it occurred."""
    pid, incident = find_incident(case_record, incident_id, patient_id)
    at = incident.occurred_at
    start = at - timedelta(days=days)
    r = Review(
        incident={
            "incident_id": incident_id,
            "incident_kind": incident.incident_kind,
            "severity": incident.severity,
            "occurred_at": at,
            "recorded_at": incident.timestamp,
            "reported_by": incident.agency_id,
        },
        patient_id=pid,
        window_from=start,
        window_to=at,
    )
    for e in case_record.events.get(pid):
        occurred = getattr(e, "occurred_at", None)
        if occurred is None or not (start <= occurred <= at or start <= e.timestamp <= at):
            continue
        r.facts.append(
            {
                "type": getattr(type(e), "TOPIC", type(e).__qualname__),
                "agency_id": e.agency_id,
                "occurred_at": occurred,
                "recorded_at": e.timestamp,
                "recorded_after": _seconds(e.timestamp - occurred),
                "message_id": e.message_id,
                "after_the_incident": occurred > at,
            }
        )
        _count(r, e.agency_id, "facts")
    for oid in obligation_ids:
        row = _obligation(case_record, oid, start, at)
        if row is not None:
            r.obligations.append(row)
            _count(r, row["assignee"], "asked")
            if row["late_seconds"]:
                _count(r, row["assignee"], "late")
    r.obligations.sort(key=lambda o: (o["assigned_at"], o["obligation_id"]))
    r.facts.sort(key=lambda f: (f["recorded_at"], f["message_id"]))
    reads, after = [], 0
    while True:  # the access log, page by page
        page = access_log.entries(
            patient=pid, since=start, until=at + timedelta(microseconds=1), after=after, limit=500
        )
        reads += page
        if len(page) < 500:
            break
        after = page[-1].position or 0
    for e in reads:
        r.reads.append(
            {"at": e.at, "agency_id": e.agency_id, "endpoint": e.endpoint, "purpose": e.purpose, "status": e.status}
        )
        _count(r, e.agency_id, "reads")
    return r


def _obligation(case_record: CaseRecord, oid: UUID, start: datetime, at: datetime) -> dict[str, Any] | None:
    """An obligation or notice that was open at some time in [start, at], as it went."""
    events = list(case_record.events.get(oid))
    if not events:
        return None
    a = events[0]
    closed_at = next(
        (e.timestamp for e in events[1:] if STATUS_AFTER.get(_topic(e)) in ("completed", "cancelled", "read")), None
    )
    if a.timestamp > at or (closed_at is not None and closed_at < start):
        return None
    acknowledged = next((e.timestamp for e in events[1:] if _topic(e) == "smd.ObligationAcknowledged"), None)
    done = next((e for e in events[1:] if STATUS_AFTER.get(_topic(e)) in ("completed", "cancelled", "read")), None)
    overdue = next((e for e in events[1:] if _topic(e) == "smd.ObligationOverdue"), None)
    status_then = "assigned"
    for e in events[1:]:
        if e.timestamp <= at and _topic(e) in STATUS_AFTER:
            status_then = STATUS_AFTER[_topic(e)]
    due = a.due_at
    finished = done.timestamp if done is not None else None
    # late by: done after its deadline → done minus deadline; still open → the incident minus it
    late = _seconds(max((finished or at) - due, timedelta(0))) if due is not None else 0.0
    return {
        "obligation_id": oid,
        "kind": a.kind,
        "rule": a.rule,
        "action": a.action,
        "assignee": a.assignee,
        "assigned_at": a.timestamp,
        "due_at": due,
        "acknowledged_at": acknowledged,
        "closed": STATUS_AFTER.get(_topic(done)) if done is not None else None,
        "closed_at": finished,
        "status_at_incident": status_then,
        "late_seconds": late,
        "overdue_marked_at": overdue.timestamp if overdue is not None else None,
        "escalated_to": overdue.escalated_to if overdue is not None else None,
    }


def _topic(e: Any) -> str:
    return getattr(type(e), "TOPIC", "")


def _seconds(d: timedelta) -> float:
    return round(d.total_seconds(), 3)


def _count(r: Review, agency: str, what: str) -> None:
    counts = r.by_agency.setdefault(agency, {"facts": 0, "asked": 0, "late": 0, "reads": 0})
    counts[what] += 1
