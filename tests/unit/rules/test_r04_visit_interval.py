"""R4: a registered patient at home is visited at the interval the risk class asks (unstable
every 2 weeks, basically stable monthly, stable every 3 months)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.engine import IMPORTED, Decisions
from domain.rules.r04_visit_interval import R4
from domain.rules.settings import RuleSettings
from domain.values import RiskClass
from tests.unit.rules.story import NOW, Story, ago, replay, without


def visit(s: Story, days_ago: float, level: int = 0, cls: RiskClass = RiskClass.STABLE, **kw) -> str:
    return s.record("record_visit", days_ago, face_to_face=True, joint=False, risk_level=level, risk_class=cls, **kw)


class TestOpens:
    def test_the_registration_opens_the_first_visit_for_the_health_center(self) -> None:
        s = Story()
        (a,) = s.then(R4).opened
        assert (a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at) == (
            s.oid("R4", "registration", "visit", 1),
            ObligationKind.OBLIGATION,
            "follow_up_visit",
            "hc",
            "registration",
            ago(300) + timedelta(days=14),
        )

    @pytest.mark.parametrize(
        "level, cls, days",
        [(3, RiskClass.UNSTABLE, 14), (1, RiskClass.BASICALLY_STABLE, 30), (0, RiskClass.STABLE, 90)],
    )
    def test_the_next_visit_is_due_at_the_interval_its_class_asks(self, level, cls, days) -> None:
        s = Story()
        visit(s, 5, level, cls)
        assert [a.due_at for a in s.then(R4).opened] == [ago(5) + timedelta(days=days)]

    def test_the_intervals_are_settings(self) -> None:
        s = Story(settings=RuleSettings(r4_stable=timedelta(days=60), r4_first_visit=timedelta(days=3)))
        assert [a.due_at for a in s.then(R4).opened] == [ago(300) + timedelta(days=3)]
        visit(s, 5)
        assert [a.due_at for a in s.then(R4).opened] == [ago(5) + timedelta(days=60)]

    def test_a_discharge_opens_a_new_episode_keyed_by_the_discharge(self) -> None:
        s = Story()
        s.record("admit", 30, hospital="H", admission_kind="voluntary")
        discharged = s.record("discharge", 5)
        (a,) = s.then(R4).opened
        assert (a.id, a.episode_key) == (s.oid("R4", discharged, "visit", s.version_of(discharged)), discharged)


class TestCycles:
    def test_r4_cycles_are_numbered_by_their_anchors_version_so_a_late_visit_renumbers_nothing(self) -> None:
        s = Story()
        assert [a.id for a in s.then(R4).opened] == [s.oid("R4", "registration", "visit", 1)]
        s.record("record_visit", 10, face_to_face=True, joint=False, risk_level=0, risk_class=RiskClass.STABLE)
        d = s.then(R4)
        assert [(a.id, a.due_at) for a in d.opened] == [
            (s.oid("R4", "registration", "visit", 2), NOW - timedelta(days=10) + timedelta(days=90))
        ]
        s.record("record_visit", 30, face_to_face=True, joint=False, risk_level=0, risk_class=RiskClass.STABLE)
        d = s.then(R4)
        assert (d.opened, d.completed) == ([], [])

    def test_a_visit_completes_the_cycle_and_opens_the_next(self) -> None:
        s = Story()
        first = visit(s, 40)
        second = visit(s, 5, 1, RiskClass.BASICALLY_STABLE)
        d = s.then(R4)
        assert d.completed == [(s.oid("R4", "registration", "visit", s.version_of(first)), second)]
        assert [(a.id, a.due_at) for a in d.opened] == [
            (s.oid("R4", "registration", "visit", s.version_of(second)), ago(5) + timedelta(days=30))
        ]

    def test_r4_after_a_backfill_the_live_cycle_overtaken_by_imported_visits_is_done(self) -> None:
        s = Story()
        s.then(R4)  # the live registration opened cycle 1
        visit = s.record(
            "record_visit",
            10,
            key="ledger:hc:9",
            face_to_face=True,
            joint=False,
            risk_level=0,
            risk_class=RiskClass.STABLE,
        )
        s.record("mark_history_imported", 0, key="import:x", ledger="x", rows=1)
        d = s.then(R4, IMPORTED)
        assert [a.id for a in d.opened] == [s.oid("R4", "registration", "visit", 2)]
        assert d.completed == [(s.oid("R4", "registration", "visit", 1), visit)]


class TestCancelled:
    def test_an_admission_cancels_the_cycle(self) -> None:
        s = Story()
        admitted = s.record("admit", 5, hospital="H", admission_kind="voluntary")
        assert s.then(R4) == Decisions(
            cancelled=[(s.oid("R4", "registration", "visit", 1), "the patient was admitted to hospital", admitted)]
        )

    def test_leaving_the_register_cancels_the_cycle(self) -> None:
        s = Story()
        v = visit(s, 20)
        left = s.record("deregister", 5, reason="death")
        assert s.then(R4).cancelled == [
            (s.oid("R4", "registration", "visit", s.version_of(v)), "the patient left the register (death)", left)
        ]


class TestFallback:
    def test_without_a_health_center_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER))
        assert [(a.assignee, a.action) for a in s.then(R4).opened] == [("gov", "assign_health_center")]

    def test_with_neither_on_record_nothing_opens(self) -> None:
        s = Story(agencies=without(AgencyKind.HEALTH_CENTER, AgencyKind.GOVERNANCE_CENTER))
        assert s.then(R4).opened == []


class TestDeterministicIds:
    def test_deciding_the_same_fact_again_gives_the_same_cycle_id(self) -> None:
        s = Story()
        v = visit(s, 5)
        assert s.then(R4) == s.then(R4)
        assert [a.id for a in s.then(R4).opened] == [s.oid("R4", "registration", "visit", s.version_of(v))]


class TestAdmissionAndDischargeAtTheSameTime:
    """At the same occurred time, the fact recorded later is the later one."""

    def test_a_discharge_recorded_after_the_admission_puts_the_patient_at_home(self) -> None:
        s = Story()
        s.record("admit", 5, hospital="H", admission_kind="voluntary")
        discharged = s.record("discharge", 5)
        *_, last = replay(s, R4)
        assert [(a.episode_key, a.due_at) for a in last.opened] == [(discharged, ago(5) + timedelta(days=14))]
        assert s.then(R4) == last

    def test_an_admission_recorded_after_the_discharge_puts_the_patient_in_hospital(self) -> None:
        s = Story()
        s.record("admit", 20, hospital="H", admission_kind="voluntary")
        discharged = s.record("discharge", 5)
        admitted = s.record("admit", 5, hospital="H", admission_kind="involuntary")
        *_, last = replay(s, R4)
        assert last == Decisions(
            cancelled=[
                (
                    s.oid("R4", discharged, "visit", s.version_of(discharged)),
                    "the patient was admitted to hospital",
                    admitted,
                )
            ]
        )
