"""Working-day calendars and rule settings recorded in the global log; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from core.calendar_view import load_year, load_year_file, read_year_file
from core.intake import accept
from core.registry import load_file as load_registry
from core.rule_settings_view import load_file as load_rules
from domain.calendar import CalendarWarning, CalendarYear
from domain.obligation import obligation_id
from domain.rule_settings import RuleSettingsInvalid
from ops.data_files import DEMO_DISTRICT, RULE_SETTINGS_FILE, shipped_years, year_file
from tests.support.agency_client import envelope as agency_envelope

HC = "hc-north"
VILLAGE = "990101-001-v01"
SPRING_FESTIVAL_START = date(2026, 2, 10)


def position(services) -> int:
    return services.case_record.recorder.max_notification_id() or 0


class Clock:
    """A clock the test moves: the recorded time of what is sent next."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class TestWorkingDayCalendar:
    def test_ten_working_days_across_the_spring_festival_2026_land_on_march_2(self, services) -> None:
        for y in shipped_years():
            load_year_file(services.case_record, year_file(y))
        deadline = services.calendar.add_working_days(SPRING_FESTIVAL_START, 10)
        assert deadline == (date(2026, 3, 2), ())

    def test_loading_the_same_years_twice_records_nothing(self, services) -> None:
        first = [load_year_file(services.case_record, year_file(y))[1] for y in shipped_years()]
        before = position(services)
        second = [load_year_file(services.case_record, year_file(y))[1] for y in shipped_years()]
        assert first == [True, True, True] and second == [False, False, False]
        assert position(services) == before

    def test_a_year_with_no_calendar_warns_and_counts_weekdays(self, services) -> None:
        load_year_file(services.case_record, year_file(2026))
        deadline = services.calendar.add_working_days(date(2027, 2, 1), 10)
        assert deadline == (date(2027, 2, 15), (CalendarWarning(2027),))

    def test_a_corrected_year_is_a_new_version_and_decisions_before_it_keep_the_old(self, open_store) -> None:
        services = open_store()
        published = read_year_file(year_file(2026))
        load_year(services.case_record, published)
        as_published = position(services)
        # a correction: the Saturday after the break is no longer a make-up working day
        corrected = CalendarYear.of(
            2026,
            [(h.on, h.name) for h in published.holidays],
            [d for d in published.make_up_days if d != date(2026, 2, 28)],
            "corrected",
        )
        assert load_year(services.case_record, corrected)
        assert services.calendar.add_working_days(SPRING_FESTIVAL_START, 10).day == date(2026, 3, 3)
        assert services.calendar.add_working_days(SPRING_FESTIVAL_START, 10, as_published).day == date(2026, 3, 2)
        restarted = open_store()  # a fresh view reads the same from the log
        assert restarted.calendar.calendar(as_published).add_working_days(SPRING_FESTIVAL_START, 10).day == date(
            2026, 3, 2
        )
        assert restarted.calendar.calendar().year(2026).source == "corrected"


def settings_file(tmp_path: Path, *changes: str) -> Path:
    path = tmp_path / f"rules-{uuid4().hex[:8]}.toml"
    path.write_text('region = "990101"\n' + "".join(changes), encoding="utf-8")
    return path


def change(effective_from: str, **values: str | int) -> str:
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    return f"\n[[change]]\neffective_from = {effective_from}\n{body}"


