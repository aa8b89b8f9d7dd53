"""The indicators' read model: one row per fact an indicator reads and one per obligation, each
with the log position it was recorded at (``domain.indicators``; docs/decisions/036).

Because every row keeps its position and rows are only added (an obligation's row gains the
position of its completion or cancellation beside its own), the view at any later time holds the
view as it was at every earlier position: the figures "as recorded up to P" are computed from the
rows at or below P. ``replayed_rows`` builds the same rows by replaying the log up to P into
memory with the same ``apply`` (what ``smd report … --at-position P`` and the tests compare with).

The figures are computed on demand from the rows (no figure is stored): by org unit at every
level (the unit and everything under it), by agency (its jurisdiction), by period (a month, a
quarter, a year), at any position up to the head.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from core.followers.concerns import Concerns
from core.followers.parking import ParkingStore
from domain.indicators import (
    ADHERENCE,
    ASSESSED,
    DEFINITIONS,
    DEFINITIONS_VERSION,
    DEREGISTERED,
    HOSPITAL,
    INCIDENT,
    MISSED,
    PERIOD_RULES,
    REGISTERED,
    VISIT,
    WHEREABOUTS,
    FactRow,
    ObligationRow,
    PositionBeyondHead,
    ReportPeriod,
    Scope,
    UnknownScope,
    figures,
    obligation_figures,
    parse_period,
    standings,
)
from domain.obligation import Obligation
from domain.patient import Patient
from domain.patient_file import (
    AdherenceRecorded,
    HospitalStayRecorded,
    IncidentReported,
    PatientDeregistered,
    WhereaboutsDeclared,
)
from projections.base import Batch, Column, Insert, Op, Table, Update
from projections.runner import ProjectionFollower
from projections.stores import ViewStore

ASSIGNED = Obligation.Assigned.TOPIC
COMPLETED = Obligation.Completed.TOPIC
CANCELLED = Obligation.Cancelled.TOPIC

#: The topic of each fact an indicator reads, and its kind (``domain.indicators.KINDS``).
FACT_TOPICS = {
    Patient.Registered.TOPIC: REGISTERED,
    PatientDeregistered.TOPIC: DEREGISTERED,
    Patient.VisitRecorded.TOPIC: VISIT,
    Patient.RiskAssessed.TOPIC: ASSESSED,
    Patient.VisitMissed.TOPIC: MISSED,
    AdherenceRecorded.TOPIC: ADHERENCE,
    HospitalStayRecorded.TOPIC: HOSPITAL,
    WhereaboutsDeclared.TOPIC: WHEREABOUTS,
    IncidentReported.TOPIC: INCIDENT,
}

FACTS = Table(
    name="facts",
    columns=(
        Column("position", "int", not_null=True),
        Column("patient_id", "uuid", not_null=True),
        Column("kind", "text", not_null=True),
        Column("occurred_at", "time", not_null=True),
        Column("residence", "text"),
        Column("flag", "bool"),
        Column("value", "text"),
        Column("level", "int"),
    ),
    primary_key=("position",),
    # (residence, kind): the registrations of a unit's residences (the per-unit path); every
    # generation gets it at start (``ViewStore.ensure``), the rows are unchanged
    indexes=(("patient_id", "position"), ("residence", "kind")),
)

OBLIGATIONS = Table(
    name="obligations",
    columns=(
        Column("obligation_id", "uuid", not_null=True),
        Column("position", "int", not_null=True),
        Column("kind", "text", not_null=True),
        Column("rule", "text", not_null=True),
        Column("assignee", "text", not_null=True),
        Column("residence", "text", not_null=True),
        Column("due_at", "time"),
        Column("done_at", "time"),
        Column("done_position", "int"),
        Column("cancelled_position", "int"),
    ),
    primary_key=("obligation_id",),
    indexes=(("position",), ("due_at",)),
)


def fact_row(kind: str, event: Any, position: int) -> dict[str, Any]:
    """The row of one fact (``domain.indicators.FactRow``'s fields)."""
    flag: bool | None = None
    value: str | None = None
    residence: str | None = None
    level: int | None = None
    if kind == REGISTERED:
        residence = event.residence
    elif kind == VISIT:
        flag, value, level = bool(event.face_to_face), event.risk_class, event.risk_level
    elif kind == ASSESSED:
        value, level = event.risk_class, event.risk_level
    elif kind == INCIDENT:
        value, level = event.incident_kind, event.severity
    elif kind == MISSED:
        value = event.scheduled_on.isoformat()
    elif kind == ADHERENCE:
        value = event.adherence
    elif kind == HOSPITAL:
        flag = bool(event.admitted)
    elif kind == WHEREABOUTS:
        flag = bool(event.known)
    return {
        "position": position,
        "patient_id": event.originator_id,
        "kind": kind,
        "occurred_at": event.occurred_at.astimezone(UTC),
        "residence": residence,
        "flag": flag,
        "value": value,
        "level": level,
    }


class IndicatorsView:
    """The projection: indicator facts and obligations → rows with their log positions."""

    name = "indicators"
    version = 2  # 2: the risk level (and an incident's severity) and the incidents' rows
    topics = (*FACT_TOPICS, ASSIGNED, COMPLETED, CANCELLED)
    tables = (FACTS, OBLIGATIONS)

    def apply(self, event: Any, notification: Notification, batch: Batch) -> None:
        topic = notification.topic
        if topic == ASSIGNED:
            row = {
                "obligation_id": event.originator_id,
                "position": notification.id,
                "kind": event.kind,
                "rule": event.rule,
                "assignee": event.assignee,
                "residence": event.residence,
                "due_at": event.due_at,
                "done_at": None,
                "done_position": None,
                "cancelled_position": None,
            }
            batch.add(Insert("obligations", row))
        elif topic == COMPLETED:
            values = {"done_at": event.timestamp, "done_position": notification.id}
            batch.add(Update("obligations", {"obligation_id": event.originator_id}, values))
        elif topic == CANCELLED:
            values = {"cancelled_position": notification.id}
            batch.add(Update("obligations", {"obligation_id": event.originator_id}, values))
        else:
            batch.add(Insert("facts", fact_row(FACT_TOPICS[topic], event, notification.id)))


#: A scope of more units than this reads every patient's facts (the figures keep the scope's own):
#: the statement stays below every backend's limit of bound parameters.
MAX_NARROWED_UNITS = 2000


@dataclass(frozen=True, slots=True)
class Narrowing:
    """Which rows a computation reads (the per-unit path, docs/decisions/036): the facts of the
    patients registered (in rows at or below the position) in ``units`` (None: every patient)
    that occurred before ``occurred_before`` (None: whenever); the obligations due before
    ``due_before`` and from ``due_from`` (None: no bound), about residences in ``residences``
    (None: any), assigned to ``assignee`` (None: any). A computation given the rows of its
    narrowing gives the same figures as given every row: the narrowing leaves out only rows its
    figures do not look at."""

    units: frozenset[str] | None
    occurred_before: datetime | None = None
    due_from: datetime | None = None
    due_before: datetime | None = None
    residences: frozenset[str] | None = None
    assignee: str | None = None


def whole_region(registry_state: Any, scope: Scope, on: date) -> bool:
    """A scope that is a root org unit (the region): every patient's facts are its facts, so
    its rows are read without the semi-join (a scan is cheaper than a lookup per patient)."""
    unit = registry_state.org_unit(scope.id, on) if scope.kind == "org_unit" else None
    return unit is not None and unit.parent is None


def narrowing_of(scopes: list[Scope], periods: list[ReportPeriod], whole: bool = False) -> Narrowing:
    """The rows ``compute`` reads for these scopes (one org unit or agency, as the registry had
    it on each period's last day) and periods: the scopes' patients' facts (``whole``: every
    patient's, for the region) that occurred by the last period's end; the obligations due
    within the periods' span, about the scopes' residences (an org unit) or assigned to the
    agency."""
    units = frozenset().union(*(s.units for s in scopes))
    agency = scopes[0].id if scopes[0].kind == "agency" else None
    return Narrowing(
        units=None if whole else units,
        occurred_before=max(p.ends_at for p in periods),
        due_from=min(p.starts_at for p in periods),
        due_before=max(p.ends_at for p in periods),
        residences=None if agency else units,
        assignee=agency,
    )


@dataclass
class Rows:
    """The view's rows (facts and obligations), as read from the store or replayed."""

    facts: list[FactRow]
    obligations: list[ObligationRow]

    def cut(self, position: int) -> Rows:
        """The rows as they stood at ``position`` (an obligation's later completion left out)."""
        obligations = []
        for o in self.obligations:
            if o.position > position:
                continue
            done = o.done_position is not None and o.done_position <= position
            cancelled = o.cancelled_position is not None and o.cancelled_position <= position
            obligations.append(
                ObligationRow(
                    obligation_id=o.obligation_id,
                    position=o.position,
                    kind=o.kind,
                    rule=o.rule,
                    assignee=o.assignee,
                    residence=o.residence,
                    due_at=o.due_at,
                    done_at=o.done_at if done else None,
                    done_position=o.done_position if done else None,
                    cancelled_position=o.cancelled_position if cancelled else None,
                )
            )
        return Rows([f for f in self.facts if f.position <= position], obligations)


def _apply_in_memory(ops: Iterable[Op], facts: dict[int, dict], obligations: dict[UUID, dict]) -> None:
    """The row operations of ``IndicatorsView.apply`` on dicts (a replay into memory)."""
    for op in ops:
        if isinstance(op, Insert) and op.table == "facts":
            facts.setdefault(op.row["position"], dict(op.row))
        elif isinstance(op, Insert):
            obligations.setdefault(op.row["obligation_id"], dict(op.row))
        elif isinstance(op, Update) and op.table == "obligations":
            row = obligations.get(op.where["obligation_id"])
            if row is not None:
                row.update(op.values)
        else:  # pragma: no cover - the view makes no other operation
            raise TypeError(f"unexpected operation {op!r}")


def _rows(facts: Iterable[dict], obligations: Iterable[dict]) -> Rows:
    return Rows(
        sorted((FactRow(**f) for f in facts), key=lambda f: f.position),
        sorted((ObligationRow(**o) for o in obligations), key=lambda o: o.position),
    )


def replayed_rows(case_record: Any, position: int, page: int = 1000) -> Rows:
    """The view's rows built by replaying the log from the start up to ``position`` into memory
    (the same ``apply`` the follower runs): no stored row is read."""
    view = IndicatorsView()
    facts: dict[int, dict] = {}
    obligations: dict[UUID, dict] = {}
    start = 1
    while start <= position:
        batch = case_record.recorder.select_notifications(start, page, stop=position, topics=view.topics)
        work = Batch()
        for n in batch:
            view.apply(case_record.mapper.to_domain_event(n), n, work)
        _apply_in_memory(work.ops, facts, obligations)
        if len(batch) < page:
            break
        start = batch[-1].id + 1
    return _rows(facts.values(), obligations.values())


class IndicatorsProjection(ProjectionFollower):
    """Follows the case record and keeps the indicators' rows; computes the figures from them."""

    def __init__(
        self, case_record: Any, store: ViewStore, parking: ParkingStore, concerns: Concerns | None = None
    ) -> None:
        super().__init__(case_record, store, IndicatorsView(), parking, concerns)

    def _all(self, table: str, where: str, params: list[Any], page: int = 5000) -> Iterator[dict[str, Any]]:
        gen = self.store.live(self.projection)
        after = None
        while True:
            rows = self.store.select(
                self.projection, table, where, params, order_by="position", after=after, limit=page, generation=gen
            )
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1]["position"]

    def rows(self, position: int) -> Rows:
        """The stored rows as they stood at ``position`` (the view is caught up to it first)."""
        if self.position < position and not self.catch_up(position, timeout=30):
            raise ViewBehind(self.name, self.position, position)
        stored = _rows(
            self._all("facts", "position <= ?", [position]), self._all("obligations", "position <= ?", [position])
        )
        return stored.cut(position)

    def rows_within(self, position: int, narrowing: Narrowing) -> Rows:
        """The stored rows at or below ``position`` that ``narrowing`` keeps, as they stood at
        ``position``: the store does the narrowing (the registrations of the units' residences by
        the (residence, kind) index, each patient's facts by the (patient_id, position) one, the
        obligations by their deadline's index), so a village costs in proportion to the village."""
        if self.position < position and not self.catch_up(position, timeout=30):
            raise ViewBehind(self.name, self.position, position)
        n, gen = narrowing, self.store.live(self.projection)
        where, params = "position <= ?", [position]
        if n.occurred_before is not None:
            where += " AND occurred_at < ?"
            params.append(n.occurred_before)
        key: dict[str, Any] = {}
        if n.units is not None and len(n.units) <= MAX_NARROWED_UNITS:
            units = sorted(n.units)
            marks = ", ".join("?" * len(units))
            key = {
                "key": "patient_id",
                "key_where": f"residence IN ({marks}) AND kind = ? AND position <= ?",
                "key_params": [*units, REGISTERED, position],
            }
        facts = (
            self.store.select_all(self.projection, "facts", where, params, generation=gen, **key)
            if (n.units is None or n.units)
            else []
        )
        where, params = "position <= ? AND kind = ?", [position, "obligation"]
        if n.due_from is not None:
            where += " AND due_at >= ?"
            params.append(n.due_from)
        if n.due_before is not None:
            where += " AND due_at < ?"
            params.append(n.due_before)
        if n.assignee is not None:
            where += " AND assignee = ?"
            params.append(n.assignee)
        if n.residences is not None and len(n.residences) <= MAX_NARROWED_UNITS:
            where += f" AND residence IN ({', '.join('?' * len(n.residences))})"
            params += sorted(n.residences)
        obligations = (
            self.store.select_all(self.projection, "obligations", where, params, generation=gen)
            if n.residences is None or n.residences
            else []
        )
        return _rows(facts, obligations).cut(position)

    def report(
        self,
        registry: Any,
        scope_kind: str,
        scope_id: str,
        period_label: str,
        at_position: int | None = None,
        with_late_facts: bool = False,
    ) -> dict[str, Any]:
        """The indicators report at ``at_position`` (default: the log's head), from the stored
        rows; ``with_late_facts``: also the figures at the head, labelled, and the difference."""
        period = parse_period(period_label)
        head = self.case_record.recorder.max_notification_id() or 0
        position = head if at_position is None else at_position
        if position > head or position < 0:
            raise PositionBeyondHead(position, head)
        later = head if with_late_facts and head > position else None
        state = registry.state(as_of_position=position)
        if later is None:  # the per-unit path: the scope's rows only
            scope = scope_of(state, scope_kind, scope_id, period.last)
            whole = whole_region(state, scope, period.last)
            rows = self.rows_within(position, narrowing_of([scope], [period], whole))
        else:  # the late facts are listed whoever they are about, as the replay lists them
            rows = self.rows(later)
        return indicator_report(rows, state, scope_kind, scope_id, period, position, later)

    def trend(self, registry: Any, scope_kind: str, scope_id: str, period_labels: list[str]) -> list[dict[str, Any]]:
        """The reports of several periods at the log's head, from one read of the rows (the
        console's trend charts): each equals ``report`` of that period at that position."""
        periods = [parse_period(label) for label in period_labels]
        position = self.case_record.recorder.max_notification_id() or 0
        if not periods:
            return []
        state = registry.state(as_of_position=position)
        scopes = [scope_of(state, scope_kind, scope_id, p.last) for p in periods]
        whole = all(whole_region(state, s, p.last) for s, p in zip(scopes, periods, strict=True))
        rows = self.rows_within(position, narrowing_of(scopes, periods, whole))
        return [indicator_report(rows, state, scope_kind, scope_id, p, position, None) for p in periods]


