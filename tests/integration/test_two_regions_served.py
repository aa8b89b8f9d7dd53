"""Two regions as two real `smd serve` processes (R8, decision 039): region A (990101, the demo
district, SQLite) and region B (990202, the second demo district ops/demo_district_b.toml,
PostgreSQL), each with its own data folder, development keys and API keys, each on its own
nats-server configured by `smd nats config` (A the hub, B the leaf), the servers joined by a leaf
node under the restricted cross-region account. Everything is done as agencies do it: over HTTP
(facts on `POST /v1/events`, the handovers' endpoints, the patients' files); the services carry
the handover messages themselves. Debian's nats-server 2.9.10 runs every case; the pinned wheel's
current one the accepted transfer, the link cut and restored, and the store scan. The same cases
in one process, with the link driven by hand: test_crossregion_link.py and test_crossregion_cases.py.

Deadlines: a handover's deadline is the origin's SMD_HANDOVER_ANSWER_DAYS when it opens, so the
unanswered case restarts A's service with a deadline of seconds for its own handover only and
restarts it as it was afterwards (the other cases' handovers keep their ten days); both services
look for passed deadlines every second (SMD_HANDOVER_CHECK_SECONDS=1) throughout, which changes
nothing for a deadline days away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import nats
import pytest
from nats.aio.client import Client

from core.handover_messages import build, digest
from core.region_keys import CrossRegionKeys
from integrations.crossregion import SERVICE_USER, LinkNames
from ops.bootstrap import bootstrap, crossregion_keys
from ops.data_files import DEMO_DISTRICT, DEMO_DISTRICT_B
from ops.settings import load_settings
from tests.integration.test_follower_standby import _wait as until
from tests.support.agency_client import envelope_json
from tests.support.crossregion import DOMAINS, binary, password, server_conf, smd, write_peers
from tests.support.nats_world import ROOT_DIR, WORKER
from tests.support.servers import PrivateNats, _free_port, create_database, drop_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

A, B = "990101", "990202"  # the two fictional demo districts
A_VILLAGE, B_VILLAGE = "990101-001-v01", "990202-001-v01"
A_HC, A_COMMITTEE, A_GOV = "hc-north", "committee-north", "gov-willowbrook"
B_HC, B_COMMITTEE, B_GOV = "hc-ferngate", "committee-upper-ferngate", "gov-ferngate"
NAME, NAME_PART, PHONE = "Wren Talbot", b"Talbot", "13900000029"  # fictional; never in a NATS store
SHORT_ANSWER_DAYS = "0.0001"  # 8.6 s: the unanswered case's deadline
ELSEWHERE = "990303"  # a third fictional region: a message addressed there is refused by B
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

    def handovers(self, patient: UUID, direction: str, agency: str) -> list[dict]:
        items = self.ok("GET", f"/v1/handovers?direction={direction}", agency)["items"]
        return [h for h in items if h["patient_id"] == str(patient)]

    @contextlib.contextmanager
    def restarted(self, **settings: str) -> Iterator[None]:
        """The service stopped and started with these settings changed, then as it was."""
        before = self.env
        assert self.stop() < STOP_WITHIN
        self.env = {**before, **settings}
        self.start()
        try:
            yield
        finally:
            self.stop()
            self.env = before
            self.start()

    @contextlib.contextmanager
    def nats_down(self) -> Iterator[None]:
        """This region's nats-server stopped (its end of the leaf node with it), then started
        again on the same port and store: the service records locally meanwhile."""
        self.server.stop()
        try:
            yield
        finally:
            self.server.start()

    async def xr_connection(self) -> Client:
        """A connection as the link's own user of the cross-region account (a forger on it)."""
        return await nats.connect(self.env["SMD_CROSSREGION_NATS_URL"], connect_timeout=3, allow_reconnect=False)

    def refused_from(self, peer: str) -> list[dict]:
        """The messages from ``peer`` this region refused and kept, read from its store (no
        HTTP or CLI shows them)."""
        services = bootstrap(load_settings(self.env))
        try:
            assert services.handovers is not None
            return services.handovers.refused_from(peer)
        finally:
            services.close()


@dataclass
class TwoRegions:
    a: Served
    b: Served
    which: str


