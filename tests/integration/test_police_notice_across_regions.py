"""R7 across two regions (docs/decisions/048), on SQLite and PostgreSQL: a level ≥ 3 patient of
region A is reported moving to region B (linked): A's police station (police-east, covering the
residence) owes ``notify_destination_police``; the notice crosses with the handover (a signed
``police-notice`` message, level and class sealed to B); B's police station covering the
destination unit owes ``acknowledge_police_notice`` by the deadline A carried; its completion is
sent back and recorded in A, completing A's obligation. No acknowledgement by the deadline
escalates on both sides; a cancelled handover cancels both; a level < 3 patient opens nothing.
Two deployments in one process, messages carried by the in-memory link of test_handovers.py; the
same story over the NATS link at the end.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from core.obligations import act
from core.police_notice_policy import (
    acknowledge_obligation_id,
    notify_obligation_id,
    unacknowledged_notice_id,
)
from core.scheduler import Scheduler
from domain.handover import handover_id
from domain.obligation import ObligationClosed
from domain.police_notice import police_notice_id
from tests.integration.test_handover_service import service_regions
from tests.integration.test_handovers import B_VILLAGE, COMMITTEE, GOV, HC, SECRET_NAME, VILLAGE, A, B, Region, regions
from tests.support.crossregion import two_regions
from tests.support.stores import NOW

pytestmark = pytest.mark.integration

__all__ = ["regions", "service_regions", "two_regions"]  # the fixtures

POLICE = "police-east"  # the station of VILLAGE in A, and of B_VILLAGE in B's copy of the district
NOTIFY_WITHIN, ACKNOWLEDGE_WITHIN = timedelta(hours=24), timedelta(hours=72)  # the default settings


def high_risk_move(a: Region, level: int = 3) -> tuple[UUID, UUID]:
    """A patient of A, assessed at ``level`` on a visit, is reported moving to B; A's bridge opens
    the handover and A's rules and police follower run."""
    patient, move = uuid4(), uuid4()
    registration = {"name": SECRET_NAME, "residence": VILLAGE, "birth_date": "1975-06-30", "household_region": A}
    a.send(HC, "patient.registered.v2", patient, registration, days_ago=100)
    risk_class = "unstable" if level >= 3 else "basically_stable"
    visit = {"face_to_face": True, "joint": False, "risk_level": level, "risk_class": risk_class}
    a.send(HC, "visit.recorded.v1", patient, visit, days_ago=2)
    destination = {"move_id": str(move), "destination_region": B, "destination_unit": B_VILLAGE}
    a.send(COMMITTEE, "move.reported.v1", patient, {**destination, "moving_on": "2026-11-25"})
    assert a.handovers.follow_moves() == 1
    follow(a)
    return patient, handover_id(A, patient, move)


def follow(region: Region) -> None:
    """What the region's service does in the background: the police follower, the rules, the views."""
    region.handovers.follow_police()
    region.services.catch_up(region.services.case_record.recorder.max_notification_id())


def get(region: Region, aggregate_id: UUID):
    return region.services.case_record.repository.get(aggregate_id)


def exists(region: Region, aggregate_id: UUID) -> bool:
    return bool(region.services.case_record.existing([aggregate_id]))


def exchange(region_a: Region, region_b: Region, link) -> None:
    """Carry every queued message both ways, each side's followers running after."""
    for _ in range(2):
        link.sync()
        follow(region_a), follow(region_b)


