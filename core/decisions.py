"""Decisions into the case record: the obligations and lost episodes the rules decided.

Shared by the patient rules and R18 (a suspected case): each decision is applied to the
batch's unit of work (aggregates loaded once, changed in memory, saved together), so a batch
records exactly what handling its facts one by one would.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.lost import LostEpisode
from domain.obligation import Obligation, ObligationKind
from domain.rules.engine import Decisions, Moved, Trigger, moved_id, to_obligation


def apply_decisions(work: Any, decisions: Decisions, trigger: Trigger, residence: str) -> None:
    """Open, complete and cancel what the rules decided for ``trigger`` ("now" is its recorded time)."""
    now = trigger.recorded_at
    for a in decisions.opened:
        if work.get(a.id) is None:
            work.add(to_obligation(a, subject=trigger.patient_id, residence=residence, trigger=trigger, now=now))
    for obligation_id, fulfilled_by in decisions.completed:
        obligation = work.get(end_of_chain(work, obligation_id, decisions.moves))
        if obligation is not None:
            obligation.complete(now, fulfilled_by=fulfilled_by)
    for obligation_id, reason, because_of in decisions.cancelled:
        obligation = work.get(end_of_chain(work, obligation_id, decisions.moves))
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
    for moved in decisions.moved:
        _move(work, moved, trigger, decisions.moves)


def end_of_chain(work: Any, obligation_id: UUID, moves: tuple[str, ...]) -> UUID:
    """The obligation that ``obligation_id`` became: reopened for another agency at each accepted
    move it was open at (``moved_id`` links, found in the log; none for a patient who never moved)."""
    for move_id in moves:
        reopened = moved_id(obligation_id, move_id)
        if work.get(reopened) is not None:
            obligation_id = reopened
    return obligation_id


def _move(work: Any, moved: Moved, trigger: Trigger, moves: tuple[str, ...]) -> None:
    """Cancel the end of ``moved.old``'s chain and reopen it for the new residence's agency (the
    same deadline), unless it is closed or that agency owes it already; a closed one is reopened
    only when the rule gives a new deadline (R1's management, per station)."""
    earlier = moves[: moves.index(moved.move_id)] if moved.move_id in moves else moves
    old: Obligation | None = work.get(end_of_chain(work, moved.old, earlier))
    if old is None or old.kind != ObligationKind.OBLIGATION or old.assignee == moved.assignee:
        return
    now = trigger.recorded_at
    if old.is_open:
        due_at, natural_due_at, risk_level = old.due_at, old.natural_due_at, old.risk_level
        old.cancel(now, reason=f"moved: now {moved.assignee}'s", because_of=trigger.message_id)
    elif moved.due_at is not None:
        due_at, natural_due_at, risk_level = moved.due_at, None, moved.risk_level
    else:
        return
    reopened = moved_id(old.id, moved.move_id)
    if work.get(reopened) is not None:
        return
    work.add(
        Obligation.assign(
            id=reopened,
            kind=ObligationKind.OBLIGATION,
            rule=old.rule,
            action=moved.action,
            patient_id=old.patient_id,
            episode_key=old.episode_key,
            assignee=moved.assignee,
            residence=moved.residence,
            due_at=due_at,
            trigger_message_id=trigger.message_id,
            trigger_position=trigger.position,
            risk_level=risk_level,
            now=now,
            natural_due_at=natural_due_at,
        )
    )
