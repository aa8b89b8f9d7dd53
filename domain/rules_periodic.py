"""Periodic care rules: R2 joint visits, R4 visit intervals, R6 medication supply.

Each rule has an episode (a condition, as in ``domain.rule_episodes``) divided into *cycles*.
A cycle begins at an *anchor* — the fact that opened the episode, or a later fact that starts a
new cycle (a joint visit for R2, any visit for R4, a pickup for R6) — and its obligation is due
one interval after it. The next anchor completes the cycle and opens the next one. The cycle
number is the anchor's stream version: unique, increasing, and never moved by a late fact, so
the id (patient, rule, episode key, role, cycle) is the same on every replay and restart.

The deadline is what makes these rules time-driven: when a cycle passes its deadline the
scheduler marks it overdue (R15: R4's "visit overdue", R2's missed fortnight) and asks
``on_due`` what else falls due then (R6: the care team's run-out warning), recording both in
one transaction so a restart or a second scheduler never records either twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import domain.policies as policies
from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind, obligation_id
from domain.patient_file import LegalDutyNoticeGiven
from domain.policies import IMPORTED, Assignment, Decisions, Responsible, RuleSettings, Trigger
from domain.registry import AgencyKind
from domain.rule_episodes import (
    Closing,
    Entry,
    Span,
    close,
    deregistration,
    ended_now,
    in_hospital,
    latest,
    left_register,
    notice,
    obligation,
    opened_now,
    risk_class,
    spans,
    tagged,
)
from domain.values import RiskClass

if TYPE_CHECKING:
    from domain.rule_episodes import Assign

HC, COMMITTEE, POLICE = AgencyKind.HEALTH_CENTER, AgencyKind.COMMITTEE, AgencyKind.POLICE_STATION

#: anchor(patient, span, up to version) → the entry ("at", "key", "v") the current cycle began at
Anchor = Callable[[Any, Span, int], Entry]
#: due(patient, anchor, up to version, settings) → the cycle's deadline
Due = Callable[[Any, Entry, int, RuleSettings], datetime]


def opening(span: Span) -> Entry:
    """The anchor of an episode's first cycle: the fact that opened it."""
    return {"at": span.opened_at, "key": span.key, "v": span.opened_v}


def latest_after_opening(candidates: list[Entry], span: Span, upto: int) -> Entry:
    """The latest candidate by occurred time, dated at or after the episode's opening; else the opening."""
    found = latest(e for e in candidates if e.get("v", 0) <= upto and e["at"] >= span.opened_at)
    return found if found is not None else opening(span)


@dataclass(frozen=True)
class CycleRule:
    """An episode of cycles, each an obligation for ``owner`` due one interval after its anchor.

    ``once`` opens what the episode needs once (notices, R2's legal-duty talk), closed with the
    episode; ``fulfil`` completes those ``once_closes`` roles while the episode lasts.
    """

    rule: str
    role: str
    owner: AgencyKind
    action: str
    entries: Callable[[Any], list[Entry]]
    holds: Callable[[list[Entry]], bool]
    ended: Callable[[list[Entry], Entry], Closing]
    anchor: Anchor
    due: Due
    once: Assign | None = None
    once_closes: tuple[str, ...] = ()
    fulfil: Callable[[Span, Any], str | None] | None = None
    fulfil_topics: frozenset[str] = frozenset()

    def cycle_id(self, patient_id: UUID, span: Span, anchor: Entry) -> UUID:
        return obligation_id(patient_id, self.rule, span.key, self.role, anchor["v"])

    def _open_cycle(
        self, t: Trigger, span: Span, anchor: Entry, patient: Any, responsible: Responsible, settings: RuleSettings
    ) -> list[Assignment]:
        return obligation(
            t,
            responsible,
            self.owner,
            rule=self.rule,
            key=span.key,
            role=self.role,
            action=self.action,
            due_at=self.due(patient, anchor, t.version, settings),
            risk_level=patient.risk_level,
            cycle=anchor["v"],
        )

    def __call__(self, t: Trigger, patient: Any, responsible: Responsible, settings: RuleSettings) -> Decisions:
        d = Decisions()
        for span in spans(self.entries(patient), self.holds, self.ended):
            now = self.anchor(patient, span, t.version) if span.is_open else None
            if opened_now(span, t):
                if self.once is not None:
                    d.opened += self.once(t, span, patient, responsible, settings)
                d.opened += self._open_cycle(t, span, now, patient, responsible, settings)  # type: ignore[arg-type]
                if t.topic == IMPORTED:
                    d.extend(self._sweep(t, span, now, patient))  # type: ignore[arg-type]
            elif span.is_open:
                before = self.anchor(patient, span, t.version - 1)
                if now is not None and now["v"] != before["v"]:  # a new anchor: the cycle done, the next begins
                    d.completed.append((self.cycle_id(t.patient_id, span, before), t.message_id))
                    d.opened += self._open_cycle(t, span, now, patient, responsible, settings)
            if span.is_open and self.fulfil is not None and (opened_now(span, t) or t.topic in self.fulfil_topics):
                by = self.fulfil(span, patient)
                if by is not None:
                    d.completed += [(obligation_id(t.patient_id, self.rule, span.key, r), by) for r in self.once_closes]
            if ended_now(span, t):
                last = self.anchor(patient, span, (span.closed_v or 0) - 1)
                final = self.anchor(patient, span, span.closed_v or 0)
                ids = [obligation_id(t.patient_id, self.rule, span.key, r) for r in self.once_closes]
                if final["v"] != last["v"]:  # the fact that ended it did what the cycle asked (a joint visit)
                    d.completed.append((self.cycle_id(t.patient_id, span, last), final["key"]))
                else:
                    ids.insert(0, self.cycle_id(t.patient_id, span, last))
                d.extend(close(t, span, ids))
        return d

    def _sweep(self, t: Trigger, span: Span, now: Entry, patient: Any) -> Decisions:
        """After a backfill: the cycles of every other anchor (opened live before imported facts
        overtook them) are done; completing one that was never opened changes nothing."""
        d = Decisions()
        others = {opening(span)["v"]} | {e["v"] for e in self.entries_for_anchor(patient)}
        for v in sorted(others - {now["v"]}):
            d.completed.append((self.cycle_id(t.patient_id, span, {"v": v}), now["key"]))
        return d

    def entries_for_anchor(self, patient: Any) -> list[Entry]:
        return ANCHOR_ENTRIES[self.rule](patient)

    def cycle_of(self, patient: Any, oid: UUID) -> tuple[Span, int] | None:
        """The open episode and cycle number of obligation ``oid`` (None: not the current cycle)."""
        for span in spans(self.entries(patient), self.holds, self.ended):
            if span.is_open:
                current = self.anchor(patient, span, patient.version)
                if self.cycle_id(patient.id, span, current) == oid:
                    return span, current["v"]
        return None


