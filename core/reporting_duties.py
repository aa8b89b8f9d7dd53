"""R21 in the service: reporting duties opened as their periods begin, completed by reports.

The scheduler asks ``ReportingDuties.run_once`` (with R15's run): for every agency of the region
it opens the duties whose periods have begun and that fall due after the agency joined the
system (``domain.rules.r21_reporting_duties``). Each obligation's id is fixed by agency, duty
and period, so two schedulers, a restart or a replay open it once: of two writers, one records
and the other finds it there.

"Joined the system" is read from the log, so a replay decides the same: the region's go-live
completion when there was one (none is owed while a go-live is open), otherwise the time the
agency was first recorded in the registry; whichever is later.

The policy process asks ``decide_report`` for each ``ReportSubmitted``: the duty for that period
is completed (opened first, when the report came before the scheduler's run).
"""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Notification

from core.case_record import CaseRecord, Clock
from core.registry import REGION_TZ, RegistryView
from domain.go_live import go_live_id
from domain.registry import AgencyFact, AgencyKind, registry_id
from domain.reporting import SubmittedReport
from domain.rules.engine import Decisions, Trigger, to_obligation
from domain.rules.r21_reporting_duties import RULE, Duty, Period, owed, owes, reporter_id
from domain.rules.settings import RuleSettings

log = structlog.get_logger(__name__)

REPORT_SUBMITTED = SubmittedReport.Submitted.TOPIC


class ReportingDuties:
    """Opens each agency's reporting duties as their periods begin (R21)."""

    def __init__(
        self,
        case_record: CaseRecord,
        registry: RegistryView,
        rule_settings: Any,  # RuleSettingsView or None (the defaults)
        clock: Clock,
        every_seconds: float = 60.0,
    ) -> None:
        self.case_record = case_record
        self.registry = registry
        self.rule_settings = rule_settings
        self.clock = clock
        self.every_seconds = every_seconds
        self._opened: set[UUID] = set()  # known to exist: never asked again
        self._last_run = float("-inf")
        self._first: tuple[int, dict[str, datetime]] = (-1, {})  # (registry position, first recorded)
        self._looked_until: datetime | None = None  # periods opening by then were looked at
        self._settings_at: int | None = None

    def run_once(self, force: bool = False) -> list[Any]:
        """Open the duties whose periods began by now; returns the obligations opened (the
        scheduler marks at once those already past their deadline: opened late, after downtime
        or for an agency that joined just before a deadline)."""
        if not force and time.monotonic() - self._last_run < self.every_seconds:
            return []
        self._last_run = time.monotonic()
        now = self.clock()
        # one refresh each, then every question as of what was read (a refresh is a query)
        if self.registry.refresh() or (self.rule_settings is not None and self.rule_settings.refresh()):
            self._looked_until = None  # who owes what may have changed: look at every period again
        registry_at = self.registry.position
        self._settings_at = self.rule_settings.position if self.rule_settings is not None else None
        after, self._looked_until = self._looked_until, now
        wanted: list[tuple[str, Period, Any]] = []
        if self._first[0] != self.registry.position:  # the registry changed: read it again
            self._first = (self.registry.position, first_recorded_in_registry(self.case_record, self.registry.region))
        joined = agencies_joined(self.case_record, self.registry.region, self._first[1])
        today = now.astimezone(REGION_TZ).date()
        if not joined:
            self._looked_until = None  # a go-live is open: nothing owed yet, look again later
        for agency_id in sorted(self.registry.state(registry_at).agencies):
            agency = self.registry.agency(agency_id, as_of_position=registry_at, on=today)
            since = joined.get(agency_id)
            if agency is None or since is None or recipient(self.registry, agency, today, registry_at) is None:
                continue
            for period, a in owed(agency_id, agency.kind, self.settings_on, since, now, after):
                if a.id not in self._opened:
                    wanted.append((agency.jurisdiction[0], period, a))
        if not wanted:
            return []
        self._opened |= self.case_record.existing([a.id for _, _, a in wanted])
        opened: list[Any] = []
        for residence, period, a in wanted:
            if a.id in self._opened:
                continue
            trigger = Trigger(
                patient_id=reporter_id(a.assignee),
                message_id=f"{RULE}:{period.duty}|{period.label}",
                position=self.case_record.recorder.max_notification_id() or 0,
                recorded_at=now,
                residence=residence,
            )
            obligation = to_obligation(a, subject=trigger.patient_id, residence=residence, trigger=trigger, now=now)
            try:
                self.case_record.save(obligation)
                opened.append(obligation)
            except IntegrityError:
                pass  # another scheduler, or a report that came first, opened it
            self._opened.add(a.id)
        if opened:
            log.info("reporting duties opened", rule=RULE, obligations=len(opened))
        return opened

    def settings_on(self, day: date) -> RuleSettings:
        if self.rule_settings is None:
            return RuleSettings()
        return self.rule_settings.settings(day, as_of_position=self._settings_at)


