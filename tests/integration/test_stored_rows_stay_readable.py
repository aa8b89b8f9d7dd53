"""Stored events live for decades: old rows, committed as raw bytes, still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from domain.personal import PersonalDetails
from domain.values import RiskClass

FIXTURE = Path(__file__).parents[1] / "fixtures" / "stored_events_2026_11.json"


class Probe(Aggregate):
    """A test-only aggregate whose event went from version 1 to version 2."""

    TOPIC = "test.Probe"

    class Created(Aggregate.Created):
        TOPIC = "test.Probe.Created"

    class Noted(Aggregate.Event):
        """Version 2 added ``severity``; version 1 rows had only ``note``."""

        TOPIC = "test.ProbeNoted"
        class_version: ClassVar[int] = 2
        note: str
        severity: str

        @staticmethod
        def upcast_v1_v2(state: dict) -> None:
            state["severity"] = "unknown"

        def apply(self, aggregate: Probe) -> None:
            aggregate.notes.append((self.note, self.severity))

    def __init__(self) -> None:
        self.notes: list[tuple[str, str]] = []


def insert_raw(record, rows: list[StoredEvent]) -> None:
    record.recorder.insert_events(rows)


class TestOldRowsStayReadable:
    def test_a_version_one_row_is_upcast_on_load_by_our_mapper(self, services) -> None:
        record, probe_id = services.case_record, uuid4()
        created = record.mapper.to_stored_event(Probe._create(Probe.Created, id=probe_id).collect_events()[0])
        v1_state = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-11-01T00:00:00+00:00"},"note":"from 2026"}'
        insert_raw(
            record,
            [
                created,
                StoredEvent(originator_id=probe_id, originator_version=2, topic="test.ProbeNoted", state=v1_state),
            ],
        )

        assert record.repository.get(probe_id).notes == [("from 2026", "unknown")]

    def test_rows_written_by_the_first_storage_layout_load_with_personal_data_erased(self, services) -> None:
        record = services.case_record
        rows = json.loads(FIXTURE.read_text())["rows"]
        insert_raw(
            record,
            [
                StoredEvent(
                    originator_id=UUID(r["originator_id"]),
                    originator_version=r["originator_version"],
                    topic=r["topic"],
                    state=r["state"].encode(),
                )
                for r in rows
            ],
        )
        patient = record.patient(UUID(rows[0]["originator_id"]))

        assert (patient.risk_level, patient.risk_class, patient.residence) == (4, RiskClass.UNSTABLE, "v-01")
        # the data key that sealed these rows is not in this keystore: as after an erasure
        assert patient.personal == PersonalDetails(erased=True)
