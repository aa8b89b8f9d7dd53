"""The rule engine: triggers, decisions, episodes, cycles (docs/decisions/008, 010 and 016).

A rule sees the triggering fact (``Trigger``: its place in the log; "now" is its recorded time),
what the patient's facts say (a ``History``: the incremental ``RuleState`` as the policy process
keeps it, or the ``FullHistory`` walk), a ``responsible`` function answering from the registry
as recorded up to the trigger, and the rule settings in force. It returns ``Decisions``:
obligations and notices to open, to complete, to cancel. A replay decides exactly the same.

Episodes: a rule fires when a patient *enters* a condition, not on every fact. The facts are
taken in recorded order (stream version ``v``), one step per fact; after each step the
``Condition`` is asked over what is known, by occurred time. A ``Span`` opens at the first fact
after which it holds; its key is that fact's message id, so a late, earlier-dated fact never
moves it. It ends at the first fact after which it does not hold; ``ended`` says whether that
end fulfils the span's obligations (completed by a fact) or makes them moot (cancelled, with
the reason).

Cycles (``CycleRule``): an episode divided into cycles, each an obligation due one interval
after its *anchor* (the fact that opened the episode, or a later visit, pickup or contact). The
next anchor completes the cycle and opens the next one; the cycle number is the anchor's stream
version, so obligation ids are the same on every replay.

After a backfill (``HistoryImported``) the rules assess the current state: an open span opens
its obligations (deterministic ids: nothing twice) and a span ended by an imported fact closes
as it ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID, uuid5

from domain.obligation import OBLIGATION_NAMESPACE, Obligation, ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.entries import REREGISTRATION, Entry, Holds, Known
from domain.rules.settings import RuleSettings

IMPORTED = "smd.HistoryImported"
IMPORTED_PREFIX = "ledger:"


def is_imported(message_id: str) -> bool:
    """A fact from an agency's ledger (a backfill): it opens nothing for the past."""
    return message_id.startswith(IMPORTED_PREFIX)


@dataclass(frozen=True, slots=True)
class Trigger:
    """The fact a rule reacts to, with its place in the global log."""

    patient_id: UUID
    message_id: str
    position: int
    recorded_at: datetime
    residence: str
    topic: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class Assignment:
    """An obligation or notice a rule decided to open."""

    id: UUID
    kind: ObligationKind
    rule: str
    action: str
    assignee: str
    episode_key: str
    due_at: datetime | None
    risk_level: int | None
    natural_due_at: datetime | None = None  # the deadline the rule gives, when go-live moved it (else None)
    #: the place it is about when not the trigger's residence (a move's destination: R7, R8 inside
    #: the region), so R15 escalates it to the governance center there and its oversight sees it
    residence: str | None = None


def moved_id(old: UUID, move_id: str) -> UUID:
    """The id of the obligation ``old`` reopened when the patient's move ``move_id`` was accepted.

    Derived from the old id (which already names the patient, rule, episode, role and cycle)
    rather than from those parts: a decision does not carry its role and cycle, and an
    obligation moved twice is found link by link from the id the rules know."""
    return uuid5(OBLIGATION_NAMESPACE, f"{old}|moved|{move_id}")


@dataclass(frozen=True, slots=True)
class Moved:
    """Open work that moves with the patient (docs/decisions/042): the end of ``old``'s chain,
    still open and owed by another agency than ``assignee``, is cancelled ("moved: now
    <assignee>'s") and reopened for ``assignee`` about ``residence`` with the same deadline, as
    ``moved_id(end, move_id)``. With ``due_at`` (R1's management, per station) the end of the
    chain is reopened even when it is closed already, due then."""

    old: UUID
    move_id: str
    assignee: str
    action: str
    residence: str
    due_at: datetime | None = None
    risk_level: int | None = None


