"""Source lists (三网比对): what other systems know about people, kept apart and briefly.

Qingyang task 1 checks three lists against the register (the police key-person database, the
national mental-health monitoring system, the city grid platform) plus pharmacy purchases of
psychiatric drugs and special-outpatient and out-of-area reimbursement records. Each list kind
names the agency kind that uploads it and its columns (a CSV file with a header row, UTF-8, a
BOM allowed). A row is a person as that system knows them: a name, a birth date, an ID number
when the system has one, the org unit where it places the person, and the column that says
whether the row is about mental health (only such rows can become findings) or that the person
died.

Pure: parsing text into rows and saying what a row means; storing them (sealed, with their
blind indexes, deleted after the retention) is ``core.sources``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from domain.errors import DomainError
from domain.identity import birth_date_of, validate_id_number
from domain.identity_errors import IdNumberInvalid
from domain.registry import AgencyKind


class ListKind(StrEnum):
    """The kinds of source list an agency uploads."""

    POLICE_KEY_PERSONS = "police-key-persons"
    NATIONAL_SYSTEM = "national-system"
    PHARMACY_PURCHASES = "pharmacy-purchases"
    SPECIAL_OUTPATIENT = "special-outpatient"
    REIMBURSEMENTS = "reimbursements"
    GRID_PLATFORM = "grid-platform"
    INCIDENT_RECORDS = "incident-records"
    DISPUTE_RECORDS = "dispute-records"


#: The source of a finding that is our own register (not an uploaded list).
REGISTER = "register"

#: Every list has these columns; ``id_number`` and ``birth_date`` may be empty, not both.
COMMON_COLUMNS = ("name", "birth_date", "id_number", "org_unit")

#: The value ``status`` takes for a person the source records as dead.
DEAD = "dead"


@dataclass(frozen=True, slots=True)
class ListSpec:
    """One list kind: who uploads it, its own columns, and which rows are about mental health."""

    kind: ListKind
    uploader: AgencyKind
    columns: tuple[str, ...]  # beyond COMMON_COLUMNS
    category_column: str | None  # the column that says whether the row is about mental health
    mental_health_values: frozenset[str]  # its values that do (None column: every row does)
    what: str


LISTS: dict[ListKind, ListSpec] = {
    s.kind: s
    for s in (
        ListSpec(
            ListKind.POLICE_KEY_PERSONS,
            AgencyKind.POLICE_STATION,
            ("category", "status"),
            "category",
            frozenset({"肇事肇祸精神障碍"}),
            "the police key-person database; only the 肇事肇祸精神障碍 category is about mental health",
        ),
        ListSpec(
            ListKind.NATIONAL_SYSTEM,
            AgencyKind.HEALTH_CENTER,
            ("status",),
            None,
            frozenset(),
            "the national severe-mental-disorder monitoring system's export: every row is a patient",
        ),
        ListSpec(
            ListKind.PHARMACY_PURCHASES,
            AgencyKind.HEALTH_CENTER,
            ("drug_class",),
            "drug_class",
            frozenset({"antipsychotic"}),
            "pharmacy purchases; only antipsychotic purchases count",
        ),
        ListSpec(
            ListKind.SPECIAL_OUTPATIENT,
            AgencyKind.HEALTH_CENTER,
            ("specialty",),
            "specialty",
            frozenset({"psychiatric"}),
            "special-outpatient (特殊门诊) records; only the psychiatric specialty counts",
        ),
        ListSpec(
            ListKind.REIMBURSEMENTS,
            AgencyKind.HEALTH_CENTER,
            ("specialty",),
            "specialty",
            frozenset({"psychiatric"}),
            "out-of-area and special-disease reimbursement records; only the psychiatric specialty counts",
        ),
        ListSpec(
            ListKind.GRID_PLATFORM,
            AgencyKind.GOVERNANCE_CENTER,
            ("category", "status"),
            "category",
            frozenset({"严重精神障碍"}),
            "the city grid platform's people; only the 严重精神障碍 category counts; "
            "org_unit is where the grid places the person",
        ),
        ListSpec(
            ListKind.INCIDENT_RECORDS,
            AgencyKind.GOVERNANCE_CENTER,
            ("record_type", "occurred_on"),
            "record_type",
            frozenset(),
            "non-police incident reports (the grid's 事件 records); never a reconciliation finding: "
            "collided with the register for the people of concern (domain/concern.py)",
        ),
        ListSpec(
            ListKind.DISPUTE_RECORDS,
            AgencyKind.GOVERNANCE_CENTER,
            ("record_type", "occurred_on"),
            "record_type",
            frozenset(),
            "known disputes (矛盾纠纷排查); never a reconciliation finding: collided with the register "
            "for the people of concern (domain/concern.py)",
        ),
    )
}

#: Lists collided with the register for the people of concern (Qingyang task 6), not reconciled.
CONCERN_LISTS = frozenset({ListKind.INCIDENT_RECORDS, ListKind.DISPUTE_RECORDS})

#: Lists whose rows are clinical or insurance facts: the police never see a finding from them.
CLINICAL_LISTS = frozenset({ListKind.PHARMACY_PURCHASES, ListKind.SPECIAL_OUTPATIENT, ListKind.REIMBURSEMENTS})


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One person as a source list knows them (the row's personal values: sealed when stored)."""

    name: str
    birth_date: date | None
    id_number: str | None
    org_unit: str
    category: str | None = None  # the kind's category column (category, drug_class, specialty, record_type)
    status: str | None = None
    occurred_on: date | None = None  # incident and dispute records: when it happened

    def is_mental_health(self, kind: ListKind) -> bool:
        """Only rows in a mental-health category can become findings."""
        spec = LISTS[kind]
        return spec.category_column is None or (self.category or "").strip() in spec.mental_health_values

    @property
    def dead(self) -> bool:
        """The source records the person as dead."""
        return (self.status or "").strip().lower() == DEAD


