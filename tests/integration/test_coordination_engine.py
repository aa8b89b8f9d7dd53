"""The coordination engine: R1's lifecycle, R5 with compensations, R15 overdue and escalation,
agencies acting on their queue, and a replay that decides the same; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from core.intake import accept
from core.obligations import act
from core.registry import load_file
from core.scheduler import Scheduler
from domain.obligation import NotTheOwner, Obligation, obligation_id
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.replay import comparable, replica_of, split
from tests.support.stores import NOW

HC, POLICE, COMMITTEE, GOV = "hc-north", "police-east", "committee-north", "gov-willowbrook"
VILLAGE = "990101-001-v01"


class Township:
    """Agencies' systems sending facts about one patient, and the engine catching up."""

    def __init__(self, services) -> None:
        self.services = services
        self.patient = uuid4()
        self.sent: list[str] = []

    def send(self, agency: str, event_type: str, data: dict, *, days_ago: float = 0.1, message_id: UUID | None = None):
        doc = agency_envelope(
            agency,
            f"cn.smd.{event_type}.v1",
            self.patient,
            data,
            occurred=NOW - timedelta(days=days_ago),
            message_id=message_id,
            actor=None,
        )
        recorded = accept(self.services.case_record, self.services.registry, doc, agency, "test")
        self.sent.append(recorded.key)
        self.services.catch_up(recorded.notification_id or 0)
        return recorded

    def register(self) -> None:
        self.send(HC, "patient.registered", {"name": "Test Person", "residence": VILLAGE}, days_ago=200)

    def visit(self, level: int, days_ago: float, **kw) -> str:
        cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
        return self.send(
            HC,
            "visit.recorded",
            {"face_to_face": True, "risk_level": level, "risk_class": cls},
            days_ago=days_ago,
            **kw,
        ).key

    def miss(self, scheduled_days_ago: int, agency: str = COMMITTEE) -> str:
        day = (NOW - timedelta(days=scheduled_days_ago)).date()
        return self.send(agency, "visit.missed", {"scheduled_on": day.isoformat()}, days_ago=scheduled_days_ago - 1).key

    def obligation(self, rule: str, key: str, role: str = "police") -> Obligation | None:
        try:
            return self.services.case_record.repository.get(obligation_id(self.patient, rule, key, role))
        except Exception:
            return None

    def queue(self, agency: str, rules: tuple[str, ...] = ("R1", "R5")):
        # the engine's own rules (the care rules of issue 10 open more: tests/integration/test_rules_care.py)
        return [
            r for r in self.services.work_queue.for_assignee(agency) if r.patient_id == self.patient and r.rule in rules
        ]


@pytest.fixture
def town(services) -> Township:
    load_file(services.case_record, DEMO_DISTRICT)
    t = Township(services)
    t.register()
    return t


