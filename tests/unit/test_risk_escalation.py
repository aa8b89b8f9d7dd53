"""The derived RiskEscalated fact: an assessment worse than the one before it by occurred time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.risk_escalation import escalation_id, worsened

T = datetime(2026, 11, 1, tzinfo=UTC)


def a(key: str, days: int, level: int, cls: str, v: int) -> dict:
    return {"key": key, "at": T + timedelta(days=days), "level": level, "class": cls, "v": v}


class TestWorsened:
    def test_a_higher_level_is_an_escalation_with_the_level_before_and_after(self) -> None:
        found = worsened([a("one", 0, 1, "basically_stable", 2), a("two", 5, 4, "unstable", 3)], "two")
        assert found is not None and (found[0]["level"], found[1]["level"]) == (1, 4)

    def test_a_worse_class_at_the_same_level_is_an_escalation_too(self) -> None:
        assert worsened([a("one", 0, 2, "basically_stable", 2), a("two", 5, 2, "unstable", 3)], "two")

    def test_the_first_assessment_and_a_calmer_one_are_not(self) -> None:
        history = [a("one", 0, 3, "unstable", 2), a("two", 5, 1, "basically_stable", 3)]
        assert worsened(history, "one") is None and worsened(history, "two") is None

    def test_a_late_assessment_is_compared_with_the_one_before_it_by_occurred_time(self) -> None:
        history = [
            a("early", 0, 0, "stable", 2),
            a("recent", 10, 4, "unstable", 3),
            a("late", 5, 2, "basically_stable", 4),
        ]
        before, after = worsened(history, "late") or (None, None)
        assert (before["key"], after["key"]) == ("early", "late")  # type: ignore[index]

    def test_the_id_is_the_same_on_every_replay(self) -> None:
        from uuid import uuid4

        p = uuid4()
        assert escalation_id(p, "k") == escalation_id(p, "k") != escalation_id(p, "j")
