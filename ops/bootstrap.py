"""The composition root: the one place that wires stores, keys, clock and settings.

Tests call ``bootstrap`` with their own settings (and clock) exactly as the service does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from core.access_log import ACCESS_LOG_FILE, AccessLog, PostgresAccessLog, SQLiteAccessLog
from core.apikeys import ApiKeys, open_apikeys
from core.audit.chain import chain_follower
from core.audit.checkpoints import Checkpointer, access_log_extension, apikeys_extension
from core.audit.notes import COSIGNATURE_V1, Signer, Verifier
from core.audit.service import AuditLog
from core.audit.signing_keys import CHECKPOINT, WITNESS, RegionKeys
from core.audit.store import ChainStore, PostgresChainStore, SQLiteChainStore
from core.audit.witness import PostgresWitnessStore, SQLiteWitnessStore, Witness, WitnessStore
from core.calendar_view import CalendarView, open_calendar
from core.case_record import CaseRecord, Clock, utc_now
from core.console_credentials import ConsoleCredentials, open_console_credentials
from core.followers.concerns import Concerns
from core.followers.engine import FollowerStatus
from core.followers.leases import AdvisoryLeases, AlwaysHeld
from core.followers.parking import ParkingStore, PostgresParkingStore, SQLiteParkingStore
from core.handover import Handovers
from core.intake import GroupedAccessLog
from core.keystore import KeyStore, MasterKey, PostgresKeyTable, SQLiteKeyTable
from core.policy_process import PolicyProcess
from core.postgres import EVENTSOURCING_POOL_TIMEOUT, RECORDER_TOPIC
from core.region_keys import CrossRegionKeys, peer_from
from core.registry import RegistryView, open_registry, region_today
from core.reporting_duties import ReportingDuties
from core.rule_settings_view import RuleSettingsView, open_rule_settings
from core.scheduler import Scheduler
from core.sources import SOURCES_FILE, PostgresSourceStore, SourceRows, SQLiteSourceStore
from core.waiting import PostgresWaitingTable, SQLiteWaitingTable, Waiting, WaitingSweep, WaitingTable
from domain.concern import ConcernRules, parse_rule_versions, rules_in_force
from ops.data_files import WORK_PLAN_FILE
from ops.metrics import Metrics, StoreCollector, registry_for
from ops.readiness import STORE_TIMEOUT, Probes, Readiness, assess
from ops.settings import Settings
from projections.indicators import IndicatorsProjection
from projections.patient_lists import PatientListsProjection
from projections.periodic_reports import PeriodicReports, load_work_plan
from projections.reports import ReportsProjection
from projections.stores import PostgresViewStore, SQLiteViewStore, ViewStore
from projections.work_queue import WorkQueueProjection

#: SQLite file names in the data folder (eventsourcing fixes table names: one file per app).
CASE_RECORD_FILE = "case-record.sqlite"
KEYS_FILE = "keys.sqlite"
VIEWS_FILE = "views.sqlite"  # every read model (projections.stores)
FOLLOWERS_FILE = "followers.sqlite"  # parked and held events (core.followers.parking)
WAITING_FILE = "waiting.sqlite"  # facts waiting for what they refer to (core.waiting)
VLOG_FILE = "vlog.sqlite"  # the verifiable log: tree, checkpoints (core.audit.store)
WITNESSED_FILE = "witnessed.sqlite"  # the linked regions' checkpoints this region cosigned


#: Hot patients stay in memory; fast-forward reads only newer events, so other processes'
#: writes are still seen (eventsourcing's aggregate cache).
_CACHE = {"AGGREGATE_CACHE_MAXSIZE": "5000", "AGGREGATE_CACHE_FASTFORWARD": "y"}


def eventsourcing_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing settings for the case record, from our settings."""
    if settings.postgres is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(settings.data_dir / CASE_RECORD_FILE),
            "SQLITE_LOCK_TIMEOUT": "30",
            **_CACHE,
        }
    pg = settings.postgres
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": pg.dbname,
        "POSTGRES_HOST": pg.host,
        "POSTGRES_PORT": str(pg.port),
        "POSTGRES_USER": pg.user,
        "POSTGRES_PASSWORD": pg.password,
        "POSTGRES_POOL_SIZE": "5",
        "POSTGRES_MAX_OVERFLOW": "5",
        "POSTGRES_LOCK_TIMEOUT": "10",
        # Honest outages (core.postgres): a caller waits 1 s for a connection, not 30; a pooled
        # connection is checked before use (a restarted server costs no request); each call is
        # tried twice, not ten times (an outage is a 503 in seconds, not after two minutes).
        "POSTGRES_CONNECT_TIMEOUT": str(EVENTSOURCING_POOL_TIMEOUT),
        "POSTGRES_PRE_PING": "y",
        "PROCESS_RECORDER_TOPIC": RECORDER_TOPIC,
        **_CACHE,
        # Never POSTGRES_ENABLE_DB_FUNCTIONS (STACK.md: it drops tracking records).
    }


