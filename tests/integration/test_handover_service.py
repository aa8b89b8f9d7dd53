"""Handovers in the running service, on SQLite and PostgreSQL: keys, peers and the answer deadline
from settings; the bridge and the deadline check run with the followers; the HTTP queries
(`GET /v1/handovers`, `GET /v1/handovers/{id}`) for the readers of DESIGN.md section 4 only;
the receiving health center answers over HTTP and the origin cancels over HTTP."""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from core.audit.signing_keys import CHECKPOINT, WITNESS
from core.handover_policy import answer_obligation_id
from core.region_keys import seal
from core.registry import load_file
from domain.handover import handover_id
from ops.bootstrap import crossregion_keys, region_keys
from ops.settings import SettingsError, load_settings
from ops.workers import serving_app
from tests.integration.test_handovers import B_VILLAGE, COMMITTEE, GOV, HC, SECRET_NAME, VILLAGE, A, B, Region, district
from tests.support.stores import NOW, MovableClock, open_services, store_settings

AUDITOR, POLICE, OTHER_HC = "auditor-lantern-bay", "police-east", "hc-reedmarsh"


def peers_file(path: Path, *settings) -> Path:
    path.write_text(json.dumps([crossregion_keys(s).peer_entry() for s in settings]), encoding="utf-8")
    return path


