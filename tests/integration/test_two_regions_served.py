"""Two regions as two real `smd serve` processes (R8, decision 039): region A (990101, the demo
district, SQLite) and region B (990202, the second demo district ops/demo_district_b.toml,
PostgreSQL), each with its own data folder, development keys and API keys, each on its own
nats-server configured by `smd nats config` (A the hub, B the leaf), the servers joined by a leaf
node under the restricted cross-region account. Everything is done as agencies do it: over HTTP
(facts on `POST /v1/events`, the handovers' endpoints, the patients' files); the services carry
the handover messages themselves. Debian's nats-server 2.9.10 runs every case; the pinned wheel's
current one the accepted transfer and the link cut and restored. The same cases in one process,
with the link driven by hand: test_crossregion_link.py and test_crossregion_cases.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from integrations.crossregion import SERVICE_USER
from ops.data_files import DEMO_DISTRICT, DEMO_DISTRICT_B
from tests.integration.test_follower_standby import _wait as until
from tests.support.agency_client import envelope_json
from tests.support.crossregion import DOMAINS, binary, password, server_conf, smd, write_peers
from tests.support.nats_world import ROOT_DIR, WORKER
from tests.support.servers import PrivateNats, _free_port, create_database, drop_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

A, B = "990101", "990202"  # the two fictional demo districts
A_VILLAGE, B_VILLAGE = "990101-001-v01", "990202-001-v01"
A_HC, A_COMMITTEE, A_GOV = "hc-north", "committee-north", "gov-willowbrook"
B_HC, B_GOV = "hc-ferngate", "gov-ferngate"
XR_USER = "smd-crossregion"
STOP_WITHIN = 8.0  # seconds from SIGTERM to exit, NATS up (`smd serve` gives its workers 10)


@dataclass
class Served:
    """One region: its nats-server and its `smd serve` process, reached over HTTP."""

    code: str
    env: dict[str, str]
    server: PrivateNats
    keys: dict[str, str]
    log: Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMD_")}
        env |= {**self.env, "SMD_PORT": str(self.port), "SMD_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT_DIR)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*WORKER, "serve"], env=env, cwd=ROOT_DIR, stdout=log, stderr=log)
        until(lambda: self.proc.poll() is None and httpx.get(self.base + "/healthz").status_code == 200, "smd serve")

    def stop(self) -> float:
        """SIGTERM, as an operator stops it; how long it took to exit."""
        proc, self.proc = self.proc, None
        started = time.monotonic()
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return time.monotonic() - started

    def call(self, method: str, path: str, agency: str, body: Any = None, purpose: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[agency]}"}
        if purpose:
            headers["X-Purpose"] = purpose
        return httpx.request(method, self.base + path, headers=headers, json=body, timeout=10)

    def ok(self, method: str, path: str, agency: str, body: Any = None, purpose: str | None = None) -> Any:
        r = self.call(method, path, agency, body, purpose)
        assert r.status_code in (200, 201), f"{self.code} {method} {path}: {r.status_code} {r.text}"
        return r.json()

    def send(self, agency: str, event_type: str, patient: UUID, data: dict, hours_ago: float) -> None:
        doc = envelope_json(
            agency, f"cn.smd.{event_type}", patient, data, occurred=datetime.now(UTC) - timedelta(hours=hours_ago)
        )
        assert self.ok("POST", "/v1/events", agency, doc)["outcome"] == "recorded"

    def handover(self, hid: str, agency: str) -> dict:
        return self.ok("GET", f"/v1/handovers/{hid}", agency)

    def file(self, patient: UUID, agency: str) -> httpx.Response:
        return self.call("GET", f"/v1/patients/{patient}", agency, purpose="care")


@dataclass
class TwoRegions:
    a: Served
    b: Served
    which: str


def _region_env(code: str, base: Path, **extra: str) -> dict[str, str]:
    return {"SMD_DATA_DIR": str(base / "data"), "SMD_REGION": code, "SMD_CROSSREGION_DOMAIN": DOMAINS[code], **extra}


def _issue(env: dict[str, str], agency: str) -> str:
    """`smd keys issue`: the key is the last line it prints."""
    return smd(env, "keys", "issue", agency).strip().splitlines()[-1]


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_server: str):
    """A and B as two `smd serve` processes on two linked nats-servers (``request.param``:
    "debian" or "wheel"), up for the module; each case uses patients of its own."""
    which = request.param
    root = tmp_path_factory.mktemp(f"two-regions-{which}")
    database = create_database(pg_server)
    envs = {A: _region_env(A, root / "a"), B: _region_env(B, root / "b", SMD_DATABASE_URL=database.url)}
    regions: list[Served] = []
    try:
        # each region's registry and keys, with the commands an operator runs
        smd(envs[A], "registry", "load", str(DEMO_DISTRICT))
        smd(envs[B], "registry", "load", str(DEMO_DISTRICT_B))
        keys = {
            A: {agency: _issue(envs[A], agency) for agency in (A_HC, A_COMMITTEE, A_GOV)},
            B: {agency: _issue(envs[B], agency) for agency in (B_HC, B_GOV)},
        }
        entries = {code: json.loads(smd(envs[code], "crossregion", "peer-entry")) for code in (A, B)}
        # each lists the other's entry (its public keys and JetStream domain)
        for code, peer, folder in ((A, B, root / "a"), (B, A, root / "b")):
            envs[code]["SMD_CROSSREGION_PEERS"] = str(write_peers(folder / "peers.json", entries[peer]))
        leaf_port = _free_port()
        credentials_a = server_conf(root / "a" / "nats", envs[A], leaf_port)
        credentials_b = server_conf(root / "b" / "nats", envs[B], leaf_port, hub_credentials=credentials_a)
        for code, folder, credentials in ((A, root / "a", credentials_a), (B, root / "b", credentials_b)):
            conf = folder / "nats" / "nats-server.conf"
            server = PrivateNats(folder / "nats", extra_args=("-c", str(conf)), binary=binary(which))
            server.start()
            host = f"127.0.0.1:{server.port}"
            env = {
                **envs[code],
                "SMD_NATS_URL": f"nats://{SERVICE_USER}:{password(credentials, SERVICE_USER)}@{host}",
                "SMD_CROSSREGION_NATS_URL": f"nats://{XR_USER}:{password(credentials, XR_USER)}@{host}",
            }
            regions.append(Served(code, env, server, keys[code], folder / "serve.log"))
        for region in regions:
            region.start()
        yield TwoRegions(regions[0], regions[1], which)
    finally:
        took = {region.code: region.stop() for region in regions}
        for region in regions:
            region.server.stop()
        drop_database(pg_server, database.dbname)
    # a link's pull subscription left open kept each service 10 s in its shutdown
    assert all(seconds < STOP_WITHIN for seconds in took.values()), took


def move_to_b(a: Served) -> tuple[UUID, str]:
    """A patient registered in A (hc-north) is reported moving to B's village (committee-north);
    returns the patient and the move's id."""
    patient, move = uuid4(), uuid4()
    registration = {"name": "Wren Talbot", "residence": A_VILLAGE, "birth_date": "1979-04-12", "household_region": A}
    a.send(A_HC, "patient.registered.v2", patient, registration, hours_ago=2)
    moving_on = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    move_data = {"move_id": str(move), "destination_region": B, "destination_unit": B_VILLAGE, "moving_on": moving_on}
    a.send(A_COMMITTEE, "move.reported.v1", patient, move_data, hours_ago=1)
    return patient, str(move)


