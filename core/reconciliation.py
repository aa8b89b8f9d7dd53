"""Loading source lists and running the reconciliation: load, match, decide, save.

``load_list``: an agency of the list kind's uploader kind sends a CSV file; its rows are
checked (columns, ID numbers, org units of the registry) and stored sealed with their blind
indexes (``core.sources``) until the retention ends. ``run``: the live rows are matched against
the register (ID number through its marker; name and birth date through the name marker), the
domain plans the findings (``domain.reconciliation.reconcile``), and each finding not yet
recorded is saved (a not-registered one together with its suspected case, reported by the
reconciliation, so R18 opens the health center's assessment). ``findings`` and ``report``
answer what a caller may read.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

from core.case_record import CaseRecord
from core.identity import blind_index, find_by_name, holders
from core.registry import RegistryView, region_today
from core.restrictions import restricted_subjects
from core.sources import SourceRows
from domain.errors import DomainError
from domain.identity import china_today
from domain.identity_errors import NameInvalid
from domain.patient import Patient
from domain.personal import SuspectedPerson
from domain.reconciliation import Finding, FindingKind, MatchedRow, PlannedFinding, RegisteredPatient, reconcile
from domain.registry import AgencyKind
from domain.sources import LISTS, ListKind, SourceFileInvalid, SourceRow, parse_rows
from domain.suspected_case import SuspectedCase
from domain.values import Provenance

#: Who findings and their leads name as their author: no agency recorded them, the run did.
RECONCILIATION_AGENT = "smd-reconciliation"


class NotTheListsUploader(DomainError):
    """A list kind is uploaded by the agency kind that keeps that system."""

    code = "not-allowed-to-upload"

    def __init__(self, kind: ListKind, agency_kind: str) -> None:
        spec = LISTS[kind]
        super().__init__(f"a {kind} list is uploaded by a {spec.uploader.value}, not a {agency_kind}")


@dataclass(frozen=True, slots=True)
class Upload:
    """What a load stored."""

    upload_id: UUID
    kind: ListKind
    rows: int
    expires_at: datetime


def load_list(
    rows_store: SourceRows,
    record: CaseRecord,
    registry: RegistryView,
    kind: ListKind,
    text: str,
    agency_id: str,
    now: datetime,
    retention: timedelta,
) -> Upload:
    """Check and store one uploaded list (refused whole on the first bad line)."""
    agency = registry.agency(agency_id)
    agency_kind = agency.kind if agency is not None else "unknown agency"
    if agency_kind != LISTS[kind].uploader:
        raise NotTheListsUploader(kind, str(agency_kind))
    rows = parse_rows(kind, text, china_today(now))
    state, today = registry.state(), region_today()
    index = blind_index(record)
    keyed: list[tuple[SourceRow, str | None, str | None]] = []
    for line, row in enumerate(rows, start=2):
        if state.org_unit(row.org_unit, today) is None:
            raise SourceFileInvalid(f"line {line}: org_unit {row.org_unit!r} is not in the registry")
        name_index = None
        if row.birth_date is not None:
            try:
                name_index = index.name_index(row.name, row.birth_date)
            except NameInvalid:
                raise SourceFileInvalid(f"line {line}: the name cannot be matched (empty or too long)") from None
        keyed.append((row, index.index(row.id_number) if row.id_number else None, name_index))
    upload_id = uuid4()
    rows_store.add(upload_id, kind, agency_id, now, now + retention, keyed)
    return Upload(upload_id, kind, len(keyed), now + retention)


@dataclass
class RunResult:
    """What one run found and what it recorded."""

    run_id: UUID
    rows: int
    purged: int
    planned: list[PlannedFinding] = field(default_factory=list)
    created: list[UUID] = field(default_factory=list)


def registered_patients(record: CaseRecord) -> dict[UUID, RegisteredPatient]:
    restricted = restricted_subjects(record)
    found: dict[UUID, RegisteredPatient] = {}
    for patient_id in sorted(record.originators_of(Patient.Registered.TOPIC)):
        if patient_id in restricted:
            continue
        p: Patient = record.repository.get(patient_id)
        if p.deregistered_at is None:
            found[patient_id] = RegisteredPatient(patient_id, p.residence, p.risk_level)
    return found


def _details(planned: PlannedFinding) -> str | None:
    """The matched rows' identity as the sources gave it (sealed in the finding)."""
    if not planned.rows:
        return None
    return json.dumps(
        [
            {
                "source": m.kind.value,
                "name": m.row.name,
                "birth_date": m.row.birth_date.isoformat() if m.row.birth_date else None,
                "id_number": m.row.id_number,
                "org_unit": m.row.org_unit,
                "status": m.row.status,
            }
            for m in planned.rows
        ],
        ensure_ascii=False,
    )