@dataclass
class Decisions:
    """What the rules decided for one trigger."""

    opened: list[Assignment] = field(default_factory=list)
    completed: list[tuple[UUID, str]] = field(default_factory=list)  # (obligation id, fulfilling message id)
    cancelled: list[tuple[UUID, str, str]] = field(default_factory=list)  # (id, reason, because of message id)
    lost: list[tuple[str, UUID, str]] = field(default_factory=list)  # ("derived"|"withdrawn"|"ended", id, key)
    moved: list[Moved] = field(default_factory=list)  # open work that follows an accepted move
    #: the accepted moves inside the region known at the trigger (their ids, in recorded order):
    #: a completion or cancellation of an id applies to the end of its chain of ``moved_id`` links
    moves: tuple[str, ...] = ()

    def names(self) -> set[UUID]:
        """Every obligation and lost-episode id the decisions name."""
        return (
            {a.id for a in self.opened}
            | {i for i, _ in self.completed}
            | {i for i, _, _ in self.cancelled}
            | {i for _, i, _ in self.lost}
            | {m.old for m in self.moved}
        )

    def extend(self, other: Decisions) -> Decisions:
        self.opened += other.opened
        self.completed += other.completed
        self.cancelled += other.cancelled
        self.lost += other.lost
        self.moved += other.moved
        self.moves = self.moves or other.moves
        return self


#: ``responsible(kind)`` → the agency id responsible for the trigger's residence, or None.
Responsible = Callable[[AgencyKind], str | None]


# -- episodes --------------------------------------------------------------------------------------


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


def _no_longer(known: list[Entry], fact: Entry) -> Closing:
    return Closing(reason="the condition no longer holds")


@dataclass(frozen=True)
class Condition:
    """What a rule watches: the kinds of fact it reads and when it holds (asked after each step)."""

    name: str  # unique among the rules: the incremental state keeps one span walk per name
    kinds: tuple[str, ...]
    holds: Holds
    ended: Callable[[list[Entry], Entry], Closing] = _no_longer


def step_of(entries: list[Entry], condition: Condition) -> list[Entry]:
    """One fact's entries that ``condition`` reads, in the order of its kinds (``"*"``: all)."""
    if condition.kinds == ("*",):
        return entries
    return [e for kind in condition.kinds for e in entries if e["kind"] == kind]


class SpanWalk:
    """The spans of one condition, walked one recorded fact at a time."""

    __slots__ = ("before", "closed", "condition", "current", "known", "since", "version")

    def __init__(self, condition: Condition) -> None:
        self.condition = condition
        self.known = Known()
        self.current: Span | None = None  # open after the last step
        self.before: Span | None = None  # open before the last step
        self.closed: Span | None = None  # closed by the last step
        self.version = 0  # the version of the last step
        self.since: datetime | None = None  # the latest re-registration's occurred time

    def step(self, v: int, entries: list[Entry]) -> None:
        """Add one recorded fact's entries (already filtered by ``step_of``; may be empty).

        A re-registration (read by the conditions that name its kind) begins the file again for
        them: what was known is forgotten, and a fact dated before it, recorded later, is not
        heard, so the rules open what a new registration would open and nothing for before."""
        self.before, self.closed, self.version = self.current, None, v
        if not entries:
            return
        back = [e for e in entries if e.get("kind") == REREGISTRATION]
        if back:
            self.known, self.since = Known(), max(e["at"] for e in back)
        if self.since is not None:
            entries = [e for e in entries if e["at"] >= self.since]
            if not entries:
                return
        self.known.add(entries)
        now = self.condition.holds(self.known)
        if now and self.current is None:
            self.current = Span(key=entries[0]["key"], opened_v=v, opened_at=entries[0]["at"])
        elif not now and self.current is not None:
            closing = self.condition.ended(self.known, entries[0])
            self.closed = replace(self.current, closed_v=v, closed_by=entries[0]["key"], closing=closing)
            self.current = None

    def relevant(self) -> list[Span]:
        """The spans the last step can have opened, closed or left open (in recorded order)."""
        return [s for s in (self.closed, self.current) if s is not None]


def spans(entries: Iterable[Entry], holds: Holds, ended: Callable[[list[Entry], Entry], Closing]) -> list[Span]:
    """Every span of ``holds`` over the entries, one step per recorded fact (the whole walk)."""
    by_v: dict[int, list[Entry]] = {}
    for e in entries:
        by_v.setdefault(e.get("v", 0), []).append(e)
    walk = SpanWalk(Condition("", (), holds, ended))
    found: list[Span] = []
    for v in sorted(by_v):
        walk.step(v, by_v[v])
        if walk.closed is not None:
            found.append(walk.closed)
    if walk.current is not None:
        found.append(walk.current)
    return found


def opened_now(span: Span, trigger: Trigger) -> bool:
    """The trigger opened the span (after a backfill: the span is open now)."""
    if trigger.topic == IMPORTED:
        return span.is_open
    return span.is_open and span.opened_v == trigger.version


