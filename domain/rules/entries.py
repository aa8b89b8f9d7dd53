"""A patient's facts as *entries*, and the conditions the rules ask of them.

An entry is one fact as the patient's file keeps it (``domain.patient``: a dict with its
occurred time ``at``, message id ``key``, stream version ``v`` and the fact's fields), tagged
with its ``kind`` (``visit``, ``assessment``, ``missed``, ``registration`` or a file fact's kind:
``hospital``, ``guardian``, ``medication`` …). A visit is two entries with one version: the
visit and the assessment made during it.

"Latest" is by occurred time; two facts with the same occurred time are ordered by their log
position (the stream version: the one recorded later is later), so an agency that corrects a
status at the same minute is heard, whatever the message ids.

``FullHistory`` answers the rules' questions by walking the whole file: the backfill uses it
(``HistoryImported`` re-assesses everything) and the tests use it as the oracle for the
incremental ``domain.rules.state.RuleState``, which answers the same questions fact by fact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from domain.values import by_occurred

if TYPE_CHECKING:
    from domain.rules.engine import Condition, CycleRule, Fulfil, Span, Trigger

Entry = dict[str, Any]


#: Occurred time, then log position: the order every rule uses for "latest" and "first".
order = by_occurred


class Known(list):
    """The entries known so far, indexed by kind (each kind's list and its latest entry), so a
    condition asked after every step costs what the kinds it reads cost, not the whole history."""

    def __init__(self) -> None:
        super().__init__()
        self.by_kind: dict[str, list[Entry]] = {}
        self.last: dict[str, Entry] = {}

    def add(self, entries: list[Entry]) -> None:
        self.extend(entries)
        for e in entries:
            kind = e.get("kind", "")
            self.by_kind.setdefault(kind, []).append(e)
            best = self.last.get(kind)
            if best is None or order(e) >= order(best):
                self.last[kind] = e


def lists_of(patient: Any) -> Iterable[tuple[str, list[Entry]]]:
    """Every list of entries in the patient's file, with the kind its entries have."""
    yield "visit", patient.visits
    yield "assessment", patient.assessments
    yield "missed", patient.missed
    yield from patient.facts.items()


def registration(patient: Any) -> Entry:
    """The registration as an entry (stream version 1): R4's first episode opens with it."""
    return {"kind": "registration", "at": patient.registered_at, "key": "registration", "v": 1}


def tagged(patient: Any, *kinds: str) -> list[Entry]:
    """The patient's entries of these kinds (``"*"``: all), each tagged with its kind."""
    if kinds == ("*",):  # every fact of the file
        return [{**e, "kind": kind} for kind, found in lists_of(patient) for e in found]
    out: list[Entry] = []
    for kind in kinds:
        if kind == "visit":
            source = patient.visits
        elif kind == "assessment":
            source = patient.assessments
        elif kind == "missed":
            source = patient.missed
        elif kind == "registration":
            source = [registration(patient)]
        else:
            source = patient.facts.get(kind, [])
        out += [{**e, "kind": kind} for e in source]
    return out


def of(known: Iterable[Entry], kind: str) -> list[Entry]:
    """The entries of one kind."""
    if isinstance(known, Known):
        return known.by_kind.get(kind, [])
    return [e for e in known if e["kind"] == kind]


def latest(entries: Iterable[Entry], kind: str | None = None) -> Entry | None:
    """The latest entry (of a kind): by occurred time, then log position."""
    if kind is not None and isinstance(entries, Known):
        return entries.last.get(kind)
    return max((e for e in entries if kind is None or e["kind"] == kind), key=order, default=None)


def earliest(entries: Iterable[Entry]) -> Entry | None:
    """The first entry: by occurred time, then log position."""
    return min(entries, key=order, default=None)


#: The kind of a re-registration (``smd.PatientReregistered``): to the rules, the file begins
#: again there (``domain.rules.engine.SpanWalk``): a condition that reads it forgets what it knew.
REREGISTRATION = "reregistration"


def deregistration(known: list[Entry]) -> Entry | None:
    """The deregistration in force, if known: the latest, unless a re-registration came after it."""
    left = latest(known, "deregistration")
    if left is None:
        return None
    back = latest(known, REREGISTRATION)
    return left if back is None or order(back) < order(left) else None


def in_hospital(known: list[Entry]) -> bool:
    """The latest hospital fact is an admission."""
    stay = latest(known, "hospital")
    return bool(stay and stay["admitted"])


def in_institutional_care(known: list[Entry]) -> bool:
    """The latest institutional-care fact is a start (集中照料救治 by civil affairs)."""
    care = latest(known, "institution")
    return bool(care and care["started"])


#: The kinds of fact that say whether the patient is cared for away from home: a condition that
#: asks ``cared_for`` reads them all.
CARED_FOR_KINDS = ("hospital", "institution")


def cared_for(known: list[Entry]) -> bool:
    """In hospital or in institutional care: cared for away from home while it lasts, so the
    rules for patients living at home hold back."""
    return in_hospital(known) or in_institutional_care(known)


def cared_for_reason(known: list[Entry]) -> str:
    """Why a rule for patients at home stopped: the stay that began."""
    if in_hospital(known):
        return "the patient was admitted to hospital"
    return "the patient was placed in institutional care"


def risk_class(known: list[Entry]) -> str | None:
    """The class of the latest assessment."""
    a = latest(known, "assessment")
    return None if a is None else a["class"]


def risk_level(known: list[Entry]) -> int | None:
    """The level of the latest assessment."""
    a = latest(known, "assessment")
    return None if a is None else a["level"]


def refusal_since(known: list[Entry], refusal: str) -> datetime | None:
    """When the refusal that holds now began (None: it does not hold), by occurred time."""
    since = None
    for e in sorted((e for e in of(known, "refusal") if e["refusal"] == refusal), key=order):
        since = None if e["ended"] else (since or e["at"])
    return since


def awaiting_go_live(known: Iterable[Entry]) -> bool:
    """The patient joined a go-live that has not assessed it yet (an import recorded after the
    latest join assesses it)."""
    joined = imported = 0
    for e in known:
        if e["kind"] == "go_live_joined":
            joined = max(joined, e["v"])
        elif e["kind"] == "import":
            imported = max(imported, e["v"])
    return joined > imported


def supply_ends_on(pickups: Iterable[Entry]) -> date | None:
    """The first day without medication: pickups by date, leftover supply carried over."""
    end: date | None = None
    for e in sorted(pickups, key=lambda e: (e["dispensed_on"], e["key"])):
        end = supply_after(end, e)
    return end


def supply_after(end: date | None, pickup: Entry) -> date:
    """The supply's end after one more pickup, dated at or after the earlier ones."""
    start = pickup["dispensed_on"] if end is None or end < pickup["dispensed_on"] else end
    return start + timedelta(days=pickup["days_supplied"])


# -- what the rules ask: the whole file (the oracle) ---------------------------------------------


class FullHistory:
    """The rules' questions answered by walking the patient's whole file as of version ``upto``.

    The backfill (``HistoryImported``) and the scheduler's on-due check use it; the tests use it
    as the oracle of ``RuleState``. Each answer costs the patient's whole history.
    """

    def __init__(self, patient: Any, upto: int) -> None:
        self.patient = patient
        self.version = upto

    @property
    def risk_level(self) -> int | None:
        return risk_level(tagged(self.patient, "assessment"))

    @property
    def awaiting_go_live(self) -> bool:
        return awaiting_go_live(tagged(self.patient, "go_live_joined", "import"))

    def assessment(self, key: str, upto: int) -> Entry | None:
        """The assessment recorded with the fact ``key`` (a visit's), if known by ``upto``."""
        return next((a for a in self.patient.assessments if a["key"] == key and a.get("v", 0) <= upto), None)

    def latest_assessment(self, upto: int) -> Entry | None:
        return latest(e for e in tagged(self.patient, "assessment") if e.get("v", 0) <= upto)

    def supply_end(self, upto: int) -> date | None:
        return supply_ends_on(e for e in self.patient.facts.get("medication", []) if e.get("v", 0) <= upto)

    def spans(self, condition: Condition, trigger: Trigger) -> list[Span]:
        from domain.rules.engine import spans

        return spans(tagged(self.patient, *condition.kinds), condition.holds, condition.ended)

    def open_before(self, condition: Condition, trigger: Trigger) -> Span | None:
        """The span open before the trigger (after a backfill: none, the state is assessed anew)."""
        from domain.rules.engine import IMPORTED, spans

        if trigger.topic == IMPORTED:
            return None
        entries = [e for e in tagged(self.patient, *condition.kinds) if e.get("v", 0) < trigger.version]
        found = spans(entries, condition.holds, condition.ended)
        return found[-1] if found and found[-1].is_open else None

    def anchor_candidate(self, rule: CycleRule, upto: int) -> Entry | None:
        """The latest fact (known by ``upto``) that can begin a cycle of ``rule``."""
        candidates = [e for e in tagged(self.patient, rule.anchor_kind) if e.get("v", 0) <= upto and rule.anchors(e)]
        if rule.anchor_by_recorded:
            return max(candidates, key=lambda e: e["v"], default=None)
        return latest(candidates)

    def fulfilment(self, fulfil: Fulfil, span: Span) -> Entry | None:
        """The first fact that fulfils ``span`` (None: none yet)."""
        return earliest(e for e in tagged(self.patient, fulfil.kind) if fulfil.qualifies(e, span))

    def last_miss_before(self, version: int) -> date | None:
        return max((m["scheduled_on"] for m in self.patient.missed if m.get("v", 0) < version), default=None)


#: A condition over the known entries, asked after each recorded fact.
Holds = Callable[[list[Entry]], bool]


def fact_of(patient: Any, kind: str, message_id: str) -> Entry | None:
    """The file's entry of ``kind`` that the message ``message_id`` recorded (latest first)."""
    return next((e for e in reversed(patient.facts.get(kind, [])) if e["key"] == message_id), None)
