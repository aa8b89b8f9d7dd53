"""The agency client (integrations/agency_client) as an agency's system uses it: envelopes
checked locally with the service's own messages, published over NATS and recorded, obligations
and rejections received from the durables the service creates, each handed out once even after
a restart, batches and obligation actions over HTTP (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import nats
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient
from nats.aio.client import Client

from api.app import create_app
from core.case_record import utc_now
from core.registry import load_file
from domain.errors import PatientNotFound
from integrations.agency_client import AgencyClient, ContractError, Message, Rejection, SeenIds, ServiceRefused
from integrations.nats_identities import durable
from integrations.runner import run_intake, run_outbox
from integrations.streams import Names
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_nats_identities import NAMES as IDENTITY_NAMES
from tests.integration.test_nats_identities import region, server  # noqa: F401 - fixtures used below
from tests.support.nats_world import wait_for

HC, POLICE = "hc-north", "police-east"
VILLAGE = "990101-001-v01"  # in hc-north's and police-east's area
UNKNOWN_UNIT = "990101-009-v99"
LEVEL_4 = {"face_to_face": True, "risk_level": 4, "risk_class": "unstable"}


def registration(client: AgencyClient, patient: UUID, residence: str = VILLAGE) -> Any:
    return client.envelope(
        "patient.registered.v1",
        patient,
        {"name": "Test Person", "residence": residence},
        occurred=utc_now() - timedelta(hours=2),
        actor="staff-07",
    )


def visit(client: AgencyClient, patient: UUID, data: dict[str, Any] = LEVEL_4) -> Any:
    return client.envelope("visit.recorded.v1", patient, data, occurred=utc_now() - timedelta(hours=1))


# -- envelopes: checked before anything is sent ---------------------------------------------------


class TestEnvelopes:
    def test_an_envelope_is_built_from_the_contract_with_this_agency_as_source(self) -> None:
        client = AgencyClient(HC)
        patient = uuid4()
        built = visit(client, patient)
        assert (built.source, built.subject, built.event_type) == (HC, patient, "cn.smd.visit.recorded.v1")
        assert built.idempotency_key == f"{HC}:{built.id}"
        assert built.data.risk_level == 4

    @pytest.mark.parametrize(
        ("event_type", "data", "occurred", "expected"),
        [
            ("visit.recorded.v1", {**LEVEL_4, "risk_level": 9}, None, "$.data.risk_level"),
            ("visit.recorded.v1", {**LEVEL_4, "mood": "calm"}, None, "unknown field `mood`"),
            ("visit.recorded.v9", LEVEL_4, None, "known types: cn.smd.patient.registered.v1"),
            ("visit.recorded.v1", LEVEL_4, datetime(2026, 11, 20, 9, 30), "$.time"),  # no offset
        ],
        ids=["out of range", "unknown field", "unknown type", "time without offset"],
    )
    def test_a_bad_envelope_fails_locally_naming_the_field(
        self, event_type: str, data: dict[str, Any], occurred: datetime | None, expected: str
    ) -> None:
        with pytest.raises(ContractError) as refused:
            AgencyClient(HC).envelope(event_type, uuid4(), data, occurred=occurred)
        assert expected in str(refused.value)

    async def test_a_bad_envelope_fails_locally_with_the_message_the_service_gives(self, open_store) -> None:
        services = open_store(clock=utc_now)
        load_file(services.case_record, DEMO_DISTRICT)
        key = services.apikeys.issue(HC).key
        patient, bad = uuid4(), {**LEVEL_4, "risk_level": 9}
        with pytest.raises(ContractError) as local:
            AgencyClient(HC).envelope("visit.recorded.v1", patient, bad)
        doc = {
            "specversion": "1.0",
            "id": str(uuid4()),
            "source": HC,
            "type": "cn.smd.visit.recorded.v1",
            "subject": str(patient),
            "time": utc_now().isoformat(),
            "data": bad,
        }
        async with AsyncTestClient(create_app(services)) as http:
            answer = await http.post("/v1/events", json=doc, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 400
        assert answer.json()["detail"] == str(local.value)

    def test_publishing_an_envelope_of_another_agency_is_refused_before_it_is_sent(self) -> None:
        other = AgencyClient(POLICE).envelope("patient.taken-under-management.v1", uuid4(), {})
        with pytest.raises(ValueError, match="not this client's agency"):
            asyncio.run(AgencyClient(HC).publish(other))


# -- HTTP: batches and obligation actions, on both stores -----------------------------------------


@pytest_asyncio.fixture
async def over_http(open_store) -> AsyncIterator[Callable[[str], AgencyClient]]:
    """Agency clients over HTTP against the service on the test's store (demo district)."""
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    async with AsyncTestClient(create_app(services)) as http:

        def client(agency_id: str) -> AgencyClient:
            return AgencyClient(agency_id, http=http, api_key=services.apikeys.issue(agency_id).key)

        client.services = services  # type: ignore[attr-defined]
        yield client


