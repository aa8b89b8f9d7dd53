"""Every stored fact names what authenticated it (issue 22, docs/decisions/017): each message's
receipt, saved with its facts, carries ``authenticated_by``: ``api-key:<key id>`` over HTTP,
``nats-user:<agency>`` over NATS (the only user that may publish on that subject), and
``import:<ledger digest>`` for a ledger the operator imported; a fact that waited for its patient
keeps its own, not the releasing message's. Both stores."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import pytest
from nats.aio.client import Client

from core.backfill import import_lines
from core.registry import load_file
from domain.receipt import receipt_id
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_backfill import HC, VILLAGE, envelope, visit
from tests.integration.test_bad_input_nats import intake, nats_env, svc  # noqa: F401 (fixtures)
from tests.support.agency_client import AgencyClient
from tests.support.nats_world import wait_for


def receipt_of(services: Services, message: dict | bytes):
    if isinstance(message, bytes):
        message = json.loads(message)
    return services.case_record.repository.get(receipt_id(f"{message['source']}:{message['id']}"))


class TestImportedRowsNameTheLedger:
    def test_an_imported_row_names_its_ledger_even_when_another_ledger_releases_it(self, services: Services) -> None:
        load_file(services.case_record, DEMO_DISTRICT)
        patient = uuid4()
        waits, registration = (
            visit(patient, 4, 2),
            envelope(patient, "patient.registered", {"name": "Ledger Person", "residence": VILLAGE}, 10),
        )
        first_raw, second_raw = json.dumps(waits).encode(), json.dumps(registration).encode()
        first = import_lines(services.case_record, services.registry, first_raw, HC, waiting=services.waiting)
        assert len(first.waiting) == 1  # its patient is not recorded yet
        second = import_lines(services.case_record, services.registry, second_raw, HC, waiting=services.waiting)
        assert second.recorded == 1 and first.ledger != second.ledger
        assert receipt_of(services, registration).authenticated_by == f"import:{second.ledger}"
        released = receipt_of(services, waits)
        assert (released.authenticated_by, released.key_id) == (f"import:{first.ledger}", None)


class TestHttpReceiptsNameTheApiKey:
    async def test_a_message_recorded_over_http_names_its_api_key(self, open_store) -> None:
        from litestar.testing import AsyncTestClient

        from api.app import create_app
        from core.case_record import utc_now
        from tests.integration.test_walking_skeleton_http import registration

        services = open_store(clock=utc_now)
        load_file(services.case_record, DEMO_DISTRICT)
        key = services.apikeys.issue("hc-north")
        reg = registration(uuid4())
        async with AsyncTestClient(app=create_app(services)) as client:
            r = await client.post("/v1/events", json=reg, headers={"Authorization": f"Bearer {key.key}"})
            assert r.status_code == 201, r.text
        receipt = receipt_of(services, reg)
        assert (receipt.key_id, receipt.authenticated_by) == (key.key_id, f"api-key:{key.key_id}")


@pytest.mark.integration
class TestNatsReceiptsNameTheNatsUser:
    async def test_a_message_over_nats_names_the_agencys_nats_user_even_after_waiting(
        self,
        svc: Services,  # noqa: F811
        names,
        nc: Client,
        intake,  # noqa: F811
    ) -> None:
        hc = AgencyClient(nc, names, "hc-north")
        patient: UUID = uuid4()
        waits, reg = hc.visit(patient, 4, "unstable"), hc.registration(patient, VILLAGE)
        await hc.publish(waits)  # before its patient: it waits
        await hc.publish(reg)

        def both_recorded() -> bool:
            try:
                return all(receipt_of(svc, m) is not None for m in (waits, reg))
            except Exception:
                return False

        await wait_for(both_recorded, what="both messages to be recorded")
        for message in (waits, reg):
            receipt = receipt_of(svc, message)
            assert (receipt.authenticated_by, receipt.key_id) == ("nats-user:hc-north", None)
