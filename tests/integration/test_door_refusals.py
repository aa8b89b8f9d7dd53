"""What can never become valid is refused at every door (HTTP, NATS, `smd import`), and nothing
of it is stored: the rules keep working for everyone else, on SQLite and on PostgreSQL.

Each poison message here, stored, used to stop the rules for the whole deployment (an org unit
no rule can place; a time whose conversion to UTC underflows). Each test sends one through each
door, checks the refusal (code, JSON path), that the log did not move, and then that a valid
patient's level-4 assessment, sent through the same door, still gives the police their R1
obligation. The service runs as `smd serve` does: HTTP, the NATS intake and the log's followers
in the background, on the real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
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

from core import go_live
from core.case_record import utc_now
from core.registry import load_file
from domain.errors import PatientNotFound
from integrations.intake import H_DETAIL, H_REASON
from integrations.streams import INTAKE_CONSUMER, Names, names_of
from ops.bootstrap import Services
from ops.cli import main as smd
from ops.data_files import DEMO_DISTRICT
from ops.workers import serving_app
from tests.support.agency_client import AgencyClient
from tests.support.nats_world import wait_for
from tests.support.stores import open_services, store_settings

pytestmark = pytest.mark.integration  # NATS on both stores, PostgreSQL for one

HC, POLICE = "hc-north", "police-east"
VILLAGE = "990101-001-v01"  # hc-north's and police-east's
UNKNOWN_UNIT = "990101-009-v99"  # no such village in region 990101
DOORS = ("HTTP", "NATS", "import")


def envelope(event_type: str, subject: UUID, data: dict[str, Any], *, time: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": HC,
        "type": f"cn.smd.{event_type}.v1",
        "subject": str(subject),
        "time": time or (datetime.now().astimezone() - timedelta(hours=1)).isoformat(),
        "actor": "staff-07",
        "data": data,
    }


def registration(patient: UUID, residence: str = VILLAGE, **kw: Any) -> dict[str, Any]:
    return envelope("patient.registered", patient, {"name": "Test Person", "residence": residence}, **kw)


def level_4(patient: UUID, event_type: str = "risk.assessed", **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"risk_level": 4, "risk_class": "unstable"}
    if event_type == "visit.recorded":
        data["face_to_face"] = True
    return envelope(event_type, patient, data, **kw)


class Doors:
    """The service's three doors, as an agency's system uses them, and what the service stored."""

    def __init__(
        self, services: Services, client: AsyncTestClient, hc: AgencyClient, keys: dict[str, str], tmp: Path
    ) -> None:
        self.services, self.client, self.hc, self.keys, self.tmp = services, client, hc, keys, tmp
        self.rejections = 0

    # -- sending ---------------------------------------------------------------------------------

    async def http(self, doc: dict[str, Any]) -> Any:
        return await self.client.post("/v1/events", json=doc, headers={"Authorization": f"Bearer {self.keys[HC]}"})

    async def nats(self, doc: dict[str, Any]) -> None:
        await self.hc.publish(json.dumps(doc).encode())

    async def ledger(self, *docs: dict[str, Any]) -> tuple[int, str]:
        """`smd import LEDGER --agency hc-north` on the service's store: (exit code, output)."""
        path = self.tmp / f"ledger-{uuid4().hex[:8]}.jsonl"
        path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
        out = self.tmp / f"{path.stem}.out"

        def run() -> int:
            with open(out, "w") as f, contextlib.redirect_stdout(f):
                return smd(["import", str(path), "--agency", HC])

        code = await asyncio.to_thread(run)
        return code, out.read_text()

    # -- what happened ---------------------------------------------------------------------------

    def head(self) -> int:
        return self.services.case_record.recorder.max_notification_id() or 0

    def events_of(self, subject: UUID) -> int:
        return len(self.services.case_record.recorder.select_events(subject))

    async def settled_head(self) -> int:
        """The log's head once the rules and the scheduler have nothing left to record (the
        scheduler opens the reporting duties owed since go-live on its first run, in the
        background: run it here so that it does not record while a refusal is checked)."""
        while True:
            head = self.head()
            await asyncio.to_thread(self.services.scheduler.run_once, True)
            await asyncio.to_thread(self.services.catch_up, self.head())
            if self.head() == head:
                return head

    async def refused(self, door: str, doc: dict[str, Any]) -> tuple[str, str]:
        """Send ``doc`` through ``door``; the refusal's (code, detail)."""
        if door == "HTTP":
            r = await self.http(doc)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            return problem["type"].rsplit("/", 1)[1], problem["detail"]
        if door == "NATS":
            await self.nats(doc)
            self.rejections += 1
            msgs = await self.hc.rejections(self.rejections, durable=f"door-{uuid4().hex[:8]}")
            assert len(msgs) == self.rejections, "the refusal is on the rejection stream"
            headers = msgs[-1].headers or {}
            assert json.loads(msgs[-1].data)["id"] == doc["id"]
            return headers[H_REASON], headers[H_DETAIL]
        code, out = await self.ledger(doc)
        assert code == 1, out
        assert "0 rows recorded" in out and "1 refused" in out, out
        line = next(line.strip() for line in out.splitlines() if line.strip().startswith("line 1: "))
        reason, detail = line.removeprefix("line 1: ").split(": ", 1)
        return reason, detail

    async def police_r1(self, patient: UUID) -> list[dict[str, Any]]:
        """The police station's R1 obligations for the patient, once they are in its work queue."""

        async def found() -> list[dict[str, Any]]:
            r = await self.client.get(
                "/v1/work-queue?limit=500", headers={"Authorization": f"Bearer {self.keys[POLICE]}"}
            )
            assert r.status_code == 200, r.text
            return [
                i
                for i in r.json()["items"]
                if i["patient_id"] == str(patient) and i["rule"] == "R1" and i["kind"] == "obligation"
            ]

        return await wait_for(found, what=f"R1 for {patient} in {POLICE}'s work queue", timeout=30)  # type: ignore[return-value]

    async def valid_patient_still_gets_r1(self, door: str) -> None:
        """Another patient, valid, at level 4 through the same door: the police get their R1."""
        patient = uuid4()
        two_hours_ago = (datetime.now().astimezone() - timedelta(hours=2)).isoformat()
        docs = (registration(patient, time=two_hours_ago), level_4(patient))
        if door == "HTTP":
            for doc in docs:
                r = await self.http(doc)
                assert r.status_code == 201, r.text
        elif door == "NATS":
            for doc in docs:
                await self.nats(doc)
        else:
            code, out = await self.ledger(*docs)
            assert code == 0 and "2 rows recorded" in out, out
        items = await self.police_r1(patient)
        assert [(i["rule"], i["action"]) for i in items] == [("R1", "take_under_management")]

    async def refused_at_every_door(
        self, poison: Callable[[], dict[str, Any]], code: str, path: str, *, says: str
    ) -> list[UUID]:
        """The same kind of poison through each door; returns the subjects sent."""
        subjects = []
        for door in DOORS:
            doc = poison()
            subject = UUID(doc["subject"])
            subjects.append(subject)
            head, before = await self.settled_head(), self.events_of(subject)

            reason, detail = await self.refused(door, doc)

            assert reason == code, (door, reason, detail)
            assert detail.startswith(f"{path}"), (door, detail)
            assert says in detail, (door, detail)
            assert self.head() == head, f"{door}: nothing is stored"
            assert self.events_of(subject) == before, door
            await self.valid_patient_still_gets_r1(door)
        return subjects


