"""Prometheus metrics: what each door decided, request latency by route, and, read from the store
at scrape time, where each follower stands and how many obligations are open, overdue and
escalated, by rule.

Two kinds of numbers:

- *process* numbers (``Metrics``: the doors' counters and the request-latency histogram) count
  what this process did since it started, as Prometheus counters do; every process that has a
  door (``smd serve``, ``smd ingest``) keeps its own;
- *store* numbers (``StoreCollector``: followers, the log head, obligations) are read from the
  store when scraped, so every process answers the same, whichever process did the work.

No label carries personal data or an id of a patient, an obligation or a message: labels are
doors, refusal codes (a fixed set, anything else ``other``), route templates (never a raw path),
methods, status classes, follower names and rule ids.

``prometheus_client`` keeps the registry and writes the exposition format; each app gets its own
``CollectorRegistry`` (``registry_for``), so several apps in one process (tests) never collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ops.logging import get_logger

if TYPE_CHECKING:
    from ops.bootstrap import Services
    from ops.readiness import Readiness

log = get_logger(__name__)
disable_created_metrics()  # no ``*_created`` series beside each counter: half the lines, nothing lost

#: Where a message comes in: ``POST /v1/events``, the NATS intake, a ledger import.
DOORS = ("http", "nats", "import")
#: What an accepted message did (``core.case_record.Recorded.outcome``; ``waiting``: held until
#: what it refers to is recorded, then counted again with its outcome when released).
ACCEPTED = ("recorded", "no-change", "duplicate", "waiting")
#: A refusal whose code is not one of the service's error codes.
OTHER = "other"
#: Refusal codes that are not an exception class's ``code`` (a dead letter: the last allowed
#: delivery failed for a bug, or for a cause that was transient but lasted too long).
EXTRA_CODES = frozenset({"internal-error", "delivery-limit"})
#: What the intake's cross-check found when JetStream said a message ran out of deliveries
#: (``integrations.intake.MaxDeliveriesWatch``): ``dead-lettered`` (it had not been: written
#: now), ``already-dead-lettered``, ``already-stored``, ``gone`` (no longer in the stream).
MAX_DELIVERIES_FOUND = ("dead-lettered", "already-dead-lettered", "already-stored", "gone")
#: The methods a route label may carry (anything else: ``other``).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _subclasses(base: type) -> Iterator[type]:
    todo = [base]
    while todo:
        cls = todo.pop()
        yield cls
        todo.extend(cls.__subclasses__())


def _read_codes() -> frozenset[str]:
    from core.contract import ContractError
    from domain.errors import DomainError

    codes = {getattr(c, "code", None) for base in (DomainError, ContractError) for c in _subclasses(base)}
    return frozenset(c for c in codes if isinstance(c, str)) | EXTRA_CODES


_codes: frozenset[str] = frozenset()


def reason_label(code: str | None) -> str:
    """The refusal code if it is one of the service's error codes (a fixed set), else ``other``.

    The set is every ``code`` of ``DomainError`` and ``ContractError`` subclasses (read again
    when a code is not in it: a module imported late), plus ``internal-error``.
    """
    global _codes
    if not code:
        return OTHER
    if code not in _codes:
        _codes = _read_codes()
    return code if code in _codes else OTHER


def status_class(status: int) -> str:
    """2xx, 4xx, 5xx …"""
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class Metrics:
    """This process's own counters and the request-latency histogram (registered per app)."""

    def __init__(self) -> None:
        self.accepted = Counter(
            "smd_messages_accepted",
            "Messages a door accepted, by door (http, nats, import) and outcome (recorded, no-change, duplicate,"
            " waiting; a waiting message is counted again when released)",
            ["door", "outcome"],
            registry=None,
        )
        self.rejected = Counter(
            "smd_messages_rejected",
            "Messages a door refused for good, by door and reason (the refusal code; other when unknown)",
            ["door", "reason"],
            registry=None,
        )
        self.request_seconds = Histogram(
            "smd_http_request_duration_seconds",
            "HTTP request duration by route template, method and status class",
            ["route", "method", "status_class"],
            registry=None,
        )
        self.max_deliveries = Counter(
            "smd_intake_max_deliveries",
            "JetStream advisories of an intake message delivered the maximum number of times without the"
            " intake terminating it (a crash or NATS trouble on its last delivery), by what the check found",
            ["found"],
            registry=None,
        )
        for door in DOORS:
            for outcome in ACCEPTED:
                self.accepted.labels(door, outcome)  # 0 from the start: rate() works from the first
        for found in MAX_DELIVERIES_FOUND:
            self.max_deliveries.labels(found)

    def collectors(self) -> list[Collector]:
        return [self.accepted, self.rejected, self.request_seconds, self.max_deliveries]

    def message_accepted(self, door: str, outcome: str) -> None:
        """A door accepted a message (``outcome``: recorded, no-change or duplicate)."""
        self.accepted.labels(door, outcome if outcome in ACCEPTED else OTHER).inc()

    def message_rejected(self, door: str, code: str | None) -> None:
        """A door refused a message for good, with this refusal code."""
        self.rejected.labels(door, reason_label(code)).inc()

    def max_deliveries_advisory(self, found: str) -> None:
        """The intake's cross-check handled a MAX_DELIVERIES advisory (``found``: see above)."""
        self.max_deliveries.labels(found if found in MAX_DELIVERIES_FOUND else OTHER).inc()

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request, by Litestar's route template (never the raw path)."""
        method = method if method in METHODS else "other"
        self.request_seconds.labels(route, method, status_class(status)).observe(seconds)


