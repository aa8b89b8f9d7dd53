"""R15 — an obligation passes its deadline unacknowledged or undone: it is marked overdue and
escalated to the governance center; the lateness stays on the record.

Seed: Qingyang Q-8 (问责: lateness is accountable); escalated to: the governance center covering
the obligation's residence. Notices are read, not done: R15 never escalates them.

The scheduler (``core.scheduler``) asks the work queue for open obligations past their
deadline, and records ``ObligationOverdue`` once per obligation (``Obligation.mark_overdue``:
an obligation, open, not yet overdue, past its deadline) together with what ``falls_due``
opens then, in one transaction: a restart or a second scheduler never records either twice.
"""

from __future__ import annotations

from typing import Any

from domain.rules.engine import Assignment, History, Responsible
from domain.rules.r06_medication_supply import on_due as r6_on_due
from domain.rules.r07_police_notice import ACKNOWLEDGE
from domain.rules.r07_police_notice import on_due as r7_on_due
from domain.rules.r08_move_in_region import ANSWER
from domain.rules.r08_move_in_region import on_due as r8_on_due

#: What else opens when a rule's obligation falls due, by rule and action (``None``: any action;
#: R6: the care team's run-out warning; R7 and R8 inside the region: the origin is told).
ON_DUE: dict[tuple[str, str | None], Any] = {
    ("R6", None): r6_on_due,
    ("R7", ACKNOWLEDGE): r7_on_due,
    ("R8", ANSWER): r8_on_due,  # a handover's R8 obligations (subject: the handover) open nothing more
}


def on_due_of(overdue: Any) -> Any:
    """What decides what opens with ``overdue`` (None: nothing)."""
    return ON_DUE.get((overdue.rule, None)) or ON_DUE.get((overdue.rule, overdue.action))


def opens_when_due(overdue: Any) -> bool:
    """Whether ``overdue`` may open something more as it falls due (read nothing else if not)."""
    return on_due_of(overdue) is not None


def falls_due(overdue: Any, h: History, responsible: Responsible) -> list[Assignment]:
    """What opens with ``overdue`` as it is marked overdue (nothing for most obligations, and
    nothing for a cycle that is no longer the current one: the facts are read as they are now)."""
    found = on_due_of(overdue)
    return [] if found is None else found(overdue, h, responsible)
