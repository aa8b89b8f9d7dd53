"""PostgreSQL connections that fail fast and survive a server restart.

Every pool of ours (key tables, view store, parking) and eventsourcing's own pool:

- **checks a connection before handing it out** (``check``; not one handed out again within
  ``CHECK_AFTER_IDLE``): a server restart leaves every pooled connection broken; the first one
  found broken makes the pool check all the others at once, so a restart costs no request
  (psycopg_pool would otherwise find them one by one, with a back-off of a second between them);
- **waits a short time for a connection** (``POOL_TIMEOUT``) and **connects with a short
  timeout** (``CONNECT_TIMEOUT``): with the server down a caller gets ``PoolTimeout`` (a
  ``psycopg.OperationalError``, answered 503 ``store-unavailable``) within seconds, not after
  psycopg_pool's default 30 s;
- **reconnects soon after the server is back** (``RECONNECT_TIMEOUT``).

eventsourcing's recorder retries each call ten times, waiting up to its pool timeout each time
(two minutes with the server down, measured). :class:`Recorder` keeps the same calls with
``RECORDER_ATTEMPTS`` attempts: one retry rides over a connection broken mid-call, and an
outage is reported within a few seconds instead of holding a request and a thread for minutes.
``ops.bootstrap.eventsourcing_env`` selects it (``PROCESS_RECORDER_TOPIC``).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool

log = logging.getLogger("smd.postgres")

#: Seconds a caller waits for a pooled connection (psycopg_pool's default is 30).
POOL_TIMEOUT = 2.0
#: Seconds a process waits for its pools' first connection at start (a busy server, a database
#: being created beside it): start-up may be patient, a request may not.
STARTUP_TIMEOUT = 30.0
#: Seconds to establish a connection (libpq ``connect_timeout``: an unreachable host, not a
#: refused port, would otherwise wait for the operating system's TCP timeout).
CONNECT_TIMEOUT = 3
#: Seconds a pool keeps trying to replace a lost connection on its own back-off (1 s, 2 s, 4 s …)
#: before it leaves the next caller to ask for one (psycopg_pool's default is 5 minutes: after an
#: outage of a minute, the pool's next try could come half a minute after the server is back).
RECONNECT_TIMEOUT = 2.0
#: A pooled connection idle this long or longer is checked with a round trip before use: well
#: under the fastest restart of a server (a stop and a start of a small idle cluster: 0.2 s here).
CHECK_AFTER_IDLE = 0.05
#: eventsourcing's pool: seconds a caller waits for a connection (an integer there).
EVENTSOURCING_POOL_TIMEOUT = 2
#: Attempts of each eventsourcing recorder call (the library's own: 10, 0.2 s apart).
RECORDER_ATTEMPTS = 2
RECORDER_RETRY_WAIT = 0.2


def checking(pool_of: Callable[[], ConnectionPool | None]) -> Callable[[Any], None]:
    """A pool ``check``: a quick round trip for a connection idle ``CHECK_AFTER_IDLE`` or more;
    when it fails, every idle connection is checked too (a restarted server broke them all), so
    the caller's next try gets a fresh one.

    A connection handed out again within ``CHECK_AFTER_IDLE`` is not checked: no server restarts
    that fast, so it cannot have been broken by a restart, and a round trip before every query
    cost the followers a third of their speed (measured)."""
    handed_out: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def check(conn: Any) -> None:
        now = time.monotonic()
        last = handed_out.get(conn)
        handed_out[conn] = now
        if last is not None and now - last < CHECK_AFTER_IDLE:
            return
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            pool = pool_of()
            if pool is not None:
                log.warning("a pooled connection was broken; checking the others")
                pool.check()
            raise

    return check


def open_pool(
    conninfo: str, *, min_size: int = 1, max_size: int = 4, name: str | None = None, autocommit: bool = False
) -> ConnectionPool:
    """A psycopg pool with the options above (opened; connections are made in the background).

    ``autocommit``: a read is one round trip (not BEGIN, the query and COMMIT); for stores whose
    every write is in ``with conn.transaction():``."""
    holder: list[ConnectionPool] = []
    pool = ConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        name=name,
        timeout=POOL_TIMEOUT,
        reconnect_timeout=RECONNECT_TIMEOUT,
        kwargs={"connect_timeout": CONNECT_TIMEOUT, "autocommit": autocommit},
        check=checking(lambda: holder[0] if holder else None),
        open=False,
    )
    holder.append(pool)
    pool.open()
    warm_up(pool)
    return pool


def warm_up(pool: ConnectionPool) -> None:
    """Wait for a first connection, up to ``STARTUP_TIMEOUT`` (raises ``PoolTimeout``)."""
    with pool.connection(timeout=STARTUP_TIMEOUT):
        pass


def fail_fast(pool: ConnectionPool) -> None:
    """Give an existing pool (eventsourcing's) the check of :func:`checking`, the connect timeout
    and the reconnect timeout of :func:`open_pool` (it takes no such options)."""
    pool._check = checking(lambda: pool)  # psycopg_pool keeps it here (3.3, pinned)
    pool.reconnect_timeout = RECONNECT_TIMEOUT
    if isinstance(pool.kwargs, dict):
        pool.kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)


def without_jit(pool: ConnectionPool) -> None:
    """Connections that never JIT-compile a query: the case record's queries are lookups by key
    that run in a millisecond, but on a table not yet analyzed (a large import outruns
    autovacuum, whose ANALYZE waits for the table's lock) every plan's estimate passes
    ``jit_above_cost``, and compiling cost 13 ms a query (measured on a 10^6-event import)."""
    if isinstance(pool.kwargs, dict) and "jit=off" not in str(pool.kwargs.get("options", "")):
        pool.kwargs["options"] = (str(pool.kwargs.get("options", "")) + " -c jit=off").strip()
        if not pool.closed:
            pool.drain()  # the connections made before: replaced by ones with the option


def _fewer_attempts(method: Callable[..., Any]) -> Callable[..., Any]:
    """The library's method without its ten attempts, with ``RECORDER_ATTEMPTS`` instead."""
    inner = method.__wrapped__  # eventsourcing.utils.retry keeps the undecorated function here
    return retry((InterfaceError, OperationalError), max_attempts=RECORDER_ATTEMPTS, wait=RECORDER_RETRY_WAIT)(inner)


#: The recorder methods eventsourcing 9.5 decorates with ``retry(max_attempts=10, wait=0.2)``.
RETRIED_METHODS = (
    "insert_events",
    "select_events",
    "select_notifications",
    "max_notification_id",
    "insert_tracking",
    "max_tracking_id",
    "has_tracking_id",
)


class Recorder(PostgresProcessRecorder):
    """eventsourcing's PostgreSQL process recorder, giving up after ``RECORDER_ATTEMPTS`` tries;
    its pool checks every idle connection once one is found broken."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.insert_rows_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[])"
            " RETURNING notification_id"
        ).format(schema=Identifier(datastore.schema), table=Identifier(self.events_table_name))
        fail_fast(datastore.pool)
        without_jit(datastore.pool)
        datastore.pool.open()
        warm_up(datastore.pool)

    def _insert_stored_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        """The library's insert (the table's lock, the notification, one INSERT … RETURNING the
        notification ids in the rows' order), with the rows passed as four arrays, one per
        column, instead of one array of a composite type: psycopg writes that one as text in
        Python, escaping every row's bytes, which was a third of an import's time in the store."""
        if self.datastore.originator_id_type != "uuid":  # pragma: no cover - ours are UUIDs
            super()._insert_stored_events(curs, stored_events, **kwargs)
            return
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self.insert_rows_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
        )

    def _insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        data_keys = kwargs.get("data_keys")
        if data_keys:  # new subjects' data keys (core.keystore.DeferredKeys), in this transaction
            data_keys.insert(curs)

    insert_events = _fewer_attempts(PostgresProcessRecorder.insert_events)
    select_events = _fewer_attempts(PostgresProcessRecorder.select_events)
    select_notifications = _fewer_attempts(PostgresProcessRecorder.select_notifications)
    max_notification_id = _fewer_attempts(PostgresProcessRecorder.max_notification_id)
    insert_tracking = _fewer_attempts(PostgresProcessRecorder.insert_tracking)
    max_tracking_id = _fewer_attempts(PostgresProcessRecorder.max_tracking_id)
    has_tracking_id = _fewer_attempts(PostgresProcessRecorder.has_tracking_id)


RECORDER_TOPIC = f"{Recorder.__module__}:{Recorder.__qualname__}"