class StoreCollector(Collector):
    """Gauges read from the store at scrape time: followers, the log head, obligations by rule.

    ``readiness``, when set (``Exposition.render`` sets it before each scrape), says whether
    the store answered its short check: when it did not, the store is not queried (a hung
    PostgreSQL would hang the scrape) and only ``smd_store_up 0`` is reported.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.readiness: Readiness | None = None

    def describe(self) -> list[Any]:
        return []  # gauges vary with the store: nothing is collected at registration

    def collect(self) -> Iterator[Any]:
        ready = self.readiness
        store_up = ready is None or ready.store_ok
        yield _gauge("smd_store_up", "1 when the store answered its readiness check, else 0", 1 if store_up else 0)
        if self.services.settings.nats_url:
            connected = ready.nats_ok if ready is not None else self._nats_connected()
            yield _gauge("smd_nats_up", "1 when this process is connected to NATS, else 0", 1 if connected else 0)
        if not store_up:
            return
        try:
            statuses = self.services.follower_status()
        except Exception as e:  # a scrape still answers with what it has
            log.warning("metrics: follower status failed", error=type(e).__name__)
        else:
            yield from _follower_families(statuses)
        try:
            counts = self.services.work_queue.counts_by_rule()
        except Exception as e:
            log.warning("metrics: obligation counts failed", error=type(e).__name__)
        else:
            yield from _obligation_families(counts)
        try:
            waiting = self.services.waiting
            stats = waiting.stats()
        except Exception as e:
            log.warning("metrics: waiting facts failed", error=type(e).__name__)
        else:
            yield _gauge("smd_waiting_messages", "Facts waiting for the record they refer to", stats.waiting)
            yield _gauge(
                "smd_waiting_oldest_age_seconds",
                "Age of the oldest waiting fact (0 when none waits)",
                waiting.oldest_age_seconds(stats),
            )
            yield _gauge(
                "smd_waiting_refusals_untold",
                "Refusals of waiting facts not yet published to their NATS senders",
                stats.untold,
            )
        audit = getattr(self.services, "audit", None)
        if audit is not None:
            try:
                yield from _checkpoint_families(audit, self.services.case_record.clock())
            except Exception as e:
                log.warning("metrics: checkpoints failed", error=type(e).__name__)

    def _nats_connected(self) -> bool:
        nc = self.services.nats
        return nc is not None and nc.is_connected


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _follower_families(statuses: list[Any]) -> Iterator[Any]:
    head = _gauge("smd_log_head", "The global log's last position", statuses[0].head if statuses else 0)
    position = GaugeMetricFamily("smd_follower_position", "Last log position the follower handled", labels=["follower"])
    lag_events = GaugeMetricFamily("smd_follower_lag_events", "Log positions behind the head", labels=["follower"])
    lag_seconds = GaugeMetricFamily(
        "smd_follower_lag_seconds", "Age of the oldest event the follower has not handled", labels=["follower"]
    )
    parked = GaugeMetricFamily("smd_follower_parked", "Events the follower parked", labels=["follower"])
    held = GaugeMetricFamily("smd_follower_held", "Events held behind a parked event", labels=["follower"])
    stopped = GaugeMetricFamily("smd_follower_stopped", "1 when stopped at a global fact, else 0", labels=["follower"])
    for s in statuses:
        position.add_metric([s.name], s.position)
        lag_events.add_metric([s.name], s.lag_events)
        lag_seconds.add_metric([s.name], s.lag_seconds)
        parked.add_metric([s.name], s.parked)
        held.add_metric([s.name], s.held)
        stopped.add_metric([s.name], 0 if s.stopped_at is None else 1)
    yield from (head, position, lag_events, lag_seconds, parked, held, stopped)


def _checkpoint_families(audit: Any, now: Any) -> Iterator[Any]:
    """The verifiable log: the latest checkpoint's size and age, and its cosignatures."""
    latest = audit.store.latest_checkpoint()
    size = latest.size if latest is not None else 0
    age = (now - latest.signed_at).total_seconds() if latest is not None else 0.0
    cosigned = len(audit.store.cosignatures(latest.size)) if latest is not None else 0
    yield _gauge("smd_checkpoint_size", "Leaves in the latest signed checkpoint (0: none yet)", size)
    yield _gauge("smd_checkpoint_age_seconds", "Age of the latest signed checkpoint (0: none yet)", max(0.0, age))
    yield _gauge("smd_checkpoint_cosignatures", "Witnesses that cosigned the latest checkpoint", cosigned)
    yield _gauge(
        "smd_checkpoint_witnesses_expected",
        "Witnesses configured to cosign (SMD_WITNESSES and the linked regions')",
        len(audit.witnesses),
    )


