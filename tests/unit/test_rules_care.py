"""The care rules as pure policies: a patient's facts and a trigger in, decisions out (no store)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import count
from uuid import uuid4

from domain.identity import CHINA_TZ
from domain.obligation import ObligationKind, obligation_id
from domain.patient import Patient
from domain.personal import PersonalDetails
from domain.registry import AgencyKind
from domain.rules import PATIENT_RULES, decide_from_file
from domain.rules.engine import IMPORTED, Closing, Trigger, spans
from domain.rules.entries import FullHistory
from domain.rules.r13_aid_review import R13
from domain.rules.r17_three_tier_review import R17_CITY
from domain.rules.r18_suspected_case import r18_suspected_case, weekdays
from domain.rules.settings import RuleSettings
from domain.values import Provenance

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
AGENCIES = {
    AgencyKind.HEALTH_CENTER: "hc",
    AgencyKind.POLICE_STATION: "police",
    AgencyKind.COMMITTEE: "committee",
    AgencyKind.GOVERNANCE_CENTER: "gov",
    AgencyKind.CIVIL_AFFAIRS: "civil",
    AgencyKind.PSYCHIATRIC_HOSPITAL: "hospital",
}
SETTINGS = RuleSettings()


def responsible(kind: AgencyKind) -> str | None:
    return AGENCIES.get(kind)


class Story:
    """One patient's facts, recorded one by one; ``then`` asks a rule about the last one."""

    def __init__(self) -> None:
        self.n = count(1)
        self.patient = Patient.register(uuid4(), self.by(300), NOW, PersonalDetails(name="Test Person"), "v-01")

    def by(self, days_ago: float, key: str | None = None) -> Provenance:
        return Provenance("hc", None, NOW - timedelta(days=days_ago), key or f"hc:{next(self.n)}")

    def record(self, command: str, days_ago: float, key: str | None = None, **kw) -> str:
        by = self.by(days_ago, key)
        getattr(self.patient, command)(by, NOW, **kw)
        return by.message_id

    def trigger(self, topic: str | None = None) -> Trigger:
        last = self.patient.pending_events[-1]
        return Trigger(
            patient_id=self.patient.id,
            message_id=getattr(last, "message_id", "registration"),
            position=self.patient.version,
            recorded_at=NOW,
            residence="v-01",
            topic=topic or type(last).TOPIC,
            version=self.patient.version,
        )

    def then(self, rule, topic: str | None = None):
        return rule(self.trigger(topic), self.history(), responsible, SETTINGS)

    def history(self) -> FullHistory:
        return FullHistory(self.patient, self.patient.version)

    def oid(self, rule: str, key: str, role: str, cycle: int | None = None):
        return obligation_id(self.patient.id, rule, key, role, cycle)


class TestSpans:
    def test_a_span_is_keyed_by_the_fact_that_opened_it_and_a_late_older_fact_keeps_the_key(self) -> None:
        facts = [
            {"at": NOW - timedelta(days=2), "key": "b", "v": 2, "on": True},
            {"at": NOW - timedelta(days=9), "key": "c", "v": 3, "on": True},
        ]  # late, older

        def holds(known):
            return max(known, key=lambda e: e["at"])["on"]

        (span,) = spans(facts, holds, lambda known, fact: Closing(reason="off"))
        assert (span.key, span.opened_v, span.is_open) == ("b", 2, True)

    def test_the_end_says_how_it_ended_and_one_fact_is_one_step(self) -> None:
        # a fact that is two entries (a visit and its assessment) is one step: no empty span inside it
        facts = [
            {"at": NOW, "key": "a", "v": 1, "on": True},
            {"at": NOW, "key": "a", "v": 1, "on": False},
            {"at": NOW, "key": "b", "v": 2, "on": True},
            {"at": NOW, "key": "c", "v": 3, "on": False},
        ]
        found = spans(facts, lambda known: known[-1]["on"], lambda known, fact: Closing(completed_by=fact["key"]))
        assert [(s.key, s.closed_by, s.closing) for s in found] == [("b", "c", Closing(completed_by="c"))]


