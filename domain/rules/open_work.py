"""The patient rules' obligations still open after a stretch of a patient's file, replayed.

When a move inside the region is accepted, the open work about the home moves with the patient
(docs/decisions/042). The rules do not keep which of their obligations are open (they complete
and cancel by deterministic ids, and an agency may complete one by its own word), so this
replays the patient rules over the file fact by fact, from the registration, exactly as the
policy process asked them, and keeps what they opened and did not close. It names each
obligation's agency *kind* (the rules are asked with a ``responsible`` that answers the kind
asked for), not its agency: the policy process reads the obligation itself before moving it,
so what was closed by hand, never opened (no agency on record, a restriction) or moved already
is left alone there. A replay costs the patient's history; it runs once per accepted move.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from domain.registry import AgencyKind
from domain.rules import PATIENT_RULES, decide
from domain.rules.engine import Assignment, Trigger
from domain.rules.settings import RuleSettings
from domain.rules.state import RuleState, entries_at


def _the_kind_asked(kind: AgencyKind) -> str:
    return str(kind)


def open_after(events: Iterable[Any], settings: RuleSettings) -> list[Assignment]:
    """The obligations and notices the patient rules opened over ``events`` (one patient's, in
    stream order from its registration) and did not complete or cancel, in the order opened;
    each ``assignee`` is the ``AgencyKind`` value the rule asked for."""
    state: RuleState | None = None
    open_now: dict[UUID, Assignment] = {}
    seen: set[UUID] = set()
    for event in events:
        v = event.originator_version
        if state is None:
            state = RuleState(event.mutate(None), PATIENT_RULES, settings)
        else:
            event.mutate(state.patient)
        state.fold(v, entries_at(state.patient, v))
        trigger = Trigger(
            patient_id=event.originator_id,
            message_id=getattr(event, "message_id", "registration"),
            position=0,
            recorded_at=event.timestamp,
            residence=state.patient.residence,
            topic=type(event).TOPIC,
            version=v,
        )
        decided = decide(trigger, state, _the_kind_asked, settings)
        for a in decided.opened:
            if a.id not in seen:  # an id is opened once: deciding it again opens nothing
                seen.add(a.id)
                open_now[a.id] = a
        for oid in [i for i, _ in decided.completed] + [i for i, _, _ in decided.cancelled]:
            open_now.pop(oid, None)
    return list(open_now.values())
