"""Each region is the other's witness over the link (decision 046): two nats-servers linked by the
leaf node under the restricted cross-region account (tests/support/crossregion.py: A on SQLite
behind the hub, B on PostgreSQL behind the leaf). Each region's service runs
``run_peer_witnessing`` as `smd serve` does: it cosigns the other's checkpoints with its witness
key, keeping them in its own store (B: its PostgreSQL database; A: witnessed.sqlite), and asks the
other's witness to cosign its own. A tail rewritten in A, with the tree and checkpoints recomputed,
passes `smd verify` alone, is caught by `smd verify --against` B's cosigned copy
(`smd crossregion witnessed`), and B refuses to cosign it. Only the witness subjects cross."""

from __future__ import annotations

import asyncio
import base64

import msgspec
import nats
import nats.errors
import pytest

from core.audit.notes import SignedNote, Verifier, check_cosignature
from integrations.crossregion.servers import leaf_subjects
from integrations.witnessing import (
    peer_witnessing,
    request_cosignature,
    run_peer_witnessing,
    witness_reply_prefix,
    witness_subject,
)
from ops.bootstrap import open_peer_witness
from ops.settings import PeerConfig
from tests.integration.test_handovers import A, B
from tests.integration.test_verifiable_log import follow, record_patients, stored_rows
from tests.support.crossregion import DOMAINS, ROOT, Side, run, two_regions
from tests.support.nats_world import wait_for
from tests.support.rogue import RogueAdmin

pytestmark = pytest.mark.integration

__all__ = ["two_regions"]  # the fixture


def linked(side: Side) -> None:
    """The side's service settings as `smd serve` would read them: its peers file (the other's
    entry: checkpoint verifiers and witness key) and its cross-region account."""
    services = side.region.services
    peers = msgspec.json.decode(side.peers_file.read_bytes(), type=tuple[PeerConfig, ...])
    services.settings = msgspec.structs.replace(
        services.settings,
        subject_root=ROOT,
        crossregion_peers=peers,
        crossregion_nats_url=side.url,
        crossregion_domain=DOMAINS[side.code],
    )


def cli_env(monkeypatch: pytest.MonkeyPatch, side: Side) -> None:
    """The CLI reads the environment: the side's store, keys and peers."""
    s = side.region.services.settings
    monkeypatch.setenv("SMD_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("SMD_REGION", side.code)
    monkeypatch.setenv("SMD_NATS_URL", "")
    monkeypatch.setenv("SMD_CROSSREGION_PEERS", str(side.peers_file))
    monkeypatch.setenv("SMD_CROSSREGION_DOMAIN", DOMAINS[side.code])
    for var, key in (("SMD_CHECKPOINT_KEY", s.checkpoint_key), ("SMD_WITNESS_KEY", s.witness_key)):
        monkeypatch.setenv(var, base64.b64encode(key).decode())
    if s.postgres is not None:
        pg = s.postgres
        monkeypatch.setenv("SMD_DATABASE_URL", f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.dbname}")
    else:
        monkeypatch.delenv("SMD_DATABASE_URL", raising=False)


def test_each_region_cosigns_the_others_checkpoints_and_a_tail_rewritten_in_a_is_caught_against_bs_copy(
    two_regions, monkeypatch, capsys, tmp_path
) -> None:
    from ops.cli import main

    a, b = two_regions
    for side in (a, b):
        linked(side)
    sa, sb = a.region.services, b.region.services
    b_witness = Verifier.decode(sa.settings.crossregion_peers[0].witness)  # B's, as A's peers file lists it
    a_witness = Verifier.decode(sb.settings.crossregion_peers[0].witness)
    assert sa.settings.all_witnesses == (b_witness.encode(),)  # what status and /readyz list
    assert peer_witnessing(sa.settings) and peer_witnessing(sb.settings)  # `smd serve` runs it

    witnesses = {side.code: open_peer_witness(side.region.services.settings) for side in (a, b)}
    assert witnesses[B].signer.verifier == b_witness and witnesses[A].signer.verifier == a_witness
    for side in (a, b):
        record_patients(side.region.services, patients=2)
        follow(side.region.services)
        side.region.services.checkpointer.sign_now()

    async def story() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(run_peer_witnessing(s.region.services, witnesses[s.code], stop)) for s in (a, b)]
        try:
            # each region's checkpoint cosigned by the other's witness, across the leaf node
            await wait_for(lambda: sa.audit.latest().witnesses, what="B's cosignature of A's checkpoint", timeout=20)
            await wait_for(lambda: sb.audit.latest().witnesses, what="A's cosignature of B's checkpoint", timeout=20)
            latest_a = sa.audit.latest()
            assert latest_a.witnesses == [b_witness.name] == [f"smd.example/{B}/witness"]
            check_cosignature(SignedNote.parse(latest_a.note), b_witness)
            assert sb.audit.latest().witnesses == [a_witness.name]
            assert (await sa.readiness()).checks[f"witness:{b_witness.name}"] == "ok"
            # each witness's copy is in the witnessing region's own store
            assert witnesses[B].store.latest(f"smd.example/{A}")[0] == latest_a.size
            assert witnesses[A].store.latest(f"smd.example/{B}")[0] == sb.audit.latest().size
            # a later checkpoint is cosigned too (the witness proves it extends what it holds)
            record_patients(sa, patients=1)
            follow(sa)
            second = sa.checkpointer.sign_now()
            await wait_for(lambda: sa.audit.latest().witnesses, what="the second cosignature", timeout=20)
            assert witnesses[B].store.latest(f"smd.example/{A}")[0] == second.size

            # B's cosigned copy, as an auditor takes it from B
            copy = tmp_path / "b-copy-of-a.note"
            cli_env(monkeypatch, b)
            assert main(["crossregion", "witnessed", A, "--out", str(copy)]) == 0
            assert copy.read_text().startswith(second.note) and b_witness.name in copy.read_text()

            # an administrator of A rewrites the tail, rebuilds the tree, and A signs it anew
            rogue = RogueAdmin(sa)
            for row in stored_rows(sa)[-2:]:
                rogue.update_state(row.id, b'{"forged": true}')
            rogue.rebuild_tree()
            record_patients(sa, patients=1, visits=0)
            follow(sa)
            forged = sa.checkpointer.sign_now()
            assert forged is not None and forged.size > second.size

            # B refuses to cosign the rewritten tree; what it holds is unchanged
            inbox = witness_reply_prefix(ROOT, A)
            nc = await nats.connect(a.url, connect_timeout=3, allow_reconnect=False, inbox_prefix=inbox)
            try:
                reason = await request_cosignature(
                    nc, sa.chain_store, witness_subject(ROOT, A, b_witness), b_witness, timeout=5
                )
            finally:
                await nc.close()
            assert "does not lead to the tree" in reason, reason
            assert witnesses[B].store.latest(f"smd.example/{A}")[0] == second.size
            assert sa.audit.latest().witnesses == []
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    run(story())

    cli_env(monkeypatch, a)
    capsys.readouterr()
    assert main(["verify"]) == 0  # A's own rows, tree and checkpoints agree
    assert main(["verify", "--against", str(tmp_path / "b-copy-of-a.note")]) == 1
    out = capsys.readouterr().out
    assert "the stored rows do not give its root" in out and "b-copy-of-a.note" in out, out
    for w in witnesses.values():
        w.store.close()