def _region_env(code: str, base: Path, **extra: str) -> dict[str, str]:
    return {
        "SMD_DATA_DIR": str(base / "data"),
        "SMD_REGION": code,
        "SMD_CROSSREGION_DOMAIN": DOMAINS[code],
        "SMD_HANDOVER_CHECK_SECONDS": "1",  # the unanswered case's deadline passes in seconds
        **extra,
    }


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
            B: {agency: _issue(envs[B], agency) for agency in (B_HC, B_COMMITTEE, B_GOV)},
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
    registration = {
        "name": NAME,
        "residence": A_VILLAGE,
        "birth_date": "1979-04-12",
        "household_region": A,
        "phone": PHONE,
    }
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


def escalation_notices(region: Served, gov: str, hid: str, reason: str) -> list[dict]:
    """The governance center's R8 notices of this handover's escalation for ``reason``."""
    return [
        i
        for i in region.ok("GET", "/v1/work-queue", gov)["items"]
        if (i["rule"], i["action"], i["episode_key"]) == ("R8", "handover_escalated", f"{hid}:{reason}")
    ]


@pytest.mark.parametrize("served", ["debian"], indirect=True)
def test_a_transfer_unanswered_by_its_deadline_escalates_on_both_sides_once(served: TwoRegions) -> None:
    a, b = served.a, served.b
    with a.restarted(SMD_HANDOVER_ANSWER_DAYS=SHORT_ANSWER_DAYS):  # this handover's deadline only
        patient, _ = move_to_b(a)
        hid = requested_in_b(b, patient)["id"]
        for region, agency in ((a, A_GOV), (b, B_HC)):  # each side by its own clock
            until(
                lambda region=region, agency=agency: region.handover(hid, agency)["escalations"],
                f"{region.code} to escalate {hid}",
                timeout=60,
            )
    # A started again meanwhile, both looked again every second: still escalated once
    out, incoming = a.handover(hid, A_GOV), b.handover(hid, B_HC)
    assert (out["status"], incoming["status"]) == ("open", "requested")
    assert out["escalations"] == ["unanswered"] == incoming["escalations"]
    assert facts(out) == ["Opened", "Escalated"] and facts(incoming) == ["Requested", "Escalated"]
    assert out["responsible"] == [A] == incoming["responsible"]
    assert a.file(patient, A_HC).json()["registration"]["deregistered_at"] is None
    for region, gov in ((a, A_GOV), (b, B_GOV)):  # each governance center is told, once
        notices = until(
            lambda region=region, gov=gov: escalation_notices(region, gov, hid, "unanswered"),
            f"{region.code}'s governance center's escalation notice",
        )
        assert len(notices) == 1 and notices[0]["kind"] == "notice"


@pytest.mark.parametrize("served", ["debian"], indirect=True)
def test_an_acceptance_crossing_a_cancellation_is_voided_in_b_and_a_stays_responsible(served: TwoRegions) -> None:
    a, b = served.a, served.b
    patient, _ = move_to_b(a)
    hid = requested_in_b(b, patient)["id"]
    with b.nats_down():  # neither knows of the other's decision until the link is back
        assert b.ok("POST", f"/v1/handovers/{hid}/answer", B_HC, {"accepted": True})["status"] == "accepted"
        assert b.file(patient, B_HC).json()["registration"]["deregistered_at"] is None  # registered in B
        cancelled = a.ok("POST", f"/v1/handovers/{hid}/cancel", A_HC, {"reason": "the family stays"})
        assert cancelled["status"] == "cancelled"
    incoming = status_in(b, hid, B_HC, "voided")  # the messages crossed
    out = until(lambda: (v := a.handover(hid, A_GOV))["late_answers"] and v, "A to note the late acceptance")
    assert out["status"] == "cancelled" and out["late_answers"] == ["accepted"] and out["responsible"] == [A]
    assert facts(out) == ["Opened", "Cancelled", "ArrivedTooLate"]
    assert facts(incoming) == ["Requested", "Answered", "Voided"] and incoming["responsible"] == [A]
    assert a.file(patient, A_HC).json()["registration"]["deregistered_at"] is None  # A's patient still
    theirs = until(
        lambda: (r := b.file(patient, B_HC).json())["registration"]["deregistered_at"] and r,
        "B to undo its registration",
    )
    assert theirs["registration"]["registered_by"] == B_HC


