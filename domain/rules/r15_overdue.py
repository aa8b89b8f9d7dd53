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

#: What else opens when a rule's cycle falls due, by rule (R6: the care team's run-out warning).
ON_DUE = {"R6": r6_on_due}

#: The rules whose overdue cycles open something more.
OPENS_WHEN_DUE = frozenset(ON_DUE)


def falls_due(overdue: Any, h: History, responsible: Responsible) -> list[Assignment]:
    """What opens with ``overdue`` as it is marked overdue (nothing for most obligations, and
    nothing for a cycle that is no longer the current one: the facts are read as they are now)."""
    found = ON_DUE.get(overdue.rule)
    return [] if found is None else found(overdue, h, responsible)
