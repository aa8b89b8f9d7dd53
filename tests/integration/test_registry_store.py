"""The registry, agencies and API keys on both stores: SQLite files and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from litestar import Litestar
from litestar.datastructures import State
from litestar.testing import AsyncTestClient
from psycopg import sql

from api.me import MeController
from api.problems import PROBLEM_JSON, exception_handlers
from core.apikeys import ApiKeys
from core.demo_keys import DEMO_KEYS_FILE, ensure_demo_keys
from core.registry import RegistryView, load_file, open_registry
from domain.receipt import Receipt
from domain.registry import AgencyKind
from ops.bootstrap import Services, bootstrap, build_apikeys
from ops.data_files import DEMO_DISTRICT
from ops.settings import Settings, load_settings

pytestmark = pytest.mark.integration

# Local for now; swap for the shared fixtures of tests/support/servers.py later.
PG_HOST = os.environ.get("SMD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("SMD_TEST_PG_PORT", "5432")
PG_USER = os.environ.get("SMD_TEST_PG_USER", "postgres")
PG_ADMIN = f"dbname=test host={PG_HOST} port={PG_PORT} user={PG_USER}"

POLICE = AgencyKind.POLICE_STATION
MOVE = date(2026, 3, 1)
BASE = """
region = "990101"
effective_from = 2025-01-01

[[org_units]]
id = "990101"
kind = "region"
name = "Test District"

[[org_units]]
id = "t1"
kind = "township"
name = "Test Township"
parent = "990101"

[[org_units]]
id = "c1"
kind = "cluster"
name = "Test Cluster One"
parent = "t1"

[[org_units]]
id = "c2"
kind = "cluster"
name = "Test Cluster Two"
parent = "t1"

[[org_units]]
id = "v1"
kind = "village"
name = "Test Village One"
parent = "c1"
population = 1000

[[org_units]]
id = "v2"
kind = "village"
name = "Test Village Two"
parent = "c1"
population = 800

[[org_units]]
id = "v3"
kind = "village"
name = "Test Village Three"
parent = "c2"
population = 1200

[[agencies]]
id = "police-a"
kind = "police_station"
name = "Police A"
jurisdiction = ["c1"]

[[agencies]]
id = "police-b"
kind = "police_station"
name = "Police B"
jurisdiction = ["c2"]
"""
MOVED = (
    BASE
    + """
[[agencies]]
id = "police-a"
kind = "police_station"
name = "Police A"
jurisdiction = ["v1"]
effective_from = 2026-03-01

[[agencies]]
id = "police-b"
kind = "police_station"
name = "Police B"
jurisdiction = ["c2", "v2"]
effective_from = 2026-03-01
"""
)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a fresh store of each kind (PostgreSQL: a throwaway database)."""
    env = {"SMD_DATA_DIR": str(tmp_path / "data")}
    dbname = None
    if request.param == "postgres":
        dbname = f"smd_t_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        env["SMD_DATABASE_URL"] = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"
    yield load_settings(env)
    if dbname is not None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


@dataclass
class World:
    """One process's view of the store."""

    services: Services
    registry: RegistryView
    apikeys: ApiKeys
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.apikeys.close()
            self.services.close()


@pytest.fixture
def open_world(settings: Settings) -> Iterator[Callable[[], World]]:
    """Factory: each call wires another process's view of the same store; all closed after."""
    opened: list[World] = []

    def make() -> World:
        services = bootstrap(settings)
        world = World(services, open_registry(services.case_record, settings.region), build_apikeys(settings))
        opened.append(world)
        return world

    yield make
    for world in reversed(opened):
        world.close()


@pytest.fixture
def world(open_world: Callable[[], World]) -> World:
    return open_world()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def unrelated_event(world: World) -> None:
    """Something else in the global log between registry changes (an inbound message's receipt)."""
    receipt = Receipt.issue(
        key=f"hc-a:{secrets.token_hex(8)}",
        digest="0" * 64,
        event_type="test",
        subject="s",
        agency_id="hc-a",
        outcome="recorded",
        now=datetime.now(UTC),
    )
    world.services.case_record.save(receipt)


def top(world: World) -> int:
    return world.services.case_record.recorder.max_notification_id() or 0


