"""`GET /v1/lists` and `GET /v1/lists/{list}`: the working lists, as JSON pages or one CSV export.

A list is read from the working lists' read model (``projections.patient_lists``: membership,
scope and order, no personal values); each row is then filled from the patient's file
(``core.patient_read.whole_file``) and passes the file's own filter (``domain.read_filter``), so
a list row never shows what the file would not. Who may read which list: ``domain.lists.LISTS``.

Every page is recorded in the access log before it is answered (the patients on it, the names of
the fields revealed); a CSV export is streamed in chunks, and each chunk's row is committed
before the chunk leaves.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID

import msgspec
import structlog
from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from api.auth import Caller, agency_guard, provide_caller
from api.obligations import StaffId
from api.ports import AccessLogPort, Port
from api.problems import status_for
from api.reads import Purpose, Revealed, commit, recorded
from core.access_log import AccessEntry
from core.patient_read import LOST_AFTER_MISSES, latest_reported
from core.restrictions import hidden_from
from domain import focus
from domain.errors import DomainError
from domain.lists import LISTS, SORTS, InvalidCursor, OrgUnitOutsideJurisdiction, UnknownSort, working_list
from domain.patient import Patient
from domain.patient_file import RefusalKind
from domain.read_filter import check_purpose, filter_file
from domain.registry import AgencyKind

log = structlog.get_logger(__name__)

ENDPOINT = "GET /v1/lists/{list_name}"
#: Rows per CSV chunk: each chunk is one page of the read model and one access-log row.
CSV_CHUNK = 500
BOM = "\ufeff"

#: The file's fields a list row shows (each still filtered for the caller's kind).
ROW_FIELDS = (
    "name",
    "id_number",
    "phone",
    "address",
    "residence",
    "risk",
    "lost",
    "focus",
    "guardian",
    "guardian_exists",
    "medication",
    "hospital",
    "refusals",
)


class ListsReader(Protocol):
    """The working lists' read model (``projections.patient_lists.PatientListsProjection``)."""

    def page(
        self,
        name: str,
        now: datetime,
        *,
        residences: Sequence[str] | None,
        owner: str | None = None,
        sort: str = "risk",
        after: tuple[Any, UUID] | None = None,
        limit: int = 100,
    ) -> list[Any]: ...


class ListsPort(AccessLogPort, Protocol):
    """What the working lists need: the read model, the patients, the jurisdiction's extent."""

    @property
    def lists(self) -> ListsReader | None: ...

    def units_within(self, org_units: tuple[str, ...] | list[str]) -> set[str]:
        """The given org units and every unit under them today."""
        ...


# -- the catalogue ----------------------------------------------------------------------------------


class ListInfo(msgspec.Struct):
    """One working list: its membership rule in words, who may read it and why."""

    name: str
    rule: str
    readers: list[str]
    why: str
    you_may_read: bool


class ListCatalogue(msgspec.Struct):
    """Every working list, and the orders a list can be read in."""

    lists: list[ListInfo]
    sorts: dict[str, str]


def catalogue(kind: str) -> ListCatalogue:
    """The catalogue as the caller sees it (whether its kind may read each list)."""
    return ListCatalogue(
        lists=[
            ListInfo(
                name=w.name,
                rule=w.rule,
                readers=sorted(str(k) for k in w.readers),
                why=w.why,
                you_may_read=AgencyKind(kind) in w.readers,
            )
            for w in LISTS.values()
        ],
        sorts=dict(SORTS),
    )


# -- a page -----------------------------------------------------------------------------------------


class ListRowView(msgspec.Struct, omit_defaults=True):
    """A patient on a list, with the file's fields the caller's kind may see (a field it may not
    see is absent). ``medication`` shows only the adherence and the supply's end, ``hospital``
    only whether the patient is in hospital now: open the file for the rest."""

    patient_id: UUID
    name: str | msgspec.UnsetType | None = msgspec.UNSET
    id_number: str | msgspec.UnsetType | None = msgspec.UNSET  # masked for committees
    phone: str | msgspec.UnsetType | None = msgspec.UNSET
    address: str | msgspec.UnsetType | None = msgspec.UNSET
    residence: str | msgspec.UnsetType = msgspec.UNSET
    risk: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    lost: dict[str, bool] | msgspec.UnsetType = msgspec.UNSET
    focus: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    guardian: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    guardian_exists: bool | msgspec.UnsetType = msgspec.UNSET
    medication: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    hospital: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    refusals: dict[str, bool] | msgspec.UnsetType = msgspec.UNSET
    #: the latest fact of each kind the managing region reported (dual management); absent when none
    reported_by_region: list[dict[str, Any]] | msgspec.UnsetType = msgspec.UNSET