def _obligation_families(counts: dict[str, Any]) -> Iterator[Any]:
    opened = CounterMetricFamily("smd_obligations_opened", "Obligations ever assigned, by rule", labels=["rule"])
    overdue = CounterMetricFamily(
        "smd_obligations_overdue", "Obligations ever marked overdue (R15), by rule", labels=["rule"]
    )
    escalated = CounterMetricFamily(
        "smd_obligations_escalated", "Obligations escalated to a governance center (R15), by rule", labels=["rule"]
    )
    open_now = GaugeMetricFamily("smd_obligations_open", "Obligations assigned or acknowledged now", labels=["rule"])
    open_overdue = GaugeMetricFamily(
        "smd_obligations_open_overdue", "Open obligations past their deadline and marked overdue", labels=["rule"]
    )
    for rule, c in sorted(counts.items()):
        opened.add_metric([rule], c.opened)
        overdue.add_metric([rule], c.overdue)
        escalated.add_metric([rule], c.escalated)
        open_now.add_metric([rule], c.open)
        open_overdue.add_metric([rule], c.open_overdue)
    yield from (opened, overdue, escalated, open_now, open_overdue)


def registry_for(services: Services) -> tuple[CollectorRegistry, StoreCollector]:
    """A fresh registry for one app: the services' process metrics and one store collector."""
    registry = CollectorRegistry(auto_describe=False)
    for c in services.metrics.collectors():
        registry.register(c)
    store = StoreCollector(services)
    registry.register(store)
    return registry, store
