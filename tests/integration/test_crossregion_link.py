"""The NATS link between two regions (R8, decision 039): two nats-servers of the test's own in two
JetStream domains, joined by a leaf node under the generated restricted cross-region account;
region A on SQLite, region B on PostgreSQL, each with its own Handovers (tests/support/crossregion.py).
Each region publishes its outgoing handover messages to its own stream; the other sources it across
domains and consumes it durably. Debian's nats-server 2.9.10 runs every test; the wheel's current
one the accepted transfer. Every crossing case over the link: test_crossregion_cases.py.
"""

from __future__ import annotations

import time

import nats
import nats.errors
import pytest

from integrations.crossregion import LinkNames
from tests.integration.test_handovers import HC, A, B, move_to_b
from tests.support.crossregion import DOMAINS, ROOT, run, two_regions

pytestmark = pytest.mark.integration

__all__ = ["two_regions"]  # the fixture


@pytest.mark.parametrize("two_regions", ["debian", "wheel"], indirect=True)
def test_a_transfer_is_accepted_end_to_end_over_nats(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        link_a, link_b = await a.connect(), await b.connect()
        patient, hid = move_to_b(a.region)
        assert await link_a.publish() == 1
        assert await b.pump(1) == ["applied"]
        assert b.region.view(hid)["status"] == "requested"
        b.region.handovers.answer(hid, accepted=True, by_agency=HC)
        assert await link_b.publish() == 1
        assert await a.pump(1) == ["applied"]
        assert a.region.view(hid)["status"] == "accepted"
        assert a.region.file(patient).deregistration_reason == "moved_out"
        assert b.region.file(patient).deregistered_at is None
        assert await link_a.publish() == 0 and await link_b.publish() == 0  # nothing twice
        await a.disconnect()
        await b.disconnect()

    run(story())


def test_the_link_cut_during_a_handover_and_restored_loses_nothing_and_applies_nothing_twice(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        link_a, _ = await a.connect(), await b.connect()
        first_patient, first = move_to_b(a.region)
        assert await link_a.publish() == 1
        assert await b.pump(1) == ["applied"]

        await a.disconnect()
        a.server.stop()  # the hub: the leaf node is down, and so is A's server
        b.region.handovers.answer(first, accepted=True, by_agency=HC)
        assert await b.link.publish() == 1  # B's own stream: publishing never depends on the link
        _, second = move_to_b(a.region)  # A queues in its store while its server is down

        a.server.start()  # same store: the first request is still in A's stream
        link_a = await a.connect()
        assert await link_a.publish() == 1  # only the second request
        assert await a.pump(1) == ["applied"]  # the acceptance, queued in B during the outage
        assert await b.pump(1) == ["applied"]  # the second request

        # every message delivered again (a new durable from the start): refused as replayed, acked
        await b.link.js.delete_consumer(b.link.names.in_stream(A), b.link.names.durable(A))
        await b.link.ensure()
        b.link._subs.clear()
        assert await b.pump(2) == ["replayed", "replayed"]
        assert await b.link.consume(A, timeout=0.3) == []  # acked: not delivered a third time

        assert (a.region.view(first)["status"], b.region.view(first)["status"]) == ("accepted", "accepted")
        assert a.region.file(first_patient).deregistration_reason == "moved_out"
        assert (a.region.view(second)["status"], b.region.view(second)["status"]) == ("open", "requested")
        assert b.region.handovers.applied_from(A) == 2 and a.region.handovers.applied_from(B) == 1
        assert [r["reason"] for r in b.region.handovers.refused_from(A)] == ["replayed", "replayed"]
        await a.disconnect()
        await b.disconnect()

    run(story())


def test_a_stream_delete_or_purge_sent_across_the_link_is_refused(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        link_a, _ = await a.connect(), await b.connect()
        move_to_b(a.region)
        await link_a.publish()
        assert await b.pump(1) == ["applied"]  # the link carries what sourcing needs
        a_stream = LinkNames(ROOT, A).out_stream()
        api = f"$JS.{DOMAINS[A]}.API"
        # replies come back on $JSC.> (what the leaf carries for sourcing): a call the leaf user
        # may carry is answered by A's JetStream (here: no such consumer) ...
        assert b"consumer not found" in await ask(b.nc, f"{api}.CONSUMER.INFO.{a_stream}.nobody")
        # ... any other is not carried: no answer, and A's stream keeps its message
        for call in (f"STREAM.DELETE.{a_stream}", f"STREAM.PURGE.{a_stream}", f"STREAM.MSG.GET.{a_stream}"):
            assert await ask(b.nc, f"{api}.{call}") is None
        info = await link_a.js.stream_info(a_stream)
        assert info.state.messages == 1  # still there
        await a.disconnect()
        await b.disconnect()

    run(story())


async def ask(nc, subject: str, wait: float = 1.0) -> bytes | None:
    """Send a request with its reply on ``$JSC.probe.…``; the answer, or None (no responder, or
    nothing within ``wait``)."""
    reply = f"$JSC.probe.{time.monotonic_ns()}"
    sub = await nc.subscribe(reply, max_msgs=1)
    await nc.publish(subject, b"{}", reply=reply)
    try:
        msg = await sub.next_msg(timeout=wait)
    except nats.errors.TimeoutError:
        return None
    finally:
        await sub.unsubscribe()
    if (msg.headers or {}).get("Status") == "503":
        return None  # no responders: B's server knows nothing that would carry it
    return msg.data
