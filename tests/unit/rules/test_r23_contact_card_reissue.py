"""R23: a change of a role the emergency contact card prints: the committee reissues the card."""

from __future__ import annotations

from domain.obligation import ObligationKind
from domain.personal import CareTeamMember
from domain.registry import AgencyKind
from domain.rules import decide_from_file
from domain.rules.engine import IMPORTED, Decisions
from domain.rules.r23_contact_card_reissue import R23
from tests.unit.rules.story import Story, without


def assign(s: Story, days_ago: float, role: str, name: str = "Staff A", key: str | None = None) -> str:
    member = CareTeamMember(name=name, phone="13800000000")
    return s.record("assign_care_team_member", days_ago, key=key, role=role, member=member)


class TestOpens:
    def test_a_new_community_police_officer_tells_the_committee_to_reissue_the_card(self) -> None:
        s = Story()
        key = assign(s, 1, "community_police")
        got = [(a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at) for a in s.then(R23).opened]
        assert got == [(s.oid("R23", key, "committee"), ObligationKind.NOTICE, "reissue_contact_card", "committee",
                        key, None)]  # fmt: skip

    def test_each_role_on_the_card_replaced_or_removed_is_a_notice_of_its_own(self) -> None:
        s = Story()
        assign(s, 9, "mental_health_staff", "Staff B")
        assert [a.action for a in s.then(R23).opened] == ["reissue_contact_card"]
        replaced = assign(s, 5, "mental_health_staff", "Staff C")
        assert [a.episode_key for a in s.then(R23).opened] == [replaced]
        assign(s, 3, "community_worker")
        removed = s.record("remove_care_team_member", 1, role="community_worker")
        assert [a.episode_key for a in s.then(R23).opened] == [removed]

    def test_without_a_committee_on_record_the_governance_center_is_told(self) -> None:
        s = Story(agencies=without(AgencyKind.COMMITTEE))
        assign(s, 1, "community_worker")
        assert [(a.assignee, a.action) for a in s.then(R23).opened] == [("gov", "reissue_contact_card")]


class TestOpensNothing:
    def test_the_guardian_and_the_grid_worker_are_not_on_the_card(self) -> None:
        s = Story()
        assign(s, 2, "guardian")
        assert s.then(R23) == Decisions()
        assign(s, 1, "grid_worker")
        assert s.then(R23) == Decisions()

    def test_no_card_to_reissue_in_hospital_or_after_the_register(self) -> None:
        s = Story()
        s.record("admit", 5, hospital="Lantern Bay", admission_kind="voluntary")
        assign(s, 4, "community_police")
        assert s.then(R23) == Decisions()
        s.record("discharge", 3)
        assign(s, 2, "community_police", "Officer B")
        assert [a.action for a in s.then(R23).opened] == ["reissue_contact_card"]
        s.record("deregister", 1, reason="death")
        assign(s, 1.5, "community_worker")  # dated before it, recorded after it: nobody to give a card to
        assert s.then(R23) == Decisions()

    def test_an_imported_change_and_the_backfill_open_nothing(self) -> None:
        s = Story()
        assign(s, 50, "community_police", key="ledger:committee:1")
        assert decide_from_file(s.trigger(), s.patient, s.responsible, s.settings).opened == []
        s.record("mark_history_imported", 0, key="import:x", ledger="x", rows=1)
        assert s.then(R23, IMPORTED) == Decisions()
