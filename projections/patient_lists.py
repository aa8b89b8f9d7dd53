"""The working lists' read model: one row per registered patient, with what the lists filter and
sort on (``domain.lists.standing``), and the open R4 and R6 obligations that make a visit or a
pickup overdue.

A projection on the framework of ``projections.base``, rebuildable (``smd projections rebuild
patient_lists``). On each fact of a patient it loads the patient (read only, from the case
record's cache) and writes the row from the same derivations the file shows, so a list never
disagrees with ``GET /v1/patients/{id}``; a deregistered patient's row is deleted, unless they moved out to a
linked region that still reports about them (the managed-elsewhere list, Q-5). The rows hold
no personal values (no name, ID number, phone, address, free text): a page fills them from the
patient's file at answer time, through the read filter (docs/decisions/028-working-lists.md).

The one status that changes with the clock alone, a run-out medication supply, is kept as the
instant it runs out; the query compares it with "now". Each list's membership rule is the SQL
condition beside its name in ``MEMBERSHIP`` (and in words in ``domain.lists.LISTS``).

Pages are keyset pages: ``<scope> AND <membership> AND (sort key, patient_id) > cursor ORDER BY
sort key, patient_id LIMIT n`` on an index that starts with the residence.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification

from core.followers.concerns import Concerns
from core.followers.parking import ParkingStore
from core.patient_read import own_patient_of
from domain.lists import (
    PICKUP_RULE,
    TRACKED_LIST,
    VISIT_RULE,
    managed_by_region,
    moved_in_since,
    recently_discharged_since,
    standing,
)
from domain.obligation import STATUS_AFTER, Obligation
from domain.patient import Patient
from domain.patient_file import FileFact
from domain.values import HIGH_RISK_LEVEL
from projections.base import Batch, Column, Delete, Insert, Table, Update, Upsert
from projections.runner import ProjectionFollower
from projections.stores import ViewStore


def _patient_topics() -> tuple[str, ...]:
    """Every fact type recorded in a patient's stream (the patient's own events and the file's)."""
    found: set[str] = set()
    for klass in Patient.__mro__:
        for value in vars(klass).values():
            if inspect.isclass(value) and issubclass(value, Aggregate.Event) and getattr(value, "TOPIC", None):
                found.add(value.TOPIC)
    todo: list[type] = [FileFact]
    while todo:
        klass = todo.pop()
        todo.extend(klass.__subclasses__())
        if isinstance(getattr(klass, "TOPIC", None), str):
            found.add(klass.TOPIC)
    found.discard("smd.Patient.Created")  # never recorded (the library's default first event)
    return tuple(sorted(found))


PATIENT_TOPICS = _patient_topics()
ASSIGNED = Obligation.Assigned.TOPIC
OVERDUE = Obligation.Overdue.TOPIC
#: The rules whose overdue obligations the lists show.
OVERDUE_RULES = (PICKUP_RULE, VISIT_RULE)

PATIENTS = Table(
    name="patients",
    columns=(
        Column("patient_id", "uuid", not_null=True),
        Column("position", "int", not_null=True),  # the log position the row was last written at
        Column("residence", "text", not_null=True),
        Column("registered_at", "time", not_null=True),
        Column("risk_level", "int"),
        Column("risk_sort", "int", not_null=True),
        Column("risk_class", "text"),
        Column("focus_without_supply", "bool", not_null=True),
        Column("key_without_supply", "bool", not_null=True),
        Column("key_with_supply", "bool", not_null=True),
        Column("irregular_adherence", "bool", not_null=True),
        Column("supply_out_at", "time"),
        Column("lost", "bool", not_null=True),
        Column("in_hospital", "bool", not_null=True),
        Column("institutional_care", "bool", not_null=True),
        Column("discharged_at", "time"),
        Column("guardian_weak", "bool", not_null=True),
        Column("refusing", "bool", not_null=True),
        # v2: the latest residence change (an accepted move inside the region): when, and from
        # which org unit (the "moved-in" list); null when the residence never changed
        Column("moved_in_at", "time"),
        Column("moved_from", "text"),
        # v3: when the latest of those was an arrival by a handover from another region, its
        # origin region (``moved_from`` is then null: no org unit of this region)
        Column("arrived_from_region", "text"),
        # v4: a patient moved out to a linked region that still reports about them (the
        # "managed-elsewhere" list; every other list leaves such rows out): that region
        Column("managed_by_region", "text"),
    ),
    primary_key=("patient_id",),
    indexes=(
        ("residence", "patient_id"),
        ("residence", "risk_sort", "patient_id"),
        ("residence", "registered_at", "patient_id"),
        ("risk_sort", "patient_id"),  # the auditor's pages (every residence)
        ("registered_at", "patient_id"),
    ),
)

