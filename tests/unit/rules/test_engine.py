"""What every rule shares: spans keyed by the fact that opened them, the one explicit list of
rules, and the backfill (imported facts decide nothing; the import assesses the current state)."""

from __future__ import annotations

from datetime import timedelta

from domain.rules import PATIENT_RULES, decide_from_file
from domain.rules.engine import IMPORTED, Closing, spans
from tests.unit.rules.story import NOW, SETTINGS, Story, responsible


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


#: Rule modules not in PATIENT_RULES: R15 is the scheduler's; R18's subject is a suspected case,
#: not a patient; R19 is asked beside the list by core.beside_policies (it needs the
#: recorder's agency kind and the working-day calendar, which a History does not carry); R20 too
#: (its deadlines are minutes; it reads the file as of the fact).
BESIDE_THE_LIST = (
    "r07_police_notice",  # needs the registry at the move's destination, like R8 inside the region
    "r08_move_in_region",
    "r08_move_out_manual",  # beside R8 inside the region: the same facts (a move's answer), one place
    "r15_overdue",
    "r18_suspected_case",
    "r19_hospital_new_patient",
    "r20_emergency",
    "r21_reporting_duties",  # not about a patient: opened by the scheduler, completed by reports
    "r22_emergency_access_review",  # needs the working-day calendar, like R19
)


class TestTheRules:
    def test_the_rules_are_one_explicit_list_in_a_fixed_order(self) -> None:
        assert [r.rule for r in PATIENT_RULES] == [
            "R1", "R5", "R3", "R9", "R10", "R11", "R12", "R12", "R13", "R14", "R17", "R17", "R2", "R4", "R6", "R16",
            "R23",
        ]  # fmt: skip

    def test_every_rule_module_holds_one_rule_and_its_rules_are_in_the_list(self) -> None:
        import importlib
        import pkgutil

        import domain.rules as rules

        listed = {id(r) for r in PATIENT_RULES}
        for info in pkgutil.iter_modules(rules.__path__):
            if not info.name.startswith("r") or info.name in BESIDE_THE_LIST:
                continue
            module = importlib.import_module(f"domain.rules.{info.name}")
            number = f"R{int(info.name[1:3])}"
            found = [v for v in vars(module).values() if getattr(v, "rule", None) == number and id(v) in listed]
            assert found, f"{info.name} defines no rule of PATIENT_RULES"

    def test_every_rule_module_has_its_story_test_file(self) -> None:
        import pkgutil
        from pathlib import Path

        import domain.rules as rules

        here = Path(__file__).parent
        for info in pkgutil.iter_modules(rules.__path__):
            if info.name[0] == "r" and info.name[1:3].isdigit():
                assert (here / f"test_{info.name}.py").is_file(), f"no story test file for {info.name}"


class TestBackfill:
    def test_imported_facts_decide_nothing_and_the_backfill_assesses_the_current_state(self) -> None:
        s = Story()
        none = s.record("record_no_guardian", 50, key="ledger:hc:1")
        assert not decide_from_file(s.trigger(), s.patient, responsible, SETTINGS).opened
        s.record("mark_history_imported", 0, key="import:x", ledger="x", rows=1)
        opened = decide_from_file(s.trigger(IMPORTED), s.patient, responsible, SETTINGS).opened
        assert {(a.rule, a.episode_key) for a in opened if a.rule == "R9"} == {("R9", none)}
