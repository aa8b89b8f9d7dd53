"""The Litestar application, built from the wired services.

The app serves HTTP only: whatever else runs for its lifetime (the followers of the log, the
NATS intake and outbox) is the service's to start, through ``lifespan`` (``ops.workers``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Protocol

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from prometheus_client import CollectorRegistry

from api.access_log import AccessLogController
from api.asyncapi import AsyncApiPort, asyncapi_document
from api.audit import AuditController
from api.audit_patients import AuditPatientsController
from api.auth import AuthServices, FailedAuthentications
from api.batch import BatchController
from api.bodies import json_body_hook
from api.concern import ConcernController
from api.console import ConsoleController
from api.contact_card import ContactCardController
from api.emergency_access import EmergencyAccessController
from api.events import EventsController, envelope_schema
from api.handovers import HandoversController
from api.health import HealthController
from api.incident_review import IncidentReviewController
from api.indicators import IndicatorsController
from api.lists import ListsController, ListsPort
from api.me import MeController
from api.metrics import Exposition, StoreGauges, metrics
from api.middleware import RequestLogMiddleware, RequestTimer
from api.obligations import ObligationsController
from api.openapi import assets_router, complete_on_startup, docs_page
from api.patient_files import PatientFilesController
from api.patients import PatientSearchController
from api.periodic_reports import PeriodicReportsController
from api.ports import AuditPort, CaseRecordPort, PatientReadPort, ReadinessPort, RecordingPort, WorkQueuePort
from api.problems import exception_handlers
from api.reconciliation import ReconciliationController
from api.reports import ReportsController
from api.restrictions import RestrictionsController
from api.status import StatusController
from api.tasks import TasksController
from api.work_queue import WorkQueueController
from core.intake import GroupCommit, accept_batch
from core.ports import DoorCounts

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]


class AppMetrics(DoorCounts, RequestTimer, Protocol):
    """This process's counters: messages by door, request latency."""


class AppServices(
    RecordingPort,
    WorkQueuePort,
    ReadinessPort,
    CaseRecordPort,
    AuditPort,
    PatientReadPort,
    ListsPort,
    AuthServices,
    AsyncApiPort,
    Protocol,
):
    """Every port a controller uses, and the app's metrics (``ops.bootstrap.Services``)."""

    @property
    def metrics(self) -> AppMetrics: ...

    def metrics_registry(self) -> tuple[CollectorRegistry, StoreGauges]:
        """A fresh Prometheus registry for one app, and its collector of the store's numbers."""
        ...


def create_app(services: AppServices, lifespan: Sequence[Lifespan] = ()) -> Litestar:
    """An app serving the given services (the composition root builds them); ``lifespan``: what
    else runs while the app serves (the service passes its background work)."""

    async def provide_services() -> AppServices:
        return services

    exposition = Exposition(*services.metrics_registry())  # this app's own Prometheus registry
    limits = services.settings.wire_limits  # SMD_MAX_MESSAGE_BYTES, SMD_MAX_JSON_DEPTH
    # POST /v1/events: the requests in flight are recorded together, each answered after its commit
    group_commit = GroupCommit(
        partial(
            accept_batch,
            services.case_record,
            services.registry,
            earliest=services.settings.earliest_time,
            limits=limits,
            waiting=services.waiting,
        ),
        max_batch=services.settings.intake_batch,
    )

    @contextlib.asynccontextmanager
    async def own_lifespan(app: Litestar) -> AsyncIterator[None]:
        try:
            yield
        finally:
            group_commit.close()
            exposition.close()

    return Litestar(
        route_handlers=[
            HealthController,
            StatusController,
            metrics,
            MeController,
            EventsController,
            BatchController,
            envelope_schema,
            asyncapi_document,
            WorkQueueController,
            ReportsController,
            IndicatorsController,
            PeriodicReportsController,
            TasksController,
            HandoversController,
            ReconciliationController,
            ConcernController,
            ContactCardController,
            PatientSearchController,
            PatientFilesController,
            ListsController,
            EmergencyAccessController,
            AccessLogController,
            ObligationsController,
            AuditController,
            RestrictionsController,
            AuditPatientsController,
            IncidentReviewController,
            ConsoleController,  # the governance console's pages (HTML)
            assets_router(),  # the docs page's own files: no CDN
        ],
        state=State(
            {
                "services": services,  # api.auth.agency_guard reads services
                "metrics": exposition,
                "wire_limits": limits,  # api.bodies
                "group_commit": group_commit,  # api.events
                "auth_failures": FailedAuthentications(  # api.auth
                    services.settings.auth_failures_per_address, services.settings.auth_failures_per_key
                ),
            }
        ),
        before_request=json_body_hook,  # media type and byte-level checks of every other JSON body
        request_max_body_size=limits.max_bytes,  # Litestar stops reading a body past it
        dependencies={"services": Provide(provide_services)},
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        middleware=[DefineMiddleware(RequestLogMiddleware, metrics=services.metrics)],
        openapi_config=OpenAPIConfig(
            title="Severe mental disorder coordination API",
            version="1",
            path="/schema",
            render_plugins=[docs_page()],  # Swagger UI from /docs-assets (api.openapi)
        ),
        on_startup=[complete_on_startup],  # problems, the envelope body, the security scheme
        logging_config=None,  # the service configured the root logger; keep it
        lifespan=[own_lifespan, *lifespan],
        debug=False,
    )