def _at_home_ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    if in_hospital(known):
        return Closing(reason="the patient was admitted to hospital")
    return Closing(reason="the patient is no longer unstable")


# -- R2: unstable and not in hospital → a joint visit at least every 14 days -------------------------


def _unstable_at_home(known: list[Entry]) -> bool:
    return deregistration(known) is None and not in_hospital(known) and risk_class(known) == RiskClass.UNSTABLE


def _joint_visits(patient: Any) -> list[Entry]:
    return [v for v in patient.visits if v["joint"]]


def _r2_once(t: Trigger, s: Span, patient: Any, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    # Q-4, J 卫生院 1: health staff, care team and community police visit together; the guardian is
    # told of the legal duty (the committee works with the guardian)
    level = patient.risk_level
    return (
        notice(
            t,
            responsible,
            COMMITTEE,
            rule="R2",
            key=s.key,
            role="committee-notice",
            action="joint_visits_every_14_days_notice",
            risk_level=level,
        )
        + notice(
            t,
            responsible,
            POLICE,
            rule="R2",
            key=s.key,
            role="police-notice",
            action="joint_visits_every_14_days_notice",
            risk_level=level,
        )
        + obligation(
            t,
            responsible,
            COMMITTEE,
            rule="R2",
            key=s.key,
            role="legal-duty",
            action="tell_guardian_of_legal_duty",
            due_at=t.recorded_at + settings.r2_joint_visit_every,
            risk_level=level,
        )
    )


def _legal_duty_told(span: Span, patient: Any) -> str | None:
    since = span.opened_at.astimezone(CHINA_TZ).date()
    told = [e for e in patient.facts.get("legal_duty_notice", []) if e["given_on"] >= since]
    first = min(told, key=lambda e: (e["at"], e["key"]), default=None)
    return None if first is None else first["key"]


R2 = CycleRule(
    "R2",
    "joint-visit",
    HC,
    "joint_visit",
    entries=lambda p: tagged(p, "assessment", "hospital", "deregistration"),
    holds=_unstable_at_home,
    ended=_at_home_ended,
    anchor=lambda p, span, upto: latest_after_opening([{**v, "kind": "visit"} for v in _joint_visits(p)], span, upto),
    due=lambda p, anchor, upto, s: anchor["at"] + s.r2_joint_visit_every,
    once=_r2_once,
    once_closes=("legal-duty",),
    fulfil=_legal_duty_told,
    fulfil_topics=frozenset({LegalDutyNoticeGiven.TOPIC}),
)

# -- R4: the visit interval by class, at home --------------------------------------------------------


def _registration(patient: Any) -> list[Entry]:
    # the episode of a newly registered patient opens with the registration (stream version 1)
    return [{"kind": "registration", "at": patient.registered_at, "key": "registration", "v": 1}]


def _registered_at_home(known: list[Entry]) -> bool:
    return deregistration(known) is None and not in_hospital(known)


def _r4_interval(patient: Any, anchor: Entry, upto: int, settings: RuleSettings) -> timedelta:
    # the class the anchoring visit recorded; at the episode's opening, the latest class known
    assessed = [a for a in patient.assessments if a.get("v", 0) <= upto]
    own = [a for a in assessed if a["key"] == anchor["key"]]
    found = latest({**a, "kind": "assessment"} for a in (own or assessed))
    cls = None if found is None else found["class"]
    return {
        RiskClass.UNSTABLE: settings.r4_unstable,
        RiskClass.BASICALLY_STABLE: settings.r4_basically_stable,
        RiskClass.STABLE: settings.r4_stable,
    }.get(cls, settings.r4_first_visit)  # type: ignore[arg-type]


def _r4_ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    return Closing(reason="the patient was admitted to hospital")


R4 = CycleRule(
    "R4",
    "visit",
    HC,
    "follow_up_visit",
    entries=lambda p: _registration(p) + tagged(p, "hospital", "deregistration"),
    holds=_registered_at_home,
    ended=_r4_ended,
    anchor=lambda p, span, upto: latest_after_opening(tagged(p, "visit"), span, upto),
    due=lambda p, anchor, upto, s: anchor["at"] + _r4_interval(p, anchor, upto, s),
)

# -- R6: the medication supply runs out with no new pickup -------------------------------------------


def supply_ends_on(pickups: list[Entry]) -> date | None:
    """The first day without medication: pickups by date, leftover supply carried over."""
    end: date | None = None
    for e in sorted(pickups, key=lambda e: (e["dispensed_on"], e["key"])):
        start = e["dispensed_on"] if end is None or end < e["dispensed_on"] else end
        end = start + timedelta(days=e["days_supplied"])
    return end


def _on_medication_at_home(known: list[Entry]) -> bool:
    return deregistration(known) is None and not in_hospital(known) and latest(known, "medication") is not None


def _r6_anchor(patient: Any, span: Span, upto: int) -> Entry:
    # every pickup moves the supply's end, a late one too: the latest *recorded* one anchors
    pickups = [e for e in patient.facts.get("medication", []) if span.opened_v <= e.get("v", 0) <= upto]
    return max(pickups, key=lambda e: e["v"], default=opening(span))


def _r6_due(patient: Any, anchor: Entry, upto: int, settings: RuleSettings) -> datetime:
    end = supply_ends_on([e for e in patient.facts.get("medication", []) if e.get("v", 0) <= upto])
    return datetime.combine(end, time(0), CHINA_TZ)  # type: ignore[arg-type]  # the first day without


def _r6_ended(known: list[Entry], fact: Entry) -> Closing:
    if (gone := left_register(known)) is not None:
        return gone
    return Closing(reason="the patient was admitted to hospital (the hospital supplies the medication)")


R6 = CycleRule(
    "R6",
    "health-center",
    HC,
    "medication_pickup_due",
    entries=lambda p: tagged(p, "medication", "hospital", "deregistration"),
    holds=_on_medication_at_home,
    ended=_r6_ended,
    anchor=_r6_anchor,
    due=_r6_due,
)

#: The facts that can anchor a cycle, by rule (to find an obligation's cycle again).
ANCHOR_ENTRIES: dict[str, Callable[[Any], list[Entry]]] = {
    "R2": _joint_visits,
    "R4": lambda p: p.visits,
    "R6": lambda p: p.facts.get("medication", []),
}

#: The periodic rules, appended to the patient rules after the other care rules.
PERIODIC_RULES = (R2, R4, R6)
_BY_RULE = {r.rule: r for r in PERIODIC_RULES}
policies.PATIENT_RULES = (*policies.PATIENT_RULES, *PERIODIC_RULES)

#: Rules whose overdue cycles open something more (``on_due``).
OPENS_WHEN_DUE = frozenset({"R6"})


def on_due(obligation: Any, patient: Any, responsible: Responsible) -> list[Assignment]:
    """What falls due with an overdue cycle: R6's warning to the care team (the committee that
    works with the guardian) when the supply ran out. Nothing for a stale or other obligation."""
    if obligation.rule not in OPENS_WHEN_DUE:
        return []
    found = _BY_RULE["R6"].cycle_of(patient, obligation.id)
    if found is None:
        return []
    span, cycle = found
    owner = responsible(COMMITTEE)
    if owner is None:
        return []
    return [
        Assignment(
            id=obligation_id(patient.id, "R6", span.key, "care-team-warning", cycle),
            kind=ObligationKind.NOTICE,
            rule="R6",
            action="medication_run_out_warning",
            assignee=owner,
            episode_key=span.key,
            due_at=None,
            risk_level=patient.risk_level,
        )
    ]


# R16 (key patients' monthly contact) appends itself after these (last in the chain: any import order).
import domain.rules_focus  # noqa: E402,F401
