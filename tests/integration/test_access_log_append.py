"""Appending to the access log: a group whose write fails stores nothing, leaves the log
writable, and the chain still matches every row (both stores)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from core.access_log import AccessEntry


def entry(agency: str | None = "police-east", patients: int = 3) -> AccessEntry:
    return AccessEntry(
        at=datetime.now(UTC),
        agency_id=agency,  # type: ignore[arg-type]
        key_id="k1",
        staff_id=None,
        purpose="assigned-duty",
        endpoint="GET /v1/work-queue",
        status=200,
        patient_ids=tuple(uuid4() for _ in range(patients)),
        fields=("obligations", "residence"),
        correlation_id="c1",
    )


def test_a_failed_group_stores_nothing_and_the_next_one_is_chained(services) -> None:
    log = services.access_log
    log.append_many([entry(), entry(patients=100)])
    with pytest.raises(Exception):  # noqa: B017 (the driver's own error: a NOT NULL column left null)
        log.append_many([entry(), entry(agency=None)])
    log.append(entry())
    rows = log.entries(limit=10)
    assert [len(r.patient_ids) for r in rows] == [3, 100, 3]
    assert log.chain_findings() == []
    assert log.chain_head()[0] == 3
