"""Authentication from outside, on SQLite and PostgreSQL: strict headers, failed attempts limited
per client address and per key id (429 with Retry-After) while a valid key keeps working, and
403 problems that name no other agency."""

from __future__ import annotations

import asyncio
import json
import secrets
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from api.app import create_app
from core.case_record import utc_now
from core.registry import load_file
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope_json
from tests.support.stores import open_services, store_settings

HC = "hc-north"
POLICE, OTHER_POLICE = "police-east", "police-west"  # police-east covers VILLAGE, police-west does not
VILLAGE = "990101-001-v01"
AGENCY_IDS = {a["id"] for a in tomllib.loads(DEMO_DISTRICT.read_text())["agencies"]}


def wrong_key(key_id: str | None = None) -> str:
    """A well-formed key that is not valid (random secret; the key id given or random)."""
    return f"smd_{key_id or secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


@pytest.fixture
def district(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Services]]:
    """Services of the demo district on the test's store, with the failure limits given."""
    opened: list[Services] = []

    def make(per_address: str = "1000/minute", per_key: str = "1000/minute") -> Services:
        pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
        settings = store_settings(
            store_kind,
            tmp_path / f"data-{len(opened)}",
            pg_url,
            SMD_AUTH_FAILURES_PER_ADDRESS=per_address,
            SMD_AUTH_FAILURES_PER_KEY=per_key,
        )
        services = open_services(settings, clock=utc_now)
        opened.append(services)
        load_file(services.case_record, DEMO_DISTRICT)
        return services

    yield make
    for services in opened:
        services.close()


@asynccontextmanager
async def peers(services: Services) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """One app; ``client(address)`` is a client whose requests come from that address."""
    app = create_app(services)
    clients: dict[str, httpx.AsyncClient] = {}

    def client(address: str) -> httpx.AsyncClient:
        if address not in clients:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            clients[address] = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        return clients[address]

    try:
        yield client
    finally:
        for c in clients.values():
            await c.aclose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestStrictHeaders:
    async def test_exactly_bearer_space_key_or_the_key_alone_in_x_api_key(self, district) -> None:
        services = district()
        key = services.apikeys.issue(HC).key
        async with peers(services) as client:
            c = client("127.0.0.2")
            for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
                r = await c.get("/v1/me", headers=headers)
                assert r.status_code == 200 and r.json()["agency_id"] == HC, (headers, r.text)

    @pytest.mark.parametrize(
        "headers",
        [
            [("Authorization", "bearer {key}")],
            [("Authorization", "BEARER {key}")],
            [("Authorization", "Bearer  {key}")],
            [("Authorization", "Bearer\t{key}")],
            [("Authorization", "Bearer \t{key}")],
            [("Authorization", "\tBearer {key}")],
            [("Authorization", " Bearer {key}")],
            [("Authorization", "Bearer {key} ")],
            [("Authorization", "Bearer {key}\t")],
            [("Authorization", "Bearer {key} {key}")],
            [("Authorization", "Basic {key}")],
            [("Authorization", "Token {key}")],
            [("Authorization", "{key}")],
            [("Authorization", "Bearer")],
            [("Authorization", "Bearer ")],
            [("X-API-Key", " {key}")],
            [("X-API-Key", "{key} ")],
            [("X-API-Key", "\t{key}")],
            [("X-API-Key", "Bearer {key}")],
            [("X-API-Key", "")],
            [("Authorization", "Bearer {key}"), ("Authorization", "Bearer {key}")],
            [("Authorization", "Bearer {key}"), ("X-API-Key", "{key}")],
            [("X-API-Key", "{key}"), ("X-API-Key", "{key}")],
        ],
        ids=lambda h: " + ".join(f"{k}: {v!r}" for k, v in h),
    )
    async def test_anything_else_is_a_401_problem(self, district, headers: list[tuple[str, str]]) -> None:
        services = district()
        key = services.apikeys.issue(HC).key
        async with peers(services) as client:
            r = await client("127.0.0.2").get("/v1/me", headers=[(k, v.format(key=key)) for k, v in headers])
        assert r.status_code == 401, r.text
        assert r.json()["type"].endswith("/unauthenticated")
        assert key not in r.text


