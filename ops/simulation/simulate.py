"""A simulated year: a generated township's messages through the real intake, rules and scheduler.

The simulated clock is the service's clock: each message is recorded at its delivery instant
(its ``recorded_at``), and the R15 scheduler runs at fixed instants (every hour by default),
after the rules and the work queue have caught up, exactly as the background followers would.
Every message goes through ``core.intake.accept``, the path HTTP and NATS share: duplicates are
recognised by their envelope id, invalid messages are refused with their reason. A fact whose
patient is not registered yet waits (core.waiting) and is recorded when the registration arrives;
the waiting sweep runs with the scheduler, on the simulated clock, and after the last run once
more a window later, so what never finds its patient is refused with ``reference-not-found``.

``replay_year`` is the audit replay: the agencies' facts copied into a fresh store in their
original order, the rules following them, and the scheduler run at its original instants;
what the rules and the scheduler record must come out identical.
"""

from __future__ import annotations

import json
import time as wall
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from core import go_live
from core.backfill import import_lines
from core.calendar_view import load_year_file
from core.contract import ContractError
from core.intake import accept
from core.obligations import act
from core.registry import load_file
from core.rule_settings_view import load_file as load_rule_settings
from core.waiting import WAITING, Arrival, message_status
from domain.errors import DomainError
from domain.task import task_obligation_id
from ops.data_files import DEMO_DISTRICT, RULE_SETTINGS_FILE, shipped_years, year_file
from ops.simulation.generator import CST, Township

#: Topics of what the rules and the scheduler record: re-derived on replay, never copied.
DERIVED_TOPICS = ("smd.Obligation", "smd.Notice", "smd.LostTo", "smd.RiskEscalated")


@dataclass(frozen=True)
class Act:
    """An owner acting on its obligation in the work queue (no message): when, whose, which."""

    at: datetime
    agency: str
    obligation_id: UUID
    action: str


class SimClock:
    """The service's clock in a simulation: it reads what the simulation set."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class YearReport:
    """What happened to the township's messages, and how long it took."""

    recorded: Counter[str] = field(default_factory=Counter)  # "recorded" or "no-change" (a second report)
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by the error's code
    refused_valid: list[tuple[str, str, str]] = field(default_factory=list)  # (type, code, message): a defect
    accepted_invalid: list[tuple[str, str]] = field(default_factory=list)  # (type, why): a defect
    scheduler_runs: list[datetime] = field(default_factory=list)
    marked_overdue: int = 0
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # key → (delivery kind, type) still waiting
    released: int = 0  # waited, then recorded when what it refers to arrived
    refused_after_waiting: int = 0  # waited, then refused (reference-not-found when the window ended)
    still_waiting: int = 0  # after the final sweep: a defect
    seconds: Counter[str] = field(default_factory=Counter)
    acts: list[Act] = field(default_factory=list)  # owners' acts in the work queue, in order (the replay repeats them)
    acts_refused: list[tuple[str, str]] = field(default_factory=list)  # (action, error): a defect

    @property
    def messages_per_second(self) -> float:
        total = self.recorded.total() + self.duplicates + sum(self.refused.values())
        spent = self.seconds["intake"] + self.seconds["rules and views"] + self.seconds["scheduler"]
        return total / spent if spent else 0.0


def prepare(
    services: Any,
    clock: SimClock,
    township: Township,
    district: Path = DEMO_DISTRICT,
    rule_settings: Path = RULE_SETTINGS_FILE,
) -> None:
    """What a new deployment loads before go-live: the district, the calendars, the rule settings."""
    clock.now = datetime.combine(township.start - timedelta(days=1), time(8), CST).astimezone(UTC)
    load_file(services.case_record, district, region=services.settings.region)
    years = range(township.start.year, (township.start + timedelta(days=township.days)).year + 1)
    for year in (y for y in years if y in shipped_years()):
        load_year_file(services.case_record, year_file(year))
    load_rule_settings(services.case_record, rule_settings, region=services.settings.region)


def scheduler_instants(township: Township, every: timedelta) -> list[datetime]:
    """When the scheduler runs: from the first local midnight, every ``every``, to the end."""
    first = datetime.combine(township.start, time(), CST).astimezone(UTC)
    out, s = [], first + every
    while s <= township.end:
        out.append(s)
        s += every
    return out


def drain(services: Any) -> None:
    """Run the rules, then the views, until both have read the whole log."""
    while services.policies.run_once():
        pass
    while services.work_queue.run_once():
        pass


def run_scheduler(services: Any, clock: SimClock, instant: datetime) -> int:
    """One scheduler run at ``instant``, after the rules and views caught up."""
    drain(services)
    clock.now = instant
    return services.scheduler.run_once(force=True)


