"""A list row's fields kept per patient object and version, over the span its focus grade holds
(``api.lists.RowCache``, ``domain.focus.grade_holds``): always the row ``row_file`` makes."""

from __future__ import annotations

import copy
import gc
from datetime import timedelta

from api.lists import RowCache, row_file, row_of
from domain.focus import IRREGULAR_MEDICATION, grade, grade_holds
from tests.unit.rules.story import NOW, Story

#: Moments from before the story's facts to long after a supply runs out.
MOMENTS = [NOW + timedelta(hours=h) for h in range(-24 * 50, 24 * 60, 7)]


def with_supply() -> Story:
    s = Story()
    s.record("record_visit", 20, face_to_face=True, joint=False, risk_level=2, risk_class="basically_stable")
    s.record("dispense_medication", 5, dispensed_on=(NOW - timedelta(days=5)).date(), days_supplied=30)
    return s


class TestGradeHolds:
    def test_the_grade_is_the_same_everywhere_in_the_span_and_changes_where_it_ends(self) -> None:
        s = with_supply()
        for on in MOMENTS:
            since, until = grade_holds(s.patient, on)
            assert since <= on and (until is None or on < until)
            for t in MOMENTS:
                if since <= t and (until is None or t < until):
                    assert grade(s.patient, t) == grade(s.patient, on), (on, t)
            if until is not None and until > on + timedelta(microseconds=1):  # the supply ran out there
                assert IRREGULAR_MEDICATION in grade(s.patient, until)["categories"]
                assert IRREGULAR_MEDICATION not in grade(s.patient, on)["categories"]

    def test_before_a_fact_the_span_is_the_moment_alone(self) -> None:
        s = with_supply()
        on = NOW - timedelta(days=10)  # the pickup 5 days ago is not yet known then
        since, until = grade_holds(s.patient, on)
        assert since == on and until is not None and until - on == timedelta(microseconds=1)


class TestRowCache:
    def test_a_kept_row_is_the_row_made_anew_at_every_moment(self) -> None:
        s, rows = with_supply(), RowCache()
        for on in MOMENTS + MOMENTS[::-1]:  # forwards, then back in time (a test's clock may go back)
            assert rows.row(s.patient, on) == row_file(s.patient, on), on

    def test_a_new_fact_makes_the_row_again(self) -> None:
        s, rows = with_supply(), RowCache()
        before = rows.row(s.patient, NOW)
        assert rows.row(s.patient, NOW) is before  # kept
        s.record("record_adherence", 1, adherence="none")
        after = rows.row(s.patient, NOW)
        assert after == row_file(s.patient, NOW) and after["focus"] != before["focus"]

    def test_another_object_for_the_patient_makes_the_row_again_and_a_gone_one_takes_its_row_along(self) -> None:
        s, rows = with_supply(), RowCache()
        kept = rows.row(s.patient, NOW)
        other = copy.deepcopy(s.patient)  # the case record read the patient again (or dropped it)
        assert rows.row(other, NOW) is not kept and rows.row(other, NOW) == kept
        del other
        gc.collect()
        assert s.patient.id not in rows._rows

    def test_the_filter_still_runs_for_each_kind(self) -> None:
        s, rows = with_supply(), RowCache()
        full = row_of(s.patient, "health_center", "hc", NOW, rows)
        police = row_of(s.patient, "police_station", "p", NOW, rows)
        assert police == row_of(s.patient, "police_station", "p", NOW, None)
        assert full == row_of(s.patient, "health_center", "hc", NOW, None)
        assert set(police) < set(full)

    def test_a_full_cache_starts_again(self) -> None:
        rows = RowCache(size=2)
        stories = [with_supply() for _ in range(3)]
        for st in stories:
            rows.row(st.patient, NOW)
        assert len(rows._rows) <= 2
        assert all(rows.row(st.patient, NOW) == row_file(st.patient, NOW) for st in stories)