class ListPage(msgspec.Struct):
    """One page of a list; pass `next` as `after` for the following page (null: no more)."""

    name: str
    sort: str
    items: list[ListRowView]
    next: str | None


def _contact_of(value: Any) -> dict[str, Any]:
    """A guardian's contact as the file shows it (its known parts)."""
    return {k: v for k, v in msgspec.structs.asdict(value).items() if k != "erased" and v is not None}


def row_file(patient: Patient, now: datetime) -> dict[str, Any]:
    """The file's row fields, before filtering: the same expressions as
    ``core.patient_read.whole_file`` for these fields only (a page of rows must not pay for the
    whole file: aid, care team, incidents, reviews). A test holds each field equal to the file's."""
    p = patient
    personal = p.personal
    guardian = p.guardian_contact
    grade = focus.grade(p, now, LOST_AFTER_MISSES)
    lost_derived = p.consecutive_missed_visits >= LOST_AFTER_MISSES
    return {
        "name": personal.name,
        "id_number": personal.id_number,
        "phone": personal.phone,
        "address": personal.address,
        "residence": p.residence,
        "risk": {"level": p.risk_level, "class": str(p.risk_class) if p.risk_class else None},
        "lost": {
            "declared": p.declared_whereabouts_unknown,
            "derived": lost_derived,
            "lost": p.declared_whereabouts_unknown or lost_derived,
        },
        "focus": {"categories": grade["categories"], "key": grade["key"]},
        "guardian": {"status": str(p.guardian_status), "contact": _contact_of(guardian) if guardian else None},
        "guardian_exists": str(p.guardian_status) in ("capable", "weak", "social"),
        "medication": {"adherence": str(p.adherence) if p.adherence else None, "supply_ends_on": p.supply_ends_on},
        "hospital": {"in_hospital": p.in_hospital},
        "refusals": {
            "visits": p.refuses(RefusalKind.VISITS),
            "management": p.refuses(RefusalKind.MANAGEMENT),
            "admission_by_family": p.refuses(RefusalKind.ADMISSION_BY_FAMILY),
        },
        # what the region managing the patient now reported last, of each kind (the
        # managed-elsewhere list): each still shown only to the kinds that see its group
        "reported_by_region": latest_reported(p),
    }