def run_year(
    services: Any,
    township: Township,
    clock: SimClock,
    *,
    every: timedelta = timedelta(hours=1),
    progress: Callable[[str], None] | None = None,
) -> YearReport:
    """Deliver every message at its instant; run the scheduler every ``every``."""
    report = YearReport()
    prepare(services, clock, township)
    instants = scheduler_instants(township, every)
    pending = iter(instants)
    next_run = next(pending, None)
    month = None
    ledgers = [d for d in township.deliveries if d.kind == "ledger"]
    for delivery in township.deliveries:
        while next_run is not None and next_run < delivery.at:  # a run at s sees what arrived by s
            _scheduled(services, clock, next_run, report)
            next_run = next(pending, None)
        if delivery.kind == "ledger":
            if ledgers:  # go-live: every agency's ledger, imported at once
                clock.now = delivery.at
                _import(services, ledgers, report)
                ledgers = []
            continue
        if progress and delivery.at.astimezone(CST).month != month:
            month = delivery.at.astimezone(CST).month
            progress(f"{delivery.at.astimezone(CST):%Y-%m}: {report.recorded.total()} recorded")
        clock.now = delivery.at
        started = wall.perf_counter()
        if delivery.kind == "act":
            _act(services, clock, delivery, report)
            report.seconds["intake"] += wall.perf_counter() - started
            continue
        _deliver(services, delivery, report)
        report.seconds["intake"] += wall.perf_counter() - started
    while next_run is not None:
        _scheduled(services, clock, next_run, report)
        next_run = next(pending, None)
    drain(services)
    _settle_waiting(services, clock, report)
    return report


def _settle_waiting(services: Any, clock: SimClock, report: YearReport) -> None:
    """After the year: one sweep a window after the last instant (what still waits is refused),
    then what became of each message that waited is counted."""
    if not report.waiting:
        return
    was = clock.now
    clock.now = max([was, *report.scheduler_runs]) + services.waiting.window
    services.waiting_sweep.run_once(force=True)
    _count_settled(services, report)
    clock.now = was
    report.still_waiting = len(report.waiting)


def _count_settled(services: Any, report: YearReport) -> None:
    """Count each message that waited and is now recorded or refused (refusal records are
    purged after a while: counted at the sweep that made them)."""
    for key, (kind, event_type) in list(report.waiting.items()):
        found = message_status(services.case_record, services.waiting, key)
        if found is None or found.status == WAITING:
            continue
        del report.waiting[key]
        if found.status == "recorded":
            report.released += 1
            report.recorded["imported" if kind == "ledger" else found.outcome or "recorded"] += 1
            if kind == "invalid":
                report.accepted_invalid.append((event_type, "recorded after waiting"))
        else:
            code = found.reason or "refused"
            report.refused[code] += 1
            report.refused_after_waiting += 1
            if kind != "invalid":
                report.refused_valid.append((event_type, code, found.detail or ""))


def _scheduled(services: Any, clock: SimClock, instant: datetime, report: YearReport) -> None:
    started = wall.perf_counter()
    drain(services)
    caught_up = wall.perf_counter()
    report.seconds["rules and views"] += caught_up - started
    clock.now = instant
    report.marked_overdue += services.scheduler.run_once(force=True)
    if report.waiting:  # what waited longer than the window is refused (nothing recorded)
        services.waiting_sweep.run_once(force=True)
        _count_settled(services, report)
    report.seconds["scheduler"] += wall.perf_counter() - caught_up
    report.scheduler_runs.append(instant)


#: Who declares the go-live complete in the simulated township.
GO_LIVE_DECLARED_BY = "gov-willowbrook"

#: Ledgers are imported hospital first, then health centers (they hold the registrations).
_LEDGER_ORDER = ("hospital-", "hc-")


def _import(services: Any, ledgers: list[Any], report: YearReport) -> None:
    """Go-live: each agency imports its register ledger (a backfill: history, no obligations)."""
    by_agency: dict[str, list[bytes]] = {}
    for d in ledgers:
        by_agency.setdefault(d.agency, []).append(d.raw)

    def order(agency: str) -> tuple[int, str]:
        rank = next((i for i, p in enumerate(_LEDGER_ORDER) if agency.startswith(p)), len(_LEDGER_ORDER))
        return rank, agency

    started = wall.perf_counter()
    for agency in sorted(by_agency, key=order):
        rows = b"\n".join(by_agency[agency])
        earliest = services.settings.earliest_time
        imported = import_lines(
            services.case_record, services.registry, rows, agency, earliest=earliest, waiting=services.waiting
        )
        report.recorded["imported"] += imported.recorded
        for _, key in imported.waiting:
            report.waiting[key] = ("ledger", "ledger")
        for _, code, message in imported.refused:
            report.refused[code] += 1
            report.refused_valid.append(("ledger", code, message))
    # every ledger in: the go-live assesses each patient once (the governance center declares it)
    go_live.complete(services.case_record, services.registry.region, GO_LIVE_DECLARED_BY)
    report.seconds["intake"] += wall.perf_counter() - started