@pytest.mark.parametrize("served", ["debian"], indirect=True)
def test_a_rejection_crossing_a_cancellation_ends_cancelled_in_a_and_voided_in_b(served: TwoRegions) -> None:
    a, b = served.a, served.b
    patient, _ = move_to_b(a)
    hid = requested_in_b(b, patient)["id"]
    with b.nats_down():
        assert b.ok("POST", f"/v1/handovers/{hid}/answer", B_HC, {"accepted": False})["status"] == "rejected"
        assert a.ok("POST", f"/v1/handovers/{hid}/cancel", A_HC, {"reason": "the family stays"})["status"] == (
            "cancelled"
        )
    incoming = status_in(b, hid, B_HC, "voided")
    out = until(lambda: (v := a.handover(hid, A_GOV))["late_answers"] and v, "A to note the late rejection")
    assert out["status"] == "cancelled" and out["late_answers"] == ["rejected"] and out["escalations"] == []
    assert facts(out) == ["Opened", "Cancelled", "ArrivedTooLate"] and out["responsible"] == [A]
    assert incoming["responsible"] == [A] and facts(incoming)[-1] == "Voided"
    assert a.file(patient, A_HC).json()["registration"]["deregistered_at"] is None
    assert b.file(patient, B_HC).status_code == 404  # never registered in B
    assert escalation_notices(a, A_GOV, hid, "rejected") == []  # A cancelled first: nothing to escalate


@pytest.mark.parametrize("served", ["debian"], indirect=True)
def test_a_second_move_before_the_first_is_answered_is_a_second_handover(served: TwoRegions) -> None:
    a, b = served.a, served.b
    patient, _ = move_to_b(a)
    first = requested_in_b(b, patient)["id"]
    second_move = {"move_id": str(uuid4()), "destination_region": B, "destination_unit": B_VILLAGE}
    second_move["moving_on"] = (datetime.now(UTC) + timedelta(days=9)).date().isoformat()
    a.send(A_COMMITTEE, "move.reported.v1", patient, second_move, hours_ago=0.5)
    second = until(
        lambda: next((h["id"] for h in a.handovers(patient, "out", A_GOV) if h["id"] != first), None),
        "A to open the second handover",
    )
    a.ok("POST", f"/v1/handovers/{first}/cancel", A_HC, {"reason": "superseded by a second move"})
    status_in(b, first, B_HC, "cancelled")
    until(
        lambda: (
            {h["id"]: h["status"] for h in b.handovers(patient, "in", B_HC)}
            == {first: "cancelled", second: "requested"}
        ),
        "B to list the second request beside the cancelled first",
    )
    assert b.ok("POST", f"/v1/handovers/{second}/answer", B_HC, {"accepted": True})["status"] == "accepted"
    assert_accepted(served, patient, second)
    assert (a.handover(first, A_GOV)["status"], b.handover(first, B_HC)["status"]) == ("cancelled", "cancelled")
    assert a.handover(first, A_GOV)["late_answers"] == []


@pytest.mark.parametrize("served", ["debian"], indirect=True)
def test_a_move_back_to_a_after_a_deregistered_the_patient_is_accepted_and_registers_again(
    served: TwoRegions,
) -> None:
    a, b = served.a, served.b
    patient, _ = move_to_b(a)
    there = requested_in_b(b, patient)["id"]
    b.ok("POST", f"/v1/handovers/{there}/answer", B_HC, {"accepted": True})
    assert_accepted(served, patient, there)  # A deregistered the patient as moved out
    back_move = {"move_id": str(uuid4()), "destination_region": A, "destination_unit": A_VILLAGE}
    back_move["moving_on"] = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    b.send(B_COMMITTEE, "move.reported.v1", patient, back_move, hours_ago=0)
    back = until(lambda: next(iter(a.handovers(patient, "in", A_HC)), None), "A to list B's request")
    assert (back["status"], back["assignee"], back["peer_region"]) == ("requested", A_HC, B)
    accepted = a.ok("POST", f"/v1/handovers/{back['id']}/answer", A_HC, {"accepted": True})
    assert accepted["status"] == "accepted"
    again = a.file(patient, A_HC).json()["registration"]
    assert again["deregistered_at"] is None and again["reregistered_at"] is not None
    assert again["arrived_from"]["origin_region"] == B
    out = status_in(b, back["id"], B_GOV, "accepted")
    assert out["responsible"] == [A] and facts(out) == ["Opened", "Answered"]
    theirs = until(
        lambda: (r := b.file(patient, B_HC).json())["registration"]["deregistration_reason"] and r,
        "B to deregister the patient",
    )
    assert theirs["registration"]["deregistration_reason"] == "moved_out"
    twice = a.call("POST", f"/v1/handovers/{back['id']}/answer", A_HC, {"accepted": False})
    assert twice.status_code == 409, twice.text  # answered once


