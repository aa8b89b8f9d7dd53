"""Episode rules: open on entering a condition, complete or cancel when it ends (docs/decisions/010).

A generalisation of ``domain.episodes`` for rules whose condition spans several kinds of fact
and whose end must say *how* it ended. The facts are walked in recorded order (stream version
``v``), one step per fact (a visit is a visit entry and an assessment entry with the same
``v``); after each step the condition is asked by occurred time over what is known. A span
opens at the first fact after which the condition holds (its key: that fact's message id, so
a late, earlier-dated fact never moves it) and ends at the first fact after which it does not;
``ended`` decides, at that step, whether the end fulfils the span's obligations (completed by
that fact) or makes them moot (cancelled, with the reason).

Decisions for a trigger follow the engine (docs/decisions/008): a span opened by the trigger
opens its obligations; a span ended by the trigger completes or cancels them. After a backfill
(``HistoryImported``) the rules assess the current state: an open span opens its obligations
(deterministic ids: nothing twice) and a span ended by an imported fact is closed as it ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind

if TYPE_CHECKING:
    from domain.policies import Assignment, Decisions, Responsible, RuleSettings, Trigger


def _policies() -> Any:
    # domain.policies imports the care rules at its end and they import this module: reading it
    # at call time keeps this module importable first, so no import order makes a cycle
    import domain.policies

    return domain.policies


Entry = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Closing:
    """How a span ended: completed by a fact, or cancelled for a reason."""

    completed_by: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of recorded order during which a condition held."""

    key: str  # message id of the fact that opened it (stable under late facts)
    opened_v: int
    opened_at: datetime  # occurred time of the opening fact
    closed_v: int | None = None
    closed_by: str | None = None
    closing: Closing | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_v is None


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
            if best is None or (e["at"], e["key"]) > (best["at"], best["key"]):
                self.last[kind] = e


def spans(
    entries: Iterable[Entry], holds: Callable[[list[Entry]], bool], ended: Callable[[list[Entry], Entry], Closing]
) -> list[Span]:
    """Every span of ``holds`` over the entries, one step per recorded fact."""
    by_v: dict[int, list[Entry]] = {}
    for e in entries:
        by_v.setdefault(e.get("v", 0), []).append(e)
    known = Known()
    found: list[Span] = []
    current: Span | None = None
    for v in sorted(by_v):
        step = by_v[v]
        known.add(step)
        now = holds(known)
        if now and current is None:
            current = Span(key=step[0]["key"], opened_v=v, opened_at=step[0]["at"])
        elif not now and current is not None:
            found.append(replace(current, closed_v=v, closed_by=step[0]["key"], closing=ended(known, step[0])))
            current = None
    if current is not None:
        found.append(current)
    return found


def opened_now(span: Span, trigger: Trigger) -> bool:
    """The trigger opened the span (after a backfill: the span is open now)."""
    if trigger.topic == _policies().IMPORTED:
        return span.is_open
    return span.is_open and span.opened_v == trigger.version


def ended_now(span: Span, trigger: Trigger) -> bool:
    """The trigger ended the span (after a backfill: an imported fact ended it)."""
    if span.closed_v is None:
        return False
    if trigger.topic == _policies().IMPORTED:
        return _policies().is_imported(span.closed_by or "")
    return span.closed_v == trigger.version


# -- entries and the state they say, by occurred time ----------------------------------------------


def tagged(patient: Any, *kinds: str) -> list[Entry]:
    """The patient's entries of these kinds, each tagged with its kind ("visit" and
    "assessment" are the visit and assessment lists; the rest are ``facts`` kinds)."""
    out: list[Entry] = []
    for kind in kinds:
        if kind == "visit":
            source = patient.visits
        elif kind == "assessment":
            source = patient.assessments
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
    """The latest entry (of a kind) by occurred time; the message id breaks ties."""
    if kind is not None and isinstance(entries, Known):
        return entries.last.get(kind)
    return max(
        (e for e in entries if kind is None or e["kind"] == kind), key=lambda e: (e["at"], e["key"]), default=None
    )


def deregistration(known: list[Entry]) -> Entry | None:
    """The deregistration, if known (a patient leaves the register once)."""
    return latest(known, "deregistration")


def left_register(known: list[Entry]) -> Closing | None:
    """The cancellation every rule shares: the patient left the register."""
    d = deregistration(known)
    return None if d is None else Closing(reason=f"the patient left the register ({d['reason']})")


def in_hospital(known: list[Entry]) -> bool:
    """The latest hospital fact is an admission."""
    stay = latest(known, "hospital")
    return bool(stay and stay["admitted"])


def risk_class(known: list[Entry]) -> str | None:
    """The class of the latest assessment."""
    a = latest(known, "assessment")
    return None if a is None else a["class"]


