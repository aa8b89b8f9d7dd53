"""The work-queue view: each agency's obligations and notices, and the oversight list.

Follows the global log with a tracked position; the rows and the position are written in one
transaction, so a crash never applies an event twice or skips one. Rebuildable: drop the
tables (or the file) and it reads the log again from the start. Rows hold no personal data:
ids, org units, rule, action, deadline, status and risk level only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from core.case_record import CaseRecord
from core.sqlite_files import ThreadConnections

ASSIGNED = "smd.ObligationAssigned"
NAME = "work_queue_v2"  # bump with the table names when the rows change: the view rebuilds
LIFECYCLE = {
    "smd.ObligationAcknowledged": "acknowledged",
    "smd.NoticeRead": "read",
    "smd.ObligationCompleted": "completed",
    "smd.ObligationCancelled": "cancelled",
}
OVERDUE = "smd.ObligationOverdue"


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One obligation or notice as its owner and the governance center see it."""

    position: int
    obligation_id: UUID
    kind: str
    rule: str
    action: str
    patient_id: UUID
    episode_key: str
    assignee: str
    residence: str
    due_at: datetime | None
    risk_level: int | None
    status: str
    assigned_at: datetime
    trigger_message_id: str
    overdue: bool = False
    escalated_to: str | None = None
    closed_note: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """A lifecycle change of one row: a new status, or overdue with its escalation."""

    obligation_id: UUID
    status: str | None = None
    overdue: bool = False
    escalated_to: str | None = None
    note: str | None = None


_COLUMNS = (
    "position",
    "obligation_id",
    "kind",
    "rule",
    "action",
    "patient_id",
    "episode_key",
    "assignee",
    "residence",
    "due_at",
    "risk_level",
    "status",
    "assigned_at",
    "trigger_message_id",
    "overdue",
    "escalated_to",
    "closed_note",
)


class WorkQueueStore(Protocol):
    """Where the view's rows and its position live."""

    def position(self) -> int:
        """The last log position applied."""

    def apply(self, rows: Sequence[QueueRow], changes: Sequence[Change], position: int) -> None:
        """Insert rows, apply changes and move the position, in one transaction."""

    def select(self, where: str, params: Sequence[Any], after: int, limit: int) -> list[QueueRow]:
        """Rows matching a WHERE clause (placeholders ``?``), by position, after a cursor."""

    def close(self) -> None:
        """Release connections."""


def _from_db(r: Sequence[Any]) -> QueueRow:
    values = dict(zip(_COLUMNS, r, strict=True))
    for k in ("obligation_id", "patient_id"):
        values[k] = values[k] if isinstance(values[k], UUID) else UUID(values[k])
    for k in ("due_at", "assigned_at"):
        v = values[k]
        values[k] = datetime.fromisoformat(v) if isinstance(v, str) else v
    values["overdue"] = bool(values["overdue"])
    return QueueRow(**values)