class TestThePoliceNoticeAcrossRegions:
    def test_a_level_3_patient_moving_gives_both_stations_their_obligations(self, regions) -> None:
        a, b, link = regions
        _, hid = high_risk_move(a)
        notify = get(a, notify_obligation_id(hid))
        assert (notify.assignee, notify.action, notify.rule, notify.residence, notify.risk_level) == (
            POLICE,
            "notify_destination_police",
            "R7",
            VILLAGE,
            3,
        )
        assert notify.due_at == NOW + NOTIFY_WITHIN and notify.patient_id == hid  # about the handover
        assert a.handovers.outbox(B)[1].count('"kind":"police-notice"') == 1
        assert "unstable" not in a.handovers.outbox(B)[1]  # the level and class travel sealed
        exchange(a, b, link)
        ack = get(b, acknowledge_obligation_id(hid))
        assert (ack.assignee, ack.action, ack.residence, ack.risk_level, ack.status) == (
            POLICE,
            "acknowledge_police_notice",
            B_VILLAGE,
            3,
            "assigned",
        )
        assert ack.due_at == NOW + ACKNOWLEDGE_WITHIN  # the deadline A carried: both sides agree
        received = get(b, police_notice_id(hid))
        assert (received.risk_level, received.risk_class, received.origin_region) == (3, "unstable", A)
        assert a.handovers.handover(hid)["police_notice"]["status"] == "sent"
        assert b.handovers.handover(hid)["police_notice"]["status"] == "received"

    def test_a_lower_level_patient_moving_opens_no_police_notice(self, regions) -> None:
        a, b, link = regions
        _, hid = high_risk_move(a, level=2)
        exchange(a, b, link)
        assert not exists(a, police_notice_id(hid)) and not exists(b, police_notice_id(hid))
        assert not exists(a, notify_obligation_id(hid)) and not exists(b, acknowledge_obligation_id(hid))
        assert len(a.handovers.outbox(B)) == 1  # the request only
        assert "police_notice" not in a.handovers.handover(hid)

    def test_the_destination_station_acknowledges_by_its_word_and_the_origin_records_it(self, regions) -> None:
        a, b, link = regions
        _, hid = high_risk_move(a)
        exchange(a, b, link)
        b.clock.now = NOW + timedelta(hours=5)
        _, changed = act(b.services.case_record, acknowledge_obligation_id(hid), POLICE, "pol-3", "complete")
        assert changed
        exchange(a, b, link)
        assert get(b, police_notice_id(hid)).status == "acknowledged"
        sent = get(a, police_notice_id(hid))
        assert (sent.status, sent.acknowledged_at) == ("acknowledged", NOW + timedelta(hours=5))
        notify = get(a, notify_obligation_id(hid))
        assert notify.status == "completed" and notify.fulfilled_by.startswith(f"xr:{B}:")
        # sent once: the followers run again, nothing more is queued; no escalation later
        follow(b), follow(a)
        assert [w.count("police-ack") for w in b.handovers.outbox(A)] == [1]
        a.clock.now = NOW + ACKNOWLEDGE_WITHIN + timedelta(seconds=1)
        assert a.handovers.check_police_deadlines() == []

    def test_the_origin_may_declare_its_notification_done_first(self, regions) -> None:
        a, b, link = regions
        _, hid = high_risk_move(a)
        act(a.services.case_record, notify_obligation_id(hid), POLICE, None, "complete", note="phoned the station")
        exchange(a, b, link)
        act(b.services.case_record, acknowledge_obligation_id(hid), POLICE, None, "complete")
        exchange(a, b, link)
        assert get(a, police_notice_id(hid)).status == "acknowledged"
        assert get(a, notify_obligation_id(hid)).fulfilled_by is None  # by its own word, kept as it was

    def test_no_acknowledgement_by_the_deadline_escalates_on_both_sides(self, regions) -> None:
        a, b, link = regions
        _, hid = high_risk_move(a)
        exchange(a, b, link)
        late = NOW + ACKNOWLEDGE_WITHIN + timedelta(seconds=1)
        # A, by its own clock: the origin's police station and governance center are told, once
        a.clock.now = late
        assert a.handovers.check_police_deadlines() == [hid]
        assert a.handovers.check_police_deadlines() == []
        follow(a)
        for role, owner in (("origin-police", POLICE), ("origin-governance", GOV)):
            told = get(a, unacknowledged_notice_id(hid, role))
            assert (told.assignee, told.kind, told.action) == (owner, "notice", "police_notice_unacknowledged")
        assert a.handovers.handover(hid)["police_notice"]["escalated"] is True
        # B: R15 marks the station's obligation overdue and escalates it to the governance center there
        s = b.services
        Scheduler(s.case_record, s.registry, s.work_queue, lambda: late).run_once(force=True)
        overdue = get(b, acknowledge_obligation_id(hid))
        assert (overdue.overdue, overdue.escalated_to) == (True, GOV)  # B's gov-willowbrook
        # A's own undone notification was escalated by R15 there too
        sa = a.services
        Scheduler(sa.case_record, sa.registry, sa.work_queue, lambda: late).run_once(force=True)
        assert get(a, notify_obligation_id(hid)).escalated_to == GOV
        # a late acknowledgement is still recorded in A (the lateness stays on both records)
        act(s.case_record, acknowledge_obligation_id(hid), POLICE, None, "complete")
        exchange(a, b, link)
        assert get(a, police_notice_id(hid)).acknowledged_at is not None

    def test_a_cancelled_handover_cancels_both(self, regions) -> None:
        a, b, link = regions
        _, hid = high_risk_move(a)
        exchange(a, b, link)
        a.handovers.cancel(hid, HC, "the family stayed")
        exchange(a, b, link)
        assert get(a, notify_obligation_id(hid)).status == "cancelled"
        ack = get(b, acknowledge_obligation_id(hid))
        assert (ack.status, ack.cancel_reason) == ("cancelled", "the origin region cancelled the handover")
        with pytest.raises(ObligationClosed):
            act(b.services.case_record, acknowledge_obligation_id(hid), POLICE, None, "complete")
        a.clock.now = NOW + ACKNOWLEDGE_WITHIN + timedelta(seconds=1)
        assert a.handovers.check_police_deadlines() == []  # nothing to escalate

    def test_a_handover_cancelled_before_the_notice_went_sends_none(self, regions) -> None:
        a, b, link = regions
        patient, move = uuid4(), uuid4()
        registration = {"name": SECRET_NAME, "residence": VILLAGE, "birth_date": "1975-06-30", "household_region": A}
        a.send(HC, "patient.registered.v2", patient, registration, days_ago=100)
        visit = {"face_to_face": True, "joint": False, "risk_level": 4, "risk_class": "unstable"}
        a.send(HC, "visit.recorded.v1", patient, visit, days_ago=2)
        destination = {"move_id": str(move), "destination_region": B, "destination_unit": B_VILLAGE}
        a.send(COMMITTEE, "move.reported.v1", patient, {**destination, "moving_on": "2026-11-25"})
        a.handovers.follow_moves()
        hid = handover_id(A, patient, move)
        a.handovers.cancel(hid, HC, "reported in error")
        exchange(a, b, link)
        assert not exists(a, police_notice_id(hid)) and not exists(b, police_notice_id(hid))

    def test_a_region_upgraded_sends_none_for_handovers_decided_long_ago(self, regions) -> None:
        a, b, link = regions
        patient, move = uuid4(), uuid4()
        registration = {"name": SECRET_NAME, "residence": VILLAGE, "birth_date": "1975-06-30", "household_region": A}
        a.send(HC, "patient.registered.v2", patient, registration, days_ago=100)
        visit = {"face_to_face": True, "joint": False, "risk_level": 3, "risk_class": "unstable"}
        a.send(HC, "visit.recorded.v1", patient, visit, days_ago=2)
        destination = {"move_id": str(move), "destination_region": B, "destination_unit": B_VILLAGE}
        a.send(COMMITTEE, "move.reported.v1", patient, {**destination, "moving_on": "2026-11-25"})
        a.handovers.follow_moves()
        hid = handover_id(A, patient, move)
        link.sync()
        b.handovers.answer(hid, accepted=True, by_agency=HC)
        link.sync()  # decided before this region ran the police follower
        a.clock.now = NOW + ACKNOWLEDGE_WITHIN
        follow(a)
        assert not exists(a, police_notice_id(hid)) and len(a.handovers.outbox(B)) == 1

    def test_a_police_notice_for_a_handover_b_does_not_hold_is_refused_and_kept(self, regions) -> None:
        from core.handover_messages import build

        a, b, _ = regions
        stray = uuid4()
        wire = build(
            a.keys,
            B,
            handover_id=stray,
            sequence=1,
            acked=0,
            kind="police-notice",
            body={"patient_id": str(uuid4()), "acknowledge_by": NOW.isoformat()},
            personal={"risk_level": 3, "risk_class": "unstable"},
        )
        assert b.handovers.receive(wire) == "unknown-handover"
        assert [r["reason"] for r in b.handovers.refused_from(A)] == ["unknown-handover"]