def scope_of(registry_state: Any, kind: str, ident: str, on: date) -> Scope:
    """The scope of a report on ``on``: an org unit and everything under it, with its direct
    children; or an agency's jurisdiction (and each unit of it)."""

    def under(unit: str) -> frozenset[str]:
        seen: set[str] = set()
        todo = [unit]
        while todo:
            u = todo.pop()
            if u not in seen:
                seen.add(u)
                todo.extend(registry_state.children(u, on))
        return frozenset(seen)

    def name_of(unit: str) -> str:
        found = registry_state.org_unit(unit, on)
        return found.name if found is not None else unit

    if kind == "agency":
        agency = registry_state.agency(ident, on)
        if agency is None:
            raise UnknownScope(kind, ident, on)
        parts = tuple(sorted(agency.jurisdiction))
        children = tuple((u, name_of(u), under(u), registry_state.population(u, on)) for u in parts)
        units = frozenset().union(*(c[2] for c in children)) if children else frozenset()
        return Scope(kind, ident, agency.name, units, sum(c[3] for c in children), children)
    if registry_state.org_unit(ident, on) is None:
        raise UnknownScope(kind, ident, on)
    kids = registry_state.children(ident, on)
    children = tuple((u, name_of(u), under(u), registry_state.population(u, on)) for u in kids)
    return Scope(kind, ident, name_of(ident), under(ident), registry_state.population(ident, on), children)