def requested_in_b(b: Served, patient: UUID) -> dict:
    """B's health center's incoming handover of ``patient``, once it arrived (status requested)."""

    def incoming() -> dict | None:
        items = b.ok("GET", "/v1/handovers?direction=in", B_HC)["items"]
        mine = [h for h in items if h["patient_id"] == str(patient)]
        assert len(mine) <= 1, mine  # one handover, never delivered as a second one
        return mine[0] if mine else None

    found = until(incoming, f"B to list the handover of {patient}", timeout=30)
    assert (found["status"], found["assignee"], found["unit"]) == ("requested", B_HC, B_VILLAGE)
    assert found["peer_region"] == A and found["responsible"] == [A]
    return found


def status_in(region: Served, hid: str, agency: str, status: str) -> dict:
    return until(
        lambda: (view := region.handover(hid, agency))["status"] == status and view,
        f"{region.code} to show {hid} {status}",
        timeout=30,
    )


def facts(view: dict) -> list[str]:
    return [h["fact"] for h in view["history"]]


def assert_accepted(two: TwoRegions, patient: UUID, hid: str) -> None:
    a, b = two.a, two.b
    out = status_in(a, hid, A_GOV, "accepted")
    assert out["responsible"] == [B] and out["peer_unit"] == B_VILLAGE
    assert facts(out) == ["Opened", "Answered"]  # the acceptance applied once
    mine = until(
        lambda: (r := a.file(patient, A_HC).json())["registration"]["deregistered_at"] and r,
        "A to deregister the patient",
    )
    assert mine["registration"]["deregistration_reason"] == "moved_out"
    theirs = b.file(patient, B_HC)
    assert theirs.status_code == 200, theirs.text  # same id, B's own file
    assert theirs.json()["registration"]["registered_by"] == B_HC
    assert theirs.json()["registration"]["deregistered_at"] is None
    assert theirs.json()["residence"] == B_VILLAGE
    incoming = b.handover(hid, B_HC)
    assert incoming["status"] == "accepted" and B in incoming["responsible"]
    assert facts(incoming) == ["Requested", "Answered"]