class TestOverTheNatsLink:
    """The notice and its acknowledgement over the real link (tests/support/crossregion.py: two
    nats-servers, Debian's 2.9.10, in JetStream domains ra/rb joined by a leaf node; A on SQLite,
    B on PostgreSQL)."""

    def test_the_notice_crosses_and_the_acknowledgement_comes_back(self, two_regions) -> None:
        from tests.support.crossregion import run

        a, b = two_regions

        async def story() -> None:
            await a.connect(), await b.connect()
            assert a.link is not None and b.link is not None
            _, hid = high_risk_move(a.region)
            assert await a.link.publish() == 2  # the request, then the police notice
            assert await b.pump(2) == ["applied", "applied"]
            follow(b.region)
            assert get(b.region, acknowledge_obligation_id(hid)).assignee == POLICE
            act(b.region.services.case_record, acknowledge_obligation_id(hid), POLICE, None, "complete")
            follow(b.region)
            assert await b.link.publish() == 1
            assert await a.pump(1) == ["applied"]
            follow(a.region)
            assert get(a.region, police_notice_id(hid)).status == "acknowledged"
            assert get(a.region, notify_obligation_id(hid)).status == "completed"
            await a.disconnect(), await b.disconnect()

        run(story())


class TestInTheService:
    """As `smd serve` wires it (tests/integration/test_handover_service.py): the service's followers
    send, carry back and record; the station acknowledges over HTTP, as any owner completes."""

    async def test_the_station_acknowledges_over_http_and_the_followers_carry_it_back(self, service_regions) -> None:
        from litestar.testing import AsyncTestClient

        from ops.workers import serving_app
        from tests.integration.test_handover_service import bearer, carry, keys_for, run_followers

        a, b = service_regions
        _, hid = high_risk_move(a)
        run_followers(a)
        assert carry(a, b) == ["applied", "applied"]  # the request, the police notice
        run_followers(b)
        keys = keys_for(b, POLICE, GOV, "police-reedmarsh")
        complete = f"/v1/obligations/{acknowledge_obligation_id(hid)}/complete"
        async with AsyncTestClient(serving_app(b.services)) as client:
            r = await client.get("/v1/work-queue", headers=bearer(keys[POLICE]))
            [item] = [i for i in r.json()["items"] if i["rule"] == "R7"]
            assert (item["action"], item["patient_id"], item["risk_level"]) == (
                "acknowledge_police_notice",
                str(hid),
                3,
            )
            r = await client.post(complete, headers=bearer(keys["police-reedmarsh"]))
            assert r.status_code == 403, r.text  # not the owner
            r = await client.post(complete, headers=bearer(keys[POLICE]))
            assert r.status_code == 200 and r.json()["status"] == "completed", r.text
            run_followers(b)
            r = await client.get(f"/v1/handovers/{hid}", headers=bearer(keys[GOV]))
            notice = r.json()["police_notice"]
            assert (notice["status"], notice["risk_level"], notice["escalated"]) == ("acknowledged", 3, False)
        assert carry(b, a) == ["applied"]
        run_followers(a)
        assert get(a, notify_obligation_id(hid)).status == "completed"
        assert a.view(hid)["police_notice"]["status"] == "acknowledged"
