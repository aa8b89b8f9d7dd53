"""The region's go-live in the case record: ledgers join it, completion assesses each patient once.

See ``domain.go_live``. ``joined`` is what an import does with the patients of its ledger;
``complete`` is ``smd golive complete``: every patient still waiting for the go-live gets one
``HistoryImported`` (the rules assess the current state), then the go-live is marked complete.
Both are safe to run again: every fact they record is once per key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from core.case_record import CaseRecord
from domain.errors import DomainError
from domain.go_live import GoLive, go_live_id
from domain.patient_file import GoLiveJoined
from domain.receipt import Receipt, receipt_id
from domain.rules.engine import is_imported
from domain.rules.entries import lists_of
from domain.values import Provenance

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
    _mark_all(
        case_record,
        found,
        agency_id,
        lambda pid: f"golive:{ledger}:{pid}",  # CaseRecord.mark_go_live_joined's key
        "smd.GoLiveJoined",
        lambda p, by, now: p.mark_go_live_joined(by, now, ledger=ledger),
        single=lambda pid: _each(case_record.mark_go_live_joined, pid, agency_id, ledger),
    )
    return "joined"


def complete(case_record: CaseRecord, region: str, agency_id: str) -> int:
    """Assess every patient still waiting for the go-live once; returns how many were assessed."""
    assessed = _mark_all(
        case_record,
        sorted(case_record.originators_of(GoLiveJoined.TOPIC), key=str),
        agency_id,
        lambda pid: f"import:{COMPLETION}:{pid}",  # CaseRecord.mark_history_imported's key
        "smd.HistoryImported",
        lambda p, by, now: p.mark_history_imported(by, now, ledger=COMPLETION, rows=0, owner_kind=None),
        single=lambda pid: case_record.mark_history_imported(pid, agency_id, COMPLETION, 0),
        only=lambda patient: bool(patient.awaiting_go_live),
    )
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


#: Patients marked per transaction by ``_mark_all``.
MARK_BATCH = 500


def _mark_all(
    case_record: CaseRecord,
    patients: Sequence[UUID],
    agency_id: str,
    key_of: Callable[[UUID], str],
    event_type: str,
    command: Callable[..., None],
    *,
    single: Callable[[UUID], object],
    only: Callable[[Any], bool] | None = None,
) -> int:
    """One service fact per patient (``CaseRecord._service_fact``'s, once per key), ``MARK_BATCH``
    patients a transaction: each patient and receipt read once per batch (one query for those
    absent), the batch's events stored in one save. ``only``: patients whose file passes it;
    a subject that is not a patient is passed over. A batch that collides with another writer
    is done one patient at a time (``single``). Returns how many facts were recorded."""
    recorded = 0
    for start in range(0, len(patients), MARK_BATCH):
        chunk = list(patients[start : start + MARK_BATCH])
        unit = case_record.unit_of_work()
        keys = {pid: key_of(pid) for pid in chunk}
        unit.prefetch_absent([receipt_id(k) for k in keys.values()] + chunk)
        unit.preload(chunk)
        events: list[Any] = []
        aggregates: dict[UUID, Any] = {}
        for pid in chunk:
            key = keys[pid]
            digest = hmac.new(case_record.digest_key, key.encode(), hashlib.sha256).hexdigest()
            try:
                unit.get(receipt_id(key))
                continue  # recorded before: once per key
            except AggregateNotFoundError:
                pass
            try:
                patient = unit.patient(pid)
            except DomainError:
                continue  # not a patient (a suspected case's subject): no file to mark
            if only is not None and not only(patient):
                continue
            now = case_record.clock()
            try:
                command(patient, Provenance(agency_id, None, now, key), now)
            except DomainError:
                if only is not None:
                    raise
                continue  # as ``_each``: a file the fact does not apply to
            receipt = Receipt.issue(
                key=key,
                digest=digest,
                event_type=event_type,
                subject=str(pid),
                agency_id=agency_id,
                outcome="recorded",
                now=now,
            )
            for aggregate in (patient, receipt):
                events.extend(aggregate.collect_events())
                aggregates[aggregate.id] = aggregate
        if not events:
            continue
        try:
            case_record.save_in_order(events, aggregates)
            recorded += len(aggregates) // 2
        except IntegrityError:  # another writer meanwhile: one patient at a time, each once per key
            for pid in chunk:
                if only is None or only(case_record.patient(pid)):
                    result = single(pid)
                    recorded += int(getattr(result, "outcome", "") == "recorded")
    return recorded
