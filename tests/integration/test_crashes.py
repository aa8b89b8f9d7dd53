"""Crash tests (issue 17): processes killed with SIGKILL while 5,000 envelopes are in flight.

The service runs as README documents it, as subprocesses on the test's own PostgreSQL database
and NATS streams, with ``SMD_INTAKE_ACK_WAIT_SECONDS=2``:

- separate processes: ``smd ingest`` (killed twice), ``smd outbox`` (killed ten times), and
  ``smd serve`` without NATS for the rules and the work queue;
- one ``smd serve`` with NATS (intake, rules, outbox in one process), killed as often.

The sender keeps a ledger of every envelope JetStream acknowledged; at the end, read straight
from the events table: every envelope id has exactly one receipt (0 lost, 0 duplicated), every
patient's stream holds exactly its facts, nothing was refused; and a receiver reading the OUT
stream, deduplicating on the CloudEvents id, got every message the log calls for exactly once.

Every envelope is published at once: 4,000 registrations, and a level-4 visit for every fourth
patient published 120 registrations after its own (in the intake's next batch). A registration
held by a killed intake comes back after AckWait, behind its visit: the visit waits (the waiting
table, docs/decisions/015) and is recorded when the registration arrives, so nothing is refused
``patient-not-found``; the report counts the visits that waited.

Sizes: ``SMD_CRASH_REGISTRATIONS`` (default 4,000) + ``SMD_CRASH_VISITS`` (default 1,000).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from nats.aio.client import Client

from integrations.streams import INTAKE_CONSUMER, Names, ensure_streams
from ops.bootstrap import Services
from tests.support.ledger import (
    Ledger,
    StoreCounts,
    error_lines,
    expected_outbound,
    level_4_visit,
    read_outbound,
    registration,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_REGISTRATIONS = int(os.environ.get("SMD_CRASH_REGISTRATIONS", "4000"))
N_VISITS = int(os.environ.get("SMD_CRASH_VISITS", "1000"))
ACK_WAIT = {"SMD_INTAKE_ACK_WAIT_SECONDS": "2"}
#: A visit is published this many registrations after its own: in the intake's next batch (100),
#: so a registration held by a killed intake comes back behind its visit.
VISIT_GAP = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Run:
    """What happened, for the assertions and the report."""

    started: float = field(default_factory=time.monotonic)
    kills: list[tuple[float, str]] = field(default_factory=list)

    def at(self) -> float:
        return round(time.monotonic() - self.started, 1)


class Process:
    """One kind of worker, restarted right after each kill (as a supervisor would)."""

    def __init__(self, start: Callable[..., subprocess.Popen], command: str, run: Run, **env: str) -> None:
        self.start, self.command, self.run, self.env = start, command, run, env
        self.proc = start(command, **env)
        self.started_at = time.monotonic()
        self.kills = 0

    def kill_and_restart(self) -> None:
        assert self.proc.poll() is None, f"{self.command} died by itself (exit {self.proc.returncode})"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1
        self.run.kills.append((self.run.at(), self.command))
        self.proc = self.start(self.command, **self.env)
        self.started_at = time.monotonic()

    def alive_for(self) -> float:
        return time.monotonic() - self.started_at

    def check_alive(self, logs: Path) -> None:
        """Fail with the log's tail when the process exited by itself (no one would restart it)."""
        if self.proc.poll() is not None:
            newest = max(logs.glob(f"{self.command}-*.log"), key=lambda p: p.stat().st_mtime)
            tail = newest.read_text(errors="replace")[-3000:]
            pytest.fail(f"{self.command} exited by itself ({self.proc.returncode}); {newest.name}:\n{tail}")