class TestOverHttp:
    async def test_a_batch_answers_one_outcome_per_envelope_and_sent_again_it_is_all_duplicates(
        self, over_http
    ) -> None:
        hc = over_http(HC)
        first, second = uuid4(), uuid4()
        batch = [
            registration(hc, first),
            visit(hc, first),
            registration(hc, second, residence=UNKNOWN_UNIT),  # fine by the contract, refused by the registry
            visit(hc, uuid4()),  # its patient is not registered (yet): it waits
        ]
        outcomes = await hc.send_batch(batch)
        assert [o.outcome for o in outcomes] == ["recorded", "recorded", "refused", "waiting"]
        assert [o.index for o in outcomes] == [0, 1, 2, 3]
        assert outcomes[0].key == batch[0].idempotency_key and outcomes[0].position
        refused = outcomes[2].problem
        assert refused is not None and refused["type"].endswith("/unknown-org-unit")
        assert UNKNOWN_UNIT in refused["detail"] and not outcomes[2].to_send_again
        again = await hc.send_batch(batch[:2])
        assert [o.outcome for o in again] == ["duplicate", "duplicate"]
        assert over_http.services.case_record.patient(first).risk_level == 4

    async def test_the_police_acknowledge_and_complete_their_obligation_and_another_agency_may_not(
        self, over_http
    ) -> None:
        hc, police = over_http(HC), over_http(POLICE)
        patient = uuid4()
        outcomes = await hc.send_batch([registration(hc, patient), visit(hc, patient)], wait=True)
        assert [o.outcome for o in outcomes] == ["recorded", "recorded"]
        queue = await police.http.get("/v1/work-queue", headers={"Authorization": f"Bearer {police.api_key}"})
        [oid] = [UUID(i["obligation_id"]) for i in queue.json()["items"] if i["rule"] == "R1"]

        with pytest.raises(ServiceRefused) as refused:
            await hc.acknowledge(oid)
        assert refused.value.status == 403 and refused.value.type.endswith("/not-the-owner")

        taken = await police.acknowledge(oid, staff_id="officer-3")
        assert (taken.obligation_id, taken.status, taken.changed) == (oid, "acknowledged", True)
        assert (await police.acknowledge(oid)).changed is False
        done = await police.complete(oid, note="visited with the community doctor")
        assert (done.status, done.changed) == ("completed", True)

    async def test_an_action_on_an_unknown_obligation_is_a_problem_naming_what_to_fix(self, over_http) -> None:
        with pytest.raises(ServiceRefused) as refused:
            await over_http(POLICE).complete(uuid4())
        assert refused.value.status == 404 and refused.value.detail


# -- NATS: publish, obligations, rejections (PostgreSQL and the real NATS) -------------------------


@pytest_asyncio.fixture
async def service(svc: Services, nats_url: str, nc: Client, names: Names) -> AsyncIterator[Services]:
    """The intake and the outbox running in this process (as in `smd serve`); the outbox has
    created each agency's durables."""
    worker = await nats.connect(nats_url, connect_timeout=5)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run(svc, worker, stop)) for run in (run_intake, run_outbox)]

    async def durables_exist() -> bool:
        try:
            await nc.jetstream().consumer_info(names.out_stream, durable(POLICE, "out"))
            await nc.jetstream().consumer_info(names.rejected_stream, durable(HC, "rejected"))
        except nats.js.errors.NotFoundError:
            return False
        return True

    await wait_for(durables_exist, what="the agencies' durables")
    yield svc
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    await worker.close()