def build_keystore(settings: Settings) -> KeyStore:
    """The keystore on the configured store, with the configured master key."""
    master = MasterKey(settings.master_key_id, settings.master_key)
    if settings.postgres is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        table = SQLiteKeyTable(Path(settings.data_dir) / KEYS_FILE)
    else:
        table = PostgresKeyTable(settings.postgres.conninfo())
    # during a master-key rotation the previous key still unwraps the rows not yet re-wrapped
    previous = settings.master_key_previous
    others = (MasterKey(settings.master_key_previous_id or "", previous),) if previous else ()
    return KeyStore(table, master, others)


def build_apikeys(settings: Settings) -> ApiKeys:
    """The API keys on the configured store."""
    conninfo = settings.postgres.conninfo() if settings.postgres is not None else None
    return open_apikeys(settings.data_dir, conninfo, settings.blind_index_key)


#: Extents ``Services.units_within`` keeps (then it starts again).
EXTENTS_KEPT = 1024


@dataclass
class Services:
    """Everything a process of the service uses, wired once."""

    settings: Settings
    keystore: KeyStore
    case_record: CaseRecord
    registry: RegistryView
    apikeys: ApiKeys
    policies: PolicyProcess
    work_queue: WorkQueueProjection
    reports: ReportsProjection  # reports submitted and task progress (R21), without their texts
    scheduler: Scheduler
    views: ViewStore
    parking: ParkingStore
    waiting: Waiting  # facts that arrived before what they refer to (core.waiting)
    waiting_sweep: WaitingSweep  # releases left-overs, refuses at the window's end
    access_log: AccessLog  # every read that reveals a patient (core.access_log)
    nats: Any = None  # a connected nats.aio.client.Client when SMD_NATS_URL is set
    rule_settings: RuleSettingsView | None = None  # the region's rule settings by date, from the log
    calendar: CalendarView | None = None  # working days (holidays, make-up days), from the log
    metrics: Metrics = field(default_factory=Metrics)  # this process's door counters, request latency
    probes: Probes = field(default_factory=Probes, repr=False)  # readiness checks, one thread each
    chain_store: Any = None  # ChainStore: the verifiable log's tree and checkpoints (core.audit)
    chain: Any = None  # the chain follower: every stored row becomes a leaf (core.audit.chain)
    audit: AuditLog | None = None  # checkpoints and proofs (core.audit.service)
    #: which followers this process runs (PostgreSQL: one active process each, the others stand by)
    leases: Any = field(default_factory=AlwaysHeld)
    lists: PatientListsProjection | None = None  # the working lists' rows, no personal values
    sources: SourceRows | None = None  # uploaded source lists, sealed, until their retention ends
    indicators: IndicatorsProjection | None = None  # the indicators' fact and obligation rows, by position
    periodic_reports: PeriodicReports | None = None  # the monthly and quarterly reports (docs/decisions/038)
    console: ConsoleCredentials | None = None  # the governance console's credentials (docs/decisions/041)
    handovers: Handovers | None = None  # transfers of management to and from linked regions (R8, decision 039)
    #: a jurisdiction's extent by (registry version, day, units): ``units_within``
    _extents: dict[tuple[int, date, tuple[str, ...]], frozenset[str]] = field(default_factory=dict, repr=False)

    def concern_rules(self, on: date) -> ConcernRules:
        """The people of concern's collision rules in force on ``on`` (the shipped versions)."""
        from ops.data_files import CONCERN_RULES_FILE

        return rules_in_force(parse_rule_versions(CONCERN_RULES_FILE.read_text(encoding="utf-8")), on)

    def render_pdf(self, html: str) -> bytes:
        """A printable page as PDF (headless Chromium: ops/pdf.py)."""
        from ops.pdf import html_to_pdf

        return html_to_pdf(html)

    @property
    def checkpointer(self) -> Checkpointer | None:
        """Signs a checkpoint every N leaves or M seconds (runs beside the followers)."""
        return self.audit.checkpointer if self.audit is not None else None

    def asyncapi_document(self) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of this region's subjects, streams and messages."""
        from integrations.asyncapi import document
        from integrations.streams import names_of

        servers = [u.strip() for u in self.settings.nats_url.split(",")] if self.settings.nats_url else None
        return document(names_of(self.settings), servers, self.settings.nats_replicas)

    def followers(self) -> list[Any]:
        """The in-process followers of the global log, in the order they should run."""
        return [
            self.policies,
            self.work_queue,
            self.reports,
            *([self.lists] if self.lists is not None else []),
            *([self.indicators] if self.indicators is not None else []),
            self.scheduler,
            *([self.handovers] if self.handovers is not None else []),
            self.waiting_sweep,
            self.chain,
            self.checkpointer,
        ]

    def catch_up(self, position: int, timeout: float = 10.0) -> bool:
        """Run the followers until they have handled ``position`` and what it caused.

        Read-your-writes for an API caller: the rules first, then the views up to everything
        the rules recorded. Safe beside the background followers (tracking refuses doubles).
        """
        deadline = time.monotonic() + timeout
        if not self.policies.follower.catch_up(position, timeout):
            return False
        target = self.case_record.recorder.max_notification_id() or 0
        if not self.work_queue.catch_up(target, max(0.0, deadline - time.monotonic())):
            return False
        if self.lists is not None and not self.lists.catch_up(target, max(0.0, deadline - time.monotonic())):
            return False
        return self.indicators is None or self.indicators.catch_up(target, max(0.0, deadline - time.monotonic()))

    def log_followers(self) -> list[Any]:
        """Every follower of the log on the engine, by name (the outbox's too: its position and
        parked events are in the store even when this process does not run it)."""
        from integrations.outbox import outbox_follower
        from integrations.streams import names_of

        followers: list[Any] = [self.policies.follower, self.work_queue, self.reports, self.chain]
        if self.lists is not None:
            followers.insert(3, self.lists)
        if self.indicators is not None:
            followers.insert(3 + (self.lists is not None), self.indicators)
        if self.settings.nats_url:  # without NATS there is no outbox to follow the log
            followers.append(
                outbox_follower(self.case_record, names_of(self.settings), self.parking, access_log=self.access_log)
            )
        return followers

    def follower_status(self) -> list[FollowerStatus]:
        """Where each follower stands: position, lag, parked, held, stopped."""
        head = self.case_record.recorder.max_notification_id() or 0
        return [f.status(head) for f in self.log_followers()]

    def units_within(self, org_units: tuple[str, ...] | list[str]) -> set[str]:
        """The given org units and every unit under them today (a jurisdiction's extent), as the
        registry is recorded now. Kept per registry version, day and units: every page of the
        oversight list and of a working list asks it for the caller's jurisdiction."""
        version, state = self.registry.current()
        today = region_today()
        key = (version, today, tuple(sorted(org_units)))
        found = self._extents.get(key)
        if found is None:
            seen: set[str] = set()
            todo = list(org_units)
            while todo:
                unit = todo.pop()
                if unit not in seen:
                    seen.add(unit)
                    todo.extend(state.children(unit, today))
            found = frozenset(seen)
            if len(self._extents) >= EXTENTS_KEPT:
                self._extents.clear()
            self._extents[key] = found
        return set(found)

    def patient_obligations(self, patient_id: Any) -> list[Any]:
        """The obligations and notices about one patient, from the work-queue read model."""
        rows: list[Any] = []
        while True:
            page = self.work_queue.select("patient_id = ?", [patient_id], rows[-1].position if rows else 0, 500)
            rows += page
            if len(page) < 500:
                return rows

    def metrics_registry(self) -> tuple[CollectorRegistry, StoreCollector]:
        """A fresh Prometheus registry for one app: this process's metrics and the store's."""
        return registry_for(self)

    async def readiness(self, timeout: float = STORE_TIMEOUT, budget: float | None = None) -> Readiness:
        """ok, degraded or unavailable, with each check: "ok" or what is wrong (no secrets, no
        personal data). Unavailable only when the store gives no answer within ``timeout``;
        NATS, parked events, a stopped follower and lag are "degraded" (core.readiness). With
        ``budget``, the whole assessment takes at most about that many seconds."""
        return await assess(self, timeout, budget)

    def close(self) -> None:
        """Close stores in reverse order of opening."""
        if self.chain is not None:
            self.chain.handler.close()  # the batch its writer holds is written before a standby goes on
        self.leases.close()  # then: a standby takes the followers over at once
        self.probes.close()
        if self.chain_store is not None:
            self.chain_store.close()
        self.views.close()
        self.waiting.table.close()
        if self.sources is not None:
            self.sources.store.close()
        self.access_log.close()
        self.parking.close()
        self.apikeys.close()
        if self.console is not None:
            self.console.close()
        self.case_record.close()
        self.keystore.close()