class TestResponsibilityAsOfALogPosition:
    def test_a_village_moved_to_the_other_police_station_changes_hands_from_that_position_on(
        self, world: World, open_world: Callable[[], World], tmp_path: Path
    ) -> None:
        assert load_file(world.services.case_record, write(tmp_path, "base.toml", BASE)) == 9
        unrelated_event(world)
        before_move = top(world)
        assert load_file(world.services.case_record, write(tmp_path, "moved.toml", MOVED)) == 2
        unrelated_event(world)
        after_move = top(world)

        # Known now: v2 belongs to police-b from the date of the move, to police-a before it.
        assert world.registry.responsible("v2", POLICE, MOVE) == "police-b"
        assert world.registry.responsible("v2", POLICE, date(2026, 2, 28)) == "police-a"
        # As known at the earlier log position, police-a is responsible on the same date.
        assert world.registry.responsible("v2", POLICE, MOVE, as_of_position=before_move) == "police-a"
        assert world.registry.responsible("v2", POLICE, MOVE, as_of_position=after_move) == "police-b"
        # Nothing else moved.
        assert world.registry.responsible("v1", POLICE, MOVE) == "police-a"
        assert world.registry.responsible("v3", POLICE, MOVE) == "police-b"

        # Another process replaying the log decides exactly the same at each position.
        other = open_world().registry
        for position in (before_move, after_move, None):
            assert other.responsible("v2", POLICE, MOVE, as_of_position=position) == (
                world.registry.responsible("v2", POLICE, MOVE, as_of_position=position)
            )

    def test_a_view_sees_changes_recorded_by_another_process(
        self, world: World, open_world: Callable[[], World], tmp_path: Path
    ) -> None:
        load_file(world.services.case_record, write(tmp_path, "base.toml", BASE))
        assert world.registry.responsible("v2", POLICE, MOVE) == "police-a"
        load_file(open_world().services.case_record, write(tmp_path, "moved.toml", MOVED))
        assert world.registry.responsible("v2", POLICE, MOVE) == "police-b"

    def test_the_agency_of_a_key_is_resolved_with_its_jurisdiction(self, world: World, tmp_path: Path) -> None:
        load_file(world.services.case_record, write(tmp_path, "base.toml", BASE))
        agency = world.registry.agency("police-a")
        assert agency is not None
        assert (agency.kind, agency.region, agency.jurisdiction) == (POLICE, "990101", ("c1",))
        assert world.registry.agency("nobody") is None


class TestLoadingTheSameFileTwice:
    def test_loading_the_same_registry_file_twice_records_nothing_the_second_time(self, world: World) -> None:
        assert load_file(world.services.case_record, DEMO_DISTRICT) > 0
        position = top(world)
        assert load_file(world.services.case_record, DEMO_DISTRICT) == 0
        assert top(world) == position

    def test_after_a_restart_the_same_file_still_records_nothing(
        self, world: World, open_world: Callable[[], World]
    ) -> None:
        load_file(world.services.case_record, DEMO_DISTRICT)
        world.close()
        again = open_world()
        assert load_file(again.services.case_record, DEMO_DISTRICT) == 0
        assert again.registry.responsible("990101-001-v06", POLICE, date(2026, 7, 1)) == ("police-west")


def app_for(world: World) -> Litestar:
    """A tiny app with the guarded /v1/me route, as create_app will wire it."""
    services = SimpleNamespace(apikeys=world.apikeys, registry=world.registry)
    return Litestar(
        route_handlers=[MeController],
        exception_handlers=exception_handlers,  # type: ignore[arg-type]
        state=State({"services": services}),
    )


