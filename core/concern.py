"""People of concern: collide the live incident and dispute rows with the register, save the list's changes.

``run``: purge what expired; read the live ``incident-records`` and ``dispute-records`` rows
(``core.sources``, sealed); collide each with a registered patient (its ID number through the
marker) or an open suspected case (the same name, seen in the same org unit); plan the list
under the collision rules in force (``domain.concern.plan``) and save only the differences:
new entries listed, changed ones revised, ones the rules no longer give taken off, the rest
left as they are (keeping the version that listed them). The policy process turns listings into
notices and obligations (``core.concern_policy``).

``readable``, ``entry_view`` and ``entries_csv`` answer what a caller may read.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from core.case_record import CaseRecord
from core.identity import holders
from core.reconciliation import registered_patients
from core.registry import REGION_TZ
from core.restrictions import restricted_subjects
from core.sources import SourceRows
from domain.concern import (
    READERS,
    Collision,
    ConcernEntry,
    ConcernRules,
    SubjectKind,
    plan,
)
from domain.registry import AgencyKind
from domain.sources import CONCERN_LISTS
from domain.suspected_case import CaseStatus, SuspectedCase


@dataclass
class ConcernRun:
    """What one run changed on the list."""

    run_id: UUID
    rules_version: int
    rows: int
    purged: int
    on_list: int = 0
    listed: list[UUID] = field(default_factory=list)
    revised: list[UUID] = field(default_factory=list)
    taken_off: list[UUID] = field(default_factory=list)


def _open_cases(record: CaseRecord) -> dict[tuple[str, str], list[SuspectedCase]]:
    """Open suspected cases by (name, org unit seen in), restricted ones left out."""
    restricted = restricted_subjects(record)
    ids = [i for i in record.originators_of(SuspectedCase.Reported.TOPIC) if i not in restricted]
    found: dict[tuple[str, str], list[SuspectedCase]] = {}
    for case in record.load_many(ids).values():
        if case.status in (CaseStatus.REGISTERED, CaseStatus.DISMISSED) or not case.person.name:
            continue
        found.setdefault((case.person.name.strip(), case.seen_in), []).append(case)
    return found


def collide(rows_store: SourceRows, record: CaseRecord, now: datetime) -> tuple[list[Collision], int]:
    """Every collision of a live incident or dispute row with a person we know, and the rows read."""
    live = [s for s in rows_store.live(now) if s.kind in CONCERN_LISTS]
    patients = registered_patients(record)
    cases = _open_cases(record) if live else {}
    collisions: list[Collision] = []
    for s in live:
        if s.row.occurred_on is None:
            continue
        if s.row.id_number:
            for p in (patients[i] for i in holders(record, s.row.id_number) if i in patients):
                collisions.append(
                    Collision(
                        p.patient_id,
                        SubjectKind.PATIENT,
                        p.residence,
                        p.risk_level,
                        s.kind,
                        s.row.category,
                        s.row.occurred_on,
                    )
                )
        for case in cases.get((s.row.name.strip(), s.row.org_unit), []):
            collisions.append(
                Collision(
                    case.id, SubjectKind.SUSPECTED_CASE, case.seen_in, None, s.kind, s.row.category, s.row.occurred_on
                )
            )
    return collisions, len(live)


def run(rows_store: SourceRows, record: CaseRecord, rules: ConcernRules, now: datetime) -> ConcernRun:
    """Collide, plan under ``rules`` and save only what changed (module docstring)."""
    purged = rows_store.purge(now)
    collisions, rows = collide(rows_store, record, now)
    planned = plan(collisions, rules, now.astimezone(REGION_TZ).date())
    result = ConcernRun(uuid4(), rules.version, rows, purged, len(planned))
    existing = record.load_many(record.originators_of(ConcernEntry.Listed.TOPIC))
    to_save: list[ConcernEntry] = []
    for eid, p in sorted(planned.items(), key=lambda kv: str(kv[0])):
        entry: ConcernEntry | None = existing.get(eid)
        if entry is None:
            to_save.append(ConcernEntry.list_(p, now=now, rules=rules, run_id=result.run_id))
            result.listed.append(eid)
        elif not entry.same_as(p):
            (result.revised if entry.on_list else result.listed).append(eid)
            entry.revise(p, now=now, rules=rules, run_id=result.run_id)
            to_save.append(entry)
    for eid, entry in sorted(existing.items(), key=lambda kv: str(kv[0])):
        if entry.on_list and eid not in planned:
            entry.take_off(now=now, rules=rules, run_id=result.run_id)
            to_save.append(entry)
            result.taken_off.append(eid)
    if to_save:
        record.save(*to_save)
    return result


# -- reading ----------------------------------------------------------------------------------------


def on_the_list(record: CaseRecord) -> list[ConcernEntry]:
    """Every entry now on the list, in a stable order."""
    found = record.load_many(record.originators_of(ConcernEntry.Listed.TOPIC))
    return sorted((e for e in found.values() if e.on_list), key=lambda e: (e.place, -e.score, str(e.subject_id)))


def readable(entries: list[ConcernEntry], kind: AgencyKind | str, units: set[str] | None) -> list[ConcernEntry]:
    """The entries an agency of ``kind`` may read within ``units`` (None: everywhere: the auditor)."""
    if AgencyKind(kind) not in READERS:
        return []
    return [e for e in entries if units is None or e.place in units]


def entry_view(e: ConcernEntry) -> dict[str, Any]:
    """An entry as an answer: who (by id), where, why, since when, by which rules (no personal value)."""
    return {
        "entry_id": str(e.id),
        "subject_kind": e.subject_kind.value,
        "patient_id": str(e.subject_id) if e.subject_kind == SubjectKind.PATIENT else None,
        "suspected_case_id": str(e.subject_id) if e.subject_kind == SubjectKind.SUSPECTED_CASE else None,
        "place": e.place,
        "risk_level": e.risk_level,
        "score": e.score,
        "reasons": [dict(r) for r in e.reasons],
        "rules_version": e.rules_version,
        "listed_at": e.listed_at.isoformat(),
        "changed_at": e.occurred_at.isoformat(),
    }


CSV_COLUMNS = (
    "entry_id",
    "subject_kind",
    "patient_id",
    "suspected_case_id",
    "place",
    "risk_level",
    "score",
    "reasons",
    "rules_version",
    "listed_at",
)


def entries_csv(views: list[dict[str, Any]]) -> str:
    """The list as CSV: UTF-8 with a BOM (Excel and WPS), CRLF; reasons as `source:type:date:weight; …`."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for v in views:
        reasons = "; ".join(f"{r['source']}:{r['record_type']}:{r['occurred_on']}:{r['weight']}" for r in v["reasons"])
        w.writerow(["" if v[c] is None else (reasons if c == "reasons" else v[c]) for c in CSV_COLUMNS])
    return "\ufeff" + out.getvalue()
