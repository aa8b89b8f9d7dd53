"""Backfill: import an agency's existing ledger (台账) as history.

The ledger is a JSON Lines file of the same CloudEvents envelopes the API takes (one per line;
docs in README "Backfill"). Rows are recorded through the normal intake path — same checks,
same idempotency (a re-run imports nothing twice) — but marked as imported, so the rules open
no obligation for the past. Before the region's go-live is declared complete, the ledger joins
it: its patients wait (the rules open nothing for them, live facts included) until
``smd golive complete`` assesses each patient's *current* state once. After it, the ledger is a
late join: its patients get one ``HistoryImported`` and only the rules the importing agency's
kind owns assess them (``core.go_live``, ``domain.go_live``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from core import go_live
from core.case_record import CaseRecord
from core.contract import DEFAULT_LIMITS, ContractError, WireLimits, check_bytes
from core.intake import Incoming, accept_batch
from core.registry import RegistryView
from core.waiting import WAITING, Arrival
from domain.errors import DomainError
from domain.values import EARLIEST_OCCURRED

if TYPE_CHECKING:
    from core.ports import DoorCounts
    from core.waiting import Waiting

DOOR = "import"
#: Rows per unit of work and transaction: one row per transaction imported ~300 rows/s here, a
#: 10^6-row ledger in about an hour; a batch takes the events table's lock once.
IMPORT_BATCH = 500  # the door's label in the metrics (ops.metrics)
REGISTRATIONS = (
    "cn.smd.patient.registered.v1",
    "cn.smd.patient.registered.v2",
    "cn.smd.patient.registered-unidentified.v1",
)


@dataclass
class ImportReport:
    """What an import did: rows recorded, rows already there, rows refused (line, reason)."""

    ledger: str
    recorded: int = 0
    duplicates: int = 0
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    waiting: list[tuple[int, str]] = field(default_factory=list)  # (line, message key): see GET /v1/events/{key}
    patients: set[UUID] = field(default_factory=set)
    go_live: str = ""  # "joined" (the go-live assesses them when complete) or "late join"


def import_ledger(
    case_record: CaseRecord,
    registry: RegistryView,
    path: Path,
    agency_id: str,
    *,
    earliest: datetime = EARLIEST_OCCURRED,
    limits: WireLimits = DEFAULT_LIMITS,
    metrics: DoorCounts | None = None,
    waiting: Waiting | None = None,
) -> ImportReport:
    """Import a JSON Lines ledger file from one agency; refusals are reported, not fatal."""
    raw = path.read_bytes()
    return import_lines(
        case_record, registry, raw, agency_id, earliest=earliest, limits=limits, metrics=metrics, waiting=waiting
    )


def import_lines(
    case_record: CaseRecord,
    registry: RegistryView,
    raw: bytes,
    agency_id: str,
    *,
    earliest: datetime = EARLIEST_OCCURRED,
    limits: WireLimits = DEFAULT_LIMITS,
    metrics: DoorCounts | None = None,
    waiting: Waiting | None = None,
    batch: int = IMPORT_BATCH,
) -> ImportReport:
    """Import a ledger's JSON Lines (one envelope per line) from one agency.

    ``earliest``: the deployment's SMD_EARLIEST_TIME (rows dated before it are refused).
    ``limits``: SMD_MAX_MESSAGE_BYTES and SMD_MAX_JSON_DEPTH, per line (``core.contract.check_bytes``).
    ``metrics``: counts each row accepted or refused (door ``import``).
    ``waiting``: a row whose patient (suspected case, incident, move) is not recorded yet waits
    for it (core.waiting) and is listed in ``report.waiting``; without it, it is refused.
    ``batch``: rows recorded per transaction."""
    report = ImportReport(ledger=hashlib.sha256(raw).hexdigest()[:16])
    lines = [(n, line) for n, line in enumerate(raw.splitlines(), start=1) if line.strip()]
    by = f"import:{report.ledger}"  # the operator's import of this file: kept on each row's receipt

    def registration_first(item: tuple[int, bytes]) -> int:
        try:
            return 0 if json.loads(check_bytes(item[1], limits)).get("type") in REGISTRATIONS else 1
        except (ValueError, AttributeError):  # ContractError is a ValueError: accept() reports it
            return 1

    ordered = sorted(lines, key=registration_first)  # stable: ledger order otherwise
    for start in range(0, len(ordered), batch):
        chunk = ordered[start : start + batch]
        # one unit of work and one transaction per chunk (core.intake.accept_batch): the same
        # checks, idempotency and waiting as one row at a time, a refused row refused alone
        results = accept_batch(
            case_record,
            registry,
            [
                Incoming(line, agency_id, "ledger import", Arrival(door=DOOR), imported=True, authenticated_by=by)
                for _, line in chunk
            ],
            earliest=earliest,
            limits=limits,
            waiting=waiting,
        )
        for (number, _), recorded in zip(chunk, results, strict=True):
            if isinstance(recorded, (ContractError, DomainError)):
                report.refused.append((number, getattr(recorded, "code", "invalid"), str(recorded)))
                if metrics is not None:
                    metrics.message_rejected(DOOR, recorded.code)
                continue
            if isinstance(recorded, Exception):  # the store failed for this row: stop, as before
                raise recorded
            if metrics is not None:
                metrics.message_accepted(DOOR, recorded.outcome)
            if recorded.outcome == WAITING:
                report.waiting.append((number, recorded.key))
                continue
            if recorded.outcome == "duplicate":
                report.duplicates += 1
            else:
                report.recorded += 1
            report.patients.add(recorded.subject)
    if report.patients:  # a ledger refused or waiting whole stores nothing, not even a go-live
        agency = registry.agency(agency_id)
        kind = None if agency is None else str(agency.kind)
        report.go_live = go_live.joined(
            case_record, registry.region, report.ledger, agency_id, kind, report.patients, len(lines)
        )
    return report
