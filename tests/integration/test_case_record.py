"""Recording agencies' facts in the case record, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import uuid4

import pytest

from core.case_record import CaseRecord
from domain.errors import DuplicateMessageConflict, PatientAlreadyRegistered, PatientNotFound
from domain.patient import Patient
from domain.personal import PersonalDetails
from domain.values import Provenance, RiskClass
from tests.support.stores import NOW, Agency

health_center = Agency("hc-east")
committee = Agency("vc-north")


def count_events(record: CaseRecord) -> int:
    return len(record.recorder.select_notifications(1, 10_000))


class TestRecordingFacts:
    def test_a_registered_patient_reads_back_with_personal_details_and_derived_state(self, services) -> None:
        record, patient = services.case_record, uuid4()
        record.record(health_center.register(patient, id_number="119901199003070013", phone="13800000000"), "hc-east")
        record.record(health_center.visit(patient, 4, "unstable", joint=True), "hc-east")

        file = record.patient(patient)
        assert file.personal == PersonalDetails(
            name="Test Person",
            id_number="119901199003070013",
            phone="13800000000",
            birth_date=date(1990, 3, 7),  # read off the ID number's digits
        )
        assert (file.risk_level, file.risk_class) == (4, RiskClass.UNSTABLE)
        assert file.last_joint_visit_at == NOW - timedelta(hours=1)

    def test_the_state_reloaded_after_a_restart_equals_the_state_built_step_by_step(self, open_store) -> None:
        first, patient = open_store(), uuid4()
        messages = [
            health_center.register(patient),
            health_center.visit(patient, 1, "basically_stable", occurred=NOW - timedelta(days=20)),
            committee.missed(patient, date(2026, 11, 5)),
            committee.missed(patient, date(2026, 11, 12)),
            health_center.assess(patient, 3, "unstable", occurred=NOW - timedelta(days=2)),
        ]
        # step by step, in memory, with the domain alone
        by = lambda m: Provenance(m.source, m.actor, m.time, m.idempotency_key)  # noqa: E731
        in_memory = Patient.register(patient, by(messages[0]), NOW, PersonalDetails(name="Test Person"), "v-01")
        in_memory.record_visit(
            by(messages[1]), NOW, face_to_face=True, joint=False, risk_level=1, risk_class=RiskClass.BASICALLY_STABLE
        )
        in_memory.record_missed_visit(by(messages[2]), NOW, scheduled_on=date(2026, 11, 5))
        in_memory.record_missed_visit(by(messages[3]), NOW, scheduled_on=date(2026, 11, 12))
        in_memory.assess_risk(by(messages[4]), NOW, risk_level=3, risk_class=RiskClass.UNSTABLE)
        for m in messages:
            first.case_record.record(m, m.source)

        reloaded = open_store().case_record.patient(patient)  # a second process on the same store
        for attr in (
            "personal",
            "residence",
            "risk_level",
            "risk_class",
            "last_visit_at",
            "consecutive_missed_visits",
            "version",
            "visits",
            "assessments",
            "missed",
        ):
            assert getattr(reloaded, attr) == getattr(in_memory, attr), attr

    def test_a_fact_about_an_unregistered_patient_is_refused(self, services) -> None:
        with pytest.raises(PatientNotFound, match="register the patient first"):
            services.case_record.record(health_center.visit(uuid4(), 0, "stable"), "hc-east")
        assert count_events(services.case_record) == 0

    def test_registering_the_same_patient_id_twice_is_refused(self, services) -> None:
        patient = uuid4()
        services.case_record.record(health_center.register(patient), "hc-east")
        with pytest.raises(PatientAlreadyRegistered):
            services.case_record.record(health_center.register(patient), "hc-east")


class TestIdempotency:
    def test_the_same_message_twice_stores_one_event(self, services) -> None:
        record, patient = services.case_record, uuid4()
        record.record(health_center.register(patient), "hc-east")
        visit = health_center.visit(patient, 2, "basically_stable")
        first, second = record.record(visit, "hc-east"), record.record(visit, "hc-east")
        assert (first.outcome, second.outcome) == ("recorded", "duplicate")
        assert count_events(record) == 4  # two receipts, registration, one visit
        assert record.patient(patient).version == 2

    def test_the_same_key_with_different_content_is_a_conflict_naming_the_key(self, services) -> None:
        record, patient, key = services.case_record, uuid4(), uuid4()
        record.record(health_center.register(patient), "hc-east")
        record.record(health_center.visit(patient, 2, "basically_stable", message_id=key), "hc-east")
        with pytest.raises(DuplicateMessageConflict, match=f"hc-east:{key}"):
            record.record(health_center.visit(patient, 4, "unstable", message_id=key), "hc-east")
        assert record.patient(patient).risk_level == 2

    def test_two_agencies_may_use_the_same_message_id(self, services) -> None:
        record, patient, same_id = services.case_record, uuid4(), uuid4()
        record.record(health_center.register(patient), "hc-east")
        record.record(committee.missed(patient, date(2026, 11, 1), message_id=same_id), "vc-north")
        outcome = record.record(health_center.visit(patient, 0, "stable", message_id=same_id), "hc-east")
        assert outcome.outcome == "recorded"

    def test_a_second_agency_reporting_the_same_missed_visit_records_no_second_miss(self, services) -> None:
        record, patient = services.case_record, uuid4()
        record.record(health_center.register(patient), "hc-east")
        record.record(committee.missed(patient, date(2026, 11, 1)), "vc-north")
        again = record.record(health_center.missed(patient, date(2026, 11, 1)), "hc-east")
        assert again.outcome == "no-change"
        assert record.patient(patient).consecutive_missed_visits == 1


class TestSnapshots:
    def test_a_patient_loaded_from_a_snapshot_equals_the_one_replayed_from_events(self, open_store) -> None:
        services, patient = open_store(snapshot_every=3), uuid4()
        record = services.case_record
        record.record(health_center.register(patient), "hc-east")
        for day in range(1, 8):
            record.record(
                health_center.visit(patient, day % 3, "unstable", occurred=NOW - timedelta(days=day)), "hc-east"
            )
        assert record.snapshots is not None
        assert list(record.snapshots.get(patient)), "a snapshot was taken"
        from_snapshot = record.patient(patient)
        events = list(record.events.get(patient))
        from_events = None
        for event in events:
            from_events = event.mutate(from_events)
        assert from_events is not None
        assert from_snapshot.version == from_events.version == 8
        assert from_snapshot.__dict__ == from_events.__dict__