# -- the service, as `smd serve` runs it ---------------------------------------------------------


@pytest_asyncio.fixture
async def doors(
    store_kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    nats_url: str,
    subject_root: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Doors]:
    pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
    env = {"SMD_NATS_URL": nats_url, "SMD_SUBJECT_ROOT": f"{subject_root}_{secrets.token_hex(3)}"}
    settings = store_settings(store_kind, tmp_path / "data", pg_url, **env)
    # `smd import` (run in this process) reads the same settings from the environment
    for var in ("SMD_DATABASE_URL", "SMD_NATS_URL", "SMD_EARLIEST_TIME", "SMD_REGION", "SMD_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SMD_DATA_DIR", str(tmp_path / "data"))
    if pg_url:
        monkeypatch.setenv("SMD_DATABASE_URL", pg_url)

    services = open_services(settings, clock=utc_now)  # the real clock: envelopes carry real times
    load_file(services.case_record, DEMO_DISTRICT)
    go_live.complete(services.case_record, services.registry.region, "gov-willowbrook")  # a live deployment
    keys = {a: services.apikeys.issue(a).key for a in (HC, POLICE)}
    names = names_of(settings)
    nc = await nats.connect(nats_url, connect_timeout=5)
    try:
        async with AsyncTestClient(serving_app(services)) as client:  # followers, NATS intake, outbox
            await wait_for(lambda: _consumer_exists(nc, names), what="the NATS intake consumer")
            yield Doors(services, client, AgencyClient(nc, names, HC), keys, tmp_path)
    finally:
        js = nc.jetstream()
        for stream in (names.intake_stream, names.rejected_stream, names.out_stream):
            try:
                await js.delete_stream(stream)
            except nats.js.errors.NotFoundError:
                pass
        await nc.close()
        services.close()


