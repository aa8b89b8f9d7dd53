"""The verifiable log over HTTP, for auditors: the latest signed checkpoint (checked offline with
its verifier key), an inclusion proof of one row, a consistency proof between two checkpoints;
refused to every other kind; RFC 9457 problems. On both stores."""

from __future__ import annotations

import base64

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.audit import merkle
from core.audit.leaves import leaf_of
from core.audit.notes import Checkpoint, Verifier, open_note
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_verifiable_log import follow, record_patients, stored_rows

H = merkle.Hasher("sha256")


@pytest.fixture
def audited(open_store):
    services = open_store()
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in ("auditor-lantern-bay", "hc-north")}
    return services, keys


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


class TestAuditEndpoints:
    async def test_an_auditor_gets_a_signed_checkpoint_and_proofs_that_verify_offline(self, audited) -> None:
        services, keys = audited
        record_patients(services, patients=2)
        follow(services)
        first = services.checkpointer.sign_now()
        record_patients(services, patients=2)
        follow(services)
        second = services.checkpointer.sign_now()
        assert first is not None and second is not None
        async with AsyncTestClient(app=create_app(services)) as client:
            r = await client.get("/v1/audit/checkpoints/latest", headers=auth(keys["auditor-lantern-bay"]))
            assert r.status_code == 200, r.text
            cp = r.json()
            note, _ = open_note(cp["note"], [Verifier.decode(cp["verifier_key"])])
            body = Checkpoint.parse(note.body)
            assert (body.origin, body.size, cp["size"]) == ("smd.example/990101", second.size, second.size)
            row = stored_rows(services)[5]
            r = await client.get(
                f"/v1/audit/proofs/inclusion?notification_id={row.id}", headers=auth(keys["auditor-lantern-bay"])
            )
            assert r.status_code == 200, r.text
            inc = r.json()
            proof = [base64.b64decode(p) for p in inc["proof"]]
            merkle.verify_inclusion(H, inc["leaf_index"], body.size, leaf_of(H, row), proof, body.root)
            r = await client.get(
                f"/v1/audit/proofs/consistency?first={first.size}&second={second.size}",
                headers=auth(keys["auditor-lantern-bay"]),
            )
            assert r.status_code == 200, r.text
            proof = [base64.b64decode(p) for p in r.json()["proof"]]
            merkle.verify_consistency(H, first.size, second.size, first.root, body.root, proof)

    async def test_other_kinds_are_refused_and_errors_are_problems(self, audited) -> None:
        services, keys = audited
        async with AsyncTestClient(app=create_app(services)) as client:
            r = await client.get("/v1/audit/checkpoints/latest", headers=auth(keys["auditor-lantern-bay"]))
            assert r.status_code == 404 and r.json()["type"].endswith("no-checkpoint-yet")
            assert r.headers["content-type"].startswith("application/problem+json")
            r = await client.get("/v1/audit/checkpoints/latest", headers=auth(keys["hc-north"]))
            assert r.status_code == 403
            follow(services)
            services.checkpointer.sign_now()
            r = await client.get(
                "/v1/audit/proofs/inclusion?notification_id=999999", headers=auth(keys["auditor-lantern-bay"])
            )
            assert r.status_code == 404 and r.json()["type"].endswith("not-in-tree")
            r = await client.get("/v1/audit/proofs/consistency?first=999999", headers=auth(keys["auditor-lantern-bay"]))
            assert r.status_code == 400 and r.json()["type"].endswith("invalid-proof-request")


class TestCheckpointer:
    def test_checkpoints_come_every_n_leaves_and_a_rewritten_tree_is_refused(self, open_store) -> None:
        from core.audit.checkpoints import InconsistentCheckpoint
        from tests.support.rogue import RogueAdmin

        services = open_store()
        services.checkpointer.every_events = 5
        record_patients(services, patients=1, visits=1)  # 4 rows
        follow(services)
        services.checkpointer.run_once()
        assert services.chain_store.latest_checkpoint() is not None  # the first one: anything new
        size = services.chain_store.latest_checkpoint().size
        record_patients(services, patients=1, visits=0)  # 2 more: not yet 5 new
        follow(services)
        services.checkpointer.run_once()
        assert services.chain_store.latest_checkpoint().size == size
        record_patients(services, patients=2, visits=0)
        follow(services)
        services.checkpointer.run_once()
        assert services.chain_store.latest_checkpoint().size == size + 6
        # an administrator rewrites a row and rebuilds the tree under the last checkpoint
        rogue = RogueAdmin(services)
        rows = stored_rows(services)
        rogue.update_state(rows[1].id, b'{"forged": true}')
        kept = services.chain_store.checkpoints()
        rogue.rebuild_tree()
        for cp in kept:
            services.chain_store.add_checkpoint(cp)
        follow(services)
        record_patients(services, patients=1, visits=0)
        follow(services)
        with pytest.raises(InconsistentCheckpoint):
            services.checkpointer.sign_now()
        assert services.chain_store.latest_checkpoint().size == size + 6


class TestCheckpointMetrics:
    async def test_metrics_show_the_latest_checkpoint_and_its_cosignatures(self, audited) -> None:
        services, _ = audited
        follow(services)
        cp = services.checkpointer.sign_now()
        async with AsyncTestClient(app=create_app(services)) as client:
            text = (await client.get("/metrics")).text
        assert f"smd_checkpoint_size {float(cp.size)}" in text
        assert "smd_checkpoint_cosignatures 0.0" in text
        assert 'smd_follower_position{follower="chain"}' in text
