"""API keys are cached in each process, and a revocation still holds on the very next request.

Two `smd serve` processes on one store (SQLite files or PostgreSQL), each with the key in its
warm cache; `smd keys revoke` in a third process; the next request to each is a 401.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.registry import load_file
from ops.bootstrap import bootstrap
from ops.data_files import DEMO_DISTRICT
from ops.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SMD = [sys.executable, "-m", "ops.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def store_env(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {"SMD_DATA_DIR": str(tmp_path / "data"), "SMD_NATS_URL": "", "SMD_LOG_FORMAT": "json"}
    if store_kind == "postgres":
        env["SMD_DATABASE_URL"] = request.getfixturevalue("fresh_pg_database")().url
    return env


@pytest.fixture
def serve(store_env: dict[str, str], tmp_path: Path) -> Iterator[list[str]]:
    """Two `smd serve` processes on the test's store; their base URLs."""
    procs, urls = [], []
    for i in range(2):
        port = free_port()
        env = {**os.environ, **store_env, "SMD_PORT": str(port), "PYTHONPATH": str(ROOT)}
        env.pop("SMD_FAULT", None)
        log = open(tmp_path / f"serve-{i}.log", "wb")
        procs.append((subprocess.Popen([*SMD, "serve"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT), log))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    logs = "".join((tmp_path / f"serve-{i}.log").read_text(errors="replace")[-1500:] for i in range(2))
                    pytest.fail(f"smd serve did not start:\n{logs}")
                time.sleep(0.2)
        yield urls
    finally:
        for proc, log in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def test_a_key_revoked_with_smd_keys_revoke_is_refused_on_the_very_next_request_by_two_warm_api_processes(
    store_env: dict[str, str], serve: list[str]
) -> None:
    services = bootstrap(load_settings(store_env))
    try:
        load_file(services.case_record, DEMO_DISTRICT)
        issued = services.apikeys.issue("hc-north")
        other = services.apikeys.issue("hc-north")
    finally:
        services.close()
    bearer = {"Authorization": f"Bearer {issued.key}"}
    # each process has the key in its cache: several answers from it
    for url in serve:
        for _ in range(3):
            assert httpx.get(f"{url}/v1/me", headers=bearer, timeout=10).status_code == 200

    revoked = subprocess.run(
        [*SMD, "keys", "revoke", issued.key_id],
        env={**os.environ, **store_env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert revoked.returncode == 0, revoked.stderr

    for url in serve:
        answer = httpx.get(f"{url}/v1/me", headers=bearer, timeout=10)
        assert answer.status_code == 401, f"{url} still took the revoked key"
        # the agency's other key is checked again, and still served
        assert (
            httpx.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {other.key}"}, timeout=10).status_code == 200
        )
