"""What the HTTP API needs from the running service, as small protocols.

The composition root (``ops.bootstrap.Services``) implements every one of them; each controller
names only the port it uses, so the API never imports ``ops`` and a test can hand it anything
with the same shape (docs/decisions/016).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal, Protocol, TypeAlias, TypeVar
from uuid import UUID

from litestar.di import Dependency
from litestar.params import SkipValidationMarker

from core.access_log import AccessLog
from core.audit.service import AuditLog
from core.case_record import CaseRecord
from core.contract import WireLimits
from core.ports import DoorCounts
from core.readiness import Readiness
from core.registry import RegistryView
from core.rule_settings_view import RuleSettingsView
from core.waiting import Waiting

P = TypeVar("P")

#: A handler parameter receiving the wired services through a port: injected by name
#: (``services``) and not validated, since a protocol is structural (nothing to check at run
#: time, and Litestar's check would need ``runtime_checkable``).
Port: TypeAlias = Annotated[P, SkipValidationMarker(), Dependency(kind="named")]


class ApiSettings(Protocol):
    """The settings the API reads (``ops.settings.Settings`` has them all)."""

    @property
    def earliest_time(self) -> datetime: ...  # SMD_EARLIEST_TIME

    @property
    def nats_url(self) -> str | None: ...  # SMD_NATS_URL

    @property
    def store_kind(self) -> Literal["sqlite", "postgres"]: ...

    @property
    def lag_degraded_seconds(self) -> float: ...  # SMD_LAG_DEGRADED_SECONDS

    @property
    def checkpoint_degraded_seconds(self) -> float: ...  # SMD_CHECKPOINT_DEGRADED_SECONDS

    @property
    def cosignature_degraded_seconds(self) -> float: ...  # SMD_COSIGNATURE_DEGRADED_SECONDS

    @property
    def wire_limits(self) -> WireLimits: ...  # SMD_MAX_MESSAGE_BYTES, SMD_MAX_JSON_DEPTH

    @property
    def auth_failures_per_address(self) -> str: ...  # SMD_AUTH_FAILURES_PER_ADDRESS

    @property
    def auth_failures_per_key(self) -> str: ...  # SMD_AUTH_FAILURES_PER_KEY

    @property
    def intake_batch(self) -> int: ...  # SMD_INTAKE_BATCH (the group commit of POST /v1/events)

    @property
    def batch_limit(self) -> int: ...  # SMD_BATCH_LIMIT

    @property
    def erasure_cooling_off_days(self) -> float: ...  # SMD_ERASURE_COOLING_OFF_DAYS


class CaseRecordPort(Protocol):
    """The case record alone: obligations acted on, patients searched by ID number."""

    @property
    def case_record(self) -> CaseRecord: ...


class RecordingPort(Protocol):
    """What ``POST /v1/events`` and a message's status need."""

    @property
    def settings(self) -> ApiSettings: ...

    @property
    def case_record(self) -> CaseRecord: ...

    @property
    def registry(self) -> RegistryView: ...

    @property
    def waiting(self) -> Waiting: ...

    @property
    def metrics(self) -> DoorCounts: ...

    def catch_up(self, position: int, timeout: float = 10.0) -> bool:
        """Run the followers until they have handled ``position`` and what it caused."""
        ...