class TestFailedAttemptsAreLimited:
    async def test_per_address_a_429_with_retry_after_and_a_valid_key_keeps_working(self, district) -> None:
        services = district(per_address="5/minute", per_key="1000/minute")
        key = services.apikeys.issue(HC).key
        other = services.apikeys.issue(POLICE).key
        async with peers(services) as client:
            attacker, agency = client("127.0.0.2"), client("127.0.0.3")
            statuses = [(await attacker.get("/v1/me", headers=bearer(wrong_key()))).status_code for _ in range(5)]
            assert statuses == [401] * 5
            r = await attacker.get("/v1/me", headers=bearer(wrong_key()))
            assert r.status_code == 429, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"].endswith("/too-many-failed-authentications")
            assert 1 <= int(r.headers["Retry-After"]) <= 60
            assert "Retry-After" not in (await agency.get("/v1/me", headers=bearer(key))).headers

            # 200 more wrong keys (and no key at all): every one 429, none checked as a 401 ...
            for i in range(200):
                headers = bearer(wrong_key()) if i % 2 else {}
                assert (await attacker.get("/v1/me", headers=headers)).status_code == 429
                # ... while the agency's valid keys keep working, from its address and the attacker's
                if i % 20 == 0:
                    assert (await agency.get("/v1/me", headers=bearer(key))).status_code == 200
                    assert (await attacker.get("/v1/me", headers={"X-API-Key": other})).status_code == 200
            # another address is not limited by the attacker's failures
            assert (await agency.get("/v1/me", headers=bearer(wrong_key()))).status_code == 401

    async def test_per_key_id_from_many_addresses_and_the_holder_keeps_working(self, district) -> None:
        services = district(per_address="1000/minute", per_key="3/minute")
        issued = services.apikeys.issue(HC)
        other = services.apikeys.issue(POLICE).key
        async with peers(services) as client:
            # a distributed guesser: a new address for every guess at hc-north's (public) key id
            statuses = [
                (await client(f"127.0.1.{i}").get("/v1/me", headers=bearer(wrong_key(issued.key_id)))).status_code
                for i in range(1, 7)
            ]
            assert statuses == [401, 401, 401, 429, 429, 429]
            r = await client("127.0.1.99").get("/v1/me", headers=bearer(wrong_key(issued.key_id)))
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            # the holder of the key (same key id) is never locked out; other keys are untouched
            assert (await client("127.0.0.3").get("/v1/me", headers=bearer(issued.key))).status_code == 200
            assert (await client("127.0.1.1").get("/v1/me", headers=bearer(issued.key))).status_code == 200
            assert (await client("127.0.1.1").get("/v1/me", headers=bearer(other))).status_code == 200
            assert (await client("127.0.1.1").get("/v1/me", headers=bearer(wrong_key()))).status_code == 401

    async def test_the_limit_lifts_when_the_window_has_passed(self, district) -> None:
        services = district(per_address="2 per 2 seconds", per_key="1000/minute")
        async with peers(services) as client:
            c = client("127.0.0.2")
            assert [(await c.get("/v1/me", headers=bearer(wrong_key()))).status_code for _ in range(3)] == [
                401,
                401,
                429,
            ]
            await asyncio.sleep(2.1)
            assert (await c.get("/v1/me", headers=bearer(wrong_key()))).status_code == 401

    async def test_the_same_limit_guards_every_route_behind_a_key(self, district) -> None:
        services = district(per_address="3/minute", per_key="1000/minute")
        async with peers(services) as client:
            c = client("127.0.0.2")
            for path in ("/v1/me", "/v1/work-queue", "/v1/status"):
                await c.get(path, headers=bearer(wrong_key()))
            r = await c.post("/v1/events", json={}, headers=bearer(wrong_key()))
            assert r.status_code == 429 and "Retry-After" in r.headers


class TestForbiddenNamesNoOtherAgency:
    async def test_acting_on_another_agencys_obligation_is_a_403_that_names_neither_the_owner_nor_anyone(
        self, district
    ) -> None:
        services = district()
        keys = {a: services.apikeys.issue(a).key for a in (HC, POLICE, OTHER_POLICE)}
        patient = uuid4()
        occurred = datetime.now(UTC) - timedelta(hours=1)

        def envelope(event_type: str, data: dict) -> dict:
            return envelope_json(HC, event_type, patient, data, occurred=occurred, actor=None)

        async with peers(services) as client:
            c = client("127.0.0.2")
            registration = envelope("cn.smd.patient.registered.v1", {"name": "Test Person", "residence": VILLAGE})
            assert (await c.post("/v1/events", json=registration, headers=bearer(keys[HC]))).status_code == 201
            visit = envelope(
                "cn.smd.visit.recorded.v1", {"face_to_face": True, "risk_level": 4, "risk_class": "unstable"}
            )
            r = await c.post("/v1/events?wait=true", json=visit, headers=bearer(keys[HC]))
            assert r.status_code == 201 and r.json()["processed"] is True
            items = (await c.get("/v1/work-queue", headers=bearer(keys[POLICE]))).json()["items"]
            [oid] = [i["obligation_id"] for i in items if i["rule"] == "R1" and i["kind"] == "obligation"]

            for action in ("acknowledge", "complete", "read"):
                r = await c.post(f"/v1/obligations/{oid}/{action}", headers=bearer(keys[OTHER_POLICE]))
                assert r.status_code == 403, r.text
                assert r.json()["type"].endswith("/not-the-owner")
                named = {a for a in AGENCY_IDS if a in json.dumps(r.json())}
                assert named <= {OTHER_POLICE}, named  # at most the caller itself
                assert POLICE not in r.text and "Test Person" not in r.text
            r = await c.post(f"/v1/obligations/{oid}/acknowledge", headers=bearer(keys[POLICE]))
            assert r.status_code == 200 and r.json()["status"] == "acknowledged"
