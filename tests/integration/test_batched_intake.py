"""Many messages in one unit of work (core.intake.accept_batch), on SQLite and PostgreSQL.

A batch is decided in order in memory and stored in one transaction: a registration early in
the batch is known to the visits after it, a message that breaks a rule is refused alone, a
redelivery is answered "duplicate", and a save that collides with another writer is decided
again on fresh reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from core.case_record import CaseRecord, Recorded
from core.contract import ContractError
from core.intake import Incoming, accept_batch
from core.registry import load_file
from core.waiting import Arrival
from domain.errors import DomainError
from domain.receipt import receipt_id
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope

HC, POLICE = "hc-north", "police-east"
VILLAGE = "990101-001-v01"  # hc-north's and police-east's
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def envelope(agency: str, event_type: str, subject: UUID, data: dict[str, Any], *, hours: float = 1) -> bytes:
    occurred = NOW - timedelta(hours=hours)
    return agency_envelope(agency, f"cn.smd.{event_type}.v1", subject, data, occurred=occurred, actor=None)


def registration(patient: UUID, residence: str = VILLAGE) -> bytes:
    return envelope(HC, "patient.registered", patient, {"name": "Test Person", "residence": residence}, hours=48)


def visit(patient: UUID, level: int = 4, risk_class: str = "unstable") -> bytes:
    return envelope(
        HC, "visit.recorded", patient, {"face_to_face": True, "risk_level": level, "risk_class": risk_class}
    )


def batch(services: Services, *raws: bytes, agency: str = HC, waiting: bool = True) -> list[Any]:
    return accept_batch(
        services.case_record,
        services.registry,
        [Incoming(raw, agency, "test", Arrival(door="nats")) for raw in raws],
        earliest=services.settings.earliest_time,
        waiting=services.waiting if waiting else None,
    )


def stored(record: CaseRecord, aggregate_id: UUID) -> int:
    return len(record.recorder.select_events(aggregate_id))


@pytest.fixture
def services(open_store: Callable[..., Services]) -> Services:
    services = open_store(clock=lambda: NOW)
    load_file(services.case_record, DEMO_DISTRICT)
    return services


class TestABatchIsOneUnitOfWork:
    def test_a_registration_and_the_visits_after_it_in_one_batch_are_recorded_in_one_transaction(
        self, services: Services
    ) -> None:
        patient = uuid4()
        results = batch(services, registration(patient), visit(patient, 4), visit(patient, 1, "basically_stable"))

        assert [r.outcome for r in results] == ["recorded", "recorded", "recorded"]
        positions = [r.notification_id for r in results]
        assert positions == sorted(positions), "the log keeps the order of the messages"
        assert stored(services.case_record, patient) == 3
        assert services.case_record.patient(patient).risk_level == 1

    def test_a_batch_with_one_bad_message_records_the_others_and_refuses_the_bad_one_with_its_reason(
        self, services: Services
    ) -> None:
        first, second = uuid4(), uuid4()
        not_json = b'{"specversion": "1.0", "id": '
        unknown_unit = registration(uuid4(), residence="990101-009-v99")
        breaks_a_rule = visit(first, 4, "stable")  # level 4 must be unstable
        results = batch(
            services, registration(first), not_json, unknown_unit, breaks_a_rule, registration(second), visit(second)
        )

        outcomes = [r.outcome if isinstance(r, Recorded) else r.code for r in results]
        assert outcomes[0] == "recorded" and outcomes[4:] == ["recorded", "recorded"]
        assert outcomes[1:4] == ["invalid-envelope", "unknown-org-unit", results[3].code]
        assert isinstance(results[3], ContractError | DomainError) and "stable" in str(results[3])
        assert stored(services.case_record, first) == 1 and stored(services.case_record, second) == 2

    def test_a_redelivered_batch_is_answered_duplicate_and_stores_nothing_twice(self, services: Services) -> None:
        patient = uuid4()
        raws = [registration(patient), visit(patient)]
        batch(services, *raws)
        again = batch(services, *raws, raws[1])

        assert [r.outcome for r in again] == ["duplicate", "duplicate", "duplicate"]
        assert stored(services.case_record, patient) == 2

    def test_the_same_message_twice_in_one_batch_is_recorded_once(self, services: Services) -> None:
        patient = uuid4()
        raw = registration(patient)
        results = batch(services, raw, raw)

        assert [r.outcome for r in results] == ["recorded", "duplicate"]
        assert stored(services.case_record, receipt_id(f"{HC}:{json.loads(raw)['id']}")) == 1

    def test_a_changed_resend_in_the_same_batch_is_refused_as_a_conflict(self, services: Services) -> None:
        patient = uuid4()
        raw = visit(patient, 4)
        changed = raw.replace(b'"risk_level":4', b'"risk_level":5')
        assert changed != raw
        results = batch(services, registration(patient), raw, changed)

        assert [getattr(r, "outcome", None) for r in results[:2]] == ["recorded", "recorded"]
        assert isinstance(results[2], DomainError) and results[2].code == "idempotency-key-reused"

    def test_a_sender_not_allowed_to_record_is_refused_alone(self, services: Services) -> None:
        patient = uuid4()
        batch(services, registration(patient))
        from_police = envelope(
            POLICE, "visit.recorded", patient, {"face_to_face": True, "risk_level": 1, "risk_class": "basically_stable"}
        )
        results = batch(
            services, from_police, envelope(POLICE, "patient.taken-under-management", patient, {}), agency=POLICE
        )

        assert isinstance(results[0], DomainError) and results[0].code == "not-allowed-to-record"
        assert isinstance(results[1], Recorded) and results[1].outcome == "recorded"


class TestFactsBeforeWhatTheyReferTo:
    def test_a_visit_before_its_registration_in_the_same_batch_waits_and_is_recorded_after_the_commit(
        self, services: Services
    ) -> None:
        patient = uuid4()
        results = batch(services, visit(patient), registration(patient))

        assert [r.outcome for r in results] == ["recorded", "recorded"]
        assert stored(services.case_record, patient) == 2
        assert services.waiting.stats().waiting == 0

    def test_a_visit_whose_patient_never_came_waits_and_the_rest_of_the_batch_is_recorded(
        self, services: Services
    ) -> None:
        absent, present = uuid4(), uuid4()
        results = batch(services, visit(absent), registration(present))

        assert [r.outcome for r in results] == ["waiting", "recorded"]
        assert services.waiting.stats().waiting == 1

    def test_without_a_waiting_table_such_a_visit_is_refused_alone(self, services: Services) -> None:
        absent, present = uuid4(), uuid4()
        results = batch(services, visit(absent), registration(present), waiting=False)

        assert isinstance(results[0], DomainError) and isinstance(results[1], Recorded)


class TestConflicts:
    def test_a_batch_whose_patient_changed_under_it_is_decided_again_and_stores_every_fact_once(
        self, services: Services, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        patient = uuid4()
        batch(services, registration(patient))
        record = services.case_record
        real_save = record.save_in_order
        interleaved: list[bool] = []

        def another_writer_first(events: list[Any], aggregates: dict[UUID, Any]) -> Any:
            if not interleaved:  # a writer in another process records a visit of the same patient
                interleaved.append(True)
                assert batch(services, visit(patient, 2, "basically_stable"))[0].outcome == "recorded"
            return real_save(events, aggregates)

        monkeypatch.setattr(record, "save_in_order", another_writer_first)
        results = batch(services, visit(patient, 4), registration(uuid4()))

        assert [r.outcome for r in results] == ["recorded", "recorded"]
        assert record.retries >= 1
        assert stored(record, patient) == 3
        assert record.patient(patient).risk_level == 4


class TestDataKeys:
    def test_a_new_patients_data_key_is_stored_with_its_registration_and_reads_back_in_a_new_process(
        self, services: Services, open_store: Callable[..., Services], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        patient = uuid4()
        own_transactions: list[UUID] = []
        real_insert = services.keystore.table.insert_if_absent
        monkeypatch.setattr(
            services.keystore.table,
            "insert_if_absent",
            lambda row: (own_transactions.append(row.subject_id), real_insert(row)),
        )
        batch(services, registration(patient))

        assert services.keystore.table.get(patient) is not None
        if services.settings.store_kind == "postgres":  # SQLite keeps keys in a file of their own
            assert own_transactions == [], "the key was written by the registration's transaction"
        again = open_store(clock=lambda: NOW)  # another process: no key in its cache
        assert again.case_record.patient(patient).personal.name == "Test Person"

    def test_a_registration_that_lost_the_race_leaves_no_key_of_its_own(
        self, services: Services, monkeypatch: pytest.MonkeyPatch, open_store: Callable[..., Services]
    ) -> None:
        patient = uuid4()
        record = services.case_record
        real_save = record.save_in_order
        other = open_store(clock=lambda: NOW)  # another writer, with its own key cache
        raced: list[bool] = []

        def another_writer_first(events: list[Any], aggregates: dict[UUID, Any]) -> Any:
            if not raced:
                raced.append(True)
                winner = registration(patient).replace(b"Test Person", b"Other Person")
                assert batch(other, winner)[0].outcome == "recorded"
            return real_save(events, aggregates)

        monkeypatch.setattr(record, "save_in_order", another_writer_first)
        [lost] = batch(services, registration(patient))

        assert isinstance(lost, DomainError) and lost.code == "patient-already-registered"
        fresh = open_store(clock=lambda: NOW)
        assert fresh.case_record.patient(patient).personal.name == "Other Person"
