"""The policy process: follows the global log and records what the coordination rules decide.

For each patient fact it folds the fact into the patient's rule state (``RuleStates``: kept
between facts, rebuilt from the case record when evicted or out of turn), asks the rules of
``domain.rules`` as known at that log position, and records the obligations and notices they
open, with its tracked position, in one transaction in the case record. A restart resumes after
the last recorded position; a replay of the same fact decides the same deterministic obligation
ids, so nothing is opened twice.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Notification, Tracking

from core.beside_policies import decide_beside, record_risk_escalation
from core.case_record import CaseRecord
from core.concern_policy import CONCERN_TOPICS, decide_concern
from core.decisions import apply_decisions
from core.finding_policy import FINDING_RECORDED, decide_finding
from core.followers.concerns import Concerns
from core.followers.engine import AlreadyApplied, FailedAt, Follower
from core.followers.parking import MemoryParkingStore, ParkingStore
from core.handover_policy import HANDOVER_TOPICS, decide_handover
from core.police_notice_policy import POLICE_NOTICE_TOPICS, decide_police_notice
from core.registry import REGION_TZ, RegistryView
from core.reporting_duties import REPORT_SUBMITTED, decide_report
from core.restrictions import restricted_subjects
from core.rule_settings_view import RuleSettingsView
from core.suspected_case_policy import decide_suspected_case
from core.task_policy import TASK_ASSIGNED, decide_task
from domain.patient import Fact, Patient
from domain.patient_file import FileFact, ReportedByRegion
from domain.registry import AgencyKind
from domain.restriction import RESTRICTION_CHANGE_TOPICS, Restriction
from domain.rules import PATIENT_RULES, decide
from domain.rules.engine import Decisions, Trigger, is_imported
from domain.rules.r18_suspected_case import SUSPECTED_CASE_TOPICS
from domain.rules.settings import RuleSettings
from domain.rules.state import RuleState, entries_at

log = structlog.get_logger(__name__)


def _topics(base: type) -> set[str]:
    found, todo = set(), [base]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__dict__.get("TOPIC"):
            found.add(cls.TOPIC)
    return found


#: Every patient fact: any of them can open, complete or cancel something — but what another
#: region reports about a patient it manages: this region's rules open nothing from it (Q-5).
PATIENT_TOPICS = frozenset(_topics(Fact) | _topics(FileFact)) - {ReportedByRegion.TOPIC}


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
        fault: str = "",
    ) -> None:
        self.case_record = case_record
        self.registry = registry
        self.settings = settings or RuleSettings()  # used when there is no rule_settings view
        self.rule_settings = rule_settings  # the region's settings in force on the trigger's date, as recorded then
        self.fault_patient = (
            UUID(fault.removeprefix(FAULT_RULE_FAILS_FOR)) if fault.startswith(FAULT_RULE_FAILS_FOR) else None
        )
        self.states = RuleStates(case_record)
        self._restricted: set[UUID] | None = None
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
        if n.topic in RESTRICTION_CHANGE_TOPICS:
            self._note_restriction(n)
            return
        restricted = n.originator_id in self.restricted
        if n.topic in PATIENT_TOPICS:
            decided = self._decide(n, work, restricted)
        elif restricted:  # a restricted suspected case: the rules do nothing for it
            return
        elif n.topic in SUSPECTED_CASE_TOPICS:  # R18: the subject is a suspected case
            decided = decide_suspected_case(self, n)
        elif n.topic == TASK_ASSIGNED:  # a task the governance center assigned
            decided = decide_task(self, n)
        elif n.topic == FINDING_RECORDED:  # a reconciliation finding opens its action
            decided = decide_finding(self, n)
        elif n.topic in CONCERN_TOPICS:  # a person of concern listed or taken off
            decided = decide_concern(self, n)
        elif n.topic == REPORT_SUBMITTED:  # R21: the report completes its period's duty
            decided = decide_report(self, n)
        elif n.topic in HANDOVER_TOPICS:  # R8: answer a handover; escalations told
            decided = decide_handover(self, n)
        elif n.topic in POLICE_NOTICE_TOPICS:  # R7 across regions: notify, acknowledge, escalate
            decided = decide_police_notice(self, n)
        else:
            return
        if decided is not None:
            if restricted:  # open nothing; still close what its earlier facts close (a deregistration)
                decided = (closing_only(decided[0]), *decided[1:])
            work.deferred.append((n, *decided))

    @property
    def restricted(self) -> set[UUID]:
        """The patients and suspected cases restricted now: read once, then kept by the
        restriction facts this follower sees in the log."""
        if self._restricted is None:
            self._restricted = set(restricted_subjects(self.case_record))
        return self._restricted

    def _note_restriction(self, n: Notification) -> None:
        event: Any = self.case_record.mapper.to_domain_event(n)
        if n.topic == Restriction.Lifted.TOPIC:
            self.restricted.discard(event.subject_id)
        else:  # restricted, or an erasure approved (restricted until carried out, and after)
            self.restricted.add(event.subject_id)

    def finish(self, work: _UnitOfWork) -> None:
        """Apply the batch's decisions in trigger order, the obligations they name loaded in one query."""
        work.prefetch({i for _, decisions, _, _ in work.deferred for i in decisions.names()})
        for n, decisions, trigger, residence in work.deferred:
            try:
                apply_decisions(work, decisions, trigger, residence)
            except Exception as e:
                raise FailedAt(n, e) from e
            work.events += work.collect()  # in trigger order: a batch records what one-by-one would
        work.deferred.clear()

    def commit(self, work: _UnitOfWork, tracking_name: str, position: int, *, exclusive: bool = False) -> None:
        if exclusive and self.case_record.recorder.max_tracking_id(tracking_name):
            raise AlreadyApplied(tracking_name)
        self.case_record.events.put(work.events, tracking=Tracking(tracking_name, position))
        if work.events:  # one line per batch: a line per derived event cost a tenth of the follower's time
            log.info(
                "policies recorded",
                position=position,
                events=len(work.events),
                by_topic=dict(Counter(type(e).TOPIC for e in work.events)),
            )

    def _decide(
        self, notification: Notification, work: _UnitOfWork, restricted: bool = False
    ) -> tuple[Decisions, Trigger, str]:
        patient_id, version = notification.originator_id, notification.originator_version
        fact: Any = self.case_record.mapper.to_domain_event(notification)
        recorded_on = fact.timestamp.astimezone(REGION_TZ).date()
        settings = (
            self.settings
            if self.rule_settings is None
            else self.rule_settings.settings(recorded_on, as_of_position=notification.id)
        )
        state = self.states.fold(patient_id, version, fact, settings)
        patient: Patient = state.patient
        trigger = Trigger(
            patient_id=patient_id,
            message_id=fact.message_id,
            position=notification.id,
            recorded_at=fact.timestamp,
            residence=patient.residence,
            topic=notification.topic,
            version=version,
        )

        def responsible(kind: AgencyKind) -> str | None:
            return self.registry.responsible(patient.residence, kind, recorded_on, as_of_position=notification.id)

        decisions = decide(trigger, state, responsible, settings)
        # as decide() holds back; and nothing beside the rules for a restricted patient
        if not is_imported(trigger.message_id) and not state.awaiting_go_live and not restricted:
            decisions.extend(decide_beside(self, trigger, patient, responsible, settings, recorded_on))
            record_risk_escalation(work, trigger, patient, responsible)
        # after an accepted move, what the rules complete or cancel follows the ids moved with it
        decisions.moves = tuple(str(e["move_id"]) for e in patient.facts.get("residence", ()))
        return decisions, trigger, patient.residence