class TestApiKeys:
    async def test_a_revoked_key_is_refused_on_the_next_request(
        self, world: World, open_world: Callable[[], World], tmp_path: Path
    ) -> None:
        load_file(world.services.case_record, write(tmp_path, "base.toml", BASE))
        issued = world.apikeys.issue("police-a")
        async with AsyncTestClient(app=app_for(world)) as client:
            ok = await client.get("/v1/me", headers={"Authorization": f"Bearer {issued.key}"})
            assert ok.status_code == 200, ok.text
            assert ok.json() == {
                "agency_id": "police-a",
                "kind": "police_station",
                "name": "Police A",
                "region": "990101",
                "jurisdiction": ["c1"],
                "key_id": issued.key_id,
            }
            # Revoked by another process (the CLI): the serving process has no cache to clear.
            open_world().apikeys.revoke(issued.key_id)
            refused = await client.get("/v1/me", headers={"Authorization": f"Bearer {issued.key}"})
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        problem = refused.json()
        assert problem["type"].endswith("/unauthenticated")
        assert problem["status"] == 401
        assert problem["title"] == "Not authenticated"
        assert "unknown or revoked" in problem["detail"]
        assert issued.key not in refused.text

    async def test_the_key_may_be_sent_as_x_api_key(self, world: World, tmp_path: Path) -> None:
        load_file(world.services.case_record, write(tmp_path, "base.toml", BASE))
        issued = world.apikeys.issue("police-b")
        async with AsyncTestClient(app=app_for(world)) as client:
            response = await client.get("/v1/me", headers={"X-API-Key": issued.key})
        assert response.json()["agency_id"] == "police-b"

    async def test_a_request_without_a_key_is_told_how_to_send_one(self, world: World) -> None:
        async with AsyncTestClient(app=app_for(world)) as client:
            response = await client.get("/v1/me")
        assert response.status_code == 401
        assert "Authorization: Bearer <key>" in response.json()["detail"]

    async def test_a_key_whose_agency_left_the_registry_is_forbidden(self, world: World) -> None:
        issued = world.apikeys.issue("police-z")  # never defined in the (empty) registry
        async with AsyncTestClient(app=app_for(world)) as client:
            response = await client.get("/v1/me", headers={"X-API-Key": issued.key})
        assert response.status_code == 403
        assert "'police-z' is not in the registry" in response.json()["detail"]

    def test_keys_are_not_stored_in_clear(self, world: World, settings: Settings, tmp_path: Path) -> None:
        load_file(world.services.case_record, write(tmp_path, "base.toml", BASE))
        issued = world.apikeys.issue("police-a")
        secret = issued.key.split("_", 2)[2]  # the random part may itself contain "_"
        if settings.postgres is None:
            stored = b"".join(p.read_bytes() for p in settings.data_dir.rglob("*.sqlite*"))
        else:
            pg = settings.postgres
            stored = subprocess.run(
                [
                    "pg_dump",
                    "--data-only",
                    "-h",
                    pg.host,
                    "-p",
                    str(pg.port),
                    "-U",
                    pg.user,
                    pg.dbname,
                ],
                check=True,
                capture_output=True,
            ).stdout
        assert issued.key.encode() not in stored
        assert secret.encode() not in stored
        assert b"police-a" in stored  # positive control: the search does see the stored rows
        assert issued.key_id.encode() in stored

    def test_a_key_is_listed_without_the_key_and_revoked_once(self, world: World) -> None:
        issued = world.apikeys.issue("police-a")
        world.apikeys.issue("police-b")
        (listed,) = world.apikeys.list("police-a")
        assert (listed.key_id, listed.revoked_at) == (issued.key_id, None)
        first = world.apikeys.revoke(issued.key_id)
        assert world.apikeys.revoke(issued.key_id).revoked_at == first.revoked_at
        assert world.apikeys.lookup(issued.key) is None
        assert len(world.apikeys.list()) == 2


class TestDemoKeys:
    def test_demo_keys_are_generated_once_and_reused_on_restart(
        self, world: World, open_world: Callable[[], World], settings: Settings
    ) -> None:
        load_file(world.services.case_record, DEMO_DISTRICT)
        first = ensure_demo_keys(world.apikeys, world.registry, settings.data_dir)
        assert {k.kind for k in first} == {k.value for k in AgencyKind}
        path = settings.data_dir / "keys" / DEMO_KEYS_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        world.close()

        again = open_world()
        second = ensure_demo_keys(again.apikeys, again.registry, settings.data_dir)
        assert second == first
        for key in second:
            info = again.apikeys.lookup(key.key)
            assert info is not None and info.agency_id == key.agency_id

    def test_a_revoked_demo_key_is_replaced(self, world: World, settings: Settings) -> None:
        load_file(world.services.case_record, DEMO_DISTRICT)
        first = ensure_demo_keys(world.apikeys, world.registry, settings.data_dir)
        police = next(k for k in first if k.kind == "police_station")
        world.apikeys.revoke(police.key_id)
        second = ensure_demo_keys(world.apikeys, world.registry, settings.data_dir)
        replaced = next(k for k in second if k.kind == "police_station")
        assert replaced.key != police.key and replaced.agency_id == police.agency_id
        assert [k for k in second if k.kind != "police_station"] == [k for k in first if k.kind != "police_station"]