class QueueRowView(Protocol):
    """One obligation or notice of a work queue, as the read model lists it."""

    @property
    def position(self) -> int: ...
    @property
    def obligation_id(self) -> UUID: ...
    @property
    def kind(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def patient_id(self) -> UUID: ...
    @property
    def assignee(self) -> str: ...
    @property
    def residence(self) -> str: ...
    @property
    def due_at(self) -> datetime | None: ...
    @property
    def risk_level(self) -> int | None: ...
    @property
    def status(self) -> str: ...
    @property
    def assigned_at(self) -> datetime: ...
    @property
    def episode_key(self) -> str: ...
    @property
    def overdue(self) -> bool: ...
    @property
    def escalated_to(self) -> str | None: ...
    @property
    def closed_note(self) -> str | None: ...


class WorkQueueReader(Protocol):
    """Pages of the work-queue read model (``projections.work_queue`` implements it)."""

    def for_assignee(
        self, agency_id: str, after: int = 0, limit: int = 100, status: str = "all"
    ) -> Sequence[QueueRowView]:
        """One agency's own obligations and notices (``status``: open, done or all), after a position."""
        ...

    def obligations_in(
        self, residences: Iterable[str], after: int = 0, limit: int = 100, status: str = "all"
    ) -> Sequence[QueueRowView]:
        """Every obligation for patients living in the given org units (``status``: open, done or
        all), after a position."""
        ...


class AccessLogPort(Protocol):
    """What recording a read in the access log needs (the clock is the case record's)."""

    @property
    def case_record(self) -> CaseRecord: ...

    @property
    def access_log(self) -> AccessLog: ...


class RestrictionPort(AccessLogPort, Protocol):
    """What requesting, approving and listing restrictions and erasures need."""

    @property
    def settings(self) -> ApiSettings: ...


class WorkQueuePort(AccessLogPort, Protocol):
    """What the work queue and the oversight list need (each page is recorded)."""

    @property
    def work_queue(self) -> WorkQueueReader: ...

    def units_within(self, org_units: tuple[str, ...] | list[str]) -> set[str]:
        """The given org units and every unit under them today."""
        ...


class FollowerLeases(Protocol):
    """Which followers this process runs (``core.followers.leases``)."""

    def holding(self) -> dict[str, bool]:
        """Each lease tried, True when this process holds it (empty: it runs every follower)."""
        ...


class ReadinessPort(Protocol):
    """What ``/readyz``, ``/v1/status`` and ``/metrics`` need."""

    @property
    def settings(self) -> ApiSettings: ...

    @property
    def waiting(self) -> Waiting: ...

    @property
    def leases(self) -> FollowerLeases: ...

    async def readiness(self, timeout: float = ..., budget: float | None = None) -> Readiness:
        """ok, degraded or unavailable, with each check."""
        ...


class AuditPort(Protocol):
    """The verifiable log, for auditors: checkpoints, proofs, bundles (core.audit.service)."""

    @property
    def audit(self) -> AuditLog: ...


class AuditBundlePort(AuditPort, AccessLogPort, Protocol):
    """A patient's proof bundle: the verifiable log, and the access log that records the read."""


class PatientReadPort(Protocol):
    """What reading a patient's file and timeline needs."""

    @property
    def case_record(self) -> CaseRecord: ...

    @property
    def registry(self) -> RegistryView: ...

    @property
    def access_log(self) -> AccessLog: ...

    def patient_obligations(self, patient_id: UUID) -> Sequence[QueueRowView]:
        """The obligations and notices about one patient (the work-queue read model)."""
        ...


class EmergencyAccessPort(AccessLogPort, Protocol):
    """What break the glass needs: the case record, the registry (reach), the region's rule
    settings (length and cap) and the access log."""

    @property
    def registry(self) -> RegistryView: ...

    @property
    def rule_settings(self) -> RuleSettingsView | None: ...


class ReportsReader(Protocol):
    """Pages of the reports read model (``projections.reports`` implements it)."""

    def of_agencies(
        self,
        agencies: Iterable[str],
        *,
        after: int = 0,
        limit: int = 100,
        what: str | None = None,
        period: str | None = None,
    ) -> Sequence[Any]: ...


class IndicatorsReader(Protocol):
    """The indicators' read model (``projections.indicators.IndicatorsProjection``)."""

    def report(
        self,
        registry: Any,
        scope_kind: str,
        scope_id: str,
        period_label: str,
        at_position: int | None = None,
        with_late_facts: bool = False,
    ) -> dict[str, Any]: ...


class IndicatorsPort(Protocol):
    """What ``GET /v1/indicators`` needs: the read model, the registry and the caller's area."""

    @property
    def indicators(self) -> IndicatorsReader: ...

    @property
    def registry(self) -> RegistryView: ...

    @property
    def chain_store(self) -> Any:
        """The verifiable log (the checkpoint that holds a figure's position); None without one."""
        ...

    def units_within(self, org_units: tuple[str, ...] | list[str]) -> set[str]: ...


class ReportsPort(Protocol):
    """What ``GET /v1/reports`` needs: the read model, the registry (whose reports a caller may
    see) and the case record (the sealed texts)."""

    @property
    def reports(self) -> ReportsReader: ...

    @property
    def registry(self) -> RegistryView: ...

    @property
    def case_record(self) -> CaseRecord: ...

    def units_within(self, org_units: tuple[str, ...] | list[str]) -> set[str]:
        """The given org units and every unit under them today."""
        ...


class ReconciliationPort(AccessLogPort, Protocol):
    """What the reconciliation's endpoints need: the source rows' store, the registry (who
    uploads, where a finding lies), the case record (the findings) and the retention setting."""

    @property
    def sources(self) -> Any: ...  # core.sources.SourceRows

    @property
    def registry(self) -> RegistryView: ...

    @property
    def settings(self) -> Any: ...  # source_retention_days (SMD_SOURCE_RETENTION_DAYS)

    def units_within(self, org_units: tuple[str, ...] | list[str]) -> set[str]:
        """The units and every unit under them today."""
        ...

    def catch_up(self, position: int, timeout: float = 10.0) -> bool:
        """Run the followers up to ``position`` (read-your-writes)."""
        ...

    def concern_rules(self, on: date) -> Any:
        """The people of concern's collision rules in force on ``on`` (domain.concern.ConcernRules)."""
        ...

    def render_pdf(self, html: str) -> bytes:
        """A printable page as PDF (headless Chromium)."""
        ...


class PeriodicReportsReader(Protocol):
    """The monthly and quarterly reports (``projections.periodic_reports.PeriodicReports``)."""

    def document(
        self, name: str, scope_id: str, period: str, at_position: int | None = None, replay: bool = False
    ) -> dict[str, Any]: ...


class PeriodicReportsPort(Protocol):
    """What the monthly and quarterly reports' endpoints need: the reports, the registry, the
    caller's area, and recording a submitted report (the case record, read-your-writes)."""

    @property
    def periodic_reports(self) -> PeriodicReportsReader: ...

    @property
    def chain_store(self) -> Any:
        """The verifiable log (the checkpoint that holds a report's position); None without one."""
        ...

    @property
    def registry(self) -> RegistryView: ...

    @property
    def case_record(self) -> CaseRecord: ...

    def units_within(self, org_units: tuple[str, ...] | list[str]) -> set[str]: ...

    def catch_up(self, position: int, timeout: float = 10.0) -> bool: ...
