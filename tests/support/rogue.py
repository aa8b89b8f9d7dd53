"""A rogue administrator with SQL access to the store: edits the events table behind the service's
back (for the tamper tests of the verifiable log). Never used by the service itself."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any
from uuid import UUID

import psycopg

from ops.bootstrap import CASE_RECORD_FILE, VLOG_FILE, Services


class RogueAdmin:
    """SQL on the events table (and the tree's tables) of either store."""

    def __init__(self, services: Services) -> None:
        self.settings = services.settings
        self.table = services.case_record.recorder.events_table_name
        self.pg = self.settings.postgres is not None
        self.nid = "notification_id" if self.pg else "rowid"
        self.m = "%s" if self.pg else "?"

    def _run(
        self, statements: list[tuple[str, tuple[Any, ...]]], *, vlog: bool = False, rollback: bool = False
    ) -> None:
        if self.pg:
            with psycopg.connect(self.settings.postgres.conninfo()) as c:
                for sql, params in statements:
                    c.execute(sql, params)
                if rollback:
                    c.rollback()
            return
        path = self.settings.data_dir / (VLOG_FILE if vlog else CASE_RECORD_FILE)
        with closing(sqlite3.connect(path, isolation_level=None)) as c:
            c.execute("BEGIN")
            for sql, params in statements:
                c.execute(sql, params)
            c.execute("ROLLBACK" if rollback else "COMMIT")

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        if self.pg:
            with psycopg.connect(self.settings.postgres.conninfo()) as c:
                return c.execute(sql, params).fetchone()
        with closing(sqlite3.connect(self.settings.data_dir / CASE_RECORD_FILE)) as c:
            return c.execute(sql, params).fetchone()

    def state_of(self, nid: int) -> bytes:
        return bytes(self._one(f"SELECT state FROM {self.table} WHERE {self.nid} = {self.m}", (nid,))[0])

    def update_state(self, nid: int, state: bytes) -> None:
        """UPDATE one stored payload."""
        self._run([(f"UPDATE {self.table} SET state = {self.m} WHERE {self.nid} = {self.m}", (state, nid))])

    def delete(self, nid: int) -> None:
        """DELETE one row."""
        self._run([(f"DELETE FROM {self.table} WHERE {self.nid} = {self.m}", (nid,))])

    def swap_states(self, a: int, b: int) -> None:
        """Swap two rows' payloads."""
        sa, sb = self.state_of(a), self.state_of(b)
        self._run(
            [
                (f"UPDATE {self.table} SET state = {self.m} WHERE {self.nid} = {self.m}", (sb, a)),
                (f"UPDATE {self.table} SET state = {self.m} WHERE {self.nid} = {self.m}", (sa, b)),
            ]
        )

    def _insert_sql(self, with_id: bool) -> str:
        cols = "originator_id, originator_version, topic, state"
        if with_id:
            cols += f", {self.nid}"
        return f"INSERT INTO {self.table} ({cols}) VALUES ({', '.join([self.m] * (5 if with_id else 4))})"

    def _oid(self, originator_id: UUID) -> Any:
        return originator_id if self.pg else originator_id.hex

    def insert(self, nid: int, originator_id: UUID, version: int, topic: str, state: bytes) -> None:
        """INSERT a forged row at a chosen notification id."""
        self._run([(self._insert_sql(True), (self._oid(originator_id), version, topic, state, nid))])

    def make_room_at(self, nid: int) -> None:
        """Move every row from ``nid`` on one id up (the only way into the past without a gap)."""
        top = self._one(f"SELECT MAX({self.nid}) FROM {self.table}", ())[0]
        self._run(
            [
                (f"UPDATE {self.table} SET {self.nid} = {self.m} WHERE {self.nid} = {self.m}", (i + 1, i))
                for i in range(top, nid - 1, -1)
            ]
        )

    def rolled_back_insert(self, originator_id: UUID) -> None:
        """An insert that is rolled back (on PostgreSQL it uses up a notification id)."""
        self._run([(self._insert_sql(False), (self._oid(originator_id), 1, "smd.Nothing", b"{}"))], rollback=True)

    def rebuild_tree(self) -> None:
        """Empty the tree's tables and its checkpoints, so the chain rebuilds them over the rows as
        they now are (a rewrite with every hash recomputed)."""
        prefix = "smd_" if self.pg else ""
        self._run(
            [(f"DELETE FROM {prefix}vlog_{t}", ()) for t in ("tree", "leaves", "nodes", "checkpoints", "cosignatures")],
            vlog=True,
        )
