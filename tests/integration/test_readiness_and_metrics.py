"""Readiness a load balancer can use, `/v1/status` and `/metrics`, with real servers:

- the store down (a PostgreSQL cluster of the test's own, stopped with ``-m immediate``) or hung:
  `/readyz` 503 naming the store within its short timeout; `/v1/status` a 503 problem (the API
  key cannot be checked without the store: the keys live in it); `/metrics` still answers;
- NATS down (a nats-server of the test's own, stopped): `/readyz` 200 "degraded" naming nats;
- an event parked (a fault injected into the rules for one patient): 200 "degraded", the policy
  follower "parked" in `/v1/status` and in the gauges, other patients still get obligations;
- the doors' counters and the latency histogram by route template.

No answer carries a patient id.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import nats
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

import core.policy_process as policy_process
from api.app import create_app
from core.backfill import import_lines
from core.case_record import utc_now
from core.registry import load_file
from integrations.streams import names_of
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from ops.workers import serving_app
from projections.work_queue import RuleCounts
from tests.support.agency_client import AgencyClient, envelope_json
from tests.support.nats_world import stream_exists, wait_for
from tests.support.servers import PrivateNats, PrivatePostgres
from tests.support.stores import open_services, store_settings

HC, POLICE = "hc-north", "police-east"
VILLAGE = "990101-001-v01"  # hc-north's and police-east's
UNKNOWN_UNIT = "990101-009-v99"


def envelope(event_type: str, subject: UUID, data: dict[str, Any], *, hours_ago: float = 1) -> dict[str, Any]:
    occurred = datetime.now(UTC) - timedelta(hours=hours_ago)
    return envelope_json(HC, f"cn.smd.{event_type}.v1", subject, data, occurred=occurred, actor=None)


def registration(patient: UUID, residence: str = VILLAGE) -> dict[str, Any]:
    return envelope("patient.registered", patient, {"name": "Test Person", "residence": residence}, hours_ago=2)


def level_4(patient: UUID) -> dict[str, Any]:
    return envelope("risk.assessed", patient, {"risk_level": 4, "risk_class": "unstable"})


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition: (name, labels) → value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def demo_services(settings: Any) -> tuple[Services, dict[str, str]]:
    services = open_services(settings, clock=utc_now)  # the real clock: envelopes carry real times
    load_file(services.case_record, DEMO_DISTRICT)
    return services, {a: services.apikeys.issue(a).key for a in (HC, POLICE)}


@pytest.fixture
def demo(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Services, dict[str, str]]]:
    pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
    services, keys = demo_services(store_settings(store_kind, tmp_path / "data", pg_url))
    try:
        yield services, keys
    finally:
        services.close()


def no_patient_ids(body: str, *patients: UUID) -> None:
    for p in patients:
        assert str(p) not in body and p.hex not in body, "an answer carries a patient id"


# -- (a) the store down ----------------------------------------------------------------------


@pytest.mark.integration
async def test_postgresql_down_readyz_503_names_the_store_status_is_a_503_problem_metrics_answer(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    url = private_postgres.create_database()
    services, keys = demo_services(store_settings("postgres", tmp_path / "data", url))
    try:
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            assert r.json()["checks"]["store"] == "ok"
            r = await client.get("/v1/status", headers=auth(keys[HC]))
            assert r.status_code == 200 and r.json()["store"] == {"kind": "postgres", "reachable": True, "check": "ok"}

            private_postgres.stop("immediate")  # as a crash looks to the service

            started = time.monotonic()
            r = await client.get("/readyz")
            assert time.monotonic() - started < 1, "the probe answers within a second with the store down"
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["status"] == "unavailable"
            assert body["checks"]["store"].startswith("unreachable: "), body
            assert list(body["checks"]) == ["store"], "nothing is read from a store that does not answer"

            # the API key lives in the same database: it cannot be checked, so a 503 problem
            r = await client.get("/v1/status", headers=auth(keys[HC]))
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"].endswith("/store-unavailable")
            assert r.headers["retry-after"] == "5"

            started = time.monotonic()
            r = await client.get("/metrics")
            assert time.monotonic() - started < 5, "the scrape does not hang with the store"
            assert r.status_code == 200, r.text
            assert value(r.text, "smd_store_up") == 0
            assert value(r.text, "smd_follower_position", follower="policies") is None, "no store numbers"
            assert value(r.text, "smd_messages_accepted_total", door="http", outcome="recorded") == 0
    finally:
        services.close()


async def test_a_hung_store_makes_readyz_503_within_its_timeout_one_check_at_a_time(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, calls = threading.Event(), []

    def hang() -> int:
        calls.append(1)
        release.wait(30)
        return 0

    monkeypatch.setattr(services.case_record.recorder, "max_notification_id", hang)
    try:
        async with AsyncTestClient(create_app(services)) as client:
            started = time.monotonic()
            first, second = await asyncio.gather(services.readiness(), services.readiness())
            assert time.monotonic() - started < 1, "both wait for the same check, 0.6 s at most"
            assert first.status == second.status == "unavailable"
            started = time.monotonic()
            r = await client.get("/readyz")
            assert time.monotonic() - started < 1, "a load balancer's probe is answered within a second"
            assert r.status_code == 503, r.text
            assert r.json() == {"status": "unavailable", "checks": {"store": "unreachable: no answer within 0.6 s"}}
            r = await client.get("/metrics")
            assert r.status_code == 200 and value(r.text, "smd_store_up") == 0
            assert calls == [1], "probes wait for the check already running: one thread, not one per probe"

            release.set()  # the store answers again: the next probe after the hung check ends is ready

            async def ready() -> bool:
                r = await client.get("/readyz")
                return r.status_code == 200 and r.json()["status"] == "ok"

            await wait_for(ready, what="ready again once the store answers")
    finally:
        release.set()


# -- (b) NATS down ---------------------------------------------------------------------------


@pytest.mark.integration
async def test_nats_down_is_degraded_not_unready_and_metrics_still_answer(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest, private_nats: PrivateNats
) -> None:
    pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
    settings = store_settings(store_kind, tmp_path / "data", pg_url, SMD_NATS_URL=private_nats.url)
    services, keys = demo_services(settings)
    names = names_of(settings)
    try:
        async with AsyncTestClient(serving_app(services)) as client:  # followers, intake, outbox
            await wait_for(lambda: services.nats is not None and services.nats.is_connected, what="NATS connected")
            nc = await nats.connect(private_nats.url, connect_timeout=5)
            try:
                await wait_for(lambda: stream_exists(nc, names.intake_stream), what="the intake stream")
                hc = AgencyClient(nc, names, HC)
                patient, refused = uuid4(), uuid4()
                await hc.publish(hc.registration(patient, VILLAGE))
                await hc.publish(hc.registration(refused, UNKNOWN_UNIT))

                async def counted() -> bool:
                    text = (await client.get("/metrics")).text
                    return (
                        value(text, "smd_messages_accepted_total", door="nats", outcome="recorded") == 1
                        and value(text, "smd_messages_rejected_total", door="nats", reason="unknown-org-unit") == 1
                    )

                await wait_for(counted, what="the NATS door's counters")
            finally:
                await nc.close()
            r = await client.get("/readyz")
            assert r.status_code == 200 and r.json()["checks"]["nats"] == "ok", r.text

            private_nats.stop()
            await wait_for(lambda: not services.nats.is_connected, what="the service to notice NATS is down")

            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["status"] == "degraded"
            assert body["checks"]["nats"] == "not connected"
            assert body["checks"]["store"] == "ok"

            r = await client.get("/v1/status", headers=auth(keys[HC]))
            assert r.status_code == 200, r.text
            status = r.json()
            assert status["status"] == "degraded"
            assert status["nats"] == {"configured": True, "connected": False, "check": "not connected"}
            assert {f["name"] for f in status["followers"]} >= {"policies", "outbox"}

            r = await client.get("/metrics")
            assert r.status_code == 200, r.text
            assert value(r.text, "smd_nats_up") == 0
            assert value(r.text, "smd_store_up") == 1
            for body_text in (r.text, json.dumps(body), json.dumps(status)):
                no_patient_ids(body_text, patient, refused)
    finally:
        services.close()


# -- (c) an event parked ---------------------------------------------------------------------


async def test_an_event_parked_for_one_patient_is_degraded_shown_and_counted_while_others_go_on(
    demo: tuple[Services, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    services, keys = demo
    bad, good = uuid4(), uuid4()
    real = policy_process.decide

    def faulty(trigger: Any, *args: Any, **kw: Any) -> Any:
        if trigger.patient_id == bad:
            raise RuntimeError("injected fault")
        return real(trigger, *args, **kw)

    monkeypatch.setattr(policy_process, "decide", faulty)
    async with AsyncTestClient(serving_app(services)) as client:  # the followers run in the background
        for doc in (registration(bad), level_4(bad), registration(good), level_4(good)):
            r = await client.post("/v1/events", json=doc, headers=auth(keys[HC]))
            assert r.status_code == 201, r.text

        async def good_r1() -> bool:
            r = await client.get("/v1/work-queue", headers=auth(keys[POLICE]))
            return any(i["patient_id"] == str(good) and i["rule"] == "R1" for i in r.json()["items"])

        await wait_for(good_r1, what="R1 for the other patient in the police's queue", timeout=30)

        def parked() -> bool:
            policies = next(s for s in services.follower_status() if s.name == "policies")
            return policies.parked == 1 and policies.held >= 1

        # held: the assessment, and the receipts (MessageReceived) recorded with the patient's facts
        await wait_for(parked, what="the bad patient's registration parked and what follows held")

        r = await client.get("/readyz")
        assert r.status_code == 200, r.text
        ready = r.json()
        assert ready["status"] == "degraded"
        assert ready["checks"]["follower:policies"].startswith("1 parked, "), ready
        assert ready["checks"]["store"] == "ok"

        r = await client.get("/v1/status", headers=auth(keys[POLICE]))
        assert r.status_code == 200, r.text
        status = r.json()
        assert status["status"] == "degraded"
        (row,) = [f for f in status["followers"] if f["name"] == "policies"]
        assert (row["state"], row["parked"], row["stopped_at"]) == ("parked", 1, None)
        assert row["held"] >= 1
        assert {"follower": "policies", "status": "parked", "count": 1} in status["parked"]
        assert status["head"] >= row["position"]

        r = await client.get("/metrics")
        assert r.status_code == 200, r.text
        assert value(r.text, "smd_follower_parked", follower="policies") == 1
        assert (value(r.text, "smd_follower_held", follower="policies") or 0) >= 1
        assert value(r.text, "smd_follower_stopped", follower="policies") == 0
        assert value(r.text, "smd_obligations_opened_total", rule="R1") == 1  # the good patient's only
        assert value(r.text, "smd_obligations_open", rule="R1") == 1

        for body in (json.dumps(ready), json.dumps(status), r.text):
            no_patient_ids(body, bad, good)


# -- the doors' counters and the latency by route template ------------------------------------


async def test_counters_move_for_acceptances_and_refusals_and_latency_is_by_route_template(
    demo: tuple[Services, dict[str, str]],
) -> None:
    services, keys = demo
    app = create_app(services)
    other = create_app(services)  # a second app in one process: its own registry
    async with AsyncTestClient(app) as client:
        patient, refused = uuid4(), uuid4()
        doc = registration(patient)
        assert (await client.post("/v1/events", json=doc, headers=auth(keys[HC]))).status_code == 201
        assert (await client.post("/v1/events", json=doc, headers=auth(keys[HC]))).status_code == 200  # duplicate
        r = await client.post("/v1/events", json=registration(refused, UNKNOWN_UNIT), headers=auth(keys[HC]))
        assert r.status_code == 422, r.text
        r = await client.post("/v1/events", json={"specversion": "1.0"}, headers=auth(keys[HC]))
        assert r.status_code == 400, r.text
        obligation = uuid4()
        r = await client.post(f"/v1/obligations/{obligation}/complete", json={}, headers=auth(keys[POLICE]))
        assert 400 <= r.status_code < 500, r.text

        # the import door counts through the same object when given it
        lines = b"\n".join(json.dumps(d).encode() for d in (registration(uuid4()), registration(uuid4(), UNKNOWN_UNIT)))
        report = await asyncio.to_thread(
            import_lines, services.case_record, services.registry, lines, HC, metrics=services.metrics
        )
        assert report.recorded == 1 and len(report.refused) == 1

        text = (await client.get("/metrics")).text
        assert value(text, "smd_messages_accepted_total", door="http", outcome="recorded") == 1
        assert value(text, "smd_messages_accepted_total", door="http", outcome="duplicate") == 1
        assert value(text, "smd_messages_rejected_total", door="http", reason="unknown-org-unit") == 1
        assert value(text, "smd_messages_rejected_total", door="http", reason="invalid-envelope") == 1
        assert value(text, "smd_messages_accepted_total", door="import", outcome="recorded") == 1
        assert value(text, "smd_messages_rejected_total", door="import", reason="unknown-org-unit") == 1
        assert value(text, "smd_messages_accepted_total", door="nats", outcome="recorded") == 0

        count = "smd_http_request_duration_seconds_count"
        assert value(text, count, route="/v1/events", method="POST", status_class="2xx") == 2
        assert value(text, count, route="/v1/events", method="POST", status_class="4xx") == 2
        template = "/v1/obligations/{obligation_id}/complete"
        assert value(text, count, route=template, method="POST", status_class="4xx") == 1
        assert str(obligation) not in text, "never the raw path"
        no_patient_ids(text, patient, refused)
    async with AsyncTestClient(other) as client:
        r = await client.get("/metrics")
        assert r.status_code == 200 and value(r.text, "smd_store_up") == 1


async def test_obligation_counts_by_rule_and_the_generic_count_of_the_view_stores(services: Services) -> None:
    assert services.work_queue.counts_by_rule() == {}
    projection = services.work_queue.projection
    assert services.views.count(projection, "rows", ("rule", "status"), "kind = ?", ["obligation"]) == {}
    with pytest.raises(ValueError, match="group by columns"):
        services.views.count(projection, "rows", ("rule; DROP TABLE x",))
    assert RuleCounts().open == 0
