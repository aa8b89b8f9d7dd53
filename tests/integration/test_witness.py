"""Witnesses over the real NATS: the service asks a witness (its own store, its own key) to cosign
each checkpoint; the witness checks it extends what it holds, cosigns, and the service keeps the
cosignature. A tree rewritten under a cosigned checkpoint is refused by the witness, and the
witness's copy makes `smd verify --against` name the rewrite. On both stores."""

from __future__ import annotations

import asyncio

import nats
import pytest

from core.audit.notes import SignedNote, Signer, check_cosignature
from integrations.witnessing import request_cosignature, serve_witness, witness_subject
from ops.cli_audit import open_witness
from tests.integration.test_verifiable_log import follow, record_patients, stored_rows, use_settings
from tests.support.rogue import RogueAdmin

pytestmark = pytest.mark.integration


async def test_a_witness_cosigns_consistent_checkpoints_and_refuses_a_rewritten_tree(
    open_store, nats_url, subject_root, tmp_path, monkeypatch, capsys
) -> None:
    services = open_store()
    log_key = services.audit.keys.signer("checkpoint").verifier.encode()
    witness = open_witness(tmp_path / "witness", "witness.example/w1", [log_key])
    w = witness.signer.verifier
    subject = witness_subject(subject_root, services.settings.region, w)
    nc = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve_witness(nc, witness, subject, stop))
    await asyncio.sleep(0.1)
    try:
        # the first checkpoint: the witness holds nothing yet
        record_patients(services, patients=2)
        follow(services)
        first = services.checkpointer.sign_now()
        assert await request_cosignature(nc, services.chain_store, subject, w) == "cosigned"
        # the second: the witness answers "conflict <its size>", the service proves from there
        record_patients(services, patients=2)
        follow(services)
        second = services.checkpointer.sign_now()
        assert await request_cosignature(nc, services.chain_store, subject, w) == "cosigned"
        assert await request_cosignature(nc, services.chain_store, subject, w) == "already"
        view = services.audit.latest()
        assert view.size == second.size and view.witnesses == ["witness.example/w1"]
        check_cosignature(SignedNote.parse(view.note), w)
        assert witness.store.latest("smd.example/990101")[0] == second.size > first.size

        # an administrator rewrites a row, rebuilds the tree and has a new checkpoint signed
        rows = stored_rows(services)
        rogue = RogueAdmin(services)
        rogue.update_state(rows[3].id, b'{"forged": true}')
        rogue.rebuild_tree()
        record_patients(services, patients=1, visits=0)
        follow(services)
        services.checkpointer.sign_now()
        reason = await request_cosignature(nc, services.chain_store, subject, w)
        assert "does not lead to the tree" in reason, reason
        assert witness.store.latest("smd.example/990101")[0] == second.size  # nothing new held

        # the witness's copy names the rewrite
        from ops.cli import main

        use_settings(monkeypatch, services)
        copy = tmp_path / "witness-copy.note"
        assert (
            main(
                ["witness", "--data-dir", str(tmp_path / "witness"), "--log-key", log_key, "--show", "--out", str(copy)]
            )
            == 0
        )
        capsys.readouterr()
        assert main(["verify"]) == 0
        assert main(["verify", "--against", str(copy)]) == 1
        assert "the stored rows do not give its root" in capsys.readouterr().out
    finally:
        stop.set()
        await serving
        await nc.close()


async def test_a_witness_refuses_a_checkpoint_signed_by_a_key_it_does_not_know(open_store, tmp_path) -> None:
    from core.audit.witness import add_checkpoint_request

    services = open_store()
    record_patients(services, patients=1, visits=0)
    follow(services)
    cp = services.checkpointer.sign_now()
    other_log = Signer.from_seed("smd.example/990101", bytes(32)).verifier.encode()  # same name, another key
    witness = open_witness(tmp_path / "w", "witness.example/w2", [other_log])
    reply = witness.add_checkpoint(add_checkpoint_request(0, [], cp.note))
    assert reply.startswith(b"refused ")


