"""Episodes: when a patient entered and left a condition, in *recorded* order.

A rule fires when a patient enters a condition (DESIGN.md "Time, order and episodes"). Whether
the condition holds is decided by occurred time over the facts known so far; the episode's key
is the message id of the first recorded fact after which it held. Walking the facts in the
order they were recorded (their stream version ``v``) and asking "does it hold now?" after each
gives every episode with a key that later, earlier-dated facts cannot move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.values import HIGH_RISK_LEVEL

Entry = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Episode:
    """A span in recorded order during which a condition held."""

    key: str  # message id of the fact that opened it
    opened_v: int
    closed_by: str | None = None  # message id of the fact that ended it (None: still open)


def _order(e: Entry) -> tuple[datetime, str]:
    return e["at"], e["key"]


def episodes(facts: Iterable[Entry], holds: Callable[[list[Entry]], bool]) -> list[Episode]:
    """Every episode of ``holds`` over the facts, walked in recorded order."""
    known: list[Entry] = []
    found: list[Episode] = []
    current: Episode | None = None
    for fact in sorted(facts, key=lambda e: e.get("v", 0)):
        known.append(fact)
        now = holds(known)
        if now and current is None:
            current = Episode(key=fact["key"], opened_v=fact.get("v", 0))
        elif not now and current is not None:
            found.append(Episode(current.key, current.opened_v, closed_by=fact["key"]))
            current = None
    if current is not None:
        found.append(current)
    return found


def open_episode(found: list[Episode]) -> Episode | None:
    """The episode still open, if any."""
    return found[-1] if found and found[-1].closed_by is None else None


# -- the conditions -------------------------------------------------------------------------------


def high_risk(assessments: list[Entry]) -> bool:
    """The latest assessment by occurred time is level 3 or more."""
    latest = max(assessments, key=_order, default=None)
    return latest is not None and latest["level"] >= HIGH_RISK_LEVEL


def consecutive_misses(visits: list[Entry], missed: list[Entry]) -> int:
    """Missed visits scheduled after the day of the latest visit that took place."""
    last = max(visits, key=_order, default=None)
    last_day: date | None = None if last is None else last["at"].date()
    return sum(1 for m in missed if last_day is None or m["scheduled_on"] > last_day)


def lost_by_misses(threshold: int) -> Callable[[list[Entry]], bool]:
    """R5's condition over visits and misses (entries carry "scheduled_on" when missed)."""

    def holds(known: list[Entry]) -> bool:
        visits = [e for e in known if "scheduled_on" not in e]
        missed = [e for e in known if "scheduled_on" in e]
        return consecutive_misses(visits, missed) >= threshold

    return holds


def declared_unknown(whereabouts: list[Entry]) -> bool:
    """An agency's latest declaration says whereabouts unknown."""
    latest = max(whereabouts, key=_order, default=None)
    return latest is not None and not latest["known"]
