"""Pages of the work queue and the oversight list, on SQLite and on PostgreSQL: open items unless
the caller asks for done or all ones, and cursor pages that show every item once while new
obligations keep arriving."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.intake import accept
from core.registry import load_file
from ops.bench_pages import generate
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from projections.work_queue import assignee_branches, oversight_branches
from tests.support.agency_client import envelope as agency_envelope

HC, POLICE, GOVERNANCE = "hc-north", "police-east", "gov-willowbrook"
#: villages and a community of cluster c1 and m1: hc-north records, police-east and
#: gov-willowbrook receive
RESIDENCES = ("990101-001-v01", "990101-001-v02", "990101-001-v03", "990101-001-v04", "990101-001-m1")


def envelope(event_type: str, subject: UUID, data: dict[str, Any]) -> bytes:
    occurred = datetime.now(UTC) - timedelta(hours=1)
    return agency_envelope(HC, f"cn.smd.{event_type}.v1", subject, data, occurred=occurred, actor=None)


def high_risk_patient(services: Services, residence: str) -> UUID:
    """A patient assessed at level 3: the police get an R1 obligation (and others), the governance
    center a notice (level 3, not 4: a level-4 visit at home also starts the emergency flow)."""
    patient = uuid4()
    visit = {"face_to_face": True, "joint": False, "risk_level": 3, "risk_class": "unstable"}
    for event_type, data in (
        ("patient.registered", {"name": "Test Person", "residence": residence}),
        ("visit.recorded", visit),
    ):
        accept(services.case_record, services.registry, envelope(event_type, patient, data), HC, "test")
    services.catch_up(services.case_record.recorder.max_notification_id() or 0)
    return patient


@pytest.fixture
def town(open_store):
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in (HC, POLICE, GOVERNANCE)}
    return services, keys


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def ids(client, path: str, key: str) -> list[str]:
    r = await client.get(path, headers=auth(key))
    assert r.status_code == 200, r.text
    return [i["obligation_id"] for i in r.json()["items"]]


async def every_page(client, path: str, key: str, between=lambda: None) -> list[str]:
    """Follow `next` to the end, calling ``between`` after each page (more facts arriving)."""
    seen: list[str] = []
    after = 0
    while True:
        sep = "&" if "?" in path else "?"
        r = await client.get(f"{path}{sep}limit=2&after={after}", headers=auth(key))
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [i["obligation_id"] for i in body["items"]]
        if body["next"] is None:
            return seen
        after = body["next"]
        between()


class TestOpenItemsByDefault:
    async def test_the_work_queue_shows_open_items_unless_asked_for_done_or_all(self, town) -> None:
        services, keys = town
        for residence in RESIDENCES[:3]:
            high_risk_patient(services, residence)
        async with AsyncTestClient(create_app(services)) as client:
            r1 = await ids(client, "/v1/work-queue", keys[POLICE])
            assert len(r1) >= 3  # an R1 per patient, and whatever else the rules give the police
            # the police take one patient in and declare it done
            r = await client.post(f"/v1/obligations/{r1[0]}/complete", headers=auth(keys[POLICE]))
            assert r.status_code == 200 and r.json()["status"] == "completed", r.text
            services.catch_up(services.case_record.recorder.max_notification_id() or 0)

            assert await ids(client, "/v1/work-queue", keys[POLICE]) == r1[1:]
            assert await ids(client, "/v1/work-queue?status=open", keys[POLICE]) == r1[1:]
            assert await ids(client, "/v1/work-queue?status=done", keys[POLICE]) == r1[:1]
            assert await ids(client, "/v1/work-queue?status=all", keys[POLICE]) == r1

    async def test_a_notice_read_leaves_the_default_queue_and_stays_under_done(self, town) -> None:
        services, keys = town
        high_risk_patient(services, RESIDENCES[0])
        async with AsyncTestClient(create_app(services)) as client:
            [notice] = await ids(client, "/v1/work-queue", keys[GOVERNANCE])
            r = await client.post(f"/v1/obligations/{notice}/read", headers=auth(keys[GOVERNANCE]))
            assert r.status_code == 200, r.text
            services.catch_up(services.case_record.recorder.max_notification_id() or 0)
            assert await ids(client, "/v1/work-queue", keys[GOVERNANCE]) == []
            assert await ids(client, "/v1/work-queue?status=done", keys[GOVERNANCE]) == [notice]

    async def test_the_oversight_list_shows_every_obligation_unless_filtered(self, town) -> None:
        services, keys = town
        for residence in RESIDENCES[:2]:
            high_risk_patient(services, residence)
        async with AsyncTestClient(create_app(services)) as client:
            items = (await client.get("/v1/work-queue", headers=auth(keys[POLICE]))).json()["items"]
            r1 = [i["obligation_id"] for i in items if i["kind"] == "obligation"]
            await client.post(f"/v1/obligations/{r1[1]}/complete", headers=auth(keys[POLICE]))
            services.catch_up(services.case_record.recorder.max_notification_id() or 0)
            everything = await ids(client, "/v1/oversight/obligations", keys[GOVERNANCE])
            assert set(r1) <= set(everything)
            assert everything == await ids(client, "/v1/oversight/obligations?status=all", keys[GOVERNANCE])
            open_ = await ids(client, "/v1/oversight/obligations?status=open", keys[GOVERNANCE])
            done = await ids(client, "/v1/oversight/obligations?status=done", keys[GOVERNANCE])
            assert r1[0] in open_ and r1[1] in done and sorted(open_ + done) == sorted(everything)

    async def test_an_unknown_status_filter_is_a_400_problem_naming_the_parameter(self, town) -> None:
        services, keys = town
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.get("/v1/work-queue?status=closed", headers=auth(keys[POLICE]))
            assert r.status_code == 400, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["detail"] == "status: Invalid enum value 'closed'"

    async def test_a_cursor_beyond_any_log_position_is_a_400_problem_not_a_crash(self, town) -> None:
        services, keys = town
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.get(f"/v1/work-queue?after={10**30}", headers=auth(keys[POLICE]))
            assert r.status_code == 400, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "after" in r.json()["detail"]

    async def test_the_openapi_document_gives_the_status_filter_and_the_cursor(self, town) -> None:
        services, _ = town
        async with AsyncTestClient(create_app(services)) as client:
            doc = (await client.get("/schema/openapi.json")).json()
        for path, default in (("/v1/work-queue", "open"), ("/v1/oversight/obligations", "all")):
            params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
            assert params["status"]["schema"]["enum"] == ["open", "done", "all"]
            assert params["status"]["schema"]["default"] == default
            assert "`next`" in params["after"]["description"]


class TestCursorPages:
    async def test_paging_the_work_queue_while_obligations_arrive_shows_each_once_and_loses_none(self, town) -> None:
        services, keys = town
        for i in range(5):
            high_risk_patient(services, RESIDENCES[i % len(RESIDENCES)])
        arriving = iter(range(4))

        def another() -> None:  # a new obligation lands between two pages
            if next(arriving, None) is not None:
                high_risk_patient(services, RESIDENCES[0])

        async with AsyncTestClient(create_app(services)) as client:
            seen = await every_page(client, "/v1/work-queue", keys[POLICE], another)
            assert len(seen) == len(set(seen)), "no item twice"
            assert seen == await ids(client, "/v1/work-queue?limit=500", keys[POLICE]), "none lost, in order"
            assert len(seen) >= 9

    async def test_paging_the_oversight_list_across_residences_shows_each_once_and_loses_none(self, town) -> None:
        services, keys = town
        for i in range(6):
            high_risk_patient(services, RESIDENCES[i % len(RESIDENCES)])
        arriving = iter(RESIDENCES[::-1])

        def another() -> None:
            residence = next(arriving, None)
            if residence is not None:
                high_risk_patient(services, residence)

        async with AsyncTestClient(create_app(services)) as client:
            path = "/v1/oversight/obligations?status=open"
            seen = await every_page(client, path, keys[GOVERNANCE], another)
            assert len(seen) == len(set(seen)), "no item twice"
            assert seen == await ids(client, f"{path}&limit=500", keys[GOVERNANCE]), "none lost, in order"
            assert len(seen) >= 11


def test_the_oversight_merge_gives_the_same_pages_when_the_residences_need_several_queries(
    open_store,
) -> None:
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    for i in range(8):
        high_risk_patient(services, RESIDENCES[i % len(RESIDENCES)])
    queue = services.work_queue
    units = services.units_within(["990101-001"])
    one_query = [r.obligation_id for r in queue.obligations_in(units, 0, 500)]
    assert len(one_query) >= 8
    services.views.MAX_BRANCHES = 2  # type: ignore[misc]  # this store instance only
    pages: list[UUID] = []
    after = 0
    while rows := queue.obligations_in(units, after, 3):
        pages += [r.obligation_id for r in rows]
        after = rows[-1].position
    assert pages == one_query


class TestAPageReadsAnIndexRangeNotTheView:
    """Guards the cost of a page: the planner must read about ``limit`` rows from an index in
    position order (plus one probe per residence), never the whole agency's or jurisdiction's
    rows, on a view the size of 1,000 patients' year (rows written directly, as `smd bench` does)."""

    LIMIT = 50

    def pages(self, services: Services) -> list[tuple[str, list[tuple[str, list[Any]]], int]]:
        units = services.units_within(["990101-001"])
        middle = services.work_queue.select("1 = 1", [], 0, 100_000)[3_000].position
        return [
            (f"{name}, after {after}", branches, after)
            for after in (0, middle)
            for name, branches in (
                ("work queue open", assignee_branches(POLICE, "open")),
                ("work queue done", assignee_branches(POLICE, "done")),
                ("work queue all", assignee_branches(POLICE, "all")),
                ("oversight all", oversight_branches(units, "all")),
                ("oversight open", oversight_branches(units, "open")),
            )
        ]

    def statements(self, services: Services, branches, after: int) -> list[tuple[str, list[Any]]]:
        projection = services.work_queue.projection
        return services.views.merged_statements(
            projection, "rows", branches, order_by="position", after=after, limit=self.LIMIT
        )

    def test_every_page_is_an_index_search_merged_without_a_sort(self, open_store, store_kind: str) -> None:
        services = open_store(clock=utc_now)
        load_file(services.case_record, DEMO_DISTRICT)
        generate(services, 1_000)
        if store_kind == "postgres":
            with services.views.pool.connection() as c:  # type: ignore[attr-defined]
                c.execute("ANALYZE")  # as autovacuum would have by then
        for name, branches, after in self.pages(services):
            for sql, values in self.statements(services, branches, after):
                if store_kind == "sqlite":
                    self.check_sqlite(services, name, sql, values)
                else:
                    self.check_postgres(services, name, sql, values, arms=len(branches))

    def check_sqlite(self, services: Services, name: str, sql: str, values: list[Any]) -> None:
        with services.views._read() as c:  # type: ignore[attr-defined]
            plan = [row[3] for row in c.execute("EXPLAIN QUERY PLAN " + sql, values).fetchall()]
        reads = [step for step in plan if "work_queue" in step]
        assert reads and all(step.startswith("SEARCH") and "USING INDEX" in step for step in reads), (name, plan)
        assert not [step for step in plan if "TEMP B-TREE" in step], (name, plan)

    def check_postgres(self, services: Services, name: str, sql: str, values: list[Any], arms: int) -> None:
        with services.views._read() as c:  # type: ignore[attr-defined]
            [[doc]] = c.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, values).fetchall()
        read = 0
        stack = [doc[0]["Plan"]]
        while stack:
            node = stack.pop()
            stack += node.get("Plans", [])
            if "Relation Name" in node:  # a scan of the view: rows it returned and rows it threw away
                read += node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
        assert read <= 2 * self.LIMIT + arms, (name, read, json.dumps(doc, indent=1)[:3000])