def _act(services: Any, clock: SimClock, delivery: Any, report: YearReport) -> None:
    """The owner acts on its task's obligation: the rules catch up first (the obligation is there
    once the follower has read the task, as it is a second after it in production)."""
    doc = json.loads(delivery.raw)
    done = Act(delivery.at, delivery.agency, task_obligation_id(UUID(doc["task"])), doc["action"])
    try:
        apply_act(services, clock, done)
    except DomainError as e:
        report.acts_refused.append((done.action, getattr(e, "code", type(e).__name__)))
        return
    report.acts.append(done)


def apply_act(services: Any, clock: SimClock, done: Act) -> None:
    """The rules catch up, the clock is set to the act's instant, the owner acts (work queue)."""
    drain(services)
    clock.now = done.at
    act(services.case_record, done.obligation_id, done.agency, "simulation", done.action)


def _deliver(services: Any, delivery: Any, report: YearReport) -> None:
    try:
        recorded = accept(
            services.case_record,
            services.registry,
            delivery.raw,
            delivery.agency,
            "simulation",
            earliest=services.settings.earliest_time,
            waiting=services.waiting,
            arrival=Arrival(door="simulation"),
        )
    except (DomainError, ContractError) as e:
        code = getattr(e, "code", type(e).__name__)
        report.refused[code] += 1
        if delivery.kind != "invalid":
            report.refused_valid.append((delivery.event_type, code, str(e)))
        return
    if recorded.outcome == WAITING:  # settled after the year (_settle_waiting)
        if recorded.key in report.waiting:
            report.duplicates += 1  # the same message again while it waits
        else:
            report.waiting[recorded.key] = (delivery.kind, delivery.event_type)
        return
    if delivery.kind == "invalid":
        report.accepted_invalid.append((delivery.event_type, delivery.why_invalid))
    if recorded.outcome == "duplicate":
        report.duplicates += 1
    else:
        report.recorded[recorded.outcome] += 1


def agencies_facts(services: Any) -> list[tuple[Any, datetime]]:
    """The agencies' facts (and registry, calendar, settings), in log order, with recorded times."""
    out = []
    recorder, mapper = services.case_record.recorder, services.case_record.mapper
    start = 1
    while True:
        batch = recorder.select_notifications(start, 1000)
        for n in batch:
            if not n.topic.startswith(DERIVED_TOPICS):
                out.append((n, mapper.to_domain_event(n).timestamp))
        if len(batch) < 1000:
            return out
        start = batch[-1].id + 1


def replay_year(
    source: Any, replica: Any, clock: SimClock, scheduler_runs: Iterable[datetime], acts: Iterable[Act] = ()
) -> None:
    """Copy the source's facts into ``replica`` in order, running the rules and the scheduler as
    the original run did: before each scheduler instant, the facts recorded up to it; before each
    owner's act, the facts recorded before it, the rules, then the act at its instant."""
    facts = agencies_facts(source)
    i = 0
    pending = list(acts)

    def copy_until(limit: datetime | None) -> None:
        nonlocal i
        batch = []
        while i < len(facts) and (limit is None or facts[i][1] <= limit):
            n = facts[i][0]
            batch.append(StoredEvent(n.originator_id, n.originator_version, n.topic, n.state))
            i += 1
        if batch:
            replica.case_record.recorder.insert_events(batch)

    def acts_before(limit: datetime | None) -> None:
        while pending and (limit is None or pending[0].at <= limit):  # as run_year: an act at a run goes first
            done = pending.pop(0)
            copy_until(done.at)
            apply_act(replica, clock, done)

    for instant in scheduler_runs:
        acts_before(instant)
        copy_until(instant)
        run_scheduler(replica, clock, instant)
    acts_before(None)
    copy_until(None)
    drain(replica)


def derived_events(services: Any) -> list[tuple[Any, ...]]:
    """What the rules and the scheduler recorded, comparable across stores: each event's stream,
    version, topic, recorded time and fields, without the store's own log positions."""
    from ops.simulation.log import read_log

    rows = [r for r in read_log(services.case_record) if r.topic.startswith(DERIVED_TOPICS)]
    return sorted(
        (
            str(r.stream),
            r.version,
            r.topic,
            r.recorded_at,
            repr({k: v for k, v in r.fields.items() if k != "trigger_position"}),
        )
        for r in rows
    )


def derived_digest(services: Any) -> str:
    """A SHA-256 of ``derived_events``: two runs (or a run and its replay) derived the same iff equal."""
    import hashlib

    return hashlib.sha256(repr(derived_events(services)).encode()).hexdigest()