class SQLiteWorkQueueStore:
    """The view in its own SQLite file (the embedded default)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connections = ThreadConnections(path)
        c = self._conn()
        c.executescript(
            "CREATE TABLE IF NOT EXISTS work_queue_v2 (position INTEGER PRIMARY KEY, obligation_id TEXT UNIQUE,"
            " kind TEXT, rule TEXT, action TEXT, patient_id TEXT, episode_key TEXT, assignee TEXT, residence TEXT,"
            " due_at TEXT, risk_level INTEGER, status TEXT, assigned_at TEXT, trigger_message_id TEXT,"
            " overdue INTEGER NOT NULL DEFAULT 0, escalated_to TEXT, closed_note TEXT);"
            "CREATE INDEX IF NOT EXISTS work_queue_v2_assignee ON work_queue_v2 (assignee, position);"
            "CREATE INDEX IF NOT EXISTS work_queue_v2_residence ON work_queue_v2 (residence, position);"
            "CREATE INDEX IF NOT EXISTS work_queue_v2_due ON work_queue_v2 (status, due_at);"
            "CREATE TABLE IF NOT EXISTS projection_tracking (name TEXT PRIMARY KEY, position INTEGER NOT NULL);"
        )

    def _conn(self) -> sqlite3.Connection:
        return self._connections.get()

    def position(self) -> int:
        r = self._conn().execute("SELECT position FROM projection_tracking WHERE name=?", (NAME,)).fetchone()
        return r[0] if r else 0

    def apply(self, rows: Sequence[QueueRow], changes: Sequence[Change], position: int) -> None:
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(
                f"INSERT INTO work_queue_v2 ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
                " ON CONFLICT DO NOTHING",
                [_to_sqlite(r) for r in rows],
            )
            for ch in changes:
                if ch.status is not None:
                    c.execute(
                        "UPDATE work_queue_v2 SET status=?, closed_note=coalesce(?, closed_note) WHERE obligation_id=?",
                        (ch.status, ch.note, str(ch.obligation_id)),
                    )
                if ch.overdue:
                    c.execute(
                        "UPDATE work_queue_v2 SET overdue=1, escalated_to=? WHERE obligation_id=?",
                        (ch.escalated_to, str(ch.obligation_id)),
                    )
            c.execute(
                "INSERT INTO projection_tracking VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                " SET position=max(projection_tracking.position, excluded.position)",
                (NAME, position),
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def select(self, where: str, params: Sequence[Any], after: int, limit: int) -> list[QueueRow]:
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM work_queue_v2"
            f" WHERE ({where}) AND position > ? ORDER BY position LIMIT ?"
        )
        params = [str(p) if isinstance(p, UUID) else p for p in params]
        return [_from_db(r) for r in self._conn().execute(sql, (*params, after, limit)).fetchall()]

    def close(self) -> None:
        self._connections.close()


def _to_sqlite(r: QueueRow) -> tuple[Any, ...]:
    return (
        r.position,
        str(r.obligation_id),
        r.kind,
        r.rule,
        r.action,
        str(r.patient_id),
        r.episode_key,
        r.assignee,
        r.residence,
        _ts(r.due_at) if r.due_at else None,
        r.risk_level,
        r.status,
        _ts(r.assigned_at),
        r.trigger_message_id,
        int(r.overdue),
        r.escalated_to,
        r.closed_note,
    )


def _ts(dt: datetime) -> str:
    """One fixed-width UTC text form, so SQLite compares times as strings correctly."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class PostgresWorkQueueStore:
    """The view in PostgreSQL tables beside the event store."""

    def __init__(self, conninfo: str) -> None:
        from psycopg_pool import ConnectionPool

        self.pool = ConnectionPool(conninfo, min_size=1, max_size=4, open=True)
        with self.pool.connection() as c:
            c.execute("SELECT pg_advisory_xact_lock(7301)")  # concurrent starters: one creates
            c.execute(
                "CREATE TABLE IF NOT EXISTS smd_work_queue_v2 (position bigint PRIMARY KEY, obligation_id uuid UNIQUE,"
                " kind text, rule text, action text, patient_id uuid, episode_key text, assignee text, residence text,"
                " due_at timestamptz, risk_level int, status text, assigned_at timestamptz, trigger_message_id text,"
                " overdue boolean NOT NULL DEFAULT false, escalated_to text, closed_note text)"
            )
            c.execute("CREATE INDEX IF NOT EXISTS smd_work_queue_v2_assignee ON smd_work_queue_v2 (assignee, position)")
            c.execute(
                "CREATE INDEX IF NOT EXISTS smd_work_queue_v2_residence ON smd_work_queue_v2 (residence, position)"
            )
            c.execute("CREATE INDEX IF NOT EXISTS smd_work_queue_v2_due ON smd_work_queue_v2 (status, due_at)")
            c.execute(
                "CREATE TABLE IF NOT EXISTS smd_projection_tracking (name text PRIMARY KEY, position bigint NOT NULL)"
            )

    def position(self) -> int:
        with self.pool.connection() as c:
            r = c.execute("SELECT position FROM smd_projection_tracking WHERE name=%s", (NAME,)).fetchone()
        return r[0] if r else 0

    def apply(self, rows: Sequence[QueueRow], changes: Sequence[Change], position: int) -> None:
        with self.pool.connection() as c, c.transaction():
            with c.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO smd_work_queue_v2 ({', '.join(_COLUMNS)})"
                    f" VALUES ({', '.join(['%s'] * len(_COLUMNS))}) ON CONFLICT DO NOTHING",
                    [tuple(getattr(r, k) for k in _COLUMNS) for r in rows],
                )
                for ch in changes:
                    if ch.status is not None:
                        cur.execute(
                            "UPDATE smd_work_queue_v2 SET status=%s, closed_note=coalesce(%s, closed_note)"
                            " WHERE obligation_id=%s",
                            (ch.status, ch.note, ch.obligation_id),
                        )
                    if ch.overdue:
                        cur.execute(
                            "UPDATE smd_work_queue_v2 SET overdue=true, escalated_to=%s WHERE obligation_id=%s",
                            (ch.escalated_to, ch.obligation_id),
                        )
            c.execute(
                "INSERT INTO smd_projection_tracking VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE"
                " SET position = GREATEST(smd_projection_tracking.position, excluded.position)",
                (NAME, position),
            )

    def select(self, where: str, params: Sequence[Any], after: int, limit: int) -> list[QueueRow]:
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM smd_work_queue_v2 WHERE ({where.replace('?', '%s')})"
            " AND position > %s ORDER BY position LIMIT %s"
        )
        with self.pool.connection() as c:
            return [_from_db(r) for r in c.execute(sql, (*params, after, limit)).fetchall()]

    def close(self) -> None:
        self.pool.close()


