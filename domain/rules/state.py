"""A patient's rule state, kept fact by fact: what the rules ask, without walking the history.

The policy process keeps one ``RuleState`` per patient (cached; rebuilt from the patient's
file when evicted or when a fact arrives out of turn) and folds each recorded fact into it
with ``fold``, in stream order. Each fold costs what the fact adds, not the patient's history:
a span walk per condition (``SpanWalk``), the latest assessment, the supply's end, each cycle
rule's latest anchor candidate, each open span's first fulfilling fact, the latest missed
date. After folding version ``v`` it answers the ``History`` questions for a trigger at ``v``
exactly as ``FullHistory`` does by walking the whole file (the tests hold the two equal on
random histories). A backfill's ``HistoryImported`` is answered by ``FullHistory``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from domain.rules.engine import Condition, CycleRule, Fulfil, Rule, Span, SpanWalk, Trigger, step_of
from domain.rules.entries import Entry, Known, earliest, lists_of, order, registration, supply_after, supply_ends_on
from domain.rules.settings import RuleSettings


def entries_at(patient: Any, v: int) -> list[Entry]:
    """The entries the fact at stream version ``v`` added to the patient's file, tagged (lists
    only grow, in stream order, so they are at the lists' ends)."""
    out: list[Entry] = []
    if v == 1:
        out.append(registration(patient))
    for kind, found in lists_of(patient):
        i = len(found)
        while i and found[i - 1].get("v", 0) >= v:
            i -= 1
        out += [{**e, "kind": kind} for e in found[i:] if e.get("v", 0) == v]
    return out


def by_version(patient: Any) -> list[tuple[int, list[Entry]]]:
    """Every entry of the file grouped by stream version, in order (to build a state anew)."""
    grouped: dict[int, list[Entry]] = {1: [registration(patient)]}
    for kind, found in lists_of(patient):
        for e in found:
            grouped.setdefault(e.get("v", 0), []).append({**e, "kind": kind})
    return sorted(grouped.items())


class _Supply:
    """The medication supply's end, pickup by pickup (a pickup dated before the last one folds again)."""

    __slots__ = ("end", "pickups")

    def __init__(self) -> None:
        self.pickups: list[Entry] = []
        self.end: date | None = None

    def add(self, e: Entry) -> None:
        late = self.pickups and (e["dispensed_on"], e["key"]) < (
            self.pickups[-1]["dispensed_on"],
            self.pickups[-1]["key"],
        )
        self.pickups.append(e)
        if late:
            self.pickups.sort(key=lambda p: (p["dispensed_on"], p["key"]))
            self.end = supply_ends_on(self.pickups)
        else:
            self.end = supply_after(self.end, e)