#: Advisory lock id held while creating tables: processes starting together on PostgreSQL
#: would otherwise race on the catalog ("tuple concurrently updated").
SCHEMA_LOCK_ID = 0x5D0C0DE


@contextmanager
def schema_lock(settings: Settings) -> Iterator[None]:
    """Serialise table creation across processes (PostgreSQL only; SQLite locks the file)."""
    if settings.postgres is None:
        yield
        return
    import psycopg

    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_ID,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_ID,))


def bootstrap(settings: Settings, clock: Clock = utc_now, snapshot_every: int | None = None) -> Services:
    """Wire the service from settings."""
    with schema_lock(settings):
        keystore = build_keystore(settings)
        case_record = CaseRecord(
            env=eventsourcing_env(settings),
            keystore=keystore,
            digest_key=settings.blind_index_key,
            clock=clock,
            snapshot_every=snapshot_every,
            region=settings.region,
        )
        views: ViewStore
        parking: ParkingStore
        waiting_table: WaitingTable
        chain_store: ChainStore
        if settings.postgres is None:
            views = SQLiteViewStore(settings.data_dir / VIEWS_FILE)
            parking = SQLiteParkingStore(settings.data_dir / FOLLOWERS_FILE)
            waiting_table = SQLiteWaitingTable(settings.data_dir / WAITING_FILE)
            chain_store = SQLiteChainStore(settings.data_dir / VLOG_FILE)
            access_log: AccessLog = SQLiteAccessLog(settings.data_dir / ACCESS_LOG_FILE)
            source_store: Any = SQLiteSourceStore(settings.data_dir / SOURCES_FILE)
        else:
            views = PostgresViewStore(
                settings.postgres.conninfo(),
                settings.postgres_replica.conninfo() if settings.postgres_replica else None,
            )
            parking = PostgresParkingStore(settings.postgres.conninfo())
            waiting_table = PostgresWaitingTable(settings.postgres.conninfo())
            chain_store = PostgresChainStore(settings.postgres.conninfo(), pool=views.pool)  # no new connections
            # the reads in flight share one commit (each answered after its own row is committed)
            access_log = GroupedAccessLog(PostgresAccessLog(settings.postgres.conninfo()))
            source_store = PostgresSourceStore(settings.postgres.conninfo())
        apikeys = build_apikeys(settings)
        console = open_console_credentials(
            settings.data_dir,
            settings.postgres.conninfo() if settings.postgres is not None else None,
            settings.blind_index_key,
            clock,
        )
    registry = open_registry(case_record, settings.region)
    rule_settings = open_rule_settings(case_record, settings.region)
    concerns = Concerns(case_record)
    work_queue = WorkQueueProjection(case_record, views, parking, concerns)
    reports = ReportsProjection(case_record, views, parking, concerns)
    lists = PatientListsProjection(case_record, views, parking, concerns)
    indicators = IndicatorsProjection(case_record, views, parking, concerns)
    with schema_lock(settings):
        views.ensure(work_queue.projection)
        views.ensure(reports.projection)
        views.ensure(lists.projection)
        views.ensure(indicators.projection)
    metrics = Metrics()
    handovers = Handovers(
        case_record,
        crossregion_keys(settings),
        registry,
        timedelta(days=settings.handover_answer_days),
        clock,
        dual_management_regions=settings.dual_management_regions,
        check_every=settings.handover_check_seconds,
    )
    waiting = Waiting(waiting_table, case_record, timedelta(seconds=settings.waiting_window_seconds), metrics)
    return Services(
        settings=settings,
        keystore=keystore,
        case_record=case_record,
        registry=registry,
        apikeys=apikeys,
        policies=PolicyProcess(
            case_record,
            registry,
            rule_settings=rule_settings,
            parking=parking,
            concerns=concerns,
            fault=settings.fault,
        ),
        work_queue=work_queue,
        reports=reports,
        scheduler=Scheduler(
            case_record,
            registry,
            work_queue,
            clock,
            duties=ReportingDuties(case_record, registry, rule_settings, clock),
        ),
        views=views,
        parking=parking,
        waiting=waiting,
        waiting_sweep=WaitingSweep(waiting, registry, settings.earliest_time),
        access_log=access_log,
        rule_settings=rule_settings,
        calendar=open_calendar(case_record),
        metrics=metrics,
        chain_store=chain_store,
        chain=chain_follower(case_record, chain_store, parking),
        audit=open_audit(settings, chain_store, clock, apikeys, case_record.recorder, access_log),
        leases=open_leases(settings),
        lists=lists,
        sources=SourceRows(source_store, keystore),
        indicators=indicators,
        periodic_reports=PeriodicReports(case_record, registry, indicators, reports, load_work_plan(WORK_PLAN_FILE)),
        console=console,
        handovers=handovers,
    )