def run(rows_store: SourceRows, record: CaseRecord, registry: RegistryView, now: datetime) -> RunResult:
    """Purge what expired, match the live rows, record each new finding (module docstring)."""
    purged = rows_store.purge(now)
    live = rows_store.live(now)
    patients = registered_patients(record)
    matched: list[MatchedRow] = []
    police_uploaders: set[str] = set()
    for s in live:
        if s.kind == ListKind.POLICE_KEY_PERSONS:
            police_uploaders.add(s.agency_id)
        if not s.row.is_mental_health(s.kind):
            continue  # never matched: a row outside mental health is nobody's business here
        by_id = None
        if s.row.id_number:
            by_id = next((p for p in holders(record, s.row.id_number) if p in patients), None)
        by_name: tuple[UUID, ...] = ()
        if by_id is None and s.row.birth_date is not None:
            by_name = tuple(find_by_name(record, s.row.name, s.row.birth_date, now))
        matched.append(MatchedRow(s.kind, s.row, s.id_index or s.name_index or "", by_id, by_name))
    today = region_today()
    covered = [
        p.patient_id
        for p in patients.values()
        if registry.responsible(p.residence, AgencyKind.POLICE_STATION, today) in police_uploaders
    ]
    result = RunResult(uuid4(), len(live), purged, reconcile(matched, patients, covered))
    already = record.existing([f.id for f in result.planned])
    for planned in result.planned:
        if planned.id in already:
            continue  # a re-run creates nothing twice
        to_save: list[Any] = []
        case_id = None
        if planned.kind == FindingKind.NOT_REGISTERED:
            case_id = uuid5(planned.id, "suspected-case")
            first = planned.rows[0].row
            by = Provenance(RECONCILIATION_AGENT, None, now, f"reconciliation:{planned.id}")
            person = SuspectedPerson(
                name=first.name,
                observed=f"on the source lists {', '.join(planned.sources)} and not on the register",
                description=_details(planned),
            )
            to_save.append(SuspectedCase.report(case_id, by, now, seen_in=planned.place, person=person))
        finding = Finding.record(
            planned,
            agency_id=RECONCILIATION_AGENT,
            now=now,
            run_id=result.run_id,
            details=_details(planned),
            suspected_case_id=case_id,
        )
        record.save(finding, *to_save)
        result.created.append(planned.id)
    return result


# -- reading ----------------------------------------------------------------------------------------


def all_findings(record: CaseRecord) -> list[Finding]:
    """Every recorded finding, in a stable order."""
    found = record.load_many(record.originators_of(Finding.Recorded.TOPIC))
    return sorted(found.values(), key=lambda f: (f.occurred_at, f.finding_kind.value, f.place, str(f.id)))


def readable(findings: list[Finding], kind: AgencyKind | str, units: set[str] | None) -> list[Finding]:
    """The findings an agency of ``kind`` may read, within ``units`` (None: everywhere: the auditor)."""
    return [f for f in findings if AgencyKind(kind) in f.readers and (units is None or f.place in units)]


def finding_view(f: Finding, show_details: bool) -> dict[str, Any]:
    """A finding as an answer (the details only for the health center and the auditor)."""
    out: dict[str, Any] = {
        "finding_id": str(f.id),
        "kind": f.finding_kind.value,
        "place": f.place,
        "patient_id": str(f.patient_id) if f.patient_id else None,
        "suspected_case_id": str(f.suspected_case_id) if f.suspected_case_id else None,
        "sources": list(f.sources),
        "recorded_at": f.occurred_at.isoformat(),
        "action": f.action.action if f.action else "assess_suspected_case",
    }
    if show_details:
        out["details"] = json.loads(f.details.text) if f.details is not None and f.details.text else None
    return out


def report(findings: list[Finding]) -> dict[str, Any]:
    """Counts per category (finding kind) and unit (the finding's org unit)."""
    by_kind = Counter(f.finding_kind.value for f in findings)
    by_unit: dict[str, Counter[str]] = {}
    for f in findings:
        by_unit.setdefault(f.place, Counter())[f.finding_kind.value] += 1
    kinds = [k.value for k in FindingKind]
    return {
        "total": len(findings),
        "by_kind": {k: by_kind.get(k, 0) for k in kinds},
        "by_unit": [{"org_unit": u, **{k: c.get(k, 0) for k in kinds}} for u, c in sorted(by_unit.items())],
    }


def report_csv(counts: dict[str, Any]) -> str:
    """The report as CSV: UTF-8 with a BOM (Excel and WPS), CRLF, one line per unit and a total."""
    kinds = [k.value for k in FindingKind]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["org_unit", *kinds, "total"])
    for row in counts["by_unit"]:
        w.writerow([row["org_unit"], *(row[k] for k in kinds), sum(row[k] for k in kinds)])
    w.writerow(["total", *(counts["by_kind"][k] for k in kinds), counts["total"]])
    return "\ufeff" + out.getvalue()


_TITLES = {
    "not_registered": "未在册（疑似线索）",
    "unknown_to_police": "公安未掌握",
    "placed_elsewhere": "网格显示不在本地",
    "recorded_dead": "记录已死亡",
    "confirm_identity": "需核实身份",
}


def report_html(counts: dict[str, Any], generated_at: datetime) -> str:
    """The report as a printable page (A4, the table only; no personal values)."""
    kinds = [k.value for k in FindingKind]
    head = "".join(f"<th>{html.escape(_TITLES[k])}<br><small>{k}</small></th>" for k in kinds)
    body = "".join(
        "<tr><td>"
        + html.escape(r["org_unit"])
        + "</td>"
        + "".join(f"<td>{r[k]}</td>" for k in kinds)
        + f"<td>{sum(r[k] for k in kinds)}</td></tr>"
        for r in counts["by_unit"]
    )
    total = "".join(f"<td>{counts['by_kind'][k]}</td>" for k in kinds)
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>三网比对结果</title>'
        "<style>@page{size:A4 landscape;margin:15mm}body{font-family:sans-serif}"
        "table{border-collapse:collapse}td,th{border:1px solid #333;padding:4px 8px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h1>三网比对结果 (reconciliation)</h1><p>{html.escape(generated_at.isoformat())}</p>"
        f"<table><thead><tr><th>org_unit</th>{head}<th>合计</th></tr></thead><tbody>{body}"
        f"<tr><th>合计</th>{total}<td>{counts['total']}</td></tr></tbody></table></body></html>"
    )