@pytest.mark.parametrize("served", ["debian", "wheel"], indirect=True)
def test_a_transfer_reported_in_a_and_accepted_in_b_moves_the_patient(served: TwoRegions) -> None:
    patient, _ = move_to_b(served.a)
    hid = requested_in_b(served.b, patient)["id"]
    assert served.a.handover(hid, A_GOV)["status"] == "open"
    answered = served.b.ok("POST", f"/v1/handovers/{hid}/answer", B_HC, {"accepted": True})
    assert answered["status"] == "accepted" and answered["responsible"] == [A, B]  # in flight: both
    assert_accepted(served, patient, hid)


@pytest.mark.parametrize("served", ["debian"], indirect=True)
def test_a_transfer_rejected_in_b_escalates_on_both_sides_and_a_stays_responsible(served: TwoRegions) -> None:
    a, b = served.a, served.b
    patient, _ = move_to_b(a)
    hid = requested_in_b(b, patient)["id"]
    assert b.ok("POST", f"/v1/handovers/{hid}/answer", B_HC, {"accepted": False})["status"] == "rejected"
    out = status_in(a, hid, A_GOV, "rejected")
    assert out["responsible"] == [A] and out["escalations"] == ["rejected"]
    assert facts(out) == ["Opened", "Answered", "Escalated"]
    incoming = b.handover(hid, B_HC)
    assert incoming["responsible"] == [A] and incoming["escalations"] == ["rejected"]
    assert a.file(patient, A_HC).json()["registration"]["deregistered_at"] is None
    assert b.file(patient, B_HC).status_code == 404  # never registered in B
    for region, gov in ((a, A_GOV), (b, B_GOV)):  # each governance center is told, once
        notices = until(
            lambda region=region, gov=gov: [
                i
                for i in region.ok("GET", "/v1/work-queue", gov)["items"]
                if (i["rule"], i["action"], i["episode_key"]) == ("R8", "handover_escalated", f"{hid}:rejected")
            ],
            f"{region.code}'s governance center's escalation notice",
        )
        assert len(notices) == 1 and notices[0]["kind"] == "notice"


@pytest.mark.parametrize("served", ["debian"], indirect=True)
def test_a_transfer_cancelled_by_a_before_b_answers_cannot_be_accepted(served: TwoRegions) -> None:
    a, b = served.a, served.b
    patient, _ = move_to_b(a)
    hid = requested_in_b(b, patient)["id"]
    cancelled = a.ok("POST", f"/v1/handovers/{hid}/cancel", A_HC, {"reason": "the family stays"})
    assert cancelled["status"] == "cancelled" and cancelled["responsible"] == [A]
    status_in(b, hid, B_HC, "cancelled")
    late = b.call("POST", f"/v1/handovers/{hid}/answer", B_HC, {"accepted": True})
    assert late.status_code == 409 and "handover-cancelled" in late.json()["type"], late.text
    assert b.file(patient, B_HC).status_code == 404
    assert a.file(patient, A_HC).json()["registration"]["deregistered_at"] is None
    assert a.handover(hid, A_GOV)["late_answers"] == []


@pytest.mark.parametrize("served", ["debian", "wheel"], indirect=True)
def test_the_link_cut_while_a_handover_is_in_flight_and_restored_loses_nothing_and_applies_nothing_twice(
    served: TwoRegions,
) -> None:
    a, b = served.a, served.b
    first_patient, _ = move_to_b(a)
    first = requested_in_b(b, first_patient)["id"]

    b.server.stop()  # B's nats-server: the leaf node is down, and B's service has no NATS
    try:
        answered = b.ok("POST", f"/v1/handovers/{first}/answer", B_HC, {"accepted": True})
        assert answered["status"] == "accepted"  # kept in B's store until the link is back
        second_patient, _ = move_to_b(a)  # A publishes to its own server; B cannot source it yet
        second = until(
            lambda: next(
                (
                    h["id"]
                    for h in a.ok("GET", "/v1/handovers?direction=out", A_GOV)["items"]
                    if h["patient_id"] == str(second_patient)
                ),
                None,
            ),
            "A to open the second handover",
        )
        assert a.handover(first, A_GOV)["status"] == "open"  # nothing crossed
    finally:
        b.server.start()  # same port, same store

    assert_accepted(served, first_patient, first)
    assert requested_in_b(b, second_patient)["id"] == second
    assert facts(a.handover(second, A_GOV)) == ["Opened"]
