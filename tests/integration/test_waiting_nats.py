"""Over NATS, a fact that arrives before its patient waits (issue 17): acked once it waits (nothing
fills max_ack_pending), recorded when the registration comes, or rejected on the sender's
rejection subject with ``reference-not-found`` when the window ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from uuid import uuid4

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from core.registry import load_file
from core.waiting import message_status
from integrations.intake import H_DETAIL, H_MSG_ID, H_REASON, H_SEQ, H_SUBJECT
from integrations.runner import run_intake
from integrations.streams import Names, names_of
from ops.bootstrap import Services, bootstrap
from ops.data_files import DEMO_DISTRICT
from ops.settings import load_settings
from tests.integration.test_nats_intake import consumer_exists, intake_settled, key_of, registered
from tests.support.agency_client import AgencyClient
from tests.support.nats_world import wait_for

pytestmark = pytest.mark.integration

HC = "hc-north"
VILLAGE = "990101-001-v01"
WINDOW_SECONDS = 3


@pytest.fixture
def waiting_svc(nats_env: dict[str, str]) -> Iterator[Callable[..., Services]]:
    """Services on the test's database and streams, with the window the test asks for."""
    opened: list[Services] = []

    def make(**extra: str) -> Services:
        services = bootstrap(load_settings({**nats_env, **extra}))
        opened.append(services)
        if not services.case_record.recorder.max_notification_id():
            load_file(services.case_record, DEMO_DISTRICT)
        return services

    yield make
    for services in opened:
        services.close()


@pytest_asyncio.fixture
async def running(nats_url: str, nats_env: dict[str, str]) -> AsyncIterator[Callable[[Services], object]]:
    """Runs the intake (with the waiting sweep beside it, as in `smd serve`) for given services."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None], Client]] = []

    async def start(services: Services) -> None:
        worker_nc = await nats.connect(nats_url, connect_timeout=5)
        stop = asyncio.Event()
        stops.append((stop, asyncio.create_task(run_intake(services, worker_nc, stop)), worker_nc))

    yield start
    for stop, task, worker_nc in stops:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await worker_nc.close()


@pytest_asyncio.fixture
async def client(nats_url: str, nats_env: dict[str, str]) -> AsyncIterator[tuple[Client, Names]]:
    names = names_of(load_settings(nats_env))
    nc = await nats.connect(nats_url, connect_timeout=5)
    yield nc, names
    js = nc.jetstream()
    for name in (names.intake_stream, names.rejected_stream, names.out_stream):
        try:
            await js.delete_stream(name)
        except nats.js.errors.NotFoundError:
            pass
    await nc.close()


async def test_a_visit_published_before_its_registration_is_acked_waiting_and_recorded_when_it_arrives(
    waiting_svc, running, client
) -> None:
    nc, names = client
    services = waiting_svc()
    await running(services)
    await wait_for(lambda: consumer_exists(nc, names), what="the intake consumer")
    hc = AgencyClient(nc, names, HC)
    patient = uuid4()

    visit = hc.visit(patient, 4, "unstable")
    first = await hc.publish(visit)
    await wait_for(lambda: intake_settled(nc, names, first.seq), what="the waiting visit to be acked")
    assert message_status(services.case_record, services.waiting, key_of(visit)).status == "waiting"
    assert not registered(services.case_record, patient)

    await asyncio.sleep(3)  # the registration comes later (a batch, a sync, a redelivery)
    ack = await hc.publish(hc.registration(patient, VILLAGE))
    await wait_for(lambda: intake_settled(nc, names, ack.seq), what="the registration to be acked")
    status = message_status(services.case_record, services.waiting, key_of(visit))
    assert (status.status, status.outcome) == ("recorded", "recorded")
    assert services.case_record.patient(patient).risk_level == 4
    assert services.waiting.stats().waiting == 0
    assert (await nc.jetstream().stream_info(names.rejected_stream)).state.messages == 0


async def test_a_visit_whose_registration_never_comes_is_rejected_with_reference_not_found_when_the_window_ends(
    waiting_svc, running, client
) -> None:
    nc, names = client
    services = waiting_svc(SMD_WAITING_WINDOW_SECONDS=str(WINDOW_SECONDS))
    await running(services)
    await wait_for(lambda: consumer_exists(nc, names), what="the intake consumer")
    hc = AgencyClient(nc, names, HC)
    patient = uuid4()
    visit = hc.visit(patient, 1, "basically_stable")
    sent = await hc.publish(visit)
    await wait_for(lambda: intake_settled(nc, names, sent.seq), what="the waiting visit to be acked")

    [rejection] = await hc.rejections(1, timeout=WINDOW_SECONDS + 15)
    assert rejection.data == visit  # the original bytes
    headers = rejection.headers or {}
    assert headers[H_REASON] == "reference-not-found"
    assert f"no patient {patient} was registered within {WINDOW_SECONDS} s" in headers[H_DETAIL]
    assert (headers[H_SEQ], headers[H_SUBJECT]) == (str(sent.seq), names.intake(HC, "visit.recorded.v1"))
    assert headers[H_MSG_ID] == key_of(visit)
    assert headers["Nats-Msg-Id"] == f"rejected:{sent.seq}"
    assert "Test Person" not in json.dumps(headers)

    status = message_status(services.case_record, services.waiting, key_of(visit))
    assert (status.status, status.reason) == ("refused", "reference-not-found")
    row = services.waiting.table.get(key_of(visit))
    assert row is not None and row.notified and row.sealed is None  # told: the sealed bytes are gone
    assert services.waiting.stats().untold == 0
