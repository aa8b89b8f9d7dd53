"""The parts of "nothing retried forever" and "honest outages" that need no server: the intake's
AckWait setting, the dead-letter outcome, the bounded retries of eventsourcing's recorder, and the
pool options the composition root gives it."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError
from eventsourcing.postgres import PostgresProcessRecorder

from core.postgres import (
    CHECK_AFTER_IDLE,
    RECORDER_ATTEMPTS,
    RECORDER_TOPIC,
    RETRIED_METHODS,
    Recorder,
    _fewer_attempts,
    checking,
)
from integrations.intake import DEAD_LETTER, DELIVERY_LIMIT, dead_letter
from integrations.streams import INTAKE_ACK_WAIT, INTAKE_MAX_DELIVER, intake_consumer_config
from ops.bootstrap import eventsourcing_env
from ops.metrics import reason_label
from ops.settings import SettingsError, load_settings


class TestTheIntakeAckWaitSetting:
    def test_the_default_is_the_consumers_30_seconds(self, tmp_path: Path) -> None:
        settings = load_settings({"SMD_DATA_DIR": str(tmp_path)})
        assert settings.intake_ack_wait_seconds == INTAKE_ACK_WAIT == 30.0

    def test_a_number_of_seconds_is_taken_and_given_to_the_consumer(self, tmp_path: Path) -> None:
        settings = load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_INTAKE_ACK_WAIT_SECONDS": "2"})
        config = intake_consumer_config(ack_wait=settings.intake_ack_wait_seconds)
        assert (config.ack_wait, config.max_deliver) == (2.0, INTAKE_MAX_DELIVER)

    @pytest.mark.parametrize("value", ["0", "0.5", "-1", "soon", "nan", "inf", "3601"])
    def test_a_bad_value_stops_start_up_naming_the_variable(self, tmp_path: Path, value: str) -> None:
        with pytest.raises(SettingsError, match=r"^SMD_INTAKE_ACK_WAIT_SECONDS: "):
            load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_INTAKE_ACK_WAIT_SECONDS": value})


class TestEverySettingIsInTheSettingsObject:
    def test_the_fault_injection_is_a_setting_empty_by_default(self, tmp_path: Path) -> None:
        assert load_settings({"SMD_DATA_DIR": str(tmp_path)}).fault == ""
        given = {"SMD_DATA_DIR": str(tmp_path), "SMD_FAULT": "intake-kill-after-commit"}
        assert load_settings(given).fault == "intake-kill-after-commit"

    def test_no_layer_below_ops_reads_the_environment(self) -> None:
        root = Path(__file__).resolve().parents[2]
        readers = [
            str(path.relative_to(root))
            for package in ("domain", "core", "projections", "api", "integrations")
            for path in sorted((root / package).rglob("*.py"))
            if "os.environ" in path.read_text() or "getenv(" in path.read_text()
        ]
        assert readers == []


class TestDeadLetters:
    def test_a_dead_letter_is_a_rejection_with_the_delivery_limit_and_the_cause_by_type(self) -> None:
        outcome = dead_letter("OperationalError", 100)
        assert (outcome.action, outcome.outcome, outcome.reason) == ("reject", DEAD_LETTER, DELIVERY_LIMIT)
        assert outcome.detail and "not stored after 100 deliveries" in outcome.detail
        assert "OperationalError" in outcome.detail and "same id" in outcome.detail

    def test_the_reason_is_its_own_metrics_label(self) -> None:
        assert reason_label(DELIVERY_LIMIT) == DELIVERY_LIMIT


class TestTheRecorderGivesUpSooner:
    def test_every_method_the_library_retries_is_retried_fewer_times(self) -> None:
        retried = {
            name
            for name, member in inspect.getmembers(PostgresProcessRecorder)
            if callable(member) and hasattr(member, "__wrapped__") and member.__module__ == "eventsourcing.postgres"
        }
        assert retried == set(RETRIED_METHODS), "eventsourcing retries another method: add it to Recorder"
        for name in RETRIED_METHODS:
            ours, theirs = getattr(Recorder, name), getattr(PostgresProcessRecorder, name)
            assert ours is not theirs and ours.__wrapped__ is theirs.__wrapped__, name
        assert RECORDER_ATTEMPTS == 2

    def test_the_attempts_are_bounded(self) -> None:
        calls: list[int] = []

        def refuse() -> None:
            calls.append(1)
            raise OperationalError("server closed the connection unexpectedly")

        refuse.__wrapped__ = refuse  # type: ignore[attr-defined] - as eventsourcing's retry leaves it
        with pytest.raises(OperationalError):
            _fewer_attempts(refuse)()
        assert len(calls) == RECORDER_ATTEMPTS


class TestTheCaseRecordsPool:
    def test_postgres_settings_check_connections_wait_briefly_and_select_our_recorder(self, tmp_path: Path) -> None:
        settings = load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_DATABASE_URL": "postgresql://u@h:5432/d"})
        env = eventsourcing_env(settings)
        assert env["POSTGRES_PRE_PING"] == "y"
        assert env["POSTGRES_CONNECT_TIMEOUT"] == "2"  # seconds a caller waits for a connection (30 by default)
        assert env["PROCESS_RECORDER_TOPIC"] == RECORDER_TOPIC == "core.postgres:Recorder"
        assert "POSTGRES_ENABLE_DB_FUNCTIONS" not in env


class FakeConnection:
    """What ConnectionPool.check_connection touches: autocommit and execute."""

    def __init__(self, broken: bool = False) -> None:
        self.autocommit = True
        self.broken = broken
        self.round_trips = 0

    def execute(self, query: str) -> None:
        self.round_trips += 1
        if self.broken:
            raise psycopg.OperationalError("server closed the connection unexpectedly")


class FakePool:
    def __init__(self) -> None:
        self.checked_all = 0

    def check(self) -> None:
        self.checked_all += 1


class TestThePoolCheck:
    def test_a_connection_idle_for_a_while_is_checked_one_just_used_is_not(self) -> None:
        check = checking(lambda: None)
        conn = FakeConnection()
        check(conn)
        check(conn)  # handed out again at once: a server cannot have restarted in between
        assert conn.round_trips == 1
        time.sleep(CHECK_AFTER_IDLE + 0.02)
        check(conn)
        assert conn.round_trips == 2

    def test_a_broken_connection_makes_the_pool_check_every_idle_one(self) -> None:
        pool = FakePool()
        check = checking(lambda: pool)  # type: ignore[arg-type, return-value]
        with pytest.raises(psycopg.OperationalError):
            check(FakeConnection(broken=True))
        assert pool.checked_all == 1


class TestTheNatsClusterSettings:
    def test_one_server_and_one_replica_by_default(self, tmp_path: Path) -> None:
        settings = load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_NATS_URL": "nats://127.0.0.1:4222"})
        assert (settings.nats_url, settings.nats_replicas) == ("nats://127.0.0.1:4222", 1)

    def test_the_servers_of_a_cluster_are_listed_comma_separated_and_connected_as_nats_py_servers(
        self, tmp_path: Path
    ) -> None:
        from integrations.runner import servers_of, where

        given = " nats://u:secret@n1:4222, nats://n2:4222 ,nats://n3:4222,"
        env = {"SMD_DATA_DIR": str(tmp_path), "SMD_NATS_URL": given, "SMD_NATS_REPLICAS": "3"}
        settings = load_settings(env)
        assert settings.nats_replicas == 3
        assert servers_of(settings.nats_url or "") == ["nats://u:secret@n1:4222", "nats://n2:4222", "nats://n3:4222"]
        assert where(settings.nats_url or "") == "n1:4222,n2:4222,n3:4222"  # no credentials in messages

    def test_every_stream_is_declared_with_the_replicas_asked_for(self) -> None:
        from integrations.streams import REPLICAS, Names, stream_configs

        names = Names("smd", "990101")
        assert {c.num_replicas for c in stream_configs(names)} == {REPLICAS} == {1}
        assert {c.num_replicas for c in stream_configs(names, 3)} == {3}

    def test_the_asyncapi_document_states_the_replicas_the_service_declares(self, tmp_path: Path) -> None:
        from ops.bootstrap import bootstrap

        env = {"SMD_DATA_DIR": str(tmp_path), "SMD_NATS_URL": "nats://n1:4222,nats://n2:4222", "SMD_NATS_REPLICAS": "3"}
        services = bootstrap(load_settings(env))
        try:
            doc = services.asyncapi_document()
        finally:
            services.close()
        assert {s["replicas"] for s in doc["x-smd-streams"]} == {3}
        assert [s["host"] for s in doc["servers"].values()] == ["n1:4222", "n2:4222"]

    @pytest.mark.parametrize("value", ["0", "6", "three", "-1"])
    def test_a_bad_replica_count_stops_start_up_naming_the_variable(self, tmp_path: Path, value: str) -> None:
        with pytest.raises(SettingsError, match=r"^SMD_NATS_REPLICAS: must be a whole number from 1 to 5"):
            load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_NATS_REPLICAS": value})

    def test_a_server_that_is_no_nats_url_is_named_without_its_password(self, tmp_path: Path) -> None:
        with pytest.raises(SettingsError, match=r"^SMD_NATS_URL: .*'n2:4222'") as caught:
            load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_NATS_URL": "nats://n1:4222,http://u:secret@n2:4222"})
        assert "secret" not in str(caught.value)