#: A psychiatric hospital's own patients (registered, diagnosed or admitted by it).
OWNERS = Table(
    name="owners",
    columns=(Column("agency_id", "text", not_null=True), Column("patient_id", "uuid", not_null=True)),
    primary_key=("agency_id", "patient_id"),
    indexes=(("patient_id",),),
)

#: Open R4 and R6 obligations (not notices), with whether R15 marked them overdue.
OBLIGATIONS = Table(
    name="obligations",
    columns=(
        Column("obligation_id", "uuid", not_null=True),
        Column("patient_id", "uuid", not_null=True),
        Column("rule", "text", not_null=True),
        Column("is_open", "bool", not_null=True),
        Column("overdue", "bool", not_null=True),
    ),
    primary_key=("obligation_id",),
    indexes=(("patient_id", "rule", "is_open", "overdue"),),
)

#: Sort orders: the columns of the keyset, the last one always the patient id.
SORT_COLUMNS: dict[str, tuple[str, str]] = {
    "risk": ("risk_sort", "int"),
    "residence": ("residence", "text"),
    "since": ("registered_at", "time"),
}


class PatientListsView:
    """The projection: patient facts → one row per registered patient; R4/R6 obligations → rows."""

    name = "patient_lists"
    #: v2: ``moved_in_at`` and ``moved_from`` (the "moved-in" list); v3: arrivals from another
    #: region count too (``arrived_from_region``). A new version is built from the log at start,
    #: beside the old one, and replaces it when caught up
    version = 4  # v4: rows of patients managed by another region (``managed_by_region``)
    topics = (*PATIENT_TOPICS, ASSIGNED, *STATUS_AFTER, OVERDUE)
    tables = (PATIENTS, OWNERS, OBLIGATIONS)

    def __init__(self, load: Callable[[UUID], Any] | None = None) -> None:
        self.load = load
        self._batch: Batch | None = None
        self._written: set[UUID] = set()  # patients whose row this batch already wrote

    def bind(self, case_record: Any) -> None:
        """Read patients from this case record (the follower binds it before applying)."""
        if self.load is None:  # read only: the cached patient itself, not a copy
            self.load = partial(case_record.repository.get, deepcopy_from_cache=False)

    def apply(self, event: Any, notification: Notification, batch: Batch) -> None:
        topic = notification.topic
        if topic == ASSIGNED:
            if event.kind == "obligation" and event.rule in OVERDUE_RULES:
                row = {
                    "obligation_id": event.originator_id,
                    "patient_id": event.patient_id,
                    "rule": event.rule,
                    "is_open": True,
                    "overdue": False,
                }
                batch.add(Insert("obligations", row))
        elif topic in STATUS_AFTER:
            is_open = STATUS_AFTER[topic] in ("assigned", "acknowledged")
            batch.add(Update("obligations", {"obligation_id": event.originator_id}, {"is_open": is_open}))
        elif topic == OVERDUE:
            batch.add(Update("obligations", {"obligation_id": event.originator_id}, {"overdue": True}))
        else:
            self._patient(event.originator_id, notification.id, batch)

    def _patient(self, patient_id: UUID, position: int, batch: Batch) -> None:
        if self.load is None:
            raise RuntimeError("the patient_lists view reads patients: bind it to the case record first")
        if batch is not self._batch:
            self._batch, self._written = batch, set()
        if patient_id in self._written:
            return  # the row written at the patient's earlier fact in this batch is already the latest
        self._written.add(patient_id)
        # The patient as recorded now (a rebuild writes the latest row at each of its facts: the
        # last write is the patient's state, as the file shows it)
        patient = self.load(patient_id)
        if not isinstance(patient, Patient):
            return
        elsewhere = managed_by_region(patient)
        if patient.deregistered_at is not None and elsewhere is None:
            batch.add(Delete("patients", {"patient_id": patient_id}))
            return
        row = {"patient_id": patient_id, "position": position, **standing(patient), "managed_by_region": elsewhere}
        batch.add(Upsert("patients", row))
        for agency in sorted(own_patient_of(patient)):
            batch.add(Insert("owners", {"agency_id": agency, "patient_id": patient_id}))