def ended_now(span: Span, trigger: Trigger) -> bool:
    """The trigger ended the span (after a backfill: an imported fact ended it)."""
    if span.closed_v is None:
        return False
    if trigger.topic == IMPORTED:
        return is_imported(span.closed_by or "")
    return span.closed_v == trigger.version


def opening(span: Span) -> Entry:
    """The anchor of an episode's first cycle: the fact that opened it."""
    return {"at": span.opened_at, "key": span.key, "v": span.opened_v}


@dataclass(frozen=True)
class Fulfil:
    """The first fact of ``kind`` that ``qualifies`` for an open span completes its obligations
    while the condition still holds (the care team reached the family; the guardian was told)."""

    kind: str
    qualifies: Callable[[Entry, Span], bool]
    topics: frozenset[str]


class History(Protocol):
    """What the rules ask about a patient's facts, as known at the trigger (``version``).

    Two answers: ``domain.rules.state.RuleState`` (kept fact by fact by the policy process)
    and ``domain.rules.entries.FullHistory`` (the whole file walked again: the backfill, the
    scheduler's on-due check, and the tests' oracle).
    """

    patient: Any
    version: int

    @property
    def risk_level(self) -> int | None: ...

    @property
    def awaiting_go_live(self) -> bool: ...

    def assessment(self, key: str, upto: int) -> Entry | None: ...

    def latest_assessment(self, upto: int) -> Entry | None: ...

    def supply_end(self, upto: int) -> date | None: ...

    def spans(self, condition: Condition, trigger: Trigger) -> list[Span]: ...

    def open_before(self, condition: Condition, trigger: Trigger) -> Span | None: ...

    def anchor_candidate(self, rule: CycleRule, upto: int) -> Entry | None: ...

    def fulfilment(self, fulfil: Fulfil, span: Span) -> Entry | None: ...

    def last_miss_before(self, version: int) -> date | None: ...


class Rule(Protocol):
    """One coordination rule over a patient's facts."""

    rule: str
    owner: AgencyKind  # the agency kind whose late-joining ledger re-assesses this rule

    def conditions(self, settings: RuleSettings) -> tuple[Condition, ...]: ...

    def __call__(self, t: Trigger, h: History, responsible: Responsible, settings: RuleSettings) -> Decisions: ...


# -- assignments -----------------------------------------------------------------------------------

#: The governance center's action when no agency of a kind covers the residence (nobody may
#: fall between agencies: it must find one, under the same deadline).
FALLBACK_ACTION = {
    AgencyKind.HEALTH_CENTER: "assign_health_center",
    AgencyKind.POLICE_STATION: "assign_police_station",
    AgencyKind.CIVIL_AFFAIRS: "assign_civil_affairs",
    AgencyKind.COMMITTEE: "assign_committee",
    AgencyKind.PSYCHIATRIC_HOSPITAL: "assign_psychiatric_hospital",
}


