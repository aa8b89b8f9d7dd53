"""Rebuilding a read model while the service runs: the new generation is built beside the live
one while facts keep arriving and the API keeps answering; after the switch it equals the old
one row by row. On both stores."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.intake import accept
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from projections.runner import ProjectionFollower, rebuild
from projections.work_queue import QueueRow
from tests.support.agency_client import envelope as agency_envelope

VILLAGE = "990101-001-v01"


def envelope(type_: str, subject, data: dict) -> bytes:
    occurred = datetime.now(UTC) - timedelta(hours=1)
    return agency_envelope("hc-north", f"cn.smd.{type_}.v1", subject, data, occurred=occurred, actor=None)


def record(services, patient, level: int | None = None) -> int:
    if level is None:
        raw = envelope("patient.registered", patient, {"name": "Test Person", "residence": VILLAGE})
    else:
        cls = "unstable" if level >= 3 else "basically_stable"
        raw = envelope("visit.recorded", patient, {"face_to_face": True, "risk_level": level, "risk_class": cls})
    return accept(services.case_record, services.registry, raw, "hc-north", "test").notification_id or 0


def rows_of(services, generation) -> list[QueueRow]:
    found = services.views.select(
        services.work_queue.projection, "rows", "1 = 1", [], order_by="position", limit=100_000, generation=generation
    )
    return [QueueRow(**r) for r in found]


async def test_a_read_model_rebuilt_while_writes_continue_equals_the_live_one_and_the_api_answers_throughout(
    open_store,
) -> None:
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    key = services.apikeys.issue("police-east").key
    patients = [uuid4() for _ in range(30)]
    for p in patients:
        record(services, p)
        record(services, p, 4)
    services.catch_up(services.case_record.recorder.max_notification_id() or 0)
    live_before = services.views.live(services.work_queue.projection)

    stop = threading.Event()
    written = []

    def keep_writing() -> None:  # an agency keeps sending while the rebuild runs
        i = 0
        while not stop.is_set():
            p = patients[i % len(patients)]
            written.append(record(services, p, (1, 4)[i % 2]))
            services.catch_up(written[-1])
            i += 1

    writer = threading.Thread(target=keep_writing)
    answers: list[int] = []
    app = create_app(services)
    async with AsyncTestClient(app=app) as client:
        writer.start()
        during: list[int] = []

        def progress(position: int, head: int) -> None:  # between two batches of the rebuild
            during.append(record(services, patients[len(during) % len(patients)], 4))

        task = asyncio.create_task(
            asyncio.to_thread(
                rebuild,
                services.case_record,
                services.views,
                services.work_queue.projection,
                services.parking,
                batch=20,
                keep_old=True,
                progress=progress,
            )
        )
        while not task.done():
            r = await client.get("/v1/work-queue?limit=5", headers={"Authorization": f"Bearer {key}"})
            answers.append(r.status_code)
            await asyncio.sleep(0.01)
        report = await task
        for _ in range(5):  # and after the switch
            r = await client.get("/v1/work-queue?limit=5", headers={"Authorization": f"Bearer {key}"})
            answers.append(r.status_code)
    stop.set()
    writer.join()

    assert report.old == live_before and report.new.generation == live_before.generation + 1
    assert len(answers) > 5 and set(answers) == {200}, "the API answered throughout"
    assert len(during) >= 3, "facts kept arriving during the rebuild (and from another thread: written)"
    head = services.case_record.recorder.max_notification_id() or 0
    services.catch_up(head)
    old = ProjectionFollower(
        services.case_record, services.views, services.work_queue.projection, services.parking, generation=report.old
    )
    assert old.catch_up(head)
    assert services.views.live(services.work_queue.projection).generation == report.new.generation
    rebuilt, live = rows_of(services, report.new), rows_of(services, report.old)
    assert len(rebuilt) >= 60 and rebuilt == live, "row by row"
    services.views.drop(services.work_queue.projection, report.old)
    assert [g.generation for g in services.views.generations("work_queue")] == [report.new.generation]