@pytest.fixture
def service_regions(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Regions A and B as `smd serve` wires them: each its own store, keys and peers file."""
    urls = {c: request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None for c in (A, B)}
    first = {c: store_settings(store_kind, tmp_path / c, urls[c], SMD_REGION=c) for c in (A, B)}
    opened, made = [], []
    for code, peer in ((A, B), (B, A)):
        peers = peers_file(tmp_path / f"peers-{code}.json", first[peer])
        settings = store_settings(
            store_kind,
            tmp_path / code,
            urls[code],
            SMD_REGION=code,
            SMD_CROSSREGION_PEERS=str(peers),
            SMD_HANDOVER_ANSWER_DAYS="7",
            **({"SMD_HANDOVER_CHECK_SECONDS": "0.5"} if code == B else {}),  # A: the default minute
        )
        clock = MovableClock(NOW)
        services = open_services(settings, clock=clock)
        opened.append(services)
        load_file(services.case_record, district(code, tmp_path))
        assert services.handovers is not None
        region = Region(services, services.handovers.keys, clock)
        region.handovers = services.handovers  # the service's own, not one the test builds
        made.append(region)
    yield made[0], made[1]
    for services in opened:
        services.close()


def run_followers(region: Region) -> None:
    for _ in range(3):
        for follower in region.services.followers():
            if follower is not None:
                follower.run_once()


def carry(sender: Region, receiver: Region) -> list[str]:
    """What a transport does: the sender's outbox after what the receiver applied."""
    peer = receiver.keys.region
    after = receiver.handovers.applied_from(sender.keys.region)
    return [receiver.handovers.receive(w) for w in sender.handovers.outbox(peer, after)]


def report_move(a: Region) -> tuple[UUID, UUID]:
    patient, move = uuid4(), uuid4()
    a.send(
        HC,
        "patient.registered.v2",
        patient,
        {"name": SECRET_NAME, "residence": VILLAGE, "birth_date": "1975-06-30", "household_region": A},
        days_ago=100,
    )
    a.send(
        COMMITTEE,
        "move.reported.v1",
        patient,
        {"move_id": str(move), "destination_region": B, "destination_unit": B_VILLAGE, "moving_on": "2026-11-15"},
    )
    return patient, handover_id(A, patient, move)


class TestSettings:
    def test_a_peers_file_that_is_not_valid_stops_start_up_naming_the_variable(self, tmp_path) -> None:
        bad = tmp_path / "peers.json"
        bad.write_text(json.dumps([{"region": B, "verifiers": ["nope"], "seal_public": "AAAA"}]))
        env = {"SMD_DATA_DIR": str(tmp_path), "SMD_CROSSREGION_PEERS": str(bad)}
        with pytest.raises(SettingsError, match="SMD_CROSSREGION_PEERS"):
            load_settings(env)
        with pytest.raises(SettingsError, match="SMD_CROSSREGION_PEERS"):
            load_settings({**env, "SMD_CROSSREGION_PEERS": str(tmp_path / "missing.json")})
        with pytest.raises(SettingsError, match="SMD_HANDOVER_ANSWER_DAYS"):
            load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_HANDOVER_ANSWER_DAYS": "0"})
        for bad in ("0", "3601", "soon"):
            with pytest.raises(SettingsError, match="SMD_HANDOVER_CHECK_SECONDS"):
                load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_HANDOVER_CHECK_SECONDS": bad})
        assert load_settings({"SMD_DATA_DIR": str(tmp_path)}).handover_check_seconds == 60
        every_half_second = {"SMD_DATA_DIR": str(tmp_path), "SMD_HANDOVER_CHECK_SECONDS": "0.5"}
        assert load_settings(every_half_second).handover_check_seconds == 0.5

    def test_the_keys_are_kept_and_a_retired_sealing_key_still_opens_what_was_sealed_to_it(self, tmp_path) -> None:
        first = load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_REGION": B})
        again = load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_REGION": B})
        assert crossregion_keys(first).peer_entry() == crossregion_keys(again).peer_entry()  # generated once
        message = seal(crossregion_keys(first).seal_private.public_key(), b"sealed before the rotation", b"aad")
        rotated = load_settings(
            {
                "SMD_DATA_DIR": str(tmp_path),
                "SMD_REGION": B,
                "SMD_CROSSREGION_SEAL_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                "SMD_CROSSREGION_SEAL_KEYS_RETIRED": base64.b64encode(first.crossregion_seal_key).decode(),
            }
        )
        assert crossregion_keys(rotated).open(message, b"aad") == b"sealed before the rotation"

    def test_smd_crossregion_peer_entry_prints_what_the_other_regions_peers_file_lists(
        self, tmp_path, monkeypatch, capsys
    ) -> None:
        from ops.cli import main

        monkeypatch.setenv("SMD_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("SMD_REGION", B)
        assert main(["crossregion", "peer-entry"]) == 0
        printed = json.loads(capsys.readouterr().out)
        own = load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_REGION": B})
        # its message keys, and what the other region witnesses its log with and asks its witness by
        assert printed == {
            **crossregion_keys(own).peer_entry(),
            "checkpoint_verifiers": [v.encode() for v in region_keys(own).verifiers(CHECKPOINT)],
            "witness": region_keys(own).signer(WITNESS).verifier.encode(),
        }
        assert printed["witness"].startswith(f"smd.example/{B}/witness+")
        peers = tmp_path / "peers.json"
        peers.write_text(json.dumps([printed]))
        linked = load_settings({"SMD_DATA_DIR": str(tmp_path / "a"), "SMD_CROSSREGION_PEERS": str(peers)})
        assert set(crossregion_keys(linked).peers) == {B}
        assert linked.peer_witnesses == ((B, printed["witness"]),) and linked.all_witnesses == (printed["witness"],)

    def test_a_production_region_linked_to_none_needs_no_crossregion_keys_and_a_linked_one_does(
        self, tmp_path, monkeypatch, capsys
    ) -> None:
        from ops.cli import main

        def key() -> str:
            return base64.b64encode(secrets.token_bytes(32)).decode()

        production = {
            "SMD_MODE": "production",
            "SMD_DATA_DIR": str(tmp_path),
            "SMD_REGION": B,
            "SMD_MASTER_KEY": key(),
            "SMD_MASTER_KEY_ID": "k1",
            "SMD_BLIND_INDEX_KEY": key(),
            "SMD_CHECKPOINT_KEY": key(),
        }
        alone = load_settings(production)
        assert alone.crossregion_key == b"" and crossregion_keys(alone).peers == {}
        assert not (tmp_path / "keys" / "crossregion.key").exists()  # nothing generated on disk
        for var, value in production.items():
            monkeypatch.setenv(var, value)
        assert main(["crossregion", "peer-entry"]) == 1  # keys of one run are never handed out
        assert "SMD_CROSSREGION_KEY" in capsys.readouterr().err
        peers = tmp_path / "peers.json"
        peers.write_text(
            json.dumps([crossregion_keys(load_settings({"SMD_DATA_DIR": str(tmp_path / "a")})).peer_entry()])
        )
        with pytest.raises(SettingsError, match="SMD_CROSSREGION_KEY"):
            load_settings({**production, "SMD_CROSSREGION_PEERS": str(peers)})
        linked = {**production, "SMD_CROSSREGION_KEY": key(), "SMD_CROSSREGION_SEAL_KEY": key()}
        assert load_settings({**linked, "SMD_CROSSREGION_PEERS": str(peers)}).witness_key == b""  # witnesses none
        other = load_settings({"SMD_DATA_DIR": str(tmp_path / "a")})
        entry = {
            **crossregion_keys(other).peer_entry(),
            "checkpoint_verifiers": [v.encode() for v in region_keys(other).verifiers(CHECKPOINT)],
        }
        peers.write_text(json.dumps([entry]))
        with pytest.raises(SettingsError, match="SMD_WITNESS_KEY"):  # a peer's log to witness: a key of its own
            load_settings({**linked, "SMD_CROSSREGION_PEERS": str(peers)})
        assert load_settings({**linked, "SMD_CROSSREGION_PEERS": str(peers), "SMD_WITNESS_KEY": key()}).witness_key


class TestInTheService:
    def test_the_followers_open_the_handover_with_the_configured_deadline_and_the_peer_applies_it(
        self, service_regions
    ) -> None:
        a, b = service_regions
        _, hid = report_move(a)
        run_followers(a)
        assert a.view(hid)["deadline"] == (NOW + timedelta(days=7)).isoformat()
        assert carry(a, b) == ["applied"]
        run_followers(b)
        owed = b.services.case_record.repository.get(answer_obligation_id(hid))
        assert (owed.assignee, owed.due_at) == (HC, NOW + timedelta(days=7))

    def test_the_deadline_check_runs_with_the_followers_and_escalates_on_both_sides(self, service_regions) -> None:
        a, b = service_regions
        _, hid = report_move(a)
        run_followers(a)
        carry(a, b)
        for region in (a, b):
            region.clock.now = NOW + timedelta(days=8)
            region.handovers._next_deadline_check = 0.0  # the next round looks (once a minute otherwise)
            run_followers(region)
            assert region.view(hid)["escalations"] == ["unanswered"]

    def test_the_deadline_check_runs_every_smd_handover_check_seconds(self, service_regions) -> None:
        a, b = service_regions
        assert (a.handovers.check_every, b.handovers.check_every) == (60.0, 0.5)
        _, hid = report_move(a)
        run_followers(a)  # looked once: the next look in a minute
        carry(a, b)
        run_followers(b)  # looked once: the next look in half a second
        for region in (a, b):
            region.clock.now = NOW + timedelta(days=8)
        time.sleep(0.6)
        run_followers(a), run_followers(b)
        assert a.view(hid)["escalations"] == [] and b.view(hid)["escalations"] == ["unanswered"]


def keys_for(region: Region, *agencies: str) -> dict[str, str]:
    return {agency: region.services.apikeys.issue(agency).key for agency in agencies}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class TestOverHttp:
    async def test_readers_list_and_read_handovers_and_others_see_none(self, service_regions) -> None:
        a, b = service_regions
        patient, hid = report_move(a)
        run_followers(a)
        carry(a, b)
        keys = keys_for(b, HC, GOV, AUDITOR, POLICE, OTHER_HC)
        async with AsyncTestClient(serving_app(b.services)) as client:
            for agency in (HC, GOV, AUDITOR):
                r = await client.get("/v1/handovers?direction=in", headers=bearer(keys[agency]))
                assert r.status_code == 200, r.text
                [item] = r.json()["items"]
                assert (item["id"], item["patient_id"], item["status"]) == (str(hid), str(patient), "requested")
                r = await client.get(f"/v1/handovers/{hid}", headers=bearer(keys[agency]))
                assert r.status_code == 200 and r.json()["responsible"] == [A]
                assert [h["fact"] for h in r.json()["history"]] == ["Requested"]
            r = await client.get("/v1/handovers?direction=out", headers=bearer(keys[HC]))
            assert r.json()["items"] == []
            for agency in (POLICE, OTHER_HC):  # not a reader, or not the unit's
                r = await client.get("/v1/handovers", headers=bearer(keys[agency]))
                assert r.status_code == 200 and r.json()["items"] == []
                r = await client.get(f"/v1/handovers/{hid}", headers=bearer(keys[agency]))
                assert r.status_code == 404
            r = await client.get(f"/v1/handovers/{uuid4()}", headers=bearer(keys[HC]))
            assert r.status_code == 404
        logged = [e for e in b.services.access_log.entries(limit=100) if e.endpoint.startswith("GET /v1/handovers")]
        assert any(patient in e.patient_ids for e in logged)

    async def test_the_receiving_health_center_accepts_over_http_and_a_takes_it_as_moved_out(
        self, service_regions
    ) -> None:
        a, b = service_regions
        patient, hid = report_move(a)
        run_followers(a)
        carry(a, b)
        keys = keys_for(b, HC, OTHER_HC, GOV)
        async with AsyncTestClient(serving_app(b.services)) as client:
            r = await client.post(f"/v1/handovers/{hid}/answer", json={"accepted": True}, headers=bearer(keys[GOV]))
            assert r.status_code == 403 and r.json()["type"].endswith("not-the-receiving-health-center")
            r = await client.post(f"/v1/handovers/{hid}/answer", json={"accepted": True}, headers=bearer(keys[HC]))
            assert r.status_code == 200, r.text
            assert (r.json()["status"], r.json()["responsible"]) == ("accepted", [A, B])
            r = await client.post(f"/v1/handovers/{hid}/answer", json={"accepted": False}, headers=bearer(keys[HC]))
            assert r.status_code == 409 and r.json()["type"].endswith("handover-already-decided")
        assert b.file(patient).residence == B_VILLAGE
        assert carry(b, a) == ["applied"]
        assert a.view(hid)["status"] == "accepted" and a.view(hid)["responsible"] == [B]
        run_followers(b)
        assert b.services.case_record.repository.get(answer_obligation_id(hid)).status == "completed"

    async def test_the_origin_cancels_over_http_and_the_destination_has_nothing_left_to_answer(
        self, service_regions
    ) -> None:
        a, b = service_regions
        _, hid = report_move(a)
        run_followers(a)
        carry(a, b)
        a_keys, b_keys = keys_for(a, HC, POLICE), keys_for(b, HC)
        async with AsyncTestClient(serving_app(a.services)) as client:
            body = {"reason": "the family stays"}
            r = await client.post(f"/v1/handovers/{hid}/cancel", json=body, headers=bearer(a_keys[POLICE]))
            assert r.status_code == 404
            r = await client.post(f"/v1/handovers/{hid}/cancel", json=body, headers=bearer(a_keys[HC]))
            assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert carry(a, b) == ["applied"]
        async with AsyncTestClient(serving_app(b.services)) as client:
            r = await client.post(f"/v1/handovers/{hid}/answer", json={"accepted": True}, headers=bearer(b_keys[HC]))
            assert r.status_code == 409 and r.json()["type"].endswith("handover-cancelled")