def owner_or_fallback(
    find: Callable[[AgencyKind], str | None], kind: AgencyKind, action: str
) -> tuple[str | None, str]:
    """The agency of ``kind`` that ``find`` names, with ``action``; none on record: the governance
    center, with the action of finding one (``FALLBACK_ACTION``); neither: (None, action)."""
    owner = find(kind)
    if owner is None:
        fallback = find(AgencyKind.GOVERNANCE_CENTER)
        return (fallback, FALLBACK_ACTION[kind]) if fallback is not None else (None, action)
    return owner, action


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
    if owner is None and kind in FALLBACK_ACTION:
        owner, action = responsible(AgencyKind.GOVERNANCE_CENTER), FALLBACK_ACTION[kind]
    if owner is None:
        return []  # nobody of that kind, and no governance center to assign one (or it is the one missing)
    pid = trigger.patient_id if subject is None else subject
    return [
        Assignment(
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
    cycle: int | None = None,
) -> list[Assignment]:
    """A notice for the agency of ``kind`` covering the residence (none when there is none)."""
    owner = responsible(kind)
    if owner is None:
        return []
    return [
        Assignment(
            id=obligation_id(trigger.patient_id, rule, key, role, cycle),
            kind=ObligationKind.NOTICE,
            rule=rule,
            action=action,
            assignee=owner,
            episode_key=key,
            due_at=None,
            risk_level=risk_level,
        )
    ]


def close(trigger: Trigger, span: Span, ids: list[Any]) -> Decisions:
    """Complete or cancel the obligations ``ids`` as the span ended."""
    d = Decisions()
    closing = span.closing or Closing(reason="the condition no longer holds")
    because = span.closed_by or trigger.message_id
    for oid in ids:
        if closing.completed_by is not None:
            d.completed.append((oid, closing.completed_by))
        else:
            d.cancelled.append((oid, closing.reason or "the condition no longer holds", because))
    return d


# -- episode rules ---------------------------------------------------------------------------------

#: assign(trigger, span, history, responsible, settings) → what the span's opening opens
Assign = Callable[[Trigger, Span, History, Responsible, RuleSettings], list[Assignment]]


@dataclass(frozen=True)
class EpisodeRule:
    """A rule over one condition: what opens on entry, which obligation roles its end closes,
    and (``fulfil``) a fact that completes them while the condition still holds."""

    rule: str
    owner: AgencyKind  # the agency kind whose late-joining ledger re-assesses this rule
    condition: Condition
    assign: Assign
    closes: tuple[str, ...] = ()
    fulfil: Fulfil | None = None

    def conditions(self, settings: RuleSettings) -> tuple[Condition, ...]:
        return (self.condition,)

    def __call__(self, t: Trigger, h: History, responsible: Responsible, settings: RuleSettings) -> Decisions:
        d = Decisions()
        for span in h.spans(self.condition, t):
            if opened_now(span, t):
                d.opened += self.assign(t, span, h, responsible, settings)
            if span.is_open and self.fulfil is not None and (opened_now(span, t) or t.topic in self.fulfil.topics):
                by = h.fulfilment(self.fulfil, span)
                if by is not None:
                    d.completed += [(self._id(t, span, role), by["key"]) for role in self.closes]
            if ended_now(span, t):
                d.extend(close(t, span, [self._id(t, span, role) for role in self.closes]))
        return d

    def _id(self, t: Trigger, span: Span, role: str) -> UUID:
        return obligation_id(t.patient_id, self.rule, span.key, role)


# -- cycle rules -----------------------------------------------------------------------------------

#: due(history, anchor, upto, settings) → the cycle's deadline
Due = Callable[[History, Entry, int, RuleSettings], datetime]


@dataclass(frozen=True)
class CycleRule:
    """An episode of cycles, each an obligation for ``owner`` due one interval after its anchor.

    The anchor of the current cycle is the latest fact of ``anchor_kind`` that ``anchors``
    (by occurred time, dated at or after the episode opened; with ``anchor_by_recorded``, the
    latest recorded since it opened), else the fact that opened the episode. ``once`` opens what
    the episode needs once (notices, R2's legal-duty talk), closed with the episode; ``fulfil``
    completes those ``once_closes`` roles while the episode lasts.
    """

    rule: str
    role: str
    owner: AgencyKind
    action: str
    condition: Condition
    anchor_kind: str
    due: Due
    anchors: Callable[[Entry], bool] = lambda e: True
    anchor_by_recorded: bool = False
    once: Assign | None = None
    once_closes: tuple[str, ...] = ()
    fulfil: Fulfil | None = None

    def conditions(self, settings: RuleSettings) -> tuple[Condition, ...]:
        return (self.condition,)

    def anchor(self, h: History, span: Span, upto: int) -> Entry:
        """The anchor of the span's current cycle as known by ``upto``."""
        found = h.anchor_candidate(self, upto)
        if found is None:
            return opening(span)
        if self.anchor_by_recorded:
            return found if found["v"] >= span.opened_v else opening(span)
        return found if found["at"] >= span.opened_at else opening(span)

    def cycle_id(self, patient_id: UUID, span: Span, anchor: Entry) -> UUID:
        return obligation_id(patient_id, self.rule, span.key, self.role, anchor["v"])

    def _open_cycle(
        self, t: Trigger, span: Span, anchor: Entry, h: History, responsible: Responsible, settings: RuleSettings
    ) -> list[Assignment]:
        due = self.due(h, anchor, t.version, settings)
        found = obligation(
            t,
            responsible,
            self.owner,
            rule=self.rule,
            key=span.key,
            role=self.role,
            action=self.action,
            due_at=due,
            risk_level=h.risk_level,
            cycle=anchor["v"],
        )
        if t.topic == IMPORTED and due < t.recorded_at:
            # already overdue when the service took over: nobody could have been late yet, so it
            # is due a period (at most the grace) after go-live; the rule's deadline is kept
            moved = t.recorded_at + min(due - anchor["at"], settings.go_live_grace)
            found = [replace(a, due_at=moved, natural_due_at=due) for a in found]
        return found

    def __call__(self, t: Trigger, h: History, responsible: Responsible, settings: RuleSettings) -> Decisions:
        d = Decisions()
        for span in h.spans(self.condition, t):
            now = self.anchor(h, span, t.version) if span.is_open else None
            if opened_now(span, t):
                if self.once is not None:
                    d.opened += self.once(t, span, h, responsible, settings)
                d.opened += self._open_cycle(t, span, now, h, responsible, settings)  # type: ignore[arg-type]
                if t.topic == IMPORTED:
                    d.extend(self._sweep(t, span, now, h))  # type: ignore[arg-type]
            elif span.is_open:
                before = self.anchor(h, span, t.version - 1)
                if now is not None and now["v"] != before["v"]:  # a new anchor: the cycle done, the next begins
                    d.completed.append((self.cycle_id(t.patient_id, span, before), t.message_id))
                    d.opened += self._open_cycle(t, span, now, h, responsible, settings)
            if span.is_open and self.fulfil is not None and (opened_now(span, t) or t.topic in self.fulfil.topics):
                by = h.fulfilment(self.fulfil, span)
                if by is not None:
                    d.completed += [
                        (obligation_id(t.patient_id, self.rule, span.key, r), by["key"]) for r in self.once_closes
                    ]
            if ended_now(span, t):
                last = self.anchor(h, span, (span.closed_v or 0) - 1)
                final = self.anchor(h, span, span.closed_v or 0)
                ids = [obligation_id(t.patient_id, self.rule, span.key, r) for r in self.once_closes]
                if final["v"] != last["v"]:  # the fact that ended it did what the cycle asked (a joint visit)
                    d.completed.append((self.cycle_id(t.patient_id, span, last), final["key"]))
                else:
                    ids.insert(0, self.cycle_id(t.patient_id, span, last))
                d.extend(close(t, span, ids))
        return d

    def _sweep(self, t: Trigger, span: Span, now: Entry, h: History) -> Decisions:
        """After a backfill: the cycles of every other anchor (opened live before imported facts
        overtook them) are done; completing one that was never opened changes nothing."""
        from domain.rules.entries import tagged

        d = Decisions()
        others = {opening(span)["v"]} | {e["v"] for e in tagged(h.patient, self.anchor_kind) if self.anchors(e)}
        for v in sorted(others - {now["v"]}):
            d.completed.append((self.cycle_id(t.patient_id, span, {"v": v}), now["key"]))
        return d

    def cycle_of(self, h: History, oid: UUID) -> tuple[Span, int] | None:
        """The open episode and cycle number of obligation ``oid`` (None: not the current cycle):
        the current cycle's id, or the id it was reopened under when the patient moved."""
        from domain.rules.entries import tagged

        moves = [str(e["move_id"]) for e in h.patient.facts.get("residence", ())]
        for span in spans(tagged(h.patient, *self.condition.kinds), self.condition.holds, self.condition.ended):
            if span.is_open:
                current = self.anchor(h, span, h.version)
                ids = {self.cycle_id(h.patient.id, span, current)}
                for move_id in moves:  # each move may or may not have moved it: every chain it may have
                    ids |= {moved_id(i, move_id) for i in ids}
                if oid in ids:
                    return span, current["v"]
        return None


def left_register(known: list[Entry]) -> Closing | None:
    """The cancellation every rule shares: the patient left the register."""
    from domain.rules.entries import deregistration

    d = deregistration(known)
    return None if d is None else Closing(reason=f"the patient left the register ({d['reason']})")


def to_obligation(a: Assignment, *, subject: UUID, residence: str, trigger: Trigger, now: datetime) -> Obligation:
    """The one place a decision becomes an obligation: ``a`` assigned about ``subject`` (a patient
    or a suspected case), because of ``trigger``, at ``now`` (the trigger's recorded time, or
    the scheduler's clock for what falls due)."""
    return Obligation.assign(
        id=a.id,
        kind=a.kind,
        rule=a.rule,
        action=a.action,
        patient_id=subject,
        episode_key=a.episode_key,
        assignee=a.assignee,
        residence=a.residence or residence,
        due_at=a.due_at,
        trigger_message_id=trigger.message_id,
        trigger_position=trigger.position,
        risk_level=a.risk_level,
        now=now,
        natural_due_at=a.natural_due_at,
    )