def crossregion_keys(settings: Settings) -> CrossRegionKeys:
    """This region's keys for cross-region messages and its linked regions, from the settings."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    # unset in production with no linked region: keys of this run only, never shown to anyone
    signing = settings.crossregion_key or os.urandom(32)
    sealing = settings.crossregion_seal_key or os.urandom(32)
    keys = CrossRegionKeys.from_seeds(settings.region, signing, sealing)
    keys.seal_retired = tuple(X25519PrivateKey.from_private_bytes(k) for k in settings.crossregion_seal_keys_retired)
    for peer in settings.crossregion_peers:
        keys.link(peer_from(peer.region, peer.verifiers, peer.seal_public))
    return keys


def open_leases(settings: Settings) -> AlwaysHeld | AdvisoryLeases:
    """One active process per follower on PostgreSQL (the others stand by); SQLite: this one."""
    if settings.postgres is None:
        return AlwaysHeld()
    import psycopg

    conninfo = settings.postgres.conninfo()
    return AdvisoryLeases(lambda: psycopg.connect(conninfo, autocommit=True, connect_timeout=5))


def region_keys(settings: Settings) -> RegionKeys:
    """The region's signing keys, by purpose, from the settings (the witness key only when set)."""
    signers = {CHECKPOINT: Signer.from_seed(settings.log_origin, settings.checkpoint_key)}
    if settings.witness_key:
        signers[WITNESS] = Signer.from_seed(settings.witness_name, settings.witness_key, COSIGNATURE_V1)
    return RegionKeys(
        signers=signers,
        retired={CHECKPOINT: [Verifier.decode(v) for v in settings.checkpoint_verifiers_retired]},
    )


