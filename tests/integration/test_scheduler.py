"""The R15 scheduler: killed mid-run and restarted, or two at once, it records exactly the facts
one uninterrupted run records; replayed with the same clock, it records the same facts."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from core.intake import accept
from core.registry import load_file
from core.scheduler import Scheduler
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.replay import comparable, follow, replica_of, split
from tests.support.stores import NOW, open_services, store_settings

HC, VILLAGE = "hc-north", "990101-001-v01"
LATER = NOW + timedelta(days=3)


def high_risk_patients(services, n: int) -> None:
    """n patients entering level 4: n R1 police obligations due in 24 h."""
    for _ in range(n):
        patient = uuid4()
        for event_type, data, days in (
            ("patient.registered", {"name": "Test Person", "residence": VILLAGE}, 30),
            ("visit.recorded", {"face_to_face": True, "risk_level": 4, "risk_class": "unstable"}, 1),
        ):
            doc = agency_envelope(
                HC, f"cn.smd.{event_type}.v1", patient, data, occurred=NOW - timedelta(days=days), actor=None
            )
            accept(services.case_record, services.registry, doc, HC, "test")
    services.catch_up(services.case_record.recorder.max_notification_id())


def overdue_facts(services) -> list[tuple]:
    """Every ObligationOverdue stored: (obligation, version, when, escalated to)."""
    found = []
    for n in services.case_record.recorder.select_notifications(1, 100_000, topics=["smd.ObligationOverdue"]):
        e = services.case_record.mapper.to_domain_event(n)
        found.append((e.originator_id, e.originator_version, e.timestamp, e.escalated_to))
    return sorted(found, key=str)


class Crash(Exception):
    """Stands in for the process dying."""


class CrashingScheduler(Scheduler):
    """Dies after recording ``survive`` facts."""

    def __init__(self, *args, survive: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.survive = survive

    def _mark(self, obligation_id, now):
        if self.survive == 0:
            raise Crash
        recorded = super()._mark(obligation_id, now)
        self.survive -= recorded
        return recorded


@pytest.fixture
def district(store_kind, tmp_path, request):
    """Makes separate stores of the parametrised kind, each with five patients at high risk."""
    opened = []

    def make():
        pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
        services = open_services(store_settings(store_kind, tmp_path / f"store-{len(opened)}", pg_url))
        opened.append(services)
        load_file(services.case_record, DEMO_DISTRICT)
        high_risk_patients(services, 5)
        return services

    yield make
    for services in opened:
        services.close()


def scheduler(services, cls=Scheduler, **kw) -> Scheduler:
    return cls(services.case_record, services.registry, services.work_queue, lambda: LATER, **kw)


class TestSchedulerRestartsAndRaces:
    def test_killed_mid_run_and_restarted_it_records_what_one_uninterrupted_run_records(self, district) -> None:
        uninterrupted, interrupted = district(), district()
        due = len(uninterrupted.work_queue.open_due(LATER))
        assert due >= 5  # at least the five R1 obligations
        assert scheduler(uninterrupted).run_once(force=True) == due

        with pytest.raises(Crash):
            scheduler(interrupted, CrashingScheduler, survive=2).run_once(force=True)
        interrupted.catch_up(interrupted.case_record.recorder.max_notification_id())
        assert scheduler(interrupted).run_once(force=True) == due - 2  # a fresh process catches up

        assert [f[1:] for f in overdue_facts(interrupted)] == [f[1:] for f in overdue_facts(uninterrupted)]
        assert len(overdue_facts(interrupted)) == due

    def test_two_schedulers_at_once_record_each_fact_once(self, district) -> None:
        services = district()
        due = len(services.work_queue.open_due(LATER))
        first, second = scheduler(services), scheduler(services)
        assert first.run_once(force=True) + second.run_once(force=True) == due
        assert len(overdue_facts(services)) == due

    def test_a_run_with_nothing_due_records_nothing_and_a_later_run_catches_up(self, district) -> None:
        services = district()
        early = Scheduler(services.case_record, services.registry, services.work_queue, lambda: NOW)
        assert early.run_once(force=True) == 0
        due = len(services.work_queue.open_due(LATER))
        assert due >= 5 and scheduler(services).run_once(force=True) == due  # after "downtime", at LATER
        assert {f[2] for f in overdue_facts(services)} == {LATER}


def derived_facts(services) -> list[tuple]:
    """Every fact the rules and the scheduler recorded, without this store's log positions."""
    return sorted(comparable(services, split(services)[1]), key=repr)


class TestReplayWithTheSchedulersInstants:
    def test_replaying_the_facts_and_the_scheduler_at_its_original_instants_gives_identical_facts(
        self, district, store_kind, tmp_path, request
    ) -> None:
        source = district()
        for instant in (NOW + timedelta(hours=30), LATER):
            Scheduler(source.case_record, source.registry, source.work_queue, lambda t=instant: t).run_once(force=True)
            source.catch_up(source.case_record.recorder.max_notification_id())
        overdue_instants = sorted({f[2] for f in overdue_facts(source)})
        assert overdue_instants, "the story had overdue facts to replay"

        # a fresh store gets only the agencies' facts (and the registry), as an audit replay would
        with replica_of(source, store_kind, tmp_path / "replica", request) as replica:
            follow(replica)
            for instant in overdue_instants:  # the scheduler at the instants it originally ran
                Scheduler(replica.case_record, replica.registry, replica.work_queue, lambda t=instant: t).run_once(
                    force=True
                )
                follow(replica)
            assert derived_facts(replica) == derived_facts(source)