def test_only_the_witness_subjects_and_their_replies_cross_the_link(two_regions) -> None:
    a, b = two_regions
    for side in (a, b):
        linked(side)
    b_witness = Verifier.decode(a.region.services.settings.crossregion_peers[0].witness)
    a_witness = Verifier.decode(b.region.services.settings.crossregion_peers[0].witness)

    async def story() -> None:
        nc_b = await nats.connect(b.url, connect_timeout=3, allow_reconnect=False)
        own = await nats.connect(
            a.url, connect_timeout=3, allow_reconnect=False, inbox_prefix=f"{ROOT}.{A}.witness-reply"
        )
        shared = await nats.connect(a.url, connect_timeout=3, allow_reconnect=False)  # replies on _INBOX
        try:

            async def echo(msg) -> None:
                await msg.respond(b"heard " + msg.subject.encode())

            real = witness_subject(ROOT, A, b_witness)
            others = [
                f"{ROOT}.{A}.witness.{'0' * 16}",  # another key id
                f"{ROOT}.{A}.witness-other",
                f"{ROOT}.{B}.witness.{b_witness.key_id.hex()}",  # B's log with B's own witness
                f"{ROOT}.{A}.in.hc-north.x",
            ]
            for subject in (real, *others):
                await nc_b.subscribe(subject, cb=echo)
            await nc_b.flush()

            async def answered(nc, subject: str) -> bytes | None:
                try:
                    return (await nc.request(subject, b"x", timeout=0.5)).data
                except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                    return None

            # the real one crosses once the leaf node has carried B's interest over
            for _ in range(40):
                if await answered(own, real) is not None:
                    break
            assert await answered(own, real) == b"heard " + real.encode()
            for subject in others:
                assert await answered(own, subject) is None, subject
            assert await answered(shared, real) is None  # a reply on _INBOX does not come back
        finally:
            for nc in (nc_b, own, shared):
                await nc.close()

    run(story())
    assert a_witness != b_witness


def test_the_leaf_users_subjects_are_the_links_and_exactly_the_two_witness_subjects_and_replies() -> None:
    from core.audit.notes import COSIGNATURE_V1, Signer

    wa = Signer.from_seed(f"smd.example/{A}/witness", bytes(32), COSIGNATURE_V1).verifier
    wb = Signer.from_seed(f"smd.example/{B}/witness", bytes(range(32)), COSIGNATURE_V1).verifier
    without = leaf_subjects(ROOT, DOMAINS)
    with_witnesses = leaf_subjects(ROOT, DOMAINS, {A: wb, B: wa})
    assert set(with_witnesses) - set(without) == {
        f"{ROOT}.{A}.witness.{wb.key_id.hex()}",
        f"{ROOT}.{A}.witness-reply.>",
        f"{ROOT}.{B}.witness.{wa.key_id.hex()}",
        f"{ROOT}.{B}.witness-reply.>",
    }
    assert set(without) <= set(with_witnesses)
