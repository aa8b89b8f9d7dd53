"""The pieces of readiness and metrics that need no server: the setting, the bounded labels,
a follower's check text, and one check at a time for a hung store."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from prometheus_client import generate_latest

from core.followers.engine import FollowerStatus
from ops.metrics import OTHER, Metrics, reason_label, status_class
from ops.readiness import SingleFlight, follower_check
from ops.settings import SettingsError, load_settings


class TestTheSetting:
    def test_the_default_is_60_seconds(self, tmp_path) -> None:
        assert load_settings({"SMD_DATA_DIR": str(tmp_path)}).lag_degraded_seconds == 60.0

    def test_a_number_of_seconds_is_taken(self, tmp_path) -> None:
        env = {"SMD_DATA_DIR": str(tmp_path), "SMD_LAG_DEGRADED_SECONDS": "2.5"}
        assert load_settings(env).lag_degraded_seconds == 2.5

    @pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
    def test_a_bad_value_stops_start_up_naming_the_variable(self, tmp_path, value: str) -> None:
        with pytest.raises(SettingsError, match=r"^SMD_LAG_DEGRADED_SECONDS: "):
            load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_LAG_DEGRADED_SECONDS": value})


class TestBoundedLabels:
    @pytest.mark.parametrize(
        "code", ["unknown-org-unit", "patient-not-found", "invalid-envelope", "time-out-of-range", "internal-error"]
    )
    def test_a_refusal_code_of_the_service_is_its_own_label(self, code: str) -> None:
        assert reason_label(code) == code

    @pytest.mark.parametrize("code", ["6f1d2c3b-0000-4000-8000-00000000a001", "free text", "", None])
    def test_anything_else_is_other(self, code: str | None) -> None:
        assert reason_label(code) == OTHER

    def test_status_classes(self) -> None:
        assert [status_class(s) for s in (201, 404, 503, 42)] == ["2xx", "4xx", "5xx", "other"]

    def test_an_unknown_method_or_outcome_is_other(self) -> None:
        m = Metrics()
        m.request("/v1/events", "BREW", 418, 0.01)
        m.message_accepted("http", "whatever")
        text = generate_latest(m.request_seconds).decode() + generate_latest(m.accepted).decode()
        assert 'method="other"' in text and 'status_class="4xx"' in text and "BREW" not in text
        assert 'outcome="other"' in text and "whatever" not in text


def status(**kw: object) -> FollowerStatus:
    base: dict[str, object] = dict(
        name="policies", position=10, head=10, lag_events=0, lag_seconds=0.0, parked=0, held=0
    )
    return FollowerStatus(**(base | kw))  # type: ignore[arg-type]


class TestFollowerCheck:
    def test_ok_when_caught_up_or_behind_less_than_the_limit(self) -> None:
        assert follower_check(status(), 60) == "ok"
        assert follower_check(status(lag_events=5, lag_seconds=59.0), 60) == "ok"

    def test_parked_held_stopped_and_lag_are_named(self) -> None:
        assert follower_check(status(parked=1, held=2), 60) == "1 parked, 2 held"
        assert follower_check(status(stopped_at=7, stopped_reason="ValueError at x.py:1 in f"), 60) == (
            "stopped at log position 7: ValueError at x.py:1 in f"
        )
        lag = follower_check(status(lag_events=30, lag_seconds=90.4), 60)
        assert lag == "30 events behind, the oldest 90 s old (more than SMD_LAG_DEGRADED_SECONDS=60)"


class TestSingleFlight:
    async def test_callers_share_the_running_call_and_time_out_without_starting_another(self) -> None:
        release, calls = threading.Event(), []

        def slow() -> int:
            calls.append(1)
            release.wait(10)
            return len(calls)

        flight = SingleFlight("test-flight", slow)
        try:
            started = time.monotonic()
            results = await asyncio.gather(*(flight(0.2) for _ in range(5)), return_exceptions=True)
            assert all(isinstance(r, TimeoutError) for r in results)
            assert time.monotonic() - started < 2
            assert calls == [1]
            waiting = asyncio.create_task(flight(5))  # joins the run still going
            await asyncio.sleep(0.05)
            release.set()
            assert await waiting == 1  # the same run's answer
            assert await flight(5) == 2  # once it is done, a new run
        finally:
            release.set()
            flight.close()

    async def test_the_call_s_exception_reaches_the_caller(self) -> None:
        def fails() -> int:
            raise ConnectionError("down")

        flight = SingleFlight("test-flight", fails)
        try:
            with pytest.raises(ConnectionError):
                await flight(1)
        finally:
            flight.close()
