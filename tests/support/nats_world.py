"""Fixtures for tests of the NATS workers: one test, its own database, subject root and streams.

Loaded for every test as a pytest plugin (tests/conftest.py); fixtures are created lazily, so
only tests that ask for them pay for them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from core.registry import load_file
from integrations.streams import Names, names_of
from ops.bootstrap import Services, bootstrap
from ops.data_files import DEMO_DISTRICT
from ops.settings import load_settings
from tests.support.servers import PgDatabase

ROOT_DIR = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "ops.cli"]  # `smd ingest` / `smd outbox`


@pytest.fixture
def nats_env(
    tmp_path: Path, nats_url: str, subject_root: str, fresh_pg_database: Callable[[], PgDatabase]
) -> dict[str, str]:
    """Settings of one test: its own database and its own subject root (so its own streams)."""
    return {
        "SMD_NATS_URL": nats_url,
        # <run root>_<hex>: streams are named <RUN ROOT>_<HEX>_..., so the session cleans them
        "SMD_SUBJECT_ROOT": f"{subject_root}_{secrets.token_hex(3)}",
        "SMD_DATABASE_URL": fresh_pg_database().url,
        "SMD_DATA_DIR": str(tmp_path / "data"),
        "SMD_LOG_FORMAT": "json",
    }


@pytest.fixture
def svc(nats_env: dict[str, str]) -> Iterator[Services]:
    """Services on the test's database, with the demo district recorded."""
    services = bootstrap(load_settings(nats_env))
    load_file(services.case_record, DEMO_DISTRICT)
    yield services
    services.close()


@pytest.fixture
def names(svc: Services) -> Names:
    """The test's subject and stream names."""
    return names_of(svc.settings)


@pytest_asyncio.fixture
async def nc(nats_url: str, names: Names) -> AsyncIterator[Client]:
    """A client connection; the test's streams are deleted afterwards."""
    client = await nats.connect(nats_url, connect_timeout=5)
    yield client
    js = client.jetstream()
    for name in (names.intake_stream, names.rejected_stream, names.out_stream):
        try:
            await js.delete_stream(name)
        except nats.js.errors.NotFoundError:
            pass
    await client.close()


@pytest.fixture
def workers(nats_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Starts worker subprocesses (`ingest`, `outbox`) with the test's settings; kills leftovers."""
    started: list[subprocess.Popen] = []
    logs: list = []

    def start(command: str, **extra: str) -> subprocess.Popen:
        env = {**os.environ, **nats_env, "PYTHONPATH": str(ROOT_DIR)}
        env.pop("SMD_FAULT", None)
        env.update(extra)
        log = open(tmp_path / f"{command}-{len(started)}.log", "wb")
        logs.append(log)
        proc = subprocess.Popen([*WORKER, command], env=env, cwd=ROOT_DIR, stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for log in logs:
        log.close()


async def wait_for(check: Callable[[], object], *, what: str, timeout: float = 20.0) -> object:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def stream_exists(nc: Client, name: str) -> bool:
    """Whether the stream exists yet."""
    try:
        await nc.jetstream().stream_info(name)
    except nats.js.errors.NotFoundError:
        return False
    return True