def compute(rows: Rows, scope: Scope, period: ReportPeriod, position: int) -> dict[str, Any]:
    """Every figure of a scope and period from the rows as recorded up to ``position``."""
    people = standings(rows.facts, period, position)

    def within(units: frozenset[str]) -> list[Any]:
        return [s for s in people if s.residence in units]

    return {
        "figures": [f.as_dict() for f in figures(within(scope.units), scope.population, position)],
        "children": [
            {
                "id": cid,
                "name": cname,
                "figures": [f.as_dict() for f in figures(within(cunits), cpop, position)],
            }
            for cid, cname, cunits, cpop in scope.children
        ],
        "obligations": [
            o.as_dict()
            for o in obligation_figures(
                rows.obligations,
                period,
                position,
                None if scope.kind == "agency" else set(scope.units),
            )
            if scope.kind != "agency" or o.assignee == scope.id
        ],
    }


def late_facts(rows: Rows, period: ReportPeriod, position: int, head: int) -> list[dict[str, Any]]:
    """The facts recorded after ``position`` (up to ``head``) that occurred by the period's end:
    what a recomputation "with late facts" adds (no personal values: kind, patient, times)."""
    return [
        {
            "position": f.position,
            "patient_id": str(f.patient_id),
            "kind": f.kind,
            "occurred_at": f.occurred_at.astimezone(UTC).isoformat(),  # one form, whichever store or replay
        }
        for f in rows.facts
        if position < f.position <= head and f.occurred_at < period.ends_at
    ]