def closing_only(decisions: Decisions) -> Decisions:
    """What the rules decided, without what would open work (for a restricted patient: the
    restriction stops processing, yet work its earlier facts end must not outlive it)."""
    return Decisions(
        completed=decisions.completed,
        cancelled=decisions.cancelled,
        lost=[entry for entry in decisions.lost if entry[0] != "derived"],
        moves=decisions.moves,
    )


class RuleStates:
    """Each patient's rule state between facts, least recently used evicted.

    A fact at version ``v`` is folded into the state kept at ``v - 1``; facts between that the
    process did not see are read from the case record and folded first; a state that is missing,
    ahead (a batch decided again, a retry) or built for another lost-visit threshold is rebuilt
    from the patient's file as of ``v - 1``. The state's patient is its own copy, changed only
    here: the aggregate cache's copies are never touched.
    """

    def __init__(self, case_record: CaseRecord, maxsize: int = 2000) -> None:
        self.case_record = case_record
        self.maxsize = maxsize
        self._states: OrderedDict[UUID, RuleState] = OrderedDict()

    def fold(self, patient_id: UUID, version: int, fact: Any, settings: RuleSettings) -> RuleState:
        """The patient's rule state with the fact at ``version`` folded in."""
        state = self._states.pop(patient_id, None)
        if state is not None and (state.version >= version or state.lost_after != settings.r5_misses_that_mean_lost):
            state = None
        if state is not None and state.version < version - 1:
            for event in self.case_record.events.get(patient_id, gt=state.version, lte=version - 1):
                self._fold(state, event)
        if state is None:
            state = self._rebuild(patient_id, version, fact, settings)
        else:
            self._fold(state, fact)
        self._states[patient_id] = state
        while len(self._states) > self.maxsize:
            self._states.popitem(last=False)
        return state

    def forget(self) -> None:
        """Drop every state (they are rebuilt from the case record when needed)."""
        self._states.clear()

    def _rebuild(self, patient_id: UUID, version: int, fact: Any, settings: RuleSettings) -> RuleState:
        if version == 1:  # the registration: the file begins with this fact
            state = RuleState(fact.mutate(None), PATIENT_RULES, settings)
            state.fold(1, entries_at(state.patient, 1))
            return state
        patient = self.case_record.repository.get(patient_id, version=version - 1)
        state = RuleState.of(patient, PATIENT_RULES, settings)
        self._fold(state, fact)
        return state

    @staticmethod
    def _fold(state: RuleState, event: Any) -> None:
        event.mutate(state.patient)
        state.fold(event.originator_version, entries_at(state.patient, event.originator_version))


class _UnitOfWork:
    """The aggregates one batch touches: loaded once, changed in memory, saved together."""

    def __init__(self, case_record: CaseRecord) -> None:
        self.case_record = case_record
        self.touched: dict[UUID, Any] = {}
        self.events: list[Any] = []  # decided so far, in trigger order
        #: (event, decisions, trigger, residence) decided by ``apply``, applied by ``finish``
        self.deferred: list[tuple[Notification, Decisions, Trigger, str]] = []
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

    def prefetch(self, ids: Any) -> None:
        """Load in one query those of these aggregates that exist; the others are known missing."""
        unknown = {i for i in ids if i not in self.touched and i not in self.missing}
        if unknown:
            loaded = self.case_record.load_many(unknown)
            self.touched.update(loaded)
            self.missing |= unknown - loaded.keys()

    def add(self, aggregate: Any) -> None:
        self.missing.discard(aggregate.id)
        self.touched[aggregate.id] = aggregate
        self._touch(aggregate.id)

    def collect(self) -> list[Any]:
        """The events decided since the last call, in the order they were decided."""
        recent, self._recent = self._recent, []
        return [e for i in recent for e in self.touched[i].collect_events()]