class WorkQueueProjection:
    """Follows the case record and keeps the work-queue view."""

    def __init__(self, case_record: CaseRecord, store: WorkQueueStore) -> None:
        self.case_record = case_record
        self.store = store
        self._lock = threading.Lock()  # the background runner and read-your-writes waiters

    def run_once(self, limit: int = 500) -> int:
        """Apply the next batch of the log; returns how many notifications were read."""
        with self._lock:
            return self._run_once(limit)

    def _run_once(self, limit: int) -> int:
        notifications = self.case_record.recorder.select_notifications(self.store.position() + 1, limit)
        if not notifications:
            return 0
        rows: list[QueueRow] = []
        changes: list[Change] = []
        for n in notifications:
            if n.topic in LIFECYCLE:
                e = self.case_record.mapper.to_domain_event(n)
                note = getattr(e, "reason", None) or getattr(e, "fulfilled_by", None)
                changes.append(Change(obligation_id=e.originator_id, status=LIFECYCLE[n.topic], note=note))
            elif n.topic == OVERDUE:
                e = self.case_record.mapper.to_domain_event(n)
                changes.append(Change(obligation_id=e.originator_id, overdue=True, escalated_to=e.escalated_to))
            elif n.topic == ASSIGNED:
                e: Any = self.case_record.mapper.to_domain_event(n)
                rows.append(
                    QueueRow(
                        position=n.id,
                        obligation_id=e.originator_id,
                        kind=e.kind,
                        rule=e.rule,
                        action=e.action,
                        patient_id=e.patient_id,
                        episode_key=e.episode_key,
                        assignee=e.assignee,
                        residence=e.residence,
                        due_at=e.due_at,
                        risk_level=e.risk_level,
                        status="assigned",
                        assigned_at=e.timestamp,
                        trigger_message_id=e.trigger_message_id,
                    )
                )
        self.store.apply(rows, changes, notifications[-1].id)
        return len(notifications)

    def wait(self, position: int, timeout: float = 5.0) -> bool:
        """Block until the view has applied ``position`` (read-your-writes); False on timeout."""
        deadline = time.monotonic() + timeout
        while self.store.position() < position:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def for_assignee(self, agency_id: str, after: int = 0, limit: int = 100) -> list[QueueRow]:
        """The agency's own obligations and notices."""
        return self.store.select("assignee = ?", [agency_id], after, limit)

    def obligations_in(self, residences: Iterable[str], after: int = 0, limit: int = 100) -> list[QueueRow]:
        """Every obligation (not notice) for patients living in the given org units."""
        units = sorted(set(residences))
        if not units:
            return []
        marks = ", ".join("?" * len(units))
        return self.store.select(f"kind = 'obligation' AND residence IN ({marks})", units, after, limit)

    def open_due(self, now: datetime, limit: int = 500) -> list[QueueRow]:
        """Open obligations (not notices) whose deadline has passed and that are not yet
        marked overdue: the scheduler's to-do list (it re-checks each against the store)."""
        return self.store.select(
            "kind = 'obligation' AND status IN ('assigned', 'acknowledged') AND overdue = ? AND due_at <= ?",
            [False, now if isinstance(self.store, PostgresWorkQueueStore) else _ts(now)],
            0,
            limit,
        )