class RuleState:
    """The rules' view of one patient, folded fact by fact (a ``History``)."""

    def __init__(self, patient: Any, rules: Sequence[Rule], settings: RuleSettings) -> None:
        self.patient = patient
        self.version = 0
        self.lost_after = settings.r5_misses_that_mean_lost  # the conditions that count misses use it
        conditions: dict[str, Condition] = {}
        self.cycles: list[CycleRule] = []
        self.fulfils: list[tuple[str, Fulfil]] = []  # (condition name, fulfil)
        for rule in rules:
            for c in rule.conditions(settings):
                conditions[c.name] = c
            cycle = rule if isinstance(rule, CycleRule) else getattr(rule, "cycles", lambda s: None)(settings)
            if cycle is not None:
                self.cycles.append(cycle)
            fulfil = getattr(rule, "fulfil", None)
            if fulfil is not None:
                self.fulfils.append((rule.condition.name, fulfil))  # type: ignore[attr-defined]
        self.walks = {name: SpanWalk(c) for name, c in conditions.items()}
        self.all = Known()
        self._latest: Entry | None = None
        self._assessments: dict[str, Entry] = {}
        self._supply = _Supply()
        self._anchor: dict[str, tuple[Entry | None, Entry | None]] = {r.rule: (None, None) for r in self.cycles}
        self._fulfilled: dict[str, Entry | None] = {}
        self._last_miss: tuple[date | None, date | None] = (None, None)
        self._joined = self._imported = 0  # the versions of the latest go-live join and import

    @classmethod
    def of(cls, patient: Any, rules: Sequence[Rule], settings: RuleSettings) -> RuleState:
        """The state after every fact of ``patient`` (as loaded: up to its version)."""
        state = cls(patient, rules, settings)
        for v, entries in by_version(patient):
            state.fold(v, entries)
        if state.version < patient.version:  # the last fact added no entry (an identity confirmed)
            state.fold(patient.version, [])
        return state

    def fold(self, v: int, entries: list[Entry]) -> None:
        """Add the fact at stream version ``v`` (its tagged entries; none for a fact the rules do
        not read, such as an identity confirmation)."""
        self.version = v
        self.all.add(entries)
        for walk in self.walks.values():
            walk.step(v, step_of(entries, walk.condition))
        last_miss = self._last_miss[1]
        for e in entries:
            kind = e["kind"]
            if kind == "assessment":
                self._assessments[e["key"]] = e
                if self._latest is None or order(e) >= order(self._latest):
                    self._latest = e
            elif kind == "medication":
                self._supply.add(e)
            elif kind == "missed" and (last_miss is None or e["scheduled_on"] > last_miss):
                last_miss = e["scheduled_on"]
            elif kind == "go_live_joined":
                self._joined = v
            elif kind == "import":
                self._imported = v
        self._last_miss = (self._last_miss[1], last_miss)
        for rule in self.cycles:
            best = self._anchor[rule.rule][1]
            for e in entries:
                if e["kind"] == rule.anchor_kind and rule.anchors(e):
                    if best is None or (e["v"] >= best["v"] if rule.anchor_by_recorded else order(e) >= order(best)):
                        best = e
            self._anchor[rule.rule] = (self._anchor[rule.rule][1], best)
        for name, fulfil in self.fulfils:
            span = self.walks[name].current
            if span is None:
                self._fulfilled[name] = None
            elif span.opened_v == v:  # opened now: any fact known so far may fulfil it
                self._fulfilled[name] = earliest(
                    e for e in self.all.by_kind.get(fulfil.kind, []) if fulfil.qualifies(e, span)
                )
            else:
                found = [e for e in entries if e["kind"] == fulfil.kind and fulfil.qualifies(e, span)]
                self._fulfilled[name] = earliest([*found, *filter(None, [self._fulfilled.get(name)])])

    # -- History ---------------------------------------------------------------------------------

    @property
    def risk_level(self) -> int | None:
        return None if self._latest is None else self._latest["level"]

    @property
    def awaiting_go_live(self) -> bool:
        return self._joined > self._imported

    def assessment(self, key: str, upto: int) -> Entry | None:
        self._check(upto)
        return self._assessments.get(key)

    def latest_assessment(self, upto: int) -> Entry | None:
        self._check(upto)
        return self._latest

    def supply_end(self, upto: int) -> date | None:
        self._check(upto)
        return self._supply.end

    def spans(self, condition: Condition, trigger: Trigger) -> list[Span]:
        return self.walks[condition.name].relevant()

    def open_before(self, condition: Condition, trigger: Trigger) -> Span | None:
        return self.walks[condition.name].before

    def anchor_candidate(self, rule: CycleRule, upto: int) -> Entry | None:
        before, after = self._anchor[rule.rule]
        if upto == self.version:
            return after
        if upto == self.version - 1:
            return before
        raise ValueError(f"the rule state is at version {self.version}, not {upto}")

    def fulfilment(self, fulfil: Fulfil, span: Span) -> Entry | None:
        name = next(n for n, f in self.fulfils if f is fulfil)
        return self._fulfilled.get(name)

    def last_miss_before(self, version: int) -> date | None:
        self._check(version)
        return self._last_miss[0]

    def _check(self, upto: int) -> None:
        if upto != self.version:
            raise ValueError(f"the rule state is at version {self.version}, not {upto}")


def fold_all(state: RuleState, steps: Iterable[tuple[int, list[Entry]]]) -> RuleState:
    """Fold several facts in stream order."""
    for v, entries in steps:
        state.fold(v, entries)
    return state
