"""Replaying a store's facts into a fresh store: what an audit does to check the decisions.

Only the agencies' facts (and the registry, calendar and settings) are copied; everything the
rules and the scheduler derived must come out the same when the fresh store follows them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from ops.bootstrap import Services
from tests.support.stores import open_services, store_settings

#: Topics of what the rules and the scheduler record (never copied: it must be re-derived).
DERIVED = ("smd.Obligation", "smd.Notice", "smd.LostTo")


def split(services: Services) -> tuple[list[Any], list[Any]]:
    """The store's notifications: (agencies' facts, derived facts), each in log order."""
    facts, derived = [], []
    for n in services.case_record.recorder.select_notifications(1, 100_000):
        (derived if n.topic.startswith(DERIVED) else facts).append(n)
    return facts, derived


def comparable(services: Services, notifications: list[Any]) -> list[tuple[str, dict]]:
    """Decoded events without ``trigger_position`` (each store numbers its own log)."""
    out = []
    for n in notifications:
        state = dict(vars(services.case_record.mapper.to_domain_event(n)))
        state.pop("trigger_position", None)
        out.append((n.topic, state))
    return out


@contextmanager
def replica_of(source: Services, store_kind: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[Services]:
    """A fresh store of the same kind holding the source's facts and data keys, followers idle."""
    ours = source.settings
    keys = {
        "SMD_MASTER_KEY": base64.b64encode(ours.master_key).decode(),
        "SMD_MASTER_KEY_ID": ours.master_key_id,
        "SMD_BLIND_INDEX_KEY": base64.b64encode(ours.blind_index_key).decode(),
    }
    pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
    replica = open_services(store_settings(store_kind, folder, pg_url, **keys))
    try:
        facts, _ = split(source)
        replica.case_record.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=n.originator_id, originator_version=n.originator_version, topic=n.topic, state=n.state
                )
                for n in facts
            ]
        )
        for row in source.keystore.table.rows_wrapped_by(ours.master_key_id, 100_000):  # the same data keys
            replica.keystore.table.insert_if_absent(row)
        replica.registry.refresh()
        yield replica
    finally:
        replica.close()


def follow(services: Services) -> None:
    """Run the rules and the views until they have caught up with the log."""
    services.catch_up(services.case_record.recorder.max_notification_id() or 0)
