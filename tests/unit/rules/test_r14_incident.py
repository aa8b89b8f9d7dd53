"""R14: an incident (肇事肇祸): the governance center reviews it and the police respond."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

from domain.obligation import ObligationKind
from domain.registry import AgencyKind
from domain.rules import decide_from_file
from domain.rules.engine import IMPORTED, Decisions
from domain.rules.r14_incident import R14
from domain.rules.settings import RuleSettings
from domain.values import RiskClass
from tests.unit.rules.story import NOW, Story, without


def incident(s: Story, days_ago: float, incident_id: UUID, key: str | None = None) -> str:
    return s.record(
        "report_incident", days_ago, key=key, incident_id=incident_id, incident_kind="causing_trouble", severity=2
    )


class TestOpens:
    def test_an_incident_opens_the_governance_review_and_the_police_response(self) -> None:
        s = Story()
        s.record("assess_risk", 10, risk_level=3, risk_class=RiskClass.UNSTABLE)
        iid = uuid4()
        incident(s, 1, iid)
        key = str(iid)
        got = [(a.id, a.kind, a.action, a.assignee, a.episode_key, a.due_at, a.risk_level) for a in s.then(R14).opened]
        assert got == [
            (s.oid("R14", key, "governance"), ObligationKind.OBLIGATION, "review_incident", "gov", key,
             NOW + timedelta(days=7), 3),
            (s.oid("R14", key, "police"), ObligationKind.OBLIGATION, "respond_to_incident", "police", key,
             NOW + timedelta(hours=24), 3),
        ]  # fmt: skip

    def test_the_deadlines_are_settings(self) -> None:
        s = Story(settings=RuleSettings(r14_review=timedelta(days=2), r14_police_response=timedelta(hours=2)))
        incident(s, 1, uuid4())
        assert [a.due_at for a in s.then(R14).opened] == [NOW + timedelta(days=2), NOW + timedelta(hours=2)]

    def test_each_incident_has_its_own_pair(self) -> None:
        s = Story()
        first, second = uuid4(), uuid4()
        incident(s, 5, first)
        incident(s, 1, second)
        assert {a.episode_key for a in s.then(R14).opened} == {str(second)}


class TestCompleted:
    def test_the_review_completes_the_governance_centers_part(self) -> None:
        s = Story()
        iid = uuid4()
        incident(s, 5, iid)
        reviewed = s.record("review_incident", 1, incident_id=iid, outcome="reviewed")
        assert s.then(R14) == Decisions(completed=[(s.oid("R14", str(iid), "governance"), reviewed)])

    def test_the_police_response_completes_the_polices_part(self) -> None:
        s = Story()
        iid = uuid4()
        incident(s, 5, iid)
        responded = s.record("respond_to_incident", 1, incident_id=iid, action="attended")
        assert s.then(R14) == Decisions(completed=[(s.oid("R14", str(iid), "police"), responded)])


class TestNothingCancels:
    def test_leaving_the_register_leaves_the_review_open(self) -> None:
        s = Story()
        incident(s, 5, uuid4())
        s.record("deregister", 1, reason="death")
        assert s.then(R14) == Decisions()

    def test_an_imported_incident_and_the_backfill_open_nothing(self) -> None:
        s = Story()
        incident(s, 50, uuid4(), key="ledger:hc:1")
        assert decide_from_file(s.trigger(), s.patient, s.responsible, s.settings).opened == []
        s.record("mark_history_imported", 0, key="import:x", ledger="x", rows=1)
        assert s.then(R14, IMPORTED) == Decisions()


class TestFallback:
    def test_without_a_police_station_on_record_the_governance_center_must_assign_one(self) -> None:
        s = Story(agencies=without(AgencyKind.POLICE_STATION))
        iid = uuid4()
        incident(s, 1, iid)
        assert [(a.id, a.assignee, a.action) for a in s.then(R14).opened] == [
            (s.oid("R14", str(iid), "governance"), "gov", "review_incident"),
            (s.oid("R14", str(iid), "police"), "gov", "assign_police_station"),
        ]

    def test_without_a_governance_center_only_the_police_respond(self) -> None:
        s = Story(agencies=without(AgencyKind.GOVERNANCE_CENTER))
        incident(s, 1, uuid4())
        assert [(a.assignee, a.action) for a in s.then(R14).opened] == [("police", "respond_to_incident")]


class TestDeterministicIds:
    def test_the_ids_are_keyed_by_the_incident_id_the_reporter_chose(self) -> None:
        s = Story()
        iid = UUID("00000000-0000-4000-8000-000000000014")
        incident(s, 1, iid)
        assert [a.id for a in s.then(R14).opened] == [
            s.oid("R14", str(iid), "governance"),
            s.oid("R14", str(iid), "police"),
        ]
        assert s.then(R14) == s.then(R14)
