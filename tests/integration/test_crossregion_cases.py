"""Every crossing case of a handover (R8, decision 039) over the NATS link, with Debian's
nats-server 2.9.10: two servers in JetStream domains ra/rb joined by a leaf node under the
restricted cross-region account (tests/support/crossregion.py); region A on SQLite (the hub's
server), B on PostgreSQL (the leaf's). Each test asserts the end state on both sides; the same
cases over an in-memory link: test_handovers.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from core.handover_messages import build, digest
from core.region_keys import CrossRegionKeys
from domain.handover import HandoverAlreadyDecided
from tests.integration.test_handovers import (
    ANSWER_WITHIN,
    B_VILLAGE,
    COMMITTEE,
    HC,
    A,
    B,
    handover_id,
    move_back_to_a,
    move_to_b,
    responsible,
)
from tests.support.crossregion import Side, run, two_regions
from tests.support.stores import NOW

pytestmark = pytest.mark.integration

__all__ = ["two_regions"]  # the fixture

PHONE = "13900000017"  # move_to_b's fictional phone number
NAME_PART = "Mossgrove"  # of move_to_b's fictional name
ELSEWHERE = "990303"  # a third fictional region, linked to A only


async def exchange(a: Side, b: Side, to_b: int, to_a: int) -> None:
    """Both sides publish what they queued; each consumes what the other sent (``to_b`` and
    ``to_a`` messages, all applied)."""
    assert a.link is not None and b.link is not None
    assert await a.link.publish() == to_b
    assert await b.link.publish() == to_a
    assert await b.pump(to_b) == ["applied"] * to_b
    assert await a.pump(to_a) == ["applied"] * to_a


async def settled(a: Side, b: Side) -> None:
    """Nothing left to publish on either side, nothing left to consume."""
    assert a.link is not None and b.link is not None
    assert await a.link.publish() == 0 and await b.link.publish() == 0
    assert await a.link.consume(B, timeout=0.3) == [] and await b.link.consume(A, timeout=0.3) == []


def test_a_transfer_rejected_over_nats_leaves_a_responsible_and_escalates_on_both_sides(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        await a.connect(), await b.connect()
        patient, hid = move_to_b(a.region)
        await exchange(a, b, to_b=1, to_a=0)
        b.region.handovers.answer(hid, accepted=False, by_agency=HC)
        await exchange(a, b, to_b=0, to_a=1)
        await settled(a, b)
        assert (a.region.view(hid)["status"], b.region.view(hid)["status"]) == ("rejected", "rejected")
        assert a.region.view(hid)["escalations"] == ["rejected"] == b.region.view(hid)["escalations"]
        assert a.region.file(patient).deregistered_at is None and a.region.file(patient).move_status == "rejected"
        assert responsible(a.region, b.region, hid) == {A}
        await a.disconnect(), await b.disconnect()

    run(story())


def test_unanswered_over_nats_escalates_on_both_sides_once(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        await a.connect(), await b.connect()
        _, hid = move_to_b(a.region)
        await exchange(a, b, to_b=1, to_a=0)
        for side in (a, b):  # each side by its own clock
            side.region.clock.now = NOW + ANSWER_WITHIN + timedelta(hours=1)
            assert side.region.handovers.check_deadlines() == [hid]
            assert side.region.handovers.check_deadlines() == []
        await settled(a, b)  # an escalation sends nothing: each side escalates on its own
        assert a.region.view(hid)["escalations"] == ["unanswered"] == b.region.view(hid)["escalations"]
        assert (a.region.view(hid)["status"], b.region.view(hid)["status"]) == ("open", "requested")
        assert responsible(a.region, b.region, hid) == {A}
        await a.disconnect(), await b.disconnect()

    run(story())


def test_acceptance_crossing_a_cancellation_over_nats_voids_it_in_b_and_a_stays_responsible(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        await a.connect(), await b.connect()
        patient, hid = move_to_b(a.region)
        await exchange(a, b, to_b=1, to_a=0)
        b.region.handovers.answer(hid, accepted=True, by_agency=HC)  # crosses ...
        a.region.handovers.cancel(hid, by_agency=HC, reason="the family stays")  # ... A's cancellation
        await exchange(a, b, to_b=1, to_a=1)
        await settled(a, b)
        assert a.region.view(hid)["status"] == "cancelled" and a.region.view(hid)["late_answers"] == ["accepted"]
        assert b.region.view(hid)["status"] == "voided"
        assert a.region.file(patient).deregistered_at is None
        assert b.region.file(patient).deregistered_at is not None  # B's registration undone
        assert responsible(a.region, b.region, hid) == {A}
        await a.disconnect(), await b.disconnect()

    run(story())


def test_rejection_crossing_a_cancellation_over_nats_ends_cancelled_in_a_and_voided_in_b(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        await a.connect(), await b.connect()
        patient, hid = move_to_b(a.region)
        await exchange(a, b, to_b=1, to_a=0)
        b.region.handovers.answer(hid, accepted=False, by_agency=HC)
        a.region.handovers.cancel(hid, by_agency=HC, reason="the family stays")
        await exchange(a, b, to_b=1, to_a=1)
        await settled(a, b)
        assert a.region.view(hid)["status"] == "cancelled" and a.region.view(hid)["escalations"] == []
        assert b.region.view(hid)["status"] == "voided"
        assert a.region.file(patient).deregistered_at is None and responsible(a.region, b.region, hid) == {A}
        await a.disconnect(), await b.disconnect()

    run(story())


def test_a_second_move_before_the_first_is_answered_over_nats_is_a_second_handover(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        await a.connect(), await b.connect()
        patient, first = move_to_b(a.region)
        await exchange(a, b, to_b=1, to_a=0)
        second_move = uuid4()
        a.region.send(
            COMMITTEE,
            "move.reported.v1",
            patient,
            {
                "move_id": str(second_move),
                "destination_region": B,
                "destination_unit": B_VILLAGE,
                "moving_on": "2026-11-18",
            },
        )
        assert a.region.handovers.follow_moves() == 1
        second = handover_id(A, patient, second_move)
        a.region.handovers.cancel(first, by_agency=HC, reason="superseded by a second move")
        await exchange(a, b, to_b=2, to_a=0)  # the second request, the first's cancellation
        b.region.handovers.answer(second, accepted=True, by_agency=HC)
        await exchange(a, b, to_b=0, to_a=1)
        await settled(a, b)
        assert (a.region.view(first)["status"], b.region.view(first)["status"]) == ("cancelled", "cancelled")
        assert (a.region.view(second)["status"], b.region.view(second)["status"]) == ("accepted", "accepted")
        assert a.region.file(patient).deregistration_reason == "moved_out"
        assert b.region.file(patient).deregistered_at is None
        assert responsible(a.region, b.region, second) == {B}
        await a.disconnect(), await b.disconnect()

    run(story())


def test_a_move_back_over_nats_is_accepted_a_registers_the_patient_again_and_b_closes_its_file(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        await a.connect(), await b.connect()
        patient, there = move_to_b(a.region)
        await exchange(a, b, to_b=1, to_a=0)
        b.region.handovers.answer(there, accepted=True, by_agency=HC)
        await exchange(a, b, to_b=0, to_a=1)
        assert a.region.file(patient).deregistration_reason == "moved_out"
        for side in (a, b):
            side.region.clock.now += timedelta(days=30)
        back = move_back_to_a(b.region, patient)
        await exchange(a, b, to_b=0, to_a=1)  # B's request
        a.region.handovers.answer(back, accepted=True, by_agency=HC)
        await exchange(a, b, to_b=1, to_a=0)  # A's acceptance
        await settled(a, b)
        assert (a.region.view(back)["status"], b.region.view(back)["status"]) == ("accepted", "accepted")
        again = a.region.file(patient)
        assert again.deregistered_at is None and again.reregistered_at == a.region.clock.now
        assert again.arrived_from is not None and again.arrived_from["origin_region"] == B
        assert b.region.file(patient).deregistration_reason == "moved_out"
        assert b.region.view(back)["responsible"] == [A]
        with pytest.raises(HandoverAlreadyDecided):  # answered once: a rejection now is refused
            a.region.handovers.answer(back, accepted=False, by_agency=HC)
        await a.disconnect(), await b.disconnect()

    run(story())


def test_the_link_cut_on_the_leaf_side_during_a_handover_and_restored_loses_nothing_and_applies_nothing_twice(
    two_regions,
) -> None:
    a, b = two_regions

    async def story() -> None:
        await a.connect(), await b.connect()
        first_patient, first = move_to_b(a.region)
        await exchange(a, b, to_b=1, to_a=0)

        await b.disconnect()
        b.server.stop()  # the leaf's end: B's server, and with it the leaf node, is down
        b.region.handovers.answer(first, accepted=True, by_agency=HC)  # queued in B's store
        _, second = move_to_b(a.region)
        assert a.link is not None and await a.link.publish() == 1  # A's own stream: the link is not needed
        assert await a.link.consume(B, timeout=0.5) == []

        b.server.start()  # same store: the leaf node connects to the hub again
        await b.connect()
        assert b.link is not None and await b.link.publish() == 1  # the acceptance
        assert await b.pump(1) == ["applied"]  # the second request, published during the cut
        assert await a.pump(1) == ["applied"]
        await settled(a, b)

        assert (a.region.view(first)["status"], b.region.view(first)["status"]) == ("accepted", "accepted")
        assert a.region.file(first_patient).deregistration_reason == "moved_out"
        assert (a.region.view(second)["status"], b.region.view(second)["status"]) == ("open", "requested")
        assert b.region.handovers.applied_from(A) == 2 and a.region.handovers.applied_from(B) == 1
        assert b.region.handovers.refused_from(A) == [] and a.region.handovers.refused_from(B) == []
        await a.disconnect(), await b.disconnect()

    run(story())


def test_forged_messages_published_into_the_link_are_refused_and_kept_with_their_reason(two_regions) -> None:
    a, b = two_regions

    async def story() -> None:
        link_a, _ = await a.connect(), await b.connect()
        _, hid = move_to_b(a.region)
        assert await link_a.publish() == 1
        [genuine] = a.region.handovers.outbox(B)
        impostor = CrossRegionKeys.generate(A)  # claims to be A, signs with a key of its own
        impostor.link(b.region.keys.as_peer())
        a.region.keys.link(CrossRegionKeys.generate(ELSEWHERE).as_peer())
        doc = json.loads(genuine)
        forged = {
            "out-of-sequence": build(a.region.keys, B, handover_id=hid, sequence=5, acked=0, kind="cancel", body={}),
            "unknown-key": build(impostor, B, handover_id=hid, sequence=2, acked=0, kind="cancel", body={}),
            "bad-signature": json.dumps({**doc, "sequence": 2, "kind": "cancel"}),
            "wrong-region": build(
                a.region.keys, "990303", handover_id=hid, sequence=2, acked=0, kind="cancel", body={}
            ),
            "replayed": genuine,  # last: A's publisher reads its position from the stream's last message
        }
        subject = link_a.names.subject(A, B)
        for wire in forged.values():  # straight into A's outgoing stream, as a forger on A's account would
            await link_a.js.publish(subject, wire.encode())
        assert await b.pump(1 + len(forged)) == ["applied", *forged]

        kept = b.region.handovers.refused_from(A)
        assert [(r["reason"], r["digest"]) for r in kept] == [(reason, digest(w)) for reason, w in forged.items()]
        assert b.region.handovers.applied_from(A) == 1 and b.region.view(hid)["status"] == "requested"

        a.region.handovers.cancel(hid, by_agency=HC, reason="moved back")  # the genuine sequence 2
        await exchange(a, b, to_b=1, to_a=0)
        await settled(a, b)
        assert (a.region.view(hid)["status"], b.region.view(hid)["status"]) == ("cancelled", "cancelled")
        assert a.region.handovers.refused_from(B) == []
        await a.disconnect(), await b.disconnect()

    run(story())


def files_holding(store: Path, marker: bytes) -> list[Path]:
    return [p for p in store.rglob("*") if p.is_file() and marker in p.read_bytes()]


def test_no_personal_value_in_plaintext_in_either_sides_nats_store(two_regions) -> None:
    a, b = two_regions
    control = b"MKXRcc Clear Control"  # written in the clear: what a leak would look like

    async def story() -> str:
        link_a, _ = await a.connect(), await b.connect()
        _, hid = move_to_b(a.region)
        await exchange(a, b, to_b=1, to_a=0)
        b.region.handovers.answer(hid, accepted=True, by_agency=HC)
        await exchange(a, b, to_b=0, to_a=1)
        await link_a.js.publish(f"{link_a.names.root}.xr.{A}.control", control)  # A's stream, not sourced
        await a.disconnect(), await b.disconnect()
        return str(hid)

    hid = run(story()).encode()
    a.server.stop(), b.server.stop()  # everything written out
    stores = {A: a.server.base / "store", B: b.server.base / "store"}
    assert files_holding(stores[A], control)  # the scan finds a value written in the clear ...
    assert files_holding(stores[A], hid) and files_holding(stores[B], hid)  # ... both stores hold the messages
    for store in stores.values():  # ... and no personal one
        assert files_holding(store, NAME_PART.encode()) == [] and files_holding(store, PHONE.encode()) == []
