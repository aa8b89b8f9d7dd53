"""Decisions into the case record: the obligations and lost episodes the rules decided.

Shared by the patient rules and R18 (a suspected case): each decision is applied to the
batch's unit of work (aggregates loaded once, changed in memory, saved together), so a batch
records exactly what handling its facts one by one would.
"""

from __future__ import annotations

from typing import Any

from domain.lost import LostEpisode
from domain.rules.engine import Decisions, Trigger, to_obligation


def apply_decisions(work: Any, decisions: Decisions, trigger: Trigger, residence: str) -> None:
    """Open, complete and cancel what the rules decided for ``trigger`` ("now" is its recorded time)."""
    now = trigger.recorded_at
    for a in decisions.opened:
        if work.get(a.id) is None:
            work.add(to_obligation(a, subject=trigger.patient_id, residence=residence, trigger=trigger, now=now))
    for obligation_id, fulfilled_by in decisions.completed:
        obligation = work.get(obligation_id)
        if obligation is not None:
            obligation.complete(now, fulfilled_by=fulfilled_by)
    for obligation_id, reason, because_of in decisions.cancelled:
        obligation = work.get(obligation_id)
        if obligation is not None:
            obligation.cancel(now, reason=reason, because_of=because_of)
    for what, episode_id, key in decisions.lost:
        episode = work.get(episode_id)
        if what == "derived" and episode is None:
            work.add(LostEpisode.derive(episode_id, trigger.patient_id, key, now))
        elif what == "withdrawn" and episode is not None:
            episode.withdraw(key, now)
        elif what == "ended" and episode is not None:
            episode.end(key, now)