class TestR1HighRiskManagement:
    def test_taking_the_patient_under_management_completes_the_police_obligation(self, town) -> None:
        entered = town.visit(4, days_ago=2)
        taken = town.send(POLICE, "patient.taken-under-management", {}).key
        obligation = town.obligation("R1", entered)
        assert (obligation.status, obligation.fulfilled_by) == ("completed", taken)
        assert [r.status for r in town.queue(POLICE)] == ["completed"]

    def test_a_level_that_falls_below_three_cancels_the_open_obligation_with_the_reason(self, town) -> None:
        entered = town.visit(4, days_ago=5)
        fell = town.visit(1, days_ago=1)
        obligation = town.obligation("R1", entered)
        assert obligation.status == "cancelled" and "fell below 3" in obligation.cancel_reason
        assert town.services.case_record.repository.get(obligation.id).version == 2
        assert town.queue(POLICE)[0].closed_note == obligation.cancel_reason
        assert fell  # the fall itself opens nothing

    def test_leaving_and_re_entering_opens_a_second_episode(self, town) -> None:
        first = town.visit(4, days_ago=30)
        town.visit(1, days_ago=20)
        second = town.visit(5, days_ago=10)
        assert town.obligation("R1", first).status == "cancelled"
        assert town.obligation("R1", second).status == "assigned"
        assert len(town.queue(POLICE)) == 2

    def test_a_late_older_high_assessment_opens_nothing_and_keeps_the_episode_key(self, town) -> None:
        entered = town.visit(4, days_ago=2)
        town.visit(4, days_ago=9)  # arrives late, happened earlier: extends the episode backwards
        assert len(town.queue(POLICE)) == 1 and town.queue(POLICE)[0].episode_key == entered

    def test_a_late_high_assessment_older_than_the_current_low_one_opens_nothing(self, town) -> None:
        town.visit(1, days_ago=1)
        town.visit(4, days_ago=9)  # by occurred time the patient is level 1 now
        assert town.queue(POLICE) == []

    def test_the_same_visit_sent_twice_opens_one_obligation(self, town) -> None:
        message = uuid4()
        town.visit(4, days_ago=2, message_id=message)
        town.visit(4, days_ago=2, message_id=message)
        assert len(town.queue(POLICE)) == 1 and len(town.queue(GOV)) == 1

    def test_deregistration_cancels_what_is_open(self, town) -> None:
        entered = town.visit(4, days_ago=3)
        town.send(HC, "patient.deregistered", {"reason": "death"}, days_ago=1)
        assert "left the register (death)" in town.obligation("R1", entered).cancel_reason


class TestR5LostToFollowUp:
    def test_three_consecutive_missed_visits_make_the_patient_lost_and_ask_the_police_to_locate(self, town) -> None:
        town.visit(0, days_ago=100)
        town.miss(80)
        town.miss(50)
        third = town.miss(20)
        locate = town.obligation("R5", third)
        assert (locate.action, locate.assignee, locate.status) == ("locate_patient", POLICE, "assigned")
        assert town.obligation("R5", third, "governance-notice").kind == "notice"
        lost = town.services.case_record.repository.get(obligation_id(town.patient, "R5", third, "lost"))
        assert lost.status == "lost"

    def test_the_same_missed_visit_reported_by_two_agencies_counts_once(self, town) -> None:
        town.miss(80)
        town.miss(80, agency=HC)
        town.miss(50)
        assert town.queue(POLICE) == []

    def test_a_late_visit_between_the_misses_withdraws_the_lost_status_and_cancels_the_search(self, town) -> None:
        town.miss(80)
        town.miss(50)
        third = town.miss(20)
        town.visit(0, days_ago=60)  # late report: a visit took place between the misses
        assert town.obligation("R5", third).status == "cancelled"
        assert "not consecutive" in town.obligation("R5", third).cancel_reason
        lost = town.services.case_record.repository.get(obligation_id(town.patient, "R5", third, "lost"))
        assert lost.status == "withdrawn"

    def test_a_visit_after_the_misses_completes_the_search(self, town) -> None:
        town.miss(80)
        town.miss(50)
        third = town.miss(20)
        found = town.visit(1, days_ago=2)
        assert (town.obligation("R5", third).status, town.obligation("R5", third).fulfilled_by) == ("completed", found)

    def test_a_declared_unknown_whereabouts_asks_to_locate_and_a_located_declaration_completes_it(self, town) -> None:
        declared = town.send(COMMITTEE, "whereabouts.unknown-declared", {}, days_ago=5).key
        assert town.obligation("R5", declared).status == "assigned"
        located = town.send(POLICE, "patient.located", {}, days_ago=1).key
        assert town.obligation("R5", declared).fulfilled_by == located


