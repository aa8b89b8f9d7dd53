"""R15, the pure part: what opens when an obligation is marked overdue (``falls_due``). Only
R6's run-out opens something more: the care team's warning, for the current cycle only. (The
overdue mark and the escalation are the scheduler's: tests/integration/test_scheduler.py.)"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules.r04_visit_interval import R4
from domain.rules.r06_medication_supply import R6
from domain.rules.r15_overdue import ON_DUE, falls_due, opens_when_due
from tests.unit.rules.story import Story, ago, without


@dataclass(frozen=True)
class Overdue:
    """The obligation being marked overdue (what ``falls_due`` reads of it)."""

    rule: str
    id: UUID
    action: str = ""


def pickup(s: Story, days_ago: int, days: int = 30) -> str:
    return s.record("dispense_medication", days_ago, dispensed_on=ago(days_ago).date(), days_supplied=days)


class TestWhatOpensWhenDue:
    def test_r6_and_the_moves_r7_r8_open_something_when_they_fall_due(self) -> None:
        assert set(ON_DUE) == {("R6", None), ("R7", "acknowledge_police_notice"), ("R8", "accept_or_reject_move")}
        assert not opens_when_due(Overdue("R8", uuid4(), "accept_or_reject_handover"))  # a handover's

    def test_a_run_out_warns_the_committee_that_runs_the_care_team(self) -> None:
        s = Story()
        key = pickup(s, 40)
        (due,) = s.then(R6).opened
        (warning,) = falls_due(Overdue("R6", due.id), s.history(), s.responsible)
        assert (warning.id, warning.kind, warning.rule, warning.action, warning.assignee, warning.due_at) == (
            s.oid("R6", key, "care-team-warning", s.version_of(key)),
            ObligationKind.NOTICE,
            "R6",
            "medication_run_out_warning",
            "committee",
            None,
        )

    def test_the_incremental_state_answers_the_same(self) -> None:
        s = Story()
        pickup(s, 40)
        (due,) = s.then(R6).opened
        s.record("record_adherence", 5, adherence="regular")  # a later fact the warning does not depend on
        assert falls_due(Overdue("R6", due.id), s.state, s.responsible) == falls_due(
            Overdue("R6", due.id), s.history(), s.responsible
        )

    def test_a_stale_cycle_opens_nothing(self) -> None:
        s = Story()
        pickup(s, 40)
        (due,) = s.then(R6).opened
        pickup(s, 1)  # a new pickup: the cycle that fell due is no longer the current one
        assert falls_due(Overdue("R6", due.id), s.history(), s.responsible) == []

    def test_a_cycle_of_an_episode_that_ended_opens_nothing(self) -> None:
        s = Story()
        pickup(s, 40)
        (due,) = s.then(R6).opened
        s.record("admit", 5, hospital="H", admission_kind="voluntary")
        assert falls_due(Overdue("R6", due.id), s.history(), s.responsible) == []

    def test_other_rules_open_nothing_when_due(self) -> None:
        s = Story()
        (visit,) = s.then(R4).opened
        assert falls_due(Overdue("R4", visit.id), s.history(), s.responsible) == []

    def test_without_a_committee_on_record_nobody_is_warned(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE))
        pickup(s, 40)
        (due,) = s.then(R6).opened
        assert falls_due(Overdue("R6", due.id), s.history(), s.responsible) == []

    def test_the_warning_id_is_the_same_when_it_falls_due_again(self) -> None:
        s = Story()
        pickup(s, 40)
        (due,) = s.then(R6).opened
        first = falls_due(Overdue("R6", due.id), s.history(), s.responsible)
        assert first == falls_due(Overdue("R6", due.id), s.history(), s.responsible)