def open_peer_witness(settings: Settings) -> Witness | None:
    """This region's witness of the linked regions' logs (those whose peer entry lists their
    checkpoint verifier keys), cosigning with its ``witness`` key; its store is in this region's
    own database (table ``smd_witnessed``) or, on SQLite, ``witnessed.sqlite`` in the data folder:
    outside the witnessed region's deployment. None when it witnesses no linked region."""
    logs = [Verifier.decode(v) for p in settings.crossregion_peers for v in p.checkpoint_verifiers]
    if not logs or not settings.witness_key:
        return None
    signer = region_keys(settings).signer(WITNESS)
    pg = settings.postgres
    store: WitnessStore = (
        SQLiteWitnessStore(settings.data_dir / WITNESSED_FILE) if pg is None else PostgresWitnessStore(pg.conninfo())
    )
    return Witness(store, signer, logs)


def open_audit(
    settings: Settings,
    chain_store: ChainStore,
    clock: Clock = utc_now,
    apikeys: ApiKeys | None = None,
    recorder: Any = None,
    access_log: Any = None,
) -> AuditLog:
    """The verifiable log's checkpointer and the auditor's port onto it; every checkpoint carries
    the heads of the API-key chain and of the access log's chain."""
    keys = region_keys(settings)

    def extensions() -> list[str]:
        lines = [apikeys_extension(*apikeys.chain_head())] if apikeys is not None else []
        if access_log is not None and hasattr(access_log, "chain_head"):
            lines.append(access_log_extension(*access_log.chain_head()))
        return lines

    checkpointer = Checkpointer(
        chain_store,
        keys,
        settings.log_origin,
        every_events=settings.checkpoint_every_events,
        every_seconds=settings.checkpoint_every_seconds,
        extensions=extensions,
        clock=clock,
    )
    return AuditLog(chain_store, keys, checkpointer, recorder, settings.all_witnesses)