def _registered_membership(name: str, now: datetime, obligations: str, table: str) -> tuple[str, list[Any]]:
    """The membership rules of the lists of registered patients."""

    def overdue(rule: str) -> tuple[str, list[Any]]:
        return (
            # table names are the store's own; every value is a parameter
            f"EXISTS (SELECT 1 FROM {obligations} o WHERE o.patient_id = {table}.patient_id AND o.rule = ?"  # noqa: S608
            " AND o.is_open = ? AND o.overdue = ?)",
            [rule, True, True],
        )

    ran_out = "(supply_out_at IS NOT NULL AND supply_out_at <= ?)"
    match name:
        case "focus":  # one or more focus categories; a run-out supply is irregular medication
            return f"(focus_without_supply = ? OR {ran_out})", [True, now]
        case "key":  # graded key without the supply, or with it once it ran out
            return f"(key_without_supply = ? OR (key_with_supply = ? AND {ran_out}))", [True, True, now]
        case "high-risk":  # the latest level is 3 or more
            return "risk_level >= ?", [HIGH_RISK_LEVEL]
        case "unstable-at-home":  # unstable, not in hospital, not in institutional care
            return "risk_class = ? AND in_hospital = ? AND institutional_care = ?", ["unstable", False, False]
        case "lost":  # declared whereabouts unknown, or R5's consecutive misses
            return "lost = ?", [True]
        case "irregular-medication":  # adherence intermittent or none, or the supply ran out at home
            return f"(irregular_adherence = ? OR {ran_out})", [True, now]
        case "pickup-overdue":  # an open R6 obligation marked overdue
            return overdue(PICKUP_RULE)
        case "visit-overdue":  # an open R4 obligation marked overdue
            return overdue(VISIT_RULE)
        case "in-hospital":
            return "in_hospital = ?", [True]
        case "recently-discharged":  # discharged within the setting's days, not admitted again
            return "(discharged_at IS NOT NULL AND discharged_at >= ?)", [recently_discharged_since(now)]
        case "no-guardian":  # guardian status none or weak
            return "guardian_weak = ?", [True]
        case "refusing":
            return "refusing = ?", [True]
        case "institutional-care":
            return "institutional_care = ?", [True]
        case "moved-in":  # the residence changed within MOVED_IN_DAYS (from outside the scope: ``page``)
            return "(moved_in_at IS NOT NULL AND moved_in_at >= ?)", [moved_in_since(now)]
    raise ValueError(f"no membership rule for list {name!r}")


def membership(name: str, now: datetime, obligations: str, table: str) -> tuple[str, list[Any]]:
    """Each list's membership rule as a condition on the rows (``domain.lists.LISTS`` has it in
    words): the SQL and its parameters. ``obligations`` and ``table``: the physical tables. Every
    list but ``managed-elsewhere`` holds this region's registered patients only."""
    if name == TRACKED_LIST:  # moved out, and the managing region still reports
        return "managed_by_region IS NOT NULL", []
    where, params = _registered_membership(name, now, obligations, table)
    return f"({where}) AND managed_by_region IS NULL", params


class ListRow:
    """One row of the view (what a page is built from; no personal values), built from the
    driver's tuple in the table's column order (``ListRow(*values)``: no dict per row)."""

    __slots__ = ("patient_id", "registered_at", "residence", "risk_sort", "row")

    def __init__(self, *row: Any) -> None:
        self.row = row
        self.patient_id: UUID = row[_PATIENT_ID]
        self.residence: str = row[_RESIDENCE]
        self.risk_sort: int = row[_RISK_SORT]
        self.registered_at: datetime = row[_REGISTERED_AT]

    @property
    def values(self) -> dict[str, Any]:
        """The row's columns by name."""
        return dict(zip(PATIENTS.column_names, self.row, strict=True))


_PATIENT_ID, _RESIDENCE, _RISK_SORT, _REGISTERED_AT = (
    PATIENTS.column_names.index(c) for c in ("patient_id", "residence", "risk_sort", "registered_at")
)


class PatientListsProjection(ProjectionFollower):
    """Follows the case record and keeps the working lists' view; answers its pages."""

    def __init__(
        self, case_record: Any, store: ViewStore, parking: ParkingStore, concerns: Concerns | None = None
    ) -> None:
        super().__init__(
            case_record,
            store,
            PatientListsView(partial(case_record.repository.get, deepcopy_from_cache=False)),
            parking,
            concerns,
        )

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
    ) -> list[ListRow]:
        """One page of a list: patients living in ``residences`` (None: everywhere), the
        ``owner``'s own patients only when given, in ``sort`` order after the cursor."""
        if residences is not None and not residences:
            return []
        gen = self.store.live(self.projection)
        table = self.store.physical(gen, "patients")
        where, params = membership(name, now, self.store.physical(gen, "obligations"), table)
        if residences is not None:
            units = sorted(set(residences))
            where += f" AND residence IN ({', '.join('?' * len(units))})"
            params += units
            if name == "moved-in":  # into the jurisdiction: from a residence outside it, or another region
                where += f" AND (moved_from IS NULL OR moved_from NOT IN ({', '.join('?' * len(units))}))"
                params += units
        if owner is not None:
            owners = self.store.physical(gen, "owners")
            where += f" AND patient_id IN (SELECT w.patient_id FROM {owners} w WHERE w.agency_id = ?)"  # noqa: S608
            params.append(owner)
        column, _ = SORT_COLUMNS[sort]
        if after is not None:
            key, last = after
            where += f" AND ({column} > ? OR ({column} = ? AND patient_id > ?))"
            params += [key, key, last]
        rows = self.store.select(
            self.projection,
            "patients",
            where,
            params,
            order_by=f"{column}, patient_id",
            limit=limit,
            generation=gen,
            into=ListRow,
        )
        return rows
