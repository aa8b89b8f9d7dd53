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


def _v1(occurred: str, **fields) -> bytes:
    """A fact's state as the first version of its class stored it (no class_version: 1)."""
    at = {"_type_": "datetime_iso", "_data_": occurred}
    base = {
        "timestamp": at,
        "agency_id": "hc-east",
        "staff_id": None,
        "occurred_at": at,
        "message_id": f"hc-east:{uuid4()}",
    }
    return json.dumps({**base, **fields}).encode()


class TestFreeTextStoredInTheClearStillLoads:
    def test_version_one_free_text_is_read_as_the_same_text_sealed_in_memory(self, services) -> None:
        from core.patient_read import whole_file
        from domain.personal import SealedText
        from tests.support.stores import NOW, Agency

        record, patient = services.case_record, uuid4()
        record.record(Agency("hc-east").register(patient), "hc-east")
        day = "2026-10-31"
        missed = _v1("2026-11-01T00:00:00+00:00", scheduled_on={"_type_": "date_iso", "_data_": day}, reason="away")
        stay = {"admitted": False, "hospital": None, "admission_kind": None, "discharge_plan": "plan of 2026"}
        contact = {"role": "grid_worker", "member_agency": None, "mode": "phone", "outcome": "reached"}
        rows = [
            ("smd.VisitMissed", missed),
            ("smd.HospitalStayRecorded", _v1("2026-11-02T00:00:00+00:00", **stay)),
            ("smd.CareTeamContactRecorded", _v1("2026-11-03T00:00:00+00:00", **contact, note="note of 2026")),
            ("smd.PatientDeregistered", _v1("2026-11-04T00:00:00+00:00", reason="other", note="left in 2026")),
        ]
        insert_raw(
            record,
            [
                StoredEvent(originator_id=patient, originator_version=2 + i, topic=topic, state=state)
                for i, (topic, state) in enumerate(rows)
            ],
        )

        p = record.patient(patient)
        assert p.facts["hospital"][0]["discharge_plan"] == SealedText(text="plan of 2026")
        assert p.facts["deregistration"][0]["note"] == SealedText(text="left in 2026")
        file = whole_file(p, NOW, [])  # shown as the text it always was
        assert file["hospital"]["stays"][0]["discharge_plan"] == "plan of 2026"
        assert file["care_team_contacts"][0]["note"] == "note of 2026"
        stored = record.recorder.select_notifications(1, 100, topics=["smd.VisitMissed"])[0]
        assert record.mapper.to_domain_event(stored).reason == SealedText(text="away")

    def test_a_version_one_obligation_completion_note_loads_with_no_subject(self, services) -> None:
        from domain.obligation import Obligation, ObligationKind
        from domain.personal import SealedText
        from tests.support.stores import NOW

        record, oid = services.case_record, uuid4()
        obligation = Obligation.assign(
            id=oid, kind=ObligationKind.OBLIGATION, rule="R1", action="a", patient_id=uuid4(), episode_key="e",
            assignee="police-east", residence="v-01", due_at=NOW, trigger_message_id="t", trigger_position=1,
            risk_level=4, now=NOW,
        )  # fmt: skip
        record.save(obligation)
        at = {"_type_": "datetime_iso", "_data_": "2026-11-05T00:00:00+00:00"}
        state = {"timestamp": at, "fulfilled_by": None, "by_agency": "police-east", "note": "done in 2026"}
        row = StoredEvent(
            originator_id=oid, originator_version=2, topic="smd.ObligationCompleted", state=json.dumps(state).encode()
        )
        insert_raw(record, [row])

        assert record.repository.get(oid).status == "completed"
        [n] = record.recorder.select_notifications(1, 100, topics=["smd.ObligationCompleted"])
        completed = record.mapper.to_domain_event(n)
        assert (completed.note, completed.patient_id) == (SealedText(text="done in 2026"), None)
