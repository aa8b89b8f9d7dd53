"""R5 — a patient lost to follow-up (失访) is located by the police.

Seed: Qingyang Q-3 and Jiaobei 派出所 2 (find lost patients); owner: the police station covering
the residence (none on record: the governance center, ``assign_police_station``); deadline:
``RuleSettings.r5_locate`` (3 days); threshold: ``RuleSettings.r5_misses_that_mean_lost``.

Two episodes, each opening the same obligations (the police → ``locate_patient``, the
governance center → ``lost_to_follow_up_notice``):

- *derived*: the missed visits scheduled after the day of the latest visit that took place
  reach the threshold. The lost status is recorded as a fact of its own (``LostEpisode``:
  derived; withdrawn when a late report shows the misses were not consecutive, which cancels
  the search; ended when a visit after the misses took place, which completes it);
- *declared*: an agency's latest declaration says the whereabouts are unknown; a declaration
  that they are known again completes the search.

Both are cancelled when the patient leaves the register.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from datetime import date

from domain.obligation import ObligationKind, obligation_id
from domain.registry import AgencyKind
from domain.rules.engine import Assignment, Condition, Decisions, History, Responsible, Span, Trigger
from domain.rules.entries import REREGISTRATION, Entry, Known, latest
from domain.rules.settings import RuleSettings

RULE = "R5"
WHEREABOUTS = "smd.WhereaboutsDeclared"
DEREGISTERED = "smd.PatientDeregistered"
REREGISTERED = "smd.PatientReregistered"


class _Misses:
    """The missed visits' scheduled dates, sorted, kept beside the known entries."""

    def __init__(self) -> None:
        self.seen = 0
        self.days: list[date] = []

    def catch_up(self, known: Known) -> _Misses:
        found = known.by_kind.get("missed", [])
        for e in found[self.seen :]:
            insort(self.days, e["scheduled_on"])
        self.seen = len(found)
        return self


def consecutive_misses(known: Known) -> int:
    """Missed visits scheduled after the day of the latest visit that took place."""
    misses: _Misses = known.__dict__.setdefault("_misses", _Misses()).catch_up(known)
    last = latest(known, "visit")
    if last is None:
        return len(misses.days)
    return len(misses.days) - bisect_right(misses.days, last["at"].date())


def lost_by_misses(threshold: int) -> Condition:
    """The derived episode's condition for a threshold."""
    return Condition(
        f"R5-misses-{threshold}",
        ("visit", "missed", REREGISTRATION),
        lambda known: consecutive_misses(known) >= threshold,
    )


def declared_unknown(known: Known) -> bool:
    """An agency's latest declaration says whereabouts unknown."""
    w = latest(known, "whereabouts")
    return w is not None and not w["known"]


DECLARED = Condition("R5-declared", ("whereabouts", REREGISTRATION), declared_unknown)


def _assignments(t: Trigger, key: str, responsible: Responsible, settings: RuleSettings) -> list[Assignment]:
    police, governance = responsible(AgencyKind.POLICE_STATION), responsible(AgencyKind.GOVERNANCE_CENTER)
    out = []
    owner = police or governance
    if owner is not None:
        action = "locate_patient" if police else "assign_police_station"
        oid = obligation_id(t.patient_id, RULE, key, "police")
        out.append(
            Assignment(
                oid, ObligationKind.OBLIGATION, RULE, action, owner, key, t.recorded_at + settings.r5_locate, None
            )
        )
    if governance is not None:
        oid = obligation_id(t.patient_id, RULE, key, "governance-notice")
        out.append(
            Assignment(oid, ObligationKind.NOTICE, RULE, "lost_to_follow_up_notice", governance, key, None, None)
        )
    return out


def _open(spans: list[Span]) -> Span | None:
    return spans[-1] if spans and spans[-1].is_open else None


class LostToFollowUp:
    """R5 over both episodes (module docstring)."""

    rule = RULE
    owner = AgencyKind.POLICE_STATION

    def conditions(self, settings: RuleSettings) -> tuple[Condition, ...]:
        return (lost_by_misses(settings.r5_misses_that_mean_lost), DECLARED)

    def __call__(self, t: Trigger, h: History, responsible: Responsible, settings: RuleSettings) -> Decisions:
        d = Decisions()
        if t.topic == REREGISTERED:  # the file begins again: what the deregistration cancelled stays so
            return d
        pid, patient = t.patient_id, h.patient
        misses = lost_by_misses(settings.r5_misses_that_mean_lost)
        after, before = _open(h.spans(misses, t)), h.open_before(misses, t)
        if after is not None and (before is None or before.key != after.key):
            d.lost.append(("derived", obligation_id(pid, RULE, after.key, "lost"), after.key))
            d.opened += _assignments(t, after.key, responsible, settings)
        if before is not None and after is None:
            locate = obligation_id(pid, RULE, before.key, "police")
            last_miss = h.last_miss_before(t.version)
            visit: Entry | None = next((v for v in reversed(patient.visits) if v["key"] == t.message_id), None)
            if visit is not None and last_miss is not None and visit["at"].date() >= last_miss:
                d.lost.append(("ended", obligation_id(pid, RULE, before.key, "lost"), t.message_id))
                d.completed.append((locate, t.message_id))
            else:
                d.lost.append(("withdrawn", obligation_id(pid, RULE, before.key, "lost"), t.message_id))
                reason = "a late report shows the missed visits were not consecutive"
                d.cancelled.append((locate, reason, t.message_id))
        w_after, w_before = _open(h.spans(DECLARED, t)), h.open_before(DECLARED, t)
        if w_after is not None and (w_before is None or w_before.key != w_after.key):
            d.opened += _assignments(t, w_after.key, responsible, settings)
        if w_before is not None and w_after is None:
            d.completed.append((obligation_id(pid, RULE, w_before.key, "police"), t.message_id))
        if t.topic == WHEREABOUTS and after is not None and not patient.declared_whereabouts_unknown:
            d.completed.append((obligation_id(pid, RULE, after.key, "police"), t.message_id))
        if t.topic == DEREGISTERED:
            for ep in (after, w_after):
                if ep is not None:
                    reason = f"the patient left the register ({patient.deregistration_reason})"
                    d.cancelled.append((obligation_id(pid, RULE, ep.key, "police"), reason, t.message_id))
        return d


R5 = LostToFollowUp()
