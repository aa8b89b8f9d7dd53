"""The policy process: follows the global log and records what the coordination rules decide.

For each patient fact it loads the patient just before and just after the fact (its state by
occurred time, as known at that log position), asks the pure policies of ``domain.policies``,
and records the obligations and notices they open, with its tracked position, in one
transaction in the case record. A restart resumes after the last recorded position; a replay
of the same fact decides the same deterministic obligation ids, so nothing is opened twice.
"""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from core.case_record import CaseRecord
from core.registry import REGION_TZ, RegistryView
from domain.obligation import Obligation
from domain.patient import Patient
from domain.policies import RuleSettings, Trigger, entered_high_risk, r1_high_risk_management
from domain.registry import AgencyKind
from ops.logging import get_logger

log = get_logger(__name__)

#: Facts that can change a patient's risk level (R1's triggers).
RISK_TOPICS = frozenset({"smd.VisitRecorded", "smd.RiskAssessed"})


class PolicyProcess:
    """Follows the case record's notification log with a tracked position."""

    name = "policies"

    def __init__(self, case_record: CaseRecord, registry: RegistryView, settings: RuleSettings | None = None) -> None:
        self.case_record = case_record
        self.registry = registry
        self.settings = settings or RuleSettings()
        self._lock = threading.Lock()  # the background runner and read-your-writes waiters

    @property
    def position(self) -> int:
        """The last log position this process has fully handled."""
        return self.case_record.recorder.max_tracking_id(self.name) or 0

    def run_once(self, limit: int = 200) -> int:
        """Handle the next batch of notifications; returns how many were read (0: caught up)."""
        with self._lock:
            return self._run_once(limit)

    def _run_once(self, limit: int) -> int:
        recorder = self.case_record.recorder
        notifications = recorder.select_notifications(self.position + 1, limit)
        if not notifications:
            return 0
        opened = [o for n in notifications if n.topic in RISK_TOPICS for o in self._decide(n)]
        self._record(opened, notifications[-1].id)
        return len(notifications)

    def _record(self, opened: list[Obligation], position: int) -> None:
        tracking = Tracking(self.name, position)
        events = [e for o in opened for e in o.collect_events()]
        try:
            self.case_record.events.put(events, tracking=tracking)
        except IntegrityError:
            # Another process already recorded this batch (its tracking moved on), or some of
            # these obligations exist already: record only what is missing, or nothing.
            if self.position >= position:
                return
            missing = [e for e in events if not self._exists(e.originator_id)]
            self.case_record.events.put(missing, tracking=tracking)
        for o in opened:
            log.info("obligation assigned", rule=o.rule, kind=o.kind, obligation_id=str(o.id),
                     assignee=o.assignee, trigger_position=o.trigger_position)

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.case_record.recorder.select_events(aggregate_id, limit=1))

    def _decide(self, notification: Notification) -> list[Obligation]:
        patient_id, version = notification.originator_id, notification.originator_version
        fact: Any = self.case_record.mapper.to_domain_event(notification)
        after: Patient = self.case_record.repository.get(patient_id)
        if after.version != version:  # behind the live stream (catch-up, replay): as of then
            after = self.case_record.repository.get(patient_id, version=version)
        level_before = after.risk_level_before(fact.message_id)
        trigger = Trigger(
            patient_id=patient_id,
            message_id=fact.message_id,
            position=notification.id,
            recorded_at=fact.timestamp,
            residence=after.residence,
        )
        on = trigger.recorded_at.astimezone(REGION_TZ).date()

        def responsible(kind: AgencyKind) -> str | None:
            return self.registry.responsible(after.residence, kind, on, as_of_position=notification.id)

        decided = r1_high_risk_management(
            trigger, level_before, after.risk_level, responsible, self.settings
        )
        if not decided and entered_high_risk(level_before, after.risk_level):
            log.error("no agency to notify", rule="R1", patient_id=str(patient_id), residence=after.residence)
        return [
            Obligation.assign(
                id=a.id, kind=a.kind, rule=a.rule, action=a.action, patient_id=patient_id,
                episode_key=a.episode_key, assignee=a.assignee, residence=after.residence, due_at=a.due_at,
                trigger_message_id=trigger.message_id, trigger_position=trigger.position,
                risk_level=a.risk_level, now=trigger.recorded_at,
            )
            for a in decided
        ]

