"""The policy process: follows the global log and records what the coordination rules decide.

For each patient fact it loads the patient just before and just after the fact (its state by
occurred time, as known at that log position), asks the pure policies of ``domain.policies``,
and records the obligations and notices they open, with its tracked position, in one
transaction in the case record. A restart resumes after the last recorded position; a replay
of the same fact decides the same deterministic obligation ids, so nothing is opened twice.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Notification, Tracking

from core.case_record import CaseRecord
from core.followers.concerns import Concerns
from core.followers.engine import AlreadyApplied, Follower
from core.followers.parking import MemoryParkingStore, ParkingStore
from core.registry import REGION_TZ, RegistryView
from core.rule_settings_view import RuleSettingsView
from core.suspected_case_policy import SUSPECTED_CASE_TOPICS, decide_suspected_case
from domain.lost import LostEpisode
from domain.obligation import Obligation
from domain.patient import Fact, Patient
from domain.patient_file import FileFact
from domain.policies import RuleSettings, Trigger, decide
from domain.registry import AgencyKind
from ops.logging import get_logger

log = get_logger(__name__)


def _topics(base: type) -> set[str]:
    found, todo = set(), [base]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__dict__.get("TOPIC"):
            found.add(cls.TOPIC)
    return found


#: Every patient fact: any of them can open, complete or cancel something.
PATIENT_TOPICS = frozenset(_topics(Fact) | _topics(FileFact))


#: Test and demonstration only: ``SMD_FAULT=rule-fails-for=<patient id>`` makes the rules fail on
#: every fact of that patient, to show parking and retry on a running service (never in production).
FAULT_RULE_FAILS_FOR = "rule-fails-for="


class InjectedRuleFault(Exception):
    """The fault SMD_FAULT injected."""

    def __init__(self, patient_id: UUID) -> None:
        super().__init__(f"injected rule fault for patient {patient_id} (SMD_FAULT)")


class PolicyProcess:
    """The rules as a follower of the case record's notification log (on the follower engine).

    Parks per patient: an event a rule cannot handle is parked and the patient's later events
    wait behind it while every other patient goes on; a registry, calendar or rule-settings fact
    it cannot handle stops it (docs/decisions/013).
    """

    name = "policies"
    #: every topic: rules read patient and suspected-case facts, and the later events about a
    #: parked patient (its obligations' acknowledgements too) must be seen to be held
    topics = None

    def __init__(
        self,
        case_record: CaseRecord,
        registry: RegistryView,
        settings: RuleSettings | None = None,
        rule_settings: RuleSettingsView | None = None,
        parking: ParkingStore | None = None,
        concerns: Concerns | None = None,
    ) -> None:
        self.case_record = case_record
        self.registry = registry
        self.settings = settings or RuleSettings()  # used when there is no rule_settings view
        self.rule_settings = rule_settings  # the region's settings in force on the trigger's date, as recorded then
        fault = os.environ.get("SMD_FAULT", "")
        self.fault_patient = (
            UUID(fault.removeprefix(FAULT_RULE_FAILS_FOR)) if fault.startswith(FAULT_RULE_FAILS_FOR) else None
        )
        self.follower = Follower(self.name, case_record, self, parking or MemoryParkingStore(), concerns, batch=200)

    @property
    def position(self) -> int:
        """The last log position this process has fully handled (or parked, or held)."""
        return self.follower.position

    def run_once(self, limit: int = 200) -> int:
        """Handle the next batch of notifications; returns how many positions it moved (0: caught up)."""
        return self.follower.run_once(limit)

    # -- the follower engine's handler -----------------------------------------------------------

    def position_of(self, tracking_name: str) -> int:
        return self.case_record.recorder.max_tracking_id(tracking_name) or 0

    def begin(self) -> _UnitOfWork:
        return _UnitOfWork(self.case_record)

    def apply(self, work: _UnitOfWork, n: Notification) -> None:
        if self.fault_patient is not None and n.originator_id == self.fault_patient and n.topic in PATIENT_TOPICS:
            raise InjectedRuleFault(n.originator_id)  # test and demonstration only (SMD_FAULT)
        if n.topic in PATIENT_TOPICS:
            self._decide(n, work)
        elif n.topic in SUSPECTED_CASE_TOPICS:  # R18: the subject is a suspected case
            decide_suspected_case(self, n, work)
        else:
            return
        work.events += work.collect()  # in trigger order: a batch records what one-by-one would

    def commit(self, work: _UnitOfWork, tracking_name: str, position: int, *, exclusive: bool = False) -> None:
        if exclusive and self.case_record.recorder.max_tracking_id(tracking_name):
            raise AlreadyApplied(tracking_name)
        self.case_record.events.put(work.events, tracking=Tracking(tracking_name, position))
        for e in work.events:
            log.info(
                "policy recorded",
                topic=type(e).TOPIC,
                aggregate_id=str(e.originator_id),
                version=e.originator_version,
            )

    def _decide(self, notification: Notification, work: _UnitOfWork) -> None:
        patient_id, version = notification.originator_id, notification.originator_version
        fact: Any = self.case_record.mapper.to_domain_event(notification)
        patient: Patient = self.case_record.repository.get(patient_id)
        if patient.version != version:  # behind the live stream (catch-up, replay): as of then
            patient = self.case_record.repository.get(patient_id, version=version)
        trigger = Trigger(
            patient_id=patient_id,
            message_id=fact.message_id,
            position=notification.id,
            recorded_at=fact.timestamp,
            residence=patient.residence,
            topic=notification.topic,
            version=version,
        )
        on = trigger.recorded_at.astimezone(REGION_TZ).date()

        def responsible(kind: AgencyKind) -> str | None:
            return self.registry.responsible(patient.residence, kind, on, as_of_position=notification.id)

        settings = (
            self.settings
            if self.rule_settings is None
            else self.rule_settings.settings(on, as_of_position=notification.id)
        )
        decisions = decide(trigger, patient, responsible, settings)
        now = trigger.recorded_at  # "now" for a policy is the trigger's recorded time
        for a in decisions.opened:
            if work.get(a.id) is None:
                work.add(
                    Obligation.assign(
                        id=a.id,
                        kind=a.kind,
                        rule=a.rule,
                        action=a.action,
                        patient_id=patient_id,
                        episode_key=a.episode_key,
                        assignee=a.assignee,
                        residence=patient.residence,
                        due_at=a.due_at,
                        trigger_message_id=trigger.message_id,
                        trigger_position=trigger.position,
                        risk_level=a.risk_level,
                        now=now,
                    )
                )
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
                work.add(LostEpisode.derive(episode_id, patient_id, key, now))
            elif what == "withdrawn" and episode is not None:
                episode.withdraw(key, now)
            elif what == "ended" and episode is not None:
                episode.end(key, now)


class _UnitOfWork:
    """The aggregates one batch touches: loaded once, changed in memory, saved together."""

    def __init__(self, case_record: CaseRecord) -> None:
        self.case_record = case_record
        self.touched: dict[UUID, Any] = {}
        self.events: list[Any] = []  # decided so far, in trigger order
        self.missing: set[UUID] = set()
        self._recent: list[UUID] = []  # touched since the last collect, in order

    def _touch(self, aggregate_id: UUID) -> None:
        if aggregate_id not in self._recent:
            self._recent.append(aggregate_id)

    def get(self, aggregate_id: UUID) -> Any:
        if aggregate_id in self.touched:
            self._touch(aggregate_id)
            return self.touched[aggregate_id]
        if aggregate_id in self.missing:
            return None
        try:
            aggregate = self.case_record.repository.get(aggregate_id)
        except AggregateNotFoundError:
            self.missing.add(aggregate_id)
            return None
        self.touched[aggregate_id] = aggregate
        self._touch(aggregate_id)
        return aggregate

    def add(self, aggregate: Any) -> None:
        self.missing.discard(aggregate.id)
        self.touched[aggregate.id] = aggregate
        self._touch(aggregate.id)

    def collect(self) -> list[Any]:
        """The events decided since the last call, in the order they were decided."""
        recent, self._recent = self._recent, []
        return [e for i in recent for e in self.touched[i].collect_events()]