async def test_smd_witness_and_the_service_round_cosign_over_nats(open_store, nats_url, subject_root, tmp_path) -> None:
    import os
    import subprocess
    import sys

    import msgspec

    from integrations.witnessing import run_witnessing
    from tests.support.nats_world import ROOT_DIR, wait_for

    services = open_store()
    log_key = services.audit.keys.signer("checkpoint").verifier.encode()
    env = {**os.environ, "SMD_NATS_URL": nats_url, "SMD_SUBJECT_ROOT": subject_root, "PYTHONPATH": str(ROOT_DIR)}
    args = [sys.executable, "-m", "ops.cli", "witness", "--data-dir", str(tmp_path / "w"), "--log-key", log_key]
    proc = subprocess.Popen(args, env=env, cwd=ROOT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        witness_key = first.rsplit(" ", 1)[1].strip()
        assert "listening on" in proc.stdout.readline()
        services.settings = msgspec.structs.replace(
            services.settings, subject_root=subject_root, witnesses=(witness_key,)
        )
        record_patients(services, patients=1)
        follow(services)
        services.checkpointer.sign_now()
        nc = await nats.connect(nats_url, connect_timeout=5)
        stop = asyncio.Event()
        task = asyncio.create_task(run_witnessing(services, nc, stop))
        try:
            await wait_for(lambda: services.audit.latest().witnesses, what="the witness's cosignature", timeout=15)
        finally:
            stop.set()
            await task
            await nc.close()
        assert services.audit.latest().witnesses == ["witness.example/w1"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class TestTheWitnessStoreOnBothStores:
    """The witness's own store: an SQLite file in its folder, or its own PostgreSQL database."""

    def test_a_witness_on_either_store_keeps_what_it_cosigned_across_a_restart_and_refuses_a_rewrite(
        self, open_store, store_kind, tmp_path, request
    ) -> None:
        from core.audit.proofs import TreeReader
        from core.audit.witness import PostgresWitnessStore, SQLiteWitnessStore, add_checkpoint_request

        url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else ""
        services = open_store()
        log_key = services.audit.keys.signer("checkpoint").verifier.encode()
        witness = open_witness(tmp_path / "w", "witness.example/w3", [log_key], url)
        assert isinstance(witness.store, PostgresWitnessStore if url else SQLiteWitnessStore)
        record_patients(services, patients=2)
        follow(services)
        first = services.checkpointer.sign_now()
        assert witness.add_checkpoint(add_checkpoint_request(0, [], first.note)).startswith(b"\xe2\x80\x94 ")
        witness.store.close()

        again = open_witness(tmp_path / "w", "witness.example/w3", [log_key], url)  # a restart
        assert again.store.latest("smd.example/990101")[0] == first.size
        assert again.add_checkpoint(add_checkpoint_request(0, [], first.note)) == f"conflict {first.size}\n".encode()
        record_patients(services, patients=1)
        follow(services)
        second = services.checkpointer.sign_now()
        proof = TreeReader(services.chain_store).consistency(first.size, second.size)
        assert again.add_checkpoint(add_checkpoint_request(first.size, proof, second.note)).startswith(b"\xe2\x80\x94 ")
        size, _, note = again.store.latest("smd.example/990101")
        assert size == second.size and note.startswith(second.note) and "witness.example/w3" in note

        rows = stored_rows(services)  # a rewrite under what it holds gets no cosignature
        rogue = RogueAdmin(services)
        rogue.update_state(rows[3].id, b'{"forged": true}')
        rogue.rebuild_tree()
        record_patients(services, patients=1, visits=0)
        follow(services)
        forged = services.checkpointer.sign_now()
        if forged is not None:  # the checkpointer itself may refuse first
            proof = TreeReader(services.chain_store).consistency(second.size, forged.size)
            reply = again.add_checkpoint(add_checkpoint_request(second.size, proof, forged.note))
            assert reply.startswith(b"refused"), reply
        assert again.store.latest("smd.example/990101")[0] == second.size
        again.store.close()