class RowCache:
    """Each patient's row fields before filtering (``row_file``), kept for the patient object the
    case record's cache holds, at its version, over the span of time the row holds
    (``focus.grade_holds``: the only part of a row that reads the clock): a page of rows would
    otherwise fold every fact of each of its patients again on every read. A new fact (a new
    version), another object (the case record read the patient again, or dropped it: an erasure
    does) or a moment outside the span: the row is made again. An entry goes with its patient
    object (a weak reference), so no unsealed value outlives the case record's own copy; the
    filter for the caller's kind is applied on every read, never kept."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._rows: dict[UUID, tuple[Any, int, datetime, datetime | None, dict[str, Any]]] = {}

    def row(self, patient: Patient, now: datetime) -> dict[str, Any]:
        """``row_file(patient, now)``, from the cache when it holds."""
        pid = patient.id
        hit = self._rows.get(pid)
        if hit is not None:
            ref, version, since, until, row = hit
            if ref() is patient and version == patient.version and since <= now and (until is None or now < until):
                return row
        row = row_file(patient, now)
        since, until = focus.grade_holds(patient, now)
        if len(self._rows) >= self.size:
            self._rows.clear()
        rows = self._rows

        def gone(ref: Any, pid: UUID = pid) -> None:  # the patient object is gone: its row with it
            kept = rows.get(pid)
            if kept is not None and kept[0] is ref:
                rows.pop(pid, None)

        self._rows[pid] = (weakref.ref(patient, gone), patient.version, since, until, row)
        return row


#: This process's rows (the case record's cache is per process too).
ROWS = RowCache()


def row_of(patient: Patient, kind: str, agency_id: str, now: datetime, rows: RowCache | None = ROWS) -> dict[str, Any]:
    """One list row: the file's row fields, filtered exactly as the file is for the kind."""
    fields = rows.row(patient, now) if rows is not None else row_file(patient, now)
    return {"patient_id": patient.id, **filter_file(kind, agency_id, fields)}


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose patients a caller's list holds: living in ``residences`` (None: anywhere), and only
    the ``owner``'s own (a psychiatric hospital's)."""

    residences: frozenset[str] | None
    owner: str | None = None


def scope_of(services: ListsPort, caller: Caller, org_unit: str | None) -> Scope:
    """The caller's jurisdiction (governance center: its area; auditor: everywhere; a hospital:
    its own patients; every other kind: its org units), narrowed to ``org_unit`` if given."""
    kind = AgencyKind(caller.kind)
    wanted = frozenset(services.units_within([org_unit])) if org_unit else None
    if kind == AgencyKind.AUDITOR:
        return Scope(wanted)
    if kind == AgencyKind.PSYCHIATRIC_HOSPITAL:
        return Scope(wanted, owner=caller.agency_id)
    mine = frozenset(services.units_within(caller.jurisdiction))
    if wanted is None:
        return Scope(mine)
    if org_unit not in mine:
        raise OrgUnitOutsideJurisdiction()
    return Scope(wanted & mine)


def encode_cursor(sort: str, row: Any) -> str:
    """An opaque cursor: the sort key and the patient id of the page's last row."""
    key = {"risk": row.risk_sort, "residence": row.residence, "since": row.registered_at.isoformat()}[sort]
    raw = json.dumps([sort, key, str(row.patient_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str | None) -> tuple[Any, UUID] | None:
    """The cursor's key, checked against the order it was given for."""
    if not cursor:
        return None
    try:
        given, key, patient = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if given != sort:
            raise ValueError("another order")
        if sort == "since":
            key = datetime.fromisoformat(key)
        elif sort == "risk" and not isinstance(key, int):
            raise ValueError("not a level")
        elif sort == "residence" and not isinstance(key, str):
            raise ValueError("not a unit")
        return key, UUID(patient)
    except (ValueError, TypeError):
        raise InvalidCursor() from None


def read_page(
    services: Any,
    caller: Caller,
    name: str,
    scope: Scope,
    sort: str,
    after: tuple[Any, UUID] | None,
    limit: int,
) -> tuple[list[dict[str, Any]], Any]:
    """The page's rows as the caller may see them, and the last row of the read model (the cursor)."""
    now = services.case_record.clock()
    rows = services.lists.page(
        name, now, residences=scope.residences, owner=scope.owner, sort=sort, after=after, limit=limit
    )
    # the page's patients, each hashed once (a UUID's hash runs Python code): the restriction
    # check and the case record take the dict as it is
    ids = dict.fromkeys(r.patient_id for r in rows)
    # a restricted patient is off the register, so never on a list; checked anyway, as every read is
    hidden = hidden_from(caller.kind, services.case_record, ids) if rows else frozenset()
    # read only: the cached patients themselves, not copies (nothing here changes them), brought
    # up to date in one query
    patients = services.case_record.read_many([i for i in ids if i not in hidden] if hidden else ids)
    kind, agency_id = caller.kind, caller.agency_id
    out = [row_of(patient, kind, agency_id, now) for patient in patients.values()]
    return out, (rows[-1] if len(rows) == limit else None)


def revealed(rows: Sequence[dict[str, Any]]) -> Revealed:
    """The patients on a page and the names of the fields shown of them."""
    fields: dict[str, None] = {}
    for r in rows:
        fields.update(dict.fromkeys(k for k in r if k != "patient_id"))
    return Revealed.of((r["patient_id"] for r in rows), fields)


# -- CSV --------------------------------------------------------------------------------------------


def _contact(row: dict[str, Any], key: str) -> Any:
    contact = (row.get("guardian") or {}).get("contact") or {}
    return contact.get(key)


#: The export's columns: header, the file field it comes from, and how to get it from a row. A
#: column whose field the caller's kind may not see is left out of the header.
CSV_COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("patient_id", "patient_id", lambda r: r["patient_id"]),
    ("residence", "residence", lambda r: r.get("residence")),
    ("name", "name", lambda r: r.get("name")),
    ("id_number", "id_number", lambda r: r.get("id_number")),
    ("phone", "phone", lambda r: r.get("phone")),
    ("address", "address", lambda r: r.get("address")),
    ("risk_level", "risk", lambda r: r["risk"]["level"]),
    ("risk_class", "risk", lambda r: r["risk"]["class"]),
    ("lost", "lost", lambda r: r["lost"]["lost"]),
    ("focus_categories", "focus", lambda r: ";".join(r["focus"]["categories"])),
    ("key", "focus", lambda r: r["focus"]["key"]),
    ("guardian_status", "guardian", lambda r: r["guardian"]["status"]),
    ("guardian_name", "guardian", lambda r: _contact(r, "name")),
    ("guardian_phone", "guardian", lambda r: _contact(r, "phone")),
    ("guardian_exists", "guardian_exists", lambda r: r["guardian_exists"]),
    ("adherence", "medication", lambda r: r["medication"]["adherence"]),
    ("supply_ends_on", "medication", lambda r: r["medication"]["supply_ends_on"]),
    ("in_hospital", "hospital", lambda r: r["hospital"]["in_hospital"]),
    ("refusing", "refusals", lambda r: ";".join(k for k, v in r["refusals"].items() if v)),
)


def csv_columns(kind: str, agency_id: str) -> list[tuple[str, str, Any]]:
    """The columns the kind may see (the same filter as the file)."""
    shown = {"patient_id", *filter_file(kind, agency_id, {f: {} for f in ROW_FIELDS})}
    return [c for c in CSV_COLUMNS if c[1] in shown]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_text(columns: Sequence[tuple[str, str, Any]], rows: Sequence[dict[str, Any]], header: bool) -> str:
    """RFC 4180 text (CRLF, fields with commas, quotes or newlines quoted, quotes doubled)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    if header:
        writer.writerow([c[0] for c in columns])
    for r in rows:
        writer.writerow([_cell(c[2](r)) for c in columns])
    return out.getvalue()


async def csv_chunks(
    services: Any,
    caller: Caller,
    name: str,
    scope: Scope,
    sort: str,
    purpose: str,
    staff_id: str | None,
) -> AsyncIterator[bytes]:
    """The whole list, every page, as CSV: the BOM and header with the first chunk; each chunk's
    access-log row committed before the chunk is yielded."""
    columns = csv_columns(caller.kind, caller.agency_id)
    after: tuple[Any, UUID] | None = None
    first = True
    while True:
        rows, last = await asyncio.to_thread(read_page, services, caller, name, scope, sort, after, CSV_CHUNK)
        text = csv_text(columns, rows, header=first)
        if rows:
            shown = revealed(rows)
            entry = AccessEntry(
                at=services.case_record.clock(),
                agency_id=caller.agency_id,
                key_id=caller.key_id,
                staff_id=staff_id,
                purpose=purpose,
                endpoint=ENDPOINT,
                status=200,
                patient_ids=shown.patient_ids,
                fields=shown.fields,
                correlation_id=structlog.contextvars.get_contextvars().get("correlation_id"),
            )
            await commit(services.access_log, entry)  # committed before it leaves
        yield ((BOM if first else "") + text).encode("utf-8")
        first = False
        if last is None:
            return
        after = (
            {"risk": last.risk_sort, "residence": last.residence, "since": last.registered_at}[sort],
            last.patient_id,
        )


# -- the controller ---------------------------------------------------------------------------------

Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=500, description="Rows per page (1-500, default 100).")]
After = Annotated[
    str | None,
    QueryParameter(
        name="after", max_length=400, description="Cursor: `next` of the previous page (same list and `sort`)."
    ),
]
Sort = Annotated[
    Literal["risk", "residence", "since"],
    QueryParameter(name="sort", description="; ".join(f"`{k}`: {v}" for k, v in SORTS.items())),
]
OrgUnit = Annotated[
    str | None,
    QueryParameter(
        name="org_unit",
        max_length=64,
        description="Only patients living in this org unit or under it (within your jurisdiction).",
    ),
]

DESCRIPTION = (
    "Scoped to your jurisdiction (governance center: its area; auditor: everywhere; police, "
    "committee, health center, civil affairs: their org units; psychiatric hospital: its own "
    "patients). Each row shows the file's fields your kind may see (`GET /v1/patients/{id}` "
    "filters the same way). Keyset pages: pass `next` as `after` with the same `sort`.\n\n"
    "Send `Accept: text/csv` for the whole list as CSV (UTF-8 with a BOM, RFC 4180 quoting, "
    "every page), streamed in chunks of 500 rows; each chunk is recorded in the access log "
    "before it is sent.\n\n"
    "Every answer is recorded in the access log (the patients, the names of the fields). A kind "
    "that may not read the list gets 403 `list-not-allowed`: `GET /v1/lists` shows who may read "
    "each. Requires `X-Purpose`."
)


class CsvStream(Stream):
    """A streamed CSV answer from a handler whose default media type is JSON (Litestar gives the
    handler's media type precedence over the response's own)."""

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = self.media_type
        return super().to_asgi_response(*args, **kwargs)


def _wants_csv(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept", "")
    return "text/csv" in accept.lower()


class ListsController(Controller):
    """The working lists and their CSV exports."""

    tags = ["working lists"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/lists",
        operation_id="workingLists",
        summary="The working lists: each list's membership rule and who may read it",
    )
    async def lists(self, caller: NamedDependency[Caller]) -> ListCatalogue:
        return catalogue(caller.kind)

    @get(
        "/v1/lists/{list_name:str}",
        operation_id="workingList",
        summary="One working list, a page of JSON or (Accept: text/csv) the whole list as CSV",
        description=DESCRIPTION,
    )
    async def working_list(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Caller],
        services: Port[ListsPort],
        list_name: FromPath[str],
        org_unit: OrgUnit = None,
        sort: Sort = "risk",
        after: After = None,
        limit: Limit = 100,
        purpose: Purpose = None,
        staff_id: StaffId = None,
    ) -> ListPage | Stream:
        if sort not in SORTS:  # pragma: no cover - the query parameter's type refuses it first
            raise UnknownSort()
        found: dict[str, Any] = {}

        def check() -> None:
            working_list(caller.kind, list_name)
            found["after"] = decode_cursor(sort, after)

        if _wants_csv(request):

            def check_export() -> None:
                check()
                found["scope"] = scope_of(services, caller, org_unit)

            await _checked(services, caller, purpose, staff_id, check_export)
            chunks = csv_chunks(services, caller, list_name, found["scope"], sort, purpose or "", staff_id)
            filename = f"{list_name}.csv"
            return CsvStream(
                chunks,
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{filename}"'},
            )

        def page() -> tuple[list[dict[str, Any]], Any]:
            # one trip to a worker thread: the jurisdiction's extent (read from the log: never on
            # the event loop; a refusal is recorded as the checks' are), the page and its rows
            scope = scope_of(services, caller, org_unit)
            return read_page(services, caller, list_name, scope, sort, found["after"], limit)

        async def read() -> tuple[ListPage, Revealed]:
            rows, last = await asyncio.to_thread(page)
            items = [ListRowView(**r) for r in rows]
            nxt = encode_cursor(sort, last) if last is not None else None
            return ListPage(name=list_name, sort=sort, items=items, next=nxt), revealed(rows)

        return await recorded(services, caller, ENDPOINT, purpose, staff_id, read, check=check)


async def _checked(services: Any, caller: Caller, purpose: str | None, staff_id: str | None, check: Any) -> None:
    """The export's checks; a refusal is recorded (one row, nothing revealed) and raised."""
    try:
        check_purpose(caller.kind, purpose)
        check()
    except DomainError as e:
        entry = AccessEntry(
            at=services.case_record.clock(),
            agency_id=caller.agency_id,
            key_id=caller.key_id,
            staff_id=staff_id,
            purpose=(purpose or "")[:32],
            endpoint=ENDPOINT,
            status=status_for(e.code),
            patient_ids=(),
            fields=(),
            correlation_id=structlog.contextvars.get_contextvars().get("correlation_id"),
        )
        await commit(services.access_log, entry)
        raise
