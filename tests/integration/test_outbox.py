"""The outbox against the real servers: obligations reach their assignee once, without personal data."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from core.contract import decode_event
from domain.obligation import Obligation, ObligationKind, obligation_id
from integrations.outbox import TRACKING_NAME, event_id
from integrations.runner import run_intake, run_outbox
from integrations.streams import Names
from ops.bootstrap import Services
from ops.workers import run_followers
from tests.support.agency_client import AgencyClient
from tests.support.agency_client import envelope as agency_envelope
from tests.support.nats_world import ROOT_DIR, WORKER, stream_exists, wait_for  # noqa: F401 - used by some

pytestmark = pytest.mark.integration

VILLAGE = "990101-001-v01"
POLICE, GOV = "police-east", "gov-willowbrook"
PERSONAL = {
    "name": "Marker Person Wx",
    "id_number": "449901198001011230",
    "phone": "13800138000",
    "address": "7 Plum Orchard Lane",
}
DATA_FIELDS = {
    "obligation_id",
    "kind",
    "rule",
    "action",
    "assignee",
    "patient_id",
    "episode_key",
    "residence",
    "due_at",
    "risk_level",
    "trigger_message_id",
    "status",
    "reason",
    "fulfilled_by",
    "escalated_to",
}


# -- fixtures (same shape as test_nats_intake) ------------------------------------------------


@pytest_asyncio.fixture
async def outbox(svc: Services, nats_url: str, nc: Client, names: Names) -> AsyncIterator[None]:
    """The outbox running in this process (as in `smd serve`), its streams declared."""
    worker_nc = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()
    task = asyncio.create_task(run_outbox(svc, worker_nc, stop))
    await wait_for(lambda: stream_exists(nc, names.out_stream), what="the OUT stream")
    yield
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    await worker_nc.close()


# -- helpers ----------------------------------------------------------------------------------


def register_patient(svc: Services) -> UUID:
    """A registered patient with every personal field set (none may leave in a message)."""
    patient = uuid4()
    doc = agency_envelope(
        "hc-north",
        "cn.smd.patient.registered.v1",
        patient,
        {"residence": VILLAGE, **PERSONAL},
        occurred=datetime.now(UTC) - timedelta(hours=1),
        actor=None,
    )
    svc.case_record.record(decode_event(doc), "hc-north")
    return patient


def assign(svc: Services, patient: UUID, kind: ObligationKind, assignee: str) -> tuple[UUID, int]:
    """Save an ObligationAssigned as rule R1 would; returns its id and log position."""
    now = datetime.now(UTC)
    oid = obligation_id(patient, "R1", "ep-1", kind.value)
    obligation = Obligation.assign(
        id=oid,
        kind=kind,
        rule="R1",
        action="take-under-management",
        patient_id=patient,
        episode_key="ep-1",
        assignee=assignee,
        residence=VILLAGE,
        due_at=now + timedelta(days=3) if kind == ObligationKind.OBLIGATION else None,
        trigger_message_id=f"hc-north:{uuid4()}",
        trigger_position=1,
        risk_level=4,
        now=now,
    )
    [recording] = svc.case_record.save(obligation)
    return oid, recording.notification.id


def position(svc: Services) -> int:
    return svc.case_record.recorder.max_tracking_id(TRACKING_NAME) or 0


# -- tests ------------------------------------------------------------------------------------


async def test_an_assigned_obligation_reaches_its_assignee_with_the_documented_payload_only(
    svc: Services, names: Names, nc: Client, outbox: None
) -> None:
    patient = register_patient(svc)
    oid, at = assign(svc, patient, ObligationKind.OBLIGATION, POLICE)
    nid, _ = assign(svc, patient, ObligationKind.NOTICE, GOV)

    [msg] = await AgencyClient(nc, names, POLICE).assignments(1)
    assert msg.subject == names.out(POLICE, "obligation", "assigned")
    body = json.loads(msg.data)
    expected_id = str(event_id(oid, 1))
    assert msg.headers["Nats-Msg-Id"] == body["id"] == expected_id
    assert {k: body[k] for k in ("specversion", "type", "source", "subject", "datacontenttype")} == {
        "specversion": "1.0",
        "type": "cn.smd.obligation.assigned.v1",
        "source": "smd/990101",
        "subject": str(oid),
        "datacontenttype": "application/json",
    }
    assert datetime.fromisoformat(body["time"]).tzinfo is not None
    assert set(body["data"]) == DATA_FIELDS
    data = body["data"]
    assert (data["obligation_id"], data["patient_id"], data["assignee"]) == (str(oid), str(patient), POLICE)
    assert (data["kind"], data["rule"], data["residence"], data["risk_level"]) == ("obligation", "R1", VILLAGE, 4)
    assert datetime.fromisoformat(data["due_at"]) > datetime.now(UTC)
    assert not any(value in msg.data.decode() for value in PERSONAL.values())

    [notice] = await AgencyClient(nc, names, GOV).assignments(1)
    assert notice.subject == names.out(GOV, "notice", "assigned")
    body = json.loads(notice.data)
    assert (body["type"], body["data"]["due_at"]) == ("cn.smd.notice.assigned.v1", None)
    assert body["id"] == str(event_id(nid, 1))
    await wait_for(lambda: position(svc) >= at, what="the outbox position to pass the obligation")


async def test_an_overdue_obligation_tells_its_owner_and_escalates_to_the_governance_center(
    svc: Services, names: Names, nc: Client, outbox: None
) -> None:
    patient = register_patient(svc)
    oid, _ = assign(svc, patient, ObligationKind.OBLIGATION, POLICE)
    obligation = svc.case_record.repository.get(oid)
    assert obligation.mark_overdue(datetime.now(UTC) + timedelta(days=4), escalated_to=GOV)
    svc.case_record.save(obligation)

    _assigned, overdue = await AgencyClient(nc, names, POLICE).assignments(2)
    [escalated] = await AgencyClient(nc, names, GOV).assignments(1)
    assert overdue.subject == names.out(POLICE, "obligation", "overdue")
    assert escalated.subject == names.out(GOV, "obligation", "escalated")
    body = json.loads(escalated.data)
    assert (body["type"], body["data"]["escalated_to"], body["data"]["assignee"]) == (
        "cn.smd.obligation.escalated.v1",
        GOV,
        POLICE,
    )
    assert body["id"] != json.loads(overdue.data)["id"]  # each recipient dedups its own message
    assert not any(value in escalated.data.decode() for value in PERSONAL.values())


async def test_a_level_4_visit_published_over_nats_reaches_police_and_governance_center_over_nats(
    svc: Services, names: Names, nc: Client, nats_url: str
) -> None:
    worker_nc = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_intake(svc, worker_nc, stop)),
        asyncio.create_task(run_followers(svc, stop)),  # the R1 policy process
        asyncio.create_task(run_outbox(svc, worker_nc, stop)),
    ]
    try:
        await wait_for(lambda: stream_exists(nc, names.intake_stream), what="the streams")
        hc = AgencyClient(nc, names, "hc-north")
        patient = uuid4()
        visit = hc.visit(patient, 4, "unstable")
        await hc.publish(hc.registration(patient, VILLAGE, **PERSONAL))
        await hc.publish(visit)

        [order] = await AgencyClient(nc, names, POLICE).assignments(1, timeout=20)
        [notice] = await AgencyClient(nc, names, GOV).assignments(1, timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        await worker_nc.close()
    visit_key = f"hc-north:{json.loads(visit)['id']}"
    for msg, kind, action in (
        (order, "obligation", "take_under_management"),
        (notice, "notice", "high_risk_patient_notice"),
    ):
        data = json.loads(msg.data)["data"]
        assert (data["kind"], data["rule"], data["action"]) == (kind, "R1", action)
        assert (data["patient_id"], data["trigger_message_id"]) == (str(patient), visit_key)
        assert not any(value in msg.data.decode() for value in PERSONAL.values())


@pytest.mark.slow
async def test_an_outbox_killed_after_publishing_delivers_once_and_moves_on_after_restart(
    svc: Services, names: Names, nc: Client, workers: Callable[..., subprocess.Popen]
) -> None:
    patient = register_patient(svc)
    oid, at = assign(svc, patient, ObligationKind.OBLIGATION, POLICE)

    crashing = workers("outbox", SMD_FAULT="outbox-kill-after-publish")
    await wait_for(lambda: crashing.poll() is not None, what="the outbox to kill itself")
    assert crashing.returncode == -signal.SIGKILL
    assert position(svc) < at  # published, position not saved
    assert (await nc.jetstream().stream_info(names.out_stream)).state.messages == 1

    workers("outbox")  # publishes the obligation again: JetStream drops the copy
    await wait_for(lambda: position(svc) >= at, what="the restarted outbox to save its position")
    out = await nc.jetstream().stream_info(names.out_stream)
    assert out.state.messages == 1

    police = AgencyClient(nc, names, POLICE)
    [msg] = await police.assignments(1)
    assert json.loads(msg.data)["data"]["obligation_id"] == str(oid)
    info = await nc.jetstream().consumer_info(names.out_stream, f"assigned-{POLICE}")
    assert (info.num_pending, info.num_ack_pending) == (0, 0)  # nothing else for the police