def forge(a: Served, b: Served, hid: str) -> dict[str, str]:
    """Messages a forger on A's cross-region account publishes straight into A's outgoing stream
    (reason B must refuse them for → the message), the genuine last one replayed last (A's
    publisher reads its position from the stream's last message to B)."""
    keys = crossregion_keys(load_settings(a.env))  # A's own signing key: a forger who stole it
    b_keys = crossregion_keys(load_settings(b.env))
    names = LinkNames("smd", A)
    subject = names.subject(A, B)

    async def go() -> dict[str, str]:
        nc = await a.xr_connection()
        try:
            js = nc.jetstream()
            genuine = (await js.get_last_msg(names.out_stream(), subject)).data.decode()
            last = json.loads(genuine)["sequence"]  # what B applied last from A
            impostor = CrossRegionKeys.generate(A)  # claims to be A, signs with a key of its own
            impostor.link(b_keys.as_peer())
            keys.link(CrossRegionKeys.generate(ELSEWHERE).as_peer())
            doc = json.loads(genuine)
            common = {"handover_id": UUID(hid), "acked": 0, "kind": "cancel", "body": {}}
            forged = {
                "out-of-sequence": build(keys, B, sequence=last + 5, **common),
                "unknown-key": build(impostor, B, sequence=last + 1, **common),
                "bad-signature": json.dumps({**doc, "sequence": last + 1, "kind": "cancel"}),
                "wrong-region": build(keys, ELSEWHERE, sequence=last + 1, **common),
                "replayed": genuine,
            }
            for wire in forged.values():
                await js.publish(subject, wire.encode())
            return forged
        finally:
            await nc.close()

    return asyncio.run(go())


@pytest.mark.parametrize("served", ["debian"], indirect=True)
def test_forged_messages_in_the_outgoing_stream_of_a_are_refused_and_kept_by_b(served: TwoRegions) -> None:
    a, b = served.a, served.b
    patient, _ = move_to_b(a)
    hid = requested_in_b(b, patient)["id"]  # B applied A's last message: nothing in flight
    forged = forge(a, b, hid)
    digests = {digest(wire): reason for reason, wire in forged.items()}

    def kept() -> list[tuple[str, str]]:
        return [(r["reason"], r["digest"]) for r in b.refused_from(A) if r["digest"] in digests]

    until(lambda: len(kept()) == len(forged), "B to refuse and keep the forged messages", timeout=30)
    assert kept() == [(reason, digest(wire)) for reason, wire in forged.items()]  # in order, each once
    assert b.handover(hid, B_HC)["status"] == "requested"  # none of them applied
    cancelled = a.ok("POST", f"/v1/handovers/{hid}/cancel", A_HC, {"reason": "moved back"})  # genuine
    assert cancelled["status"] == "cancelled"
    assert facts(status_in(b, hid, B_HC, "cancelled")) == ["Requested", "Cancelled"]
    assert b.file(patient, B_HC).status_code == 404


def files_holding(store: Path, marker: bytes) -> list[Path]:
    return [p for p in store.rglob("*") if p.is_file() and marker in p.read_bytes()]


@pytest.mark.parametrize("served", ["debian", "wheel"], indirect=True)
def test_no_personal_value_in_plaintext_in_either_nats_store(served: TwoRegions) -> None:
    """Last in the module: every case's messages are in the stores by now (and this one's)."""
    a, b = served.a, served.b
    patient, _ = move_to_b(a)
    hid = requested_in_b(b, patient)["id"]
    b.ok("POST", f"/v1/handovers/{hid}/answer", B_HC, {"accepted": True})
    assert_accepted(served, patient, hid)  # the request sealed the name and phone to B
    control = f"MKXRsv Clear Control {uuid4()}".encode()  # written in the clear: what a leak looks like

    async def publish_control() -> None:
        nc = await a.xr_connection()
        try:  # A's stream, a subject B does not source
            await nc.jetstream().publish(f"smd.xr.{A}.control", control)
        finally:
            await nc.close()

    asyncio.run(publish_control())
    stores = {A: a.server.base / "store", B: b.server.base / "store"}
    until(lambda: files_holding(stores[A], control), "the scan to find the value written in the clear")
    for store in stores.values():  # both hold the messages (B its answer and A's sourced request)
        until(lambda store=store: files_holding(store, hid.encode()), f"{store} to hold {hid}'s messages")
    for store in stores.values():
        assert files_holding(store, NAME_PART) == [] and files_holding(store, PHONE.encode()) == []