def differences(at: dict[str, Any], later: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the figures with late facts differ from those at the position (by indicator)."""
    out = []
    for a, b in zip(at["figures"], later["figures"], strict=True):
        if (a["numerator"], a["denominator"], a["value"]) != (b["numerator"], b["denominator"], b["value"]):
            out.append(
                {
                    "name": a["name"],
                    "label": a["label"],
                    "at_position": {k: a[k] for k in ("numerator", "denominator", "value")},
                    "with_late_facts": {k: b[k] for k in ("numerator", "denominator", "value")},
                }
            )
    return out


def definitions() -> list[dict[str, Any]]:
    """The definitions as data (what every report carries beside its figures)."""
    return [
        {
            "name": d.name,
            "label": d.label,
            "numerator": d.numerator,
            "denominator": d.denominator,
            "period_rule": d.period_rule,
            "period_rule_text": PERIOD_RULES[d.period_rule],
            "unit": d.unit,
            "ours": d.ours,
            "version": d.version,
        }
        for d in DEFINITIONS
    ]


def indicator_report(
    rows: Rows,
    registry_state: Any,
    scope_kind: str,
    scope_id: str,
    period: ReportPeriod,
    position: int,
    head: int | None = None,
) -> dict[str, Any]:
    """The indicators report of a scope and period as recorded up to ``position``; with
    ``head`` (above the position), also the figures with the facts recorded since (labelled) and
    where they differ. ``rows``: rows at least up to ``head`` (or ``position``)."""
    scope = scope_of(registry_state, scope_kind, scope_id, period.last)
    at = compute(rows, scope, period, position)
    report: dict[str, Any] = {
        "scope": {"kind": scope.kind, "id": scope.id, "name": scope.name, "population": scope.population},
        "period": {"label": period.label, "first": period.first.isoformat(), "last": period.last.isoformat()},
        "position": position,
        "definitions_version": DEFINITIONS_VERSION,
        **at,
        "definitions": definitions(),
    }
    if head is not None and head > position:
        later = compute(rows, scope, period, head)
        report["with_late_facts"] = {
            "label": f"with the facts recorded after position {position} (up to {head}): not the figure at"
            f" position {position}",
            "position": head,
            "late_facts": late_facts(rows, period, position, head),
            "differences": differences(at, later),
            **later,
        }
    return report


class ViewBehind(Exception):
    """The indicators' view has not caught up with the position asked for."""

    def __init__(self, name: str, at: int, wanted: int) -> None:
        super().__init__(f"the view {name} is at position {at}, not yet at {wanted}: try again shortly")
