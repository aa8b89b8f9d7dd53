"""The region's go-live in the case record: ledgers join it, completion assesses each patient once.

See ``domain.go_live``. ``joined`` is what an import does with the patients of its ledger;
``complete`` is ``smd golive complete``: every patient still waiting for the go-live gets one
``HistoryImported`` (the rules assess the current state), then the go-live is marked complete.
Both are safe to run again: every fact they record is once per key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from core.case_record import CaseRecord
from domain.errors import DomainError
from domain.go_live import GoLive, go_live_id
from domain.patient_file import GoLiveJoined
from domain.rules.engine import is_imported
from domain.rules.entries import lists_of

log = structlog.get_logger(__name__)

#: The ledger name of the completion's import facts (one per patient).
COMPLETION = "go-live"


@dataclass(frozen=True)
class GoLiveStatus:
    """What ``smd golive status`` shows."""

    region: str
    opened: bool
    complete: bool
    ledgers: list[dict[str, object]]
    waiting_patients: int


def load(case_record: CaseRecord, region: str) -> GoLive | None:
    try:
        return case_record.repository.get(go_live_id(region))
    except AggregateNotFoundError:
        return None


def joined(
    case_record: CaseRecord,
    region: str,
    ledger: str,
    agency_id: str,
    agency_kind: str | None,
    patients: Iterable[UUID],
    rows: int,
) -> str:
    """What an imported ledger does with its patients: join the go-live ("joined") or, after it
    is complete, a late join ("late join": only the rules the agency's kind owns assess them)."""
    found = sorted(set(patients), key=str)
    for _ in range(5):
        go_live = load(case_record, region) or GoLive.open(region, case_record.clock())
        if go_live.complete:
            for pid in found:
                # a patient this ledger brings in is assessed in full; one the rules already follow,
                # only by the rules the agency's kind owns
                kind = agency_kind if _followed(case_record, pid) else None
                _each(case_record.mark_history_imported, pid, agency_id, ledger, rows, owner_kind=kind)
            return "late join"
        if any(entry["ledger"] == ledger for entry in go_live.ledgers):
            break  # imported before (a re-run): only the patients' facts may be missing
        go_live.join(ledger, agency_id, len(found), case_record.clock())
        try:
            case_record.save(go_live)
            break
        except IntegrityError:
            continue  # another import joined at the same moment: look again
    for pid in found:
        _each(case_record.mark_go_live_joined, pid, agency_id, ledger)
    return "joined"


def complete(case_record: CaseRecord, region: str, agency_id: str) -> int:
    """Assess every patient still waiting for the go-live once; returns how many were assessed."""
    assessed = 0
    for pid in sorted(case_record.originators_of(GoLiveJoined.TOPIC), key=str):
        patient = case_record.patient(pid)
        if patient.awaiting_go_live:
            case_record.mark_history_imported(pid, agency_id, COMPLETION, 0)
            assessed += 1
    for _ in range(5):
        go_live = load(case_record, region) or GoLive.open(region, case_record.clock())
        if not go_live.declare_complete(assessed, case_record.clock()):
            break
        try:
            case_record.save(go_live)
            break
        except IntegrityError:
            continue
    log.info("go-live complete", region=region, patients_assessed=assessed)
    return assessed


def status(case_record: CaseRecord, region: str) -> GoLiveStatus:
    go_live = load(case_record, region)
    waiting = sum(
        1 for pid in case_record.originators_of(GoLiveJoined.TOPIC) if case_record.patient(pid).awaiting_go_live
    )
    return GoLiveStatus(
        region=region,
        opened=go_live is not None,
        complete=bool(go_live and go_live.complete),
        ledgers=list(go_live.ledgers) if go_live else [],
        waiting_patients=waiting,
    )


def _followed(case_record: CaseRecord, pid: UUID) -> bool:
    """The rules already follow the patient: assessed by a backfill, or a fact recorded live."""
    try:
        patient = case_record.patient(pid)
    except DomainError:
        return False
    if patient.facts.get("import"):
        return True
    return any(not is_imported(e["key"]) for _, found in lists_of(patient) for e in found)


def _each(record: object, pid: UUID, *args: object, **kw: object) -> None:
    try:
        record(pid, *args, **kw)  # type: ignore[operator]
    except DomainError:
        pass  # not a patient (a suspected case's subject): no file to mark