def risk_level(known: list[Entry]) -> int | None:
    """The level of the latest assessment."""
    a = latest(known, "assessment")
    return None if a is None else a["level"]


# -- assignments -----------------------------------------------------------------------------------

#: The governance center's action when no agency of a kind covers the residence (nobody may
#: fall between agencies: it must find one, under the same deadline; R1 does the same).
FALLBACK_ACTION = {
    AgencyKind.HEALTH_CENTER: "assign_health_center",
    AgencyKind.POLICE_STATION: "assign_police_station",
    AgencyKind.CIVIL_AFFAIRS: "assign_civil_affairs",
    AgencyKind.COMMITTEE: "assign_committee",
    AgencyKind.PSYCHIATRIC_HOSPITAL: "assign_psychiatric_hospital",
}


def obligation(
    trigger: Trigger,
    responsible: Responsible,
    kind: AgencyKind,
    *,
    rule: str,
    key: str,
    role: str,
    action: str,
    due_at: datetime,
    risk_level: int | None = None,
    cycle: int | None = None,
    subject: Any = None,
) -> list[Assignment]:
    """An obligation for the agency of ``kind`` covering the residence (else the governance
    center, to assign one); none when neither is on record."""
    owner = responsible(kind)
    if owner is None:
        owner, action = responsible(AgencyKind.GOVERNANCE_CENTER), FALLBACK_ACTION[kind]
    if owner is None:
        return []
    pid = trigger.patient_id if subject is None else subject
    return [
        _policies().Assignment(
            id=obligation_id(pid, rule, key, role, cycle),
            kind=ObligationKind.OBLIGATION,
            rule=rule,
            action=action,
            assignee=owner,
            episode_key=key,
            due_at=due_at,
            risk_level=risk_level,
        )
    ]


def notice(
    trigger: Trigger,
    responsible: Responsible,
    kind: AgencyKind,
    *,
    rule: str,
    key: str,
    role: str,
    action: str,
    risk_level: int | None = None,
) -> list[Assignment]:
    """A notice for the agency of ``kind`` covering the residence (none when there is none)."""
    owner = responsible(kind)
    if owner is None:
        return []
    return [
        _policies().Assignment(
            id=obligation_id(trigger.patient_id, rule, key, role),
            kind=ObligationKind.NOTICE,
            rule=rule,
            action=action,
            assignee=owner,
            episode_key=key,
            due_at=None,
            risk_level=risk_level,
        )
    ]


# -- the driver ------------------------------------------------------------------------------------

Assign = Callable[["Trigger", Span, Any, "Responsible", "RuleSettings"], "list[Assignment]"]
Fulfil = Callable[[Span, Any], str | None]


@dataclass(frozen=True)
class EpisodeRule:
    """A rule over one condition: what opens on entry, which obligation roles its end closes.

    ``fulfil`` (optional) finds a fact that completes the span's obligations while the
    condition still holds (e.g. the care team reached the family); it is asked when the span
    opens and when a fact of ``fulfil_topics`` arrives.
    """

    rule: str
    entries: Callable[[Any], list[Entry]]
    holds: Callable[[list[Entry]], bool]
    ended: Callable[[list[Entry], Entry], Closing]
    assign: Assign
    closes: tuple[str, ...] = ()
    fulfil: Fulfil | None = None
    fulfil_topics: frozenset[str] = field(default_factory=frozenset)

    def __call__(self, trigger: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
        d = _policies().Decisions()
        for span in spans(self.entries(patient), self.holds, self.ended):
            if opened_now(span, trigger):
                d.opened += self.assign(trigger, span, patient, responsible, settings)
            if (
                span.is_open
                and self.fulfil is not None
                and (opened_now(span, trigger) or trigger.topic in self.fulfil_topics)
            ):
                by = self.fulfil(span, patient)
                if by is not None:
                    d.completed += [(self._id(trigger, span, role), by) for role in self.closes]
            if ended_now(span, trigger):
                d.extend(close(trigger, span, [self._id(trigger, span, role) for role in self.closes]))
        return d

    def _id(self, trigger: Trigger, span: Span, role: str) -> Any:
        return obligation_id(trigger.patient_id, self.rule, span.key, role)


def close(trigger: Trigger, span: Span, ids: list[Any]) -> Decisions:
    """Complete or cancel the obligations ``ids`` as the span ended."""
    d = _policies().Decisions()
    closing = span.closing or Closing(reason="the condition no longer holds")
    because = span.closed_by or trigger.message_id
    for oid in ids:
        if closing.completed_by is not None:
            d.completed.append((oid, closing.completed_by))
        else:
            d.cancelled.append((oid, closing.reason or "the condition no longer holds", because))
    return d