class Ward:
    """A health center sending high-risk visits; the policy process runs when asked."""

    def __init__(self, services) -> None:
        self.services = services

    def send(self, patient, event_type: str, data: dict, occurred: datetime):
        doc = agency_envelope(HC, f"cn.smd.{event_type}.v1", patient, data, occurred=occurred, actor=None)
        return accept(self.services.case_record, self.services.registry, doc, HC, "test")

    def high_risk_patient(self, clock: Clock, at: datetime, *, decide: bool = True):
        """Registers a patient and records a level-4 visit at ``at``; returns (patient, visit key)."""
        patient = uuid4()
        clock.now = at
        self.send(patient, "patient.registered", {"name": "Test Person", "residence": VILLAGE}, at - timedelta(days=90))
        visit = self.send(
            patient,
            "visit.recorded",
            {"face_to_face": True, "risk_level": 4, "risk_class": "unstable"},
            at - timedelta(hours=1),
        )
        if decide:
            self.services.catch_up(visit.notification_id)
        return patient, visit.key

    def r1_deadline(self, patient, key: str) -> timedelta:
        obligation = self.services.case_record.repository.get(obligation_id(patient, "R1", key, "police"))
        return obligation.due_at - obligation.created_on  # created when the trigger was recorded


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 19, 12, 0, tzinfo=UTC))


@pytest.fixture
def ward(open_store, clock) -> Ward:
    services = open_store(clock=clock)
    load_registry(services.case_record, DEMO_DISTRICT)
    return Ward(services)


class TestRuleSettings:
    def test_a_change_applies_to_triggers_on_or_after_its_date_in_china_time(self, ward, clock, tmp_path) -> None:
        load_rules(
            ward.services.case_record,
            settings_file(
                tmp_path,
                change("2000-01-01", r1_take_under_management="PT24H"),
                change("2026-11-20", r1_take_under_management="PT12H"),
            ),
        )
        # 15:59 UTC is 23:59 on the 19th in China; 16:00 UTC is midnight of the 20th
        before = ward.high_risk_patient(clock, datetime(2026, 11, 19, 15, 59, tzinfo=UTC))
        after = ward.high_risk_patient(clock, datetime(2026, 11, 19, 16, 0, tzinfo=UTC))
        assert ward.r1_deadline(*before) == timedelta(hours=24)
        assert ward.r1_deadline(*after) == timedelta(hours=12)

    def test_asked_as_of_an_earlier_log_position_the_old_value_holds(self, ward, tmp_path) -> None:
        services = ward.services
        load_rules(services.case_record, RULE_SETTINGS_FILE)
        seeds = position(services)
        load_rules(
            services.case_record,
            settings_file(
                tmp_path,
                change("2000-01-01", r1_take_under_management="PT24H", r5_misses_that_mean_lost=3, r5_locate="P3D"),
                change("2026-01-01", r5_locate="P1D"),
            ),
        )
        on = date(2026, 6, 1)
        assert services.rule_settings.settings(on, as_of_position=seeds).r5_locate == timedelta(days=3)
        assert services.rule_settings.settings(on).r5_locate == timedelta(days=1)
        assert services.rule_settings.settings(date(2025, 12, 31)).r5_locate == timedelta(days=3)

    def test_a_trigger_recorded_before_a_change_was_loaded_is_decided_with_the_old_value(
        self, ward, clock, tmp_path
    ) -> None:
        at = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
        earlier = ward.high_risk_patient(clock, at, decide=False)  # recorded, not yet decided
        load_rules(
            ward.services.case_record, settings_file(tmp_path, change("2026-01-01", r1_take_under_management="PT6H"))
        )
        later = ward.high_risk_patient(clock, at)  # the policy process catches up on both now
        assert ward.r1_deadline(*earlier) == timedelta(hours=24)
        assert ward.r1_deadline(*later) == timedelta(hours=6)

    def test_loading_the_same_file_twice_records_nothing(self, services) -> None:
        assert load_rules(services.case_record, RULE_SETTINGS_FILE) == 1
        before = position(services)
        assert load_rules(services.case_record, RULE_SETTINGS_FILE) == 0
        assert position(services) == before

    def test_a_file_for_another_region_is_refused(self, services, tmp_path) -> None:
        path = tmp_path / "other.toml"
        path.write_text('region = "990202"\n', encoding="utf-8")
        with pytest.raises(RuleSettingsInvalid, match="990202"):
            load_rules(services.case_record, path, region=services.settings.region)