class TestR15OverdueAndEscalation:
    def test_an_obligation_past_its_deadline_is_marked_overdue_once_and_escalated(self, town) -> None:
        entered = town.visit(4, days_ago=1)
        later = lambda: NOW + timedelta(days=2)  # noqa: E731
        first = Scheduler(town.services.case_record, town.services.registry, town.services.work_queue, later)
        second = Scheduler(town.services.case_record, town.services.registry, town.services.work_queue, later)
        assert first.run_once(force=True) == 1
        town.services.catch_up(town.services.case_record.recorder.max_notification_id())
        assert second.run_once(force=True) == 0  # a second scheduler (or a restart) records nothing more
        obligation = town.obligation("R1", entered)
        assert (obligation.overdue, obligation.escalated_to) == (True, GOV)
        assert town.queue(POLICE)[0].overdue and town.queue(POLICE)[0].escalated_to == GOV

    def test_two_schedulers_racing_on_a_stale_view_record_the_fact_once(self, town) -> None:
        entered = town.visit(4, days_ago=1)
        later = lambda: NOW + timedelta(days=2)  # noqa: E731
        schedulers = [
            Scheduler(town.services.case_record, town.services.registry, town.services.work_queue, later)
            for _ in range(2)
        ]
        assert sum(s.run_once(force=True) for s in schedulers) == 1  # the view lags: the store decides
        events = list(town.services.case_record.events.get(obligation_id(town.patient, "R1", entered, "police")))
        assert [type(e).TOPIC for e in events].count("smd.ObligationOverdue") == 1

    def test_nothing_is_overdue_before_the_deadline_or_once_completed(self, town) -> None:
        town.visit(4, days_ago=1)
        scheduler = Scheduler(
            town.services.case_record,
            town.services.registry,
            town.services.work_queue,
            lambda: NOW + timedelta(hours=12),
        )
        assert scheduler.run_once(force=True) == 0
        town.send(POLICE, "patient.taken-under-management", {})
        scheduler.clock = lambda: NOW + timedelta(days=5)
        assert scheduler.run_once(force=True) == 0

    def test_notices_are_never_escalated(self, town) -> None:
        town.visit(4, days_ago=1)
        town.send(POLICE, "patient.taken-under-management", {})
        scheduler = Scheduler(
            town.services.case_record,
            town.services.registry,
            town.services.work_queue,
            lambda: NOW + timedelta(days=30),
        )
        scheduler.run_once(force=True)  # the care rules' obligations (issue 10) fall due by then; notices never
        town.services.catch_up(town.services.case_record.recorder.max_notification_id())
        assert [r.overdue for r in town.queue(GOV)] == [False]
        notices = [
            r for r in town.services.work_queue.select("kind = 'notice'", [], 0, 1000) if r.patient_id == town.patient
        ]
        assert len(notices) >= 3 and not any(r.overdue for r in notices)


class TestAgenciesActOnTheirQueue:
    def test_the_owner_acknowledges_and_another_agency_may_not(self, town) -> None:
        entered = town.visit(4, days_ago=1)
        oid = obligation_id(town.patient, "R1", entered, "police")
        with pytest.raises(NotTheOwner, match="not on the work queue of police-west") as refused:
            act(town.services.case_record, oid, "police-west", None, "acknowledge")
        assert POLICE not in str(refused.value)  # the owner is not named to another agency
        obligation, changed = act(town.services.case_record, oid, POLICE, "officer-3", "acknowledge")
        assert changed and obligation.status == "acknowledged"
        assert act(town.services.case_record, oid, POLICE, None, "acknowledge")[1] is False

    def test_the_governance_center_marks_its_notice_read(self, town) -> None:
        entered = town.visit(4, days_ago=1)
        notice, changed = act(
            town.services.case_record,
            obligation_id(town.patient, "R1", entered, "governance-notice"),
            GOV,
            None,
            "read",
        )
        assert changed and notice.status == "read"


class TestReplay:
    def test_replaying_the_facts_into_a_fresh_store_decides_exactly_the_same(
        self, town, tmp_path, store_kind, request
    ) -> None:
        town.visit(4, days_ago=40)
        town.miss(35)
        town.miss(28)
        town.miss(21)
        town.visit(1, days_ago=30)  # late: withdraws
        town.send(POLICE, "patient.taken-under-management", {}, days_ago=3)
        town.visit(5, days_ago=2)
        _, derived = split(town.services)
        assert len(derived) >= 6, "the story produced obligations, compensations and completions"
        with replica_of(town.services, store_kind, tmp_path / "replica", request) as replica:
            while replica.policies.run_once():
                pass
            _, again = split(replica)
            assert comparable(replica, again) == comparable(town.services, derived)