async def _consumer_exists(nc: Client, names: Names) -> bool:
    try:
        await nc.jetstream().consumer_info(names.intake_stream, INTAKE_CONSUMER)
    except nats.js.errors.NotFoundError:
        return False
    return True


# -- the poison, one kind per test ---------------------------------------------------------------


async def test_unknown_residence_is_refused_at_every_door(doors: Doors) -> None:
    patients = await doors.refused_at_every_door(
        lambda: registration(uuid4(), UNKNOWN_UNIT),
        "unknown-org-unit",
        "$.data.residence",
        says=f"the org unit '{UNKNOWN_UNIT}' is not in region 990101's registry",
    )
    for patient in patients:
        with pytest.raises(PatientNotFound):
            doors.services.case_record.patient(patient)


async def test_unknown_seen_in_of_a_suspected_case_is_refused_at_every_door(doors: Doors) -> None:
    await doors.refused_at_every_door(
        lambda: envelope("suspected-case.reported", uuid4(), {"observed": "shouts at night", "seen_in": UNKNOWN_UNIT}),
        "unknown-org-unit",
        "$.data.seen_in",
        says=f"the org unit '{UNKNOWN_UNIT}' is not in region 990101's registry",
    )


async def test_unknown_residence_of_an_unidentified_person_is_refused_at_every_door(doors: Doors) -> None:
    patients = await doors.refused_at_every_door(
        lambda: envelope(
            "patient.registered-unidentified", uuid4(), {"label": "man at the bus station", "residence": UNKNOWN_UNIT}
        ),
        "unknown-org-unit",
        "$.data.residence",
        says="ask the operator to load the registry",
    )
    for patient in patients:
        with pytest.raises(PatientNotFound):
            doors.services.case_record.patient(patient)


async def test_a_visit_in_year_1_whose_utc_time_underflows_is_refused_at_every_door(doors: Doors) -> None:
    patient = uuid4()
    r = await doors.http(registration(patient))
    assert r.status_code == 201, r.text
    await doors.refused_at_every_door(
        lambda: level_4(patient, "visit.recorded", time="0001-01-01T00:00:00+14:00"),
        "time-out-of-range",
        "$.time",
        says="$.time is 0001-01-01T00:00:00+14:00, before 1900-01-01T00:00:00+00:00",
    )
    assert doors.services.case_record.patient(patient).risk_level is None  # the visit never landed


async def test_a_time_before_1900_is_refused_at_every_door(doors: Doors) -> None:
    patients = await doors.refused_at_every_door(
        lambda: registration(uuid4(), time="1899-06-01T09:00:00+08:00"),
        "time-out-of-range",
        "$.time",
        says="the earliest this service accepts (SMD_EARLIEST_TIME)",
    )
    for patient in patients:
        with pytest.raises(PatientNotFound):
            doors.services.case_record.patient(patient)