@pytest_asyncio.fixture
async def agencies(nats_url: str, names: Names, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Opens agency clients over NATS (each with its dedup file under tmp_path); closes them."""
    opened: list[AgencyClient] = []

    async def open_client(agency_id: str, seen: str | None = None) -> AgencyClient:
        client = await AgencyClient.connect(
            agency_id,
            nats_url=nats_url,
            region=names.region,
            root=names.root,
            seen=tmp_path / (seen or f"{agency_id}.sqlite3"),
        )
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


def risk_level(svc: Services, patient: UUID) -> int | None:
    try:
        return svc.case_record.patient(patient).risk_level
    except PatientNotFound:
        return None


async def until(received: AsyncIterator[Any], found: Callable[[Any], bool]) -> list[Any]:
    """Everything handed out up to and including the first item ``found`` picks (each marked done)."""
    got = []
    async for item in received:
        got.append(item)
        await item.done()
        if found(item):
            return got
    raise AssertionError(f"the iterator stopped before the item looked for; got {got}")


async def drain(received: AsyncIterator[Any]) -> list[Any]:
    """Everything handed out until the iterator stops (idle), each marked done."""
    got = []
    async for item in received:
        got.append(item)
        await item.done()
    return got


@pytest.mark.integration
class TestOverNats:
    async def test_a_published_envelope_is_recorded_under_its_id(self, service: Services, agencies) -> None:
        hc = await agencies(HC)
        patient = uuid4()
        await hc.publish(registration(hc, patient))
        sent = visit(hc, patient)
        ack = await hc.publish(sent)
        assert ack.stream == hc.names.intake_stream and not ack.duplicate
        assert (await hc.publish(sent)).duplicate  # the same Nats-Msg-Id within the window
        await wait_for(lambda: risk_level(service, patient) == 4, what="the visit recorded")
        [stored] = [e for e in service.case_record.recorder.select_events(patient) if "visit" in e.topic.lower()]
        assert stored is not None

    async def test_an_obligation_is_handed_out_once_and_not_again_after_a_restart(
        self, service: Services, agencies, nc: Client, names: Names, tmp_path: Path
    ) -> None:
        hc, police = await agencies(HC), await agencies(POLICE)
        patient = uuid4()
        await hc.publish(registration(hc, patient))
        await hc.publish(visit(hc, patient))
        await wait_for(lambda: risk_level(service, patient) == 4, what="the visit recorded")
        await asyncio.to_thread(service.catch_up, service.case_record.recorder.max_notification_id() or 0)

        got = await until(police.obligations(), lambda m: m.type == "cn.smd.obligation.assigned.v1")
        order: Message = got[-1]
        assert order.data["rule"] == "R1" and order.data["patient_id"] == str(patient)
        assert order.obligation_id == UUID(order.data["obligation_id"]) and not order.redelivered
        got += await drain(police.obligations(idle=1.0))  # the rest of what came (a notice, a risk message)
        await police.close()  # the process stops

        # the outbox publishes the same message again after an outage longer than the stream's
        # duplicate window (JetStream keeps the copy: simulated with another Nats-Msg-Id)
        copy = await nc.jetstream().publish(
            order.subject, order.payload, headers={"Nats-Msg-Id": f"{order.id}:after-the-window"}
        )
        assert not copy.duplicate

        restarted = await agencies(POLICE)  # a new process on the same dedup file
        assert restarted.seen is not None and restarted.seen.count() == len(got)
        later = await drain(restarted.obligations(idle=2.0))  # whatever the outbox sent after the first drain
        assert order.id not in {m.id for m in later} and restarted.skipped == 1
        state = await nc.jetstream().consumer_info(names.out_stream, durable(POLICE, "out"))
        assert state.delivered.stream_seq >= copy.seq and state.num_ack_pending == 0 and state.num_pending == 0

        # another system with its own (empty) dedup file would be handed the copy: the file decides
        forgetful = SeenIds(tmp_path / "elsewhere.sqlite3")
        assert not forgetful.seen(order.id) and restarted.seen.seen(order.id)
        forgetful.close()

    async def test_a_refused_envelope_comes_back_as_a_rejection_with_its_reason(
        self, service: Services, agencies
    ) -> None:
        hc = await agencies(HC)
        refused = registration(hc, uuid4(), residence=UNKNOWN_UNIT)
        await hc.publish(refused)
        [rejection] = await until(hc.rejections(), lambda r: r.original_key == refused.idempotency_key)
        assert isinstance(rejection, Rejection)
        assert rejection.reason == "unknown-org-unit" and UNKNOWN_UNIT in rejection.detail
        assert json.loads(rejection.original)["id"] == str(refused.id)
        assert rejection.key.startswith("rejected:")
        again = await agencies(HC, seen=f"{HC}.sqlite3")
        assert again.seen is not None and again.seen.seen(rejection.key)


@pytest.mark.integration
class TestAsTheAgencysOwnUser:
    """On a server with the identities `smd nats config` writes: the client needs no more than
    an agency's user may do (publish on its subjects, its own durables, its own inbox)."""

    async def test_the_client_publishes_receives_and_acknowledges_with_only_the_agencys_permissions(
        self,
        region,  # noqa: F811 - the fixture of test_nats_identities
        tmp_path: Path,
    ) -> None:
        url, passwords, svc = region
        hc = await AgencyClient.connect(
            HC,
            nats_url=url,
            password=passwords[HC],
            region=IDENTITY_NAMES.region,
            root=IDENTITY_NAMES.root,
            seen=tmp_path / "hc.sqlite3",
        )
        try:
            ack = await hc.publish(visit(hc, uuid4()))
            assert ack.stream == IDENTITY_NAMES.intake_stream

            sjs = svc.jetstream()
            event_id = str(uuid4())
            notice = {"id": event_id, "type": "cn.smd.notice.assigned.v1", "source": "smd/990101"}
            notice |= {"subject": str(uuid4()), "time": utc_now().isoformat(), "data": {"rule": "R1"}}
            await sjs.publish(IDENTITY_NAMES.out(HC, "notice", "assigned"), json.dumps(notice).encode())
            await sjs.publish(
                IDENTITY_NAMES.rejected(HC),
                b"{}",
                headers={"Nats-Msg-Id": "rejected:7", "Smd-Reason": "invalid-envelope", "Smd-Detail": "x"},
            )
            [message] = await until(hc.obligations(), lambda m: True)
            [rejection] = await until(hc.rejections(), lambda r: True)
            assert (message.id, rejection.key, rejection.reason) == (event_id, "rejected:7", "invalid-envelope")
            for stream, what in ((IDENTITY_NAMES.out_stream, "out"), (IDENTITY_NAMES.rejected_stream, "rejected")):
                state = await sjs.consumer_info(stream, durable(HC, what))
                assert state.num_ack_pending == 0 and state.num_pending == 0  # acknowledged as the agency
        finally:
            await hc.close()

    async def test_messages_pulled_but_not_handed_out_wait_for_the_next_iteration_not_for_the_ack_wait(
        self,
        region,  # noqa: F811 - the fixture of test_nats_identities
        tmp_path: Path,
    ) -> None:
        url, passwords, svc = region
        for n in range(3):
            notice = {"id": str(uuid4()), "type": "cn.smd.notice.assigned.v1", "source": "smd/990101"}
            notice |= {"subject": str(uuid4()), "time": utc_now().isoformat(), "data": {"n": n}}
            await svc.jetstream().publish(IDENTITY_NAMES.out(HC, "notice", "assigned"), json.dumps(notice).encode())
        hc = await AgencyClient.connect(
            HC,
            nats_url=url,
            password=passwords[HC],
            region=IDENTITY_NAMES.region,
            root=IDENTITY_NAMES.root,
            seen=tmp_path / "hc.sqlite3",
        )
        try:
            [first] = await until(hc.obligations(batch=10), lambda m: True)  # one pull brought all three
            rest = await drain(hc.obligations(idle=1.0))
            assert [m.data["n"] for m in (first, *rest)] == [0, 1, 2]
            state = await svc.jetstream().consumer_info(IDENTITY_NAMES.out_stream, durable(HC, "out"))
            assert state.num_ack_pending == 0 and state.num_redelivered == 0
        finally:
            await hc.close()