class SourceFileInvalid(DomainError):
    """A source file that does not follow its kind's columns."""

    code = "invalid-source-file"


class UnknownListKind(DomainError):
    """A list kind that does not exist."""

    code = "unknown-list-kind"

    def __init__(self, kind: str) -> None:
        super().__init__(f"no source list kind {kind!r}; the kinds are {', '.join(k.value for k in ListKind)}")


def list_kind(text: str) -> ListKind:
    """The list kind named ``text``, or UnknownListKind."""
    try:
        return ListKind(text)
    except ValueError:
        raise UnknownListKind(text) from None


def parse_rows(kind: ListKind, text: str, today: date) -> list[SourceRow]:
    """The rows of a CSV source file of ``kind`` (the header names the columns, in any order;
    unknown columns are refused so a misnamed category column is not silently ignored)."""
    spec = LISTS[kind]
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    allowed = (*COMMON_COLUMNS, *spec.columns)
    required = ("name", "org_unit", *([spec.category_column] if spec.category_column else []))
    required += tuple(c for c in ("occurred_on",) if c in spec.columns)
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in allowed]
    if missing or unknown:
        raise SourceFileInvalid(
            f"a {kind} file has the header {','.join(allowed)} (name, org_unit"
            f"{', ' + spec.category_column if spec.category_column else ''} required); "
            + "; ".join(filter(None, [missing and f"missing {missing}", unknown and f"unknown {unknown}"]))
        )
    rows: list[SourceRow] = []
    for line, raw in enumerate(reader, start=2):
        values = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        rows.append(_row(spec, values, line, today))
    return rows


def _row(spec: ListSpec, v: dict[str, str], line: int, today: date) -> SourceRow:
    where = f"line {line}"
    if not v.get("name"):
        raise SourceFileInvalid(f"{where}: name is empty")
    if not v.get("org_unit"):
        raise SourceFileInvalid(f"{where}: org_unit is empty")
    number = None
    if v.get("id_number"):
        try:
            number = validate_id_number(v["id_number"], today)
        except IdNumberInvalid as e:
            raise SourceFileInvalid(f"{where}: id_number {e}") from None
    born = None
    if v.get("birth_date"):
        try:
            born = date.fromisoformat(v["birth_date"])
        except ValueError:
            raise SourceFileInvalid(f"{where}: birth_date is not YYYY-MM-DD") from None
    born = born or birth_date_of(number)
    if number is None and born is None:
        raise SourceFileInvalid(f"{where}: neither id_number nor birth_date: the row could match nobody")
    category = v.get(spec.category_column) if spec.category_column else None
    occurred = None
    if "occurred_on" in spec.columns:
        try:
            occurred = date.fromisoformat(v.get("occurred_on", ""))
        except ValueError:
            raise SourceFileInvalid(f"{where}: occurred_on is not YYYY-MM-DD") from None
        if occurred > today:
            raise SourceFileInvalid(f"{where}: occurred_on is after today")
    return SourceRow(v["name"], born, number, v["org_unit"], category or None, v.get("status") or None, occurred)
