"""The AsyncAPI 3.0 document: served without a key, whole, true to the declared streams, and
describing the messages a real server carries."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import uuid4

import jsonschema_rs
import nats
import pytest
from litestar.testing import AsyncTestClient
from nats.aio.client import Client

from api.app import create_app
from core.contract import EVENT_TYPES
from integrations.asyncapi import declared_streams
from integrations.runner import run_intake, run_outbox
from integrations.streams import Names, names_of
from ops.bootstrap import Services
from ops.workers import run_followers
from tests.support.agency_client import AgencyClient
from tests.support.nats_world import stream_exists, wait_for

VILLAGE = "990101-001-v01"


async def fetch_document(services: Any) -> dict[str, Any]:
    async with AsyncTestClient(create_app(services)) as client:
        r = await client.get("/v1/contract/asyncapi.json")  # no key: shapes, no data
    assert r.status_code == 200, r.text
    return r.json()


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def address_pattern(address: str) -> list[str]:
    """Subject tokens of a channel address, each parameter a wildcard (``*``; the event type,
    several tokens, ``>``)."""
    tokens = address.split(".")
    return [">" if t == "{event}" else "*" if t.startswith("{") else t for t in tokens]


def subject_matches(filter_subject: str, tokens: list[str]) -> bool:
    """Whether every subject of the address ``tokens`` falls under the stream subject."""
    want = filter_subject.split(".")
    for i, w in enumerate(want):
        if w == ">":
            return i < len(tokens)
        if i >= len(tokens):
            return False
        if w != "*" and w != tokens[i]:
            return False
        if w == "*" and tokens[i] == ">":
            return False
    return len(want) == len(tokens)


def covers(pattern: list[str], subject: list[str]) -> bool:
    """Whether a concrete subject is one of the address's (``>``: one token or more)."""
    for i, p in enumerate(pattern):
        if p == ">":
            return len(subject) > i
        if i >= len(subject) or (p != "*" and p != subject[i]):
            return False
    return len(pattern) == len(subject)


def payload_validator(doc: dict[str, Any], message: str) -> Any:
    """A validator of one component message's payload, its references resolved in the document."""
    payload = doc["components"]["messages"][message]["payload"]
    return jsonschema_rs.validator_for({**payload, "components": doc["components"]})


class TestTheDocument:
    async def test_the_document_is_asyncapi_3_and_every_reference_resolves(self, services) -> None:
        doc = await fetch_document(services)
        assert doc["asyncapi"] == "3.0.0"
        assert {"intake", "rejected", "obligations", "risk_escalated", "witness"} <= set(doc["channels"])
        for ref in refs(doc):
            resolve(doc, ref)  # raises KeyError when it points nowhere
        for name, operation in doc["operations"].items():
            channel = resolve(doc, operation["channel"]["$ref"])
            assert operation["action"] in ("send", "receive"), name
            for message in operation["messages"]:  # an operation's messages are its channel's
                ref = message["$ref"]
                assert ref.startswith(operation["channel"]["$ref"] + "/messages/"), (name, ref)
                assert ref.rsplit("/", 1)[1] in channel["messages"]
        for channel in doc["channels"].values():  # every {parameter} of an address is declared
            named = {t[1:-1] for t in channel["address"].split(".") if t.startswith("{")}
            assert named == set(channel.get("parameters", {})), channel["address"]

    async def test_every_envelope_type_the_intake_accepts_is_a_message_of_the_intake_channel(self, services) -> None:
        doc = await fetch_document(services)
        intake = doc["channels"]["intake"]
        titles = {resolve(doc, m["$ref"])["name"] for m in intake["messages"].values()}
        assert titles == set(EVENT_TYPES)
        assert set(intake["parameters"]["event"]["enum"]) == {t.removeprefix("cn.smd.") for t in EVENT_TYPES}

    async def test_the_streams_are_the_declared_ones_and_keep_every_channel_but_the_witness(self, services) -> None:
        doc = await fetch_document(services)
        names = names_of(services.settings)
        declared = {c.name: c for c in declared_streams(names)}  # the region's own and its handover stream
        documented = {s["name"]: s for s in doc["x-smd-streams"]}
        assert set(documented) == set(declared)
        for name, config in declared.items():
            s = documented[name]
            assert s["subjects"] == list(config.subjects)
            assert (s["replicas"], s["max_age_seconds"], s["duplicate_window_seconds"]) == (
                config.num_replicas,
                config.max_age,
                config.duplicate_window,
            )
        for key, channel in doc["channels"].items():
            tokens = address_pattern(channel["address"])
            keeping = [n for n, c in declared.items() if any(subject_matches(f, tokens) for f in c.subjects)]
            # the witnesses are request/reply; a linked region's messages are kept by the copies the
            # link declares per linked region when it starts (not streams of this region alone)
            assert len(keeping) == (0 if key in ("witness", "peer_witness", "crossregion_in") else 1), (key, keeping)


@pytest.mark.integration
async def test_the_messages_a_real_server_carries_are_those_the_document_describes(
    svc: Services, names: Names, nc: Client, nats_url: str
) -> None:
    doc = await fetch_document(svc)
    worker_nc = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_intake(svc, worker_nc, stop)),
        asyncio.create_task(run_followers(svc, stop)),
        asyncio.create_task(run_outbox(svc, worker_nc, stop)),
    ]
    try:
        await wait_for(lambda: stream_exists(nc, names.intake_stream), what="the streams")
        hc = AgencyClient(nc, names, "hc-north")
        patient = uuid4()
        sent = [hc.registration(patient, VILLAGE, name="Doc Person"), hc.visit(patient, 4, "unstable")]
        for raw in sent:
            await hc.publish(raw)
        await hc.publish(b'{"specversion": "1.0"}', event_type="cn.smd.visit.recorded.v1", msg_id="hc-north:broken")
        [order] = await AgencyClient(nc, names, "police-east").assignments(1, timeout=20)
        [notice] = await AgencyClient(nc, names, "gov-willowbrook").assignments(1, timeout=20)
        [rejection] = await hc.rejections(1, timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        await worker_nc.close()

    def channel_of(subject: str) -> str:
        found = [k for k, c in doc["channels"].items() if covers(address_pattern(c["address"]), subject.split("."))]
        assert len(found) == 1, (subject, found)
        return found[0]

    for raw in sent:  # what the agency published: its intake message's payload schema holds
        event_type = json.loads(raw)["type"]
        [name] = [k for k, m in doc["components"]["messages"].items() if m["name"] == event_type]
        payload_validator(doc, name).validate(json.loads(raw))
        assert channel_of(names.intake("hc-north", event_type)) == "intake"
    for msg in (order, notice):
        assert channel_of(msg.subject) == "obligations"
        payload_validator(doc, "obligation").validate(json.loads(msg.data))
        headers = doc["components"]["messages"]["obligation"]["headers"]
        assert set(headers["required"]) <= set(msg.headers)
    assert channel_of(rejection.subject) == "rejected"
    headers = doc["components"]["messages"]["rejection"]["headers"]
    assert set(headers["required"]) <= set(rejection.headers), rejection.headers
    assert rejection.headers["Smd-Reason"]
    for bad in ({"type": "cn.smd.obligation.assigned.v1"}, {**json.loads(order.data), "id": 7}):
        with pytest.raises(jsonschema_rs.ValidationError):  # the schemas are not vacuous
            payload_validator(doc, "obligation").validate(bad)
