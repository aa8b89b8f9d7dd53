"""The scheduler of time-driven facts: R15 marks obligations overdue and escalates them.

Restart-safe and safe to run twice: its state is the store. It asks the work-queue view for
open obligations past their deadline (an index only), re-checks each one against the case
record, and records ``ObligationOverdue`` (with the governance center it escalates to) with
optimistic concurrency: of two schedulers, one records and the other finds it done. After
downtime the first run catches up on everything that fell due meanwhile.
"""

from __future__ import annotations

import time
from datetime import datetime

import structlog
from eventsourcing.persistence import IntegrityError

from core.case_record import CaseRecord, Clock
from core.due_checks import falls_due
from core.ports import DueObligations
from core.registry import REGION_TZ, RegistryView
from core.reporting_duties import ReportingDuties
from core.restrictions import is_restricted
from domain.obligation import Obligation
from domain.registry import AgencyKind

log = structlog.get_logger(__name__)


class Scheduler:
    """R15: deadlines that passed with the obligation still open."""

    def __init__(
        self,
        case_record: CaseRecord,
        registry: RegistryView,
        work_queue: DueObligations,  # the work-queue view, wired by the composition root
        clock: Clock,
        every_seconds: float = 1.0,
        duties: ReportingDuties | None = None,
    ) -> None:
        self.case_record = case_record
        self.registry = registry
        self.work_queue = work_queue
        self.clock = clock
        self.every_seconds = every_seconds
        self.duties = duties  # R21: reporting duties opened as their periods begin
        self._last_run = 0.0

    def run_once(self, force: bool = False) -> int:
        """Record what fell due since the last run (and open the reporting duties whose periods
        began, R21); returns how many facts were recorded."""
        if not force and time.monotonic() - self._last_run < self.every_seconds:
            return 0
        self._last_run = time.monotonic()
        opened = self.duties.run_once(force) if self.duties is not None else []
        now = self.clock()
        late = sum(self._mark(o.id, now) for o in opened if o.due_at <= now)  # not in the view yet
        return len(opened) + late + sum(self._mark(row.obligation_id, now) for row in self.work_queue.open_due(now))

    def _mark(self, obligation_id, now: datetime) -> int:
        for _ in range(5):
            obligation: Obligation = self.case_record.repository.get(obligation_id)
            if is_restricted(self.case_record, obligation.patient_id):
                return 0  # R15 does nothing for a restricted patient (it is overdue again once lifted)
            governance = self.registry.responsible(
                obligation.residence, AgencyKind.GOVERNANCE_CENTER, now.astimezone(REGION_TZ).date()
            )
            if not obligation.mark_overdue(now, escalated_to=governance):
                return 0
            due = falls_due(self.case_record, self.registry, obligation, now)  # R6: the care team's warning
            try:
                self.case_record.save(obligation, *due)
            except IntegrityError:
                continue  # another scheduler, or the owner acting on it: look again
            log.info("obligation overdue", rule="R15", obligation_id=str(obligation_id), escalated_to=governance)
            return 1
        return 0