class TestEventRules:
    def test_r13_a_grant_completes_and_a_restated_hardship_after_a_decision_opens_nothing(self) -> None:
        s = Story()
        flagged = s.record("record_circumstances", 10, economic_status="extreme_poverty")
        assert [a.assignee for a in s.then(R13).opened] == ["civil"]
        granted = s.record("grant_aid", 5, aid_type="extreme_poverty_support")
        assert s.then(R13).completed == [(s.oid("R13", flagged, "civil-affairs"), granted)]
        s.record("record_circumstances", 1, economic_status="extreme_poverty")
        assert not s.then(R13).opened

    def test_r17_the_city_review_waits_for_an_unstable_finding(self) -> None:
        s = Story()
        s.record("record_review", 5, tier="community", risk_level=1, risk_class="basically_stable")
        assert not s.then(R17_CITY).opened
        township = s.record("record_review", 3, tier="township", risk_level=3, risk_class="unstable")
        (a,) = s.then(R17_CITY).opened
        assert (a.assignee, a.episode_key, a.due_at) == ("hospital", township, NOW + timedelta(days=15))

    def test_imported_facts_decide_nothing_and_the_backfill_assesses_the_current_state(self) -> None:
        s = Story()
        none = s.record("record_no_guardian", 50, key="ledger:hc:1")
        assert not decide_from_file(s.trigger(), s.patient, responsible, SETTINGS).opened
        s.record("mark_history_imported", 0, key="import:x", ledger="x", rows=1)
        opened = decide_from_file(s.trigger(IMPORTED), s.patient, responsible, SETTINGS).opened
        assert {(a.rule, a.episode_key) for a in opened if a.rule == "R9"} == {("R9", none)}

    def test_the_rules_are_one_explicit_list_in_a_fixed_order(self) -> None:
        assert [r.rule for r in PATIENT_RULES] == [
            "R1", "R5", "R3", "R9", "R10", "R11", "R12", "R12", "R13", "R14", "R17", "R17", "R2", "R4", "R6", "R16",
        ]  # fmt: skip

    def test_every_rule_module_holds_one_rule_and_its_rules_are_in_the_list(self) -> None:
        import importlib
        import pkgutil

        import domain.rules as rules

        listed = {id(r) for r in PATIENT_RULES}
        for info in pkgutil.iter_modules(rules.__path__):
            if not info.name.startswith("r") or info.name in ("r15_overdue", "r18_suspected_case"):
                continue  # R15 is the scheduler's; R18's subject is a suspected case, not a patient
            module = importlib.import_module(f"domain.rules.{info.name}")
            number = f"R{int(info.name[1:3])}"
            found = [v for v in vars(module).values() if getattr(v, "rule", None) == number and id(v) in listed]
            assert found, f"{info.name} defines no rule of PATIENT_RULES"


class TestSuspectedCase:
    class Case:
        id = uuid4()

    def test_r18_counts_working_days_from_the_recorded_china_date_to_the_end_of_the_last_day(self) -> None:
        t = Trigger(
            patient_id=self.Case.id,
            message_id="c:1",
            position=1,
            recorded_at=NOW,
            residence="v-01",
            topic="smd.SuspectedCaseReported",
            version=1,
        )
        (a,) = r18_suspected_case(t, self.Case, responsible, SETTINGS).opened
        assert (a.assignee, a.kind, a.episode_key) == ("hc", ObligationKind.OBLIGATION, str(self.Case.id))
        assert a.due_at == datetime.combine(date(2026, 12, 5), time(0), CHINA_TZ)  # Fri 20 Nov + 10 → Fri 4 Dec

    def test_the_weekday_fallback_skips_weekends(self) -> None:
        assert weekdays(date(2026, 11, 20), 1) == date(2026, 11, 23)
        assert weekdays(date(2026, 11, 20), 10) == date(2026, 12, 4)