def recipient(registry: RegistryView, agency: Any, on: date, as_of_position: int | None = None) -> str | None:
    """The governance center a reporting agency reports to: the one covering the first unit of
    its jurisdiction (None: nobody receives its reports, so it owes none — a region-wide agency
    where no governance center covers the region)."""
    return registry.responsible(agency.jurisdiction[0], AgencyKind.GOVERNANCE_CENTER, on, as_of_position)


def agencies_joined(
    case_record: CaseRecord, region: str, first_recorded: dict[str, datetime] | None = None
) -> dict[str, datetime]:
    """When each agency joined the system (see the module); none while a go-live is open.
    ``first_recorded``: ``first_recorded_in_registry`` when the caller keeps it."""
    try:
        go_live = case_record.repository.get(go_live_id(region))
    except AggregateNotFoundError:
        go_live = None
    if go_live is not None and go_live.completed_at is None:
        return {}
    first = first_recorded if first_recorded is not None else first_recorded_in_registry(case_record, region)
    if go_live is not None:
        return {k: max(v, go_live.completed_at) for k, v in first.items()}
    return first


def first_recorded_in_registry(case_record: CaseRecord, region: str) -> dict[str, datetime]:
    """When each agency was first recorded in the region's registry."""
    first: dict[str, datetime] = {}
    for event in case_record.events.get(registry_id(region)):
        if isinstance(event, AgencyFact) and event.agency_id not in first:
            first[event.agency_id] = event.timestamp
    return first


def decide_report(process: Any, notification: Notification) -> tuple[Decisions, Trigger, str] | None:
    """The duty a submitted report completes (opened first when it is not yet); None when the
    agency owes no such report for that period (a report nobody asked for is still recorded)."""
    report: SubmittedReport = process.case_record.repository.get(notification.originator_id, version=1)
    fact: Any = process.case_record.mapper.to_domain_event(notification)
    on = fact.timestamp.astimezone(REGION_TZ).date()
    agency = process.registry.agency(report.agency_id, as_of_position=notification.id, on=on)
    since = agencies_joined(process.case_record, process.registry.region).get(report.agency_id)
    if agency is None or since is None or recipient(process.registry, agency, on, notification.id) is None:
        return None

    def settings_on(day: date) -> RuleSettings:
        if process.rule_settings is None:
            return process.settings
        return process.rule_settings.settings(day, as_of_position=notification.id)

    found = owes(report.agency_id, agency.kind, Duty(report.duty), report.period, settings_on, since)
    if found is None:
        return None
    _, a = found
    trigger = Trigger(
        patient_id=reporter_id(report.agency_id),
        message_id=report.message_id,
        position=notification.id,
        recorded_at=fact.timestamp,
        residence=agency.jurisdiction[0],
        topic=notification.topic,
        version=1,
    )
    return Decisions(opened=[a], completed=[(a.id, report.message_id)]), trigger, agency.jurisdiction[0]