async def drive(
    svc: Services,
    nc: Client,
    names: Names,
    counts: StoreCounts,
    chaos: Callable[[int, int], None],
    run: Run,
    *,
    timeout: float,
    diagnose: Callable[[], str] = lambda: "",
) -> Ledger:
    """Publish every envelope at once (a level-4 visit right behind every fourth registration);
    call ``chaos(stored, outbound)`` as it goes; return once everything is stored, nothing waits
    and every follower has caught up."""
    ledger = Ledger(names)
    every = max(1, N_REGISTRATIONS // max(1, N_VISITS))
    items: list[tuple[str, bytes, UUID, str]] = []
    visits: dict[int, list[UUID]] = {}  # position in the stream → visits published there
    for i in range(N_REGISTRATIONS):
        patient = uuid4()
        items.append((*registration(patient), patient, "patient.registered.v1"))
        if i % every == 0 and i // every < N_VISITS:
            visits.setdefault(i + VISIT_GAP, []).append(patient)
        items += [(*level_4_visit(p), p, "visit.recorded.v1") for p in visits.pop(i, [])]
    items += [(*level_4_visit(p), p, "visit.recorded.v1") for later in visits.values() for p in later]
    await ledger.publish(nc, items)
    deadline = time.monotonic() + timeout
    while True:
        stored = counts.receipts(ledger.keys())
        outbound = (await nc.jetstream().stream_info(names.out_stream)).state.messages
        chaos(len(stored), outbound)
        if len(stored) == len(ledger.sent):
            lag = await asyncio.to_thread(svc.follower_status)
            waiting = await asyncio.to_thread(svc.waiting.stats)
            if waiting.waiting == 0 and all(s.lag_events == 0 and not s.parked and not s.held for s in lag):
                return ledger
        if time.monotonic() > deadline:
            pytest.fail(
                f"not settled after {timeout:.0f} s: {len(stored)} of {len(ledger.sent)} stored, "
                f"waiting {await asyncio.to_thread(svc.waiting.stats)}, "
                f"followers {await asyncio.to_thread(svc.follower_status)}\n"
                f"sessions: {counts.activity()}\n{diagnose()}"
            )
        await asyncio.sleep(0.3)


def waited(logs: Path) -> int:
    """Messages an intake held in the waiting table (their registration had not arrived yet)."""
    count = 0
    for log in logs.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"waiting"' in line:
                entry = json.loads(line)
                count += entry.get("event") == "intake" and entry.get("outcome") == "waiting"
    return count


async def verify(
    svc: Services, nc: Client, names: Names, counts: StoreCounts, ledger: Ledger, run: Run, logs: Path
) -> dict:
    """0 lost, 0 duplicated, nothing refused, every outbound message once after dedup."""
    receipts = counts.receipts(ledger.keys())
    lost = [k for k in ledger.sent if receipts.get(k, 0) == 0]
    doubled = [k for k, n in receipts.items() if n > 1]
    streams = counts.events_per(list(ledger.by_patient))
    wrong = [p for p, keys in ledger.by_patient.items() if streams.get(p, 0) != len(keys)]
    rejected = (await nc.jetstream().stream_info(names.rejected_stream)).state.messages
    consumer = await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
    assert consumer.config.ack_wait == 2.0, "SMD_INTAKE_ACK_WAIT_SECONDS reached the consumer"
    expected = await asyncio.to_thread(expected_outbound, svc.case_record, names)
    received = await read_outbound(nc, names)
    missing = set(expected) - set(received)
    extra = set(received) - set(expected)
    report = {
        "envelopes": len(ledger.sent),
        "registrations": len(ledger.keys("patient.registered.v1")),
        "visits": len(ledger.keys("visit.recorded.v1")),
        "visits_that_waited_for_their_registration": waited(logs),
        "lost": len(lost),
        "duplicated": len(doubled),
        "patients_with_wrong_fact_count": len(wrong),
        "rejected": rejected,
        "intake_deliveries": consumer.delivered.consumer_seq,  # beyond the envelopes: redelivered
        "outbound_expected": len(expected),
        "outbound_received_distinct": len(received),
        "outbound_raw_duplicates": sum(received.values()) - len(received),
        "outbound_missing": len(missing),
        "outbound_extra": len(extra),
        "kills": [f"{t}s {what}" for t, what in run.kills],
        "seconds": run.at(),
    }
    print("\ncrash test:", json.dumps(report))
    assert (lost, doubled, wrong, rejected) == ([], [], [], 0), report
    assert len(expected) >= 2 * N_VISITS, "every level-4 patient: an R1 obligation and a notice"
    assert (missing, extra) == (set(), set()), report
    return report


def tails(logs: Path, lines: int = 15) -> str:
    """The last lines of each process's newest log (what a stuck process did last)."""
    newest: dict[str, Path] = {}
    for log in sorted(logs.glob("*.log"), key=lambda p: p.stat().st_mtime):
        newest[log.name.rsplit("-", 1)[0]] = log
    return "\n".join(
        f"== {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) for log in newest.values()
    )


def no_restarts(tmp_path: Path) -> None:
    """A worker killed and started again, or idle, never logs "… failed; restarting"."""
    errors = error_lines(*tmp_path.glob("*.log"))
    assert not [e for e in errors if "restarting" in e], errors


async def test_kill_9_of_smd_ingest_twice_and_smd_outbox_ten_times_loses_and_doubles_nothing(
    svc: Services,
    names: Names,
    nc: Client,
    nats_env: dict[str, str],
    workers: Callable[..., subprocess.Popen],
    tmp_path: Path,
) -> None:
    await ensure_streams(nc.jetstream(), names)
    run = Run()
    # the rules and the work queue: `smd serve` without NATS (with it, it would also run an intake
    # and an outbox); the NATS workers as separate processes
    rules = Process(workers, "serve", run, SMD_NATS_URL="", SMD_PORT=str(free_port()))
    ingest = Process(workers, "ingest", run, **ACK_WAIT)
    outbox = Process(workers, "outbox", run, **ACK_WAIT)
    ingest_at = [int(N_REGISTRATIONS * 0.25), int(N_REGISTRATIONS * 0.6)]
    counts = StoreCounts(svc.settings.postgres.conninfo())  # type: ignore[union-attr]
    last_outbound = [0]

    def chaos(stored: int, outbound: int) -> None:
        for process in (rules, ingest, outbox):
            process.check_alive(tmp_path)
        if ingest_at and stored >= ingest_at[0] and ingest.alive_for() > 1.5:
            ingest_at.pop(0)
            ingest.kill_and_restart()
        # the outbox: killed once it has published since its last start (so mid-stream), ten times
        if outbox.kills < 10 and outbound > last_outbound[0] and outbox.alive_for() > 1.5:
            last_outbound[0] = outbound
            outbox.kill_and_restart()

    try:
        ledger = await drive(svc, nc, names, counts, chaos, run, timeout=240, diagnose=lambda: tails(tmp_path))
        report = await verify(svc, nc, names, counts, ledger, run, tmp_path)
    finally:
        counts.close()
    # the outbox is killed each time it has published since its last start, up to ten times; a
    # fast run can publish its whole stream before the tenth
    assert ingest.kills == 2 and outbox.kills >= 4, report
    no_restarts(tmp_path)


async def test_kill_9_of_smd_serve_running_intake_rules_and_outbox_loses_and_doubles_nothing(
    svc: Services,
    names: Names,
    nc: Client,
    workers: Callable[..., subprocess.Popen],
    tmp_path: Path,
) -> None:
    await ensure_streams(nc.jetstream(), names)
    run = Run()
    serve = Process(workers, "serve", run, SMD_PORT=str(free_port()), **ACK_WAIT)
    during_intake = [int(N_REGISTRATIONS * 0.25), int(N_REGISTRATIONS * 0.6)]
    counts = StoreCounts(svc.settings.postgres.conninfo())  # type: ignore[union-attr]
    last_outbound = [0]

    def chaos(stored: int, outbound: int) -> None:
        serve.check_alive(tmp_path)
        if serve.alive_for() < 2.5:
            return
        if during_intake and stored >= during_intake[0]:
            during_intake.pop(0)
            serve.kill_and_restart()
        elif serve.kills < 10 and outbound > last_outbound[0]:
            last_outbound[0] = outbound
            serve.kill_and_restart()

    try:
        ledger = await drive(svc, nc, names, counts, chaos, run, timeout=240, diagnose=lambda: tails(tmp_path))
        report = await verify(svc, nc, names, counts, ledger, run, tmp_path)
    finally:
        counts.close()
    assert serve.kills >= 4, report
    no_restarts(tmp_path)
