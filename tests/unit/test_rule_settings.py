"""Rule settings with effective dates: values by date, the file, and stored events from other versions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from core.rule_settings_view import read_rule_settings_file
from domain.rule_settings import (
    RuleSettingsInvalid,
    RuleSettingsState,
    decode,
    diff,
    format_duration,
    parse_duration,
    parse_rule_settings,
)
from domain.rules.settings import RuleSettings
from ops.data_files import RULE_SETTINGS_FILE


def state(*changes: tuple[date, dict]) -> RuleSettingsState:
    s = RuleSettingsState("990101")
    for day, values in changes:
        s.apply(day, values)
    return s


class TestValues:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("PT24H", timedelta(hours=24)),
            ("P3D", timedelta(days=3)),
            ("P1DT12H", timedelta(hours=36)),
            ("P2W", timedelta(days=14)),
            ("pt90m", timedelta(minutes=90)),
        ],
    )
    def test_durations_are_iso_8601(self, text: str, expected: timedelta) -> None:
        assert parse_duration(text) == expected
        assert parse_duration(format_duration(expected)) == expected

    @pytest.mark.parametrize("text", ["P1M", "P1Y", "24h", "P", "PT", "", "P-1D"])
    def test_months_years_and_other_text_are_not_durations(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_duration(text)

    def test_a_count_must_be_a_positive_integer(self) -> None:
        assert decode("r5_misses_that_mean_lost", 4) == 4
        for bad in (0, -1, "3", 3.0, True):
            with pytest.raises(ValueError):
                decode("r5_misses_that_mean_lost", bad)


class TestSettingsByDate:
    def test_with_nothing_recorded_the_seeds_values_hold(self) -> None:
        assert state().settings(date(2026, 1, 1)) == RuleSettings()

    def test_a_change_holds_from_its_date_on_and_not_before(self) -> None:
        s = state((date(2026, 3, 1), {"r1_take_under_management": "PT12H"}))
        assert s.settings(date(2026, 2, 28)).r1_take_under_management == timedelta(hours=24)
        assert s.settings(date(2026, 3, 1)).r1_take_under_management == timedelta(hours=12)
        assert s.settings(date(2026, 3, 1)).r5_locate == timedelta(days=3)  # fields not named keep theirs

    def test_a_later_recording_for_the_same_date_corrects_the_earlier(self) -> None:
        s = state((date(2026, 3, 1), {"r5_locate": "P1D"}), (date(2026, 3, 1), {"r5_locate": "P2D"}))
        assert s.settings(date(2026, 6, 1)).r5_locate == timedelta(days=2)

    def test_null_withdraws_a_dates_value_and_the_earlier_one_holds_again(self) -> None:
        s = state(
            (date(2025, 1, 1), {"r5_locate": "P5D"}),
            (date(2026, 3, 1), {"r5_locate": "P1D"}),
            (date(2026, 3, 1), {"r5_locate": None}),
        )
        assert s.settings(date(2026, 6, 1)).r5_locate == timedelta(days=5)
        assert date(2026, 3, 1) not in s.raw

    def test_a_field_this_version_does_not_know_is_ignored_and_reported(self) -> None:
        s = state((date(2026, 3, 1), {"r99_added_later": "P1D", "r5_misses_that_mean_lost": 4}))
        assert s.settings(date(2026, 6, 1)) == RuleSettings(r5_misses_that_mean_lost=4)
        assert any("r99_added_later" in note for note in s.ignored)

    def test_a_value_this_version_cannot_read_keeps_the_earlier_value(self) -> None:
        s = state((date(2026, 3, 1), {"r1_take_under_management": 86400}))  # a later version's encoding
        assert s.settings(date(2026, 6, 1)).r1_take_under_management == timedelta(hours=24)
        assert s.ignored


class TestFoldingChanges:
    """What the settings view folds: each change onto a copy of the state before it."""

    CHANGES = (
        (date(2025, 1, 1), {"r5_locate": "P5D"}),
        (date(2026, 3, 1), {"r5_locate": "P1D", "r99_added_later": "P1D"}),
        (date(2026, 3, 1), {"r5_locate": None}),
    )

    def test_a_change_on_a_copy_is_the_same_as_applied_in_place(self) -> None:
        folded = RuleSettingsState("990101")
        for day, values in self.CHANGES:
            folded = folded.with_change(day, values)
        assert folded == state(*self.CHANGES)

    def test_the_state_a_change_is_applied_to_is_left_as_it_was(self) -> None:
        before = state(*self.CHANGES[:2])
        kept = (
            {d: dict(v) for d, v in before.raw.items()},
            {d: dict(v) for d, v in before.values.items()},
            list(before.ignored),
        )
        after = before.with_change(date(2026, 3, 1), {"r5_locate": None, "r99_added_later": "P2D"})
        assert (before.raw, before.values, before.ignored) == kept
        assert before.settings(date(2026, 6, 1)).r5_locate == timedelta(days=1)
        assert after.settings(date(2026, 6, 1)).r5_locate == timedelta(days=5)
        assert len(after.ignored) == 2 and len(before.ignored) == 1


class TestSettingsFile:
    def test_the_shipped_file_holds_the_seeds_values(self) -> None:
        shipped = read_rule_settings_file(RULE_SETTINGS_FILE)
        s = state(*((c.effective_from, c.values) for c in diff(state(), shipped)))
        assert s.settings(date(2026, 1, 1)) == RuleSettings()
        assert diff(s, shipped) == []

    def test_removing_a_change_from_the_file_withdraws_it(self) -> None:
        s = state((date(2026, 3, 1), {"r5_locate": "P1D"}))
        changes = diff(s, parse_rule_settings({"region": "990101", "change": []}))
        assert [(c.effective_from, c.values) for c in changes] == [(date(2026, 3, 1), {"r5_locate": None})]

    def test_an_equal_value_written_differently_is_no_change(self) -> None:
        s = state((date(2026, 3, 1), {"r1_take_under_management": "PT24H"}))
        doc = {"region": "990101", "change": [{"effective_from": date(2026, 3, 1), "r1_take_under_management": "P1D"}]}
        assert diff(s, parse_rule_settings(doc)) == []

    def test_a_misspelt_setting_is_refused_with_the_known_names(self) -> None:
        doc = {"region": "990101", "change": [{"effective_from": date(2026, 3, 1), "r5_locat": "P1D"}]}
        with pytest.raises(RuleSettingsInvalid, match="known settings: r1_take_under_management"):
            parse_rule_settings(doc)

    def test_a_date_listed_twice_is_refused(self) -> None:
        doc = {"region": "990101", "change": [{"effective_from": date(2026, 3, 1)}] * 2}
        with pytest.raises(RuleSettingsInvalid, match="twice"):
            parse_rule_settings(doc)
