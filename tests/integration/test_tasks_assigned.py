"""Tasks people assign, on SQLite and PostgreSQL: the governance center gives an agency a task
(about a patient or at a place) with a deadline and a sealed text; it shows in the assignee's work
queue, is completed by its owner, and is marked overdue and escalated when late."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from core.intake import accept
from core.obligations import act
from core.registry import load_file
from core.scheduler import Scheduler
from domain.access import NotAllowedToRecord
from domain.task import TaskAlreadyAssigned, TaskNeedsAPlace, task_obligation_id
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_coordination_engine import GOV, HC, VILLAGE
from tests.integration.test_rules_care import Care
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import NOW


@pytest.fixture
def care(services) -> Care:
    load_file(services.case_record, DEMO_DISTRICT)
    c = Care(services)
    c.register()
    return c


def assign(services, task, data: dict, agency: str = GOV):
    doc = agency_envelope(agency, "cn.smd.task.assigned.v1", task, data, occurred=NOW - timedelta(hours=1), actor=None)
    recorded = accept(services.case_record, services.registry, doc, agency, "test")
    services.catch_up(services.case_record.recorder.max_notification_id())
    return recorded


def task_data(**kw) -> dict:
    return {"assignee": HC, "due_at": (NOW + timedelta(days=3)).isoformat(), "text": "MKTASKzz visit with police", **kw}


class TestTasks:
    def test_a_task_about_a_patient_is_in_the_assignees_work_queue_and_its_owner_completes_it(self, care) -> None:
        task = uuid4()
        assign(care.services, task, task_data(patient_id=str(care.patient)))
        [row] = [r for r in care.services.work_queue.for_assignee(HC) if r.rule == "TASK"]
        assert (row.action, row.patient_id, row.due_at) == ("assigned_task", care.patient, NOW + timedelta(days=3))
        done, changed = act(care.services.case_record, task_obligation_id(task), HC, "staff-1", "complete")
        assert changed and done.status == "completed"

    def test_a_task_at_a_place_escalates_when_late_and_the_same_id_twice_is_refused(self, care) -> None:
        task = uuid4()
        assign(care.services, task, task_data(place=VILLAGE))
        with pytest.raises(TaskAlreadyAssigned):
            assign(care.services, task, task_data(place=VILLAGE))
        s = care.services
        Scheduler(s.case_record, s.registry, s.work_queue, lambda: NOW + timedelta(days=4)).run_once(force=True)
        o = s.case_record.repository.get(task_obligation_id(task))
        assert (o.overdue, o.escalated_to, o.patient_id) == (True, GOV, task)

    def test_only_the_governance_center_assigns_and_a_task_needs_a_patient_or_a_place(self, care) -> None:
        with pytest.raises(NotAllowedToRecord):
            assign(care.services, uuid4(), task_data(place=VILLAGE), agency=HC)
        with pytest.raises(TaskNeedsAPlace):
            assign(care.services, uuid4(), task_data())

    def test_the_text_is_sealed_under_the_tasks_own_key(self, care, settings) -> None:
        assign(care.services, uuid4(), task_data(place=VILLAGE))
        from tests.integration.test_no_plaintext import stored_bytes

        assert b"MKTASKzz" not in stored_bytes(settings)


class TestReadingATask:
    async def test_a_task_and_its_text_are_read_by_its_assignee_and_assigner_and_no_one_else(self, care) -> None:
        from litestar.testing import AsyncTestClient

        from core.demo_keys import ensure_demo_keys
        from ops.workers import serving_app

        s = care.services
        task = uuid4()
        assign(s, task, task_data(place=VILLAGE))
        keys = {k.agency_id: k.key for k in ensure_demo_keys(s.apikeys, s.registry, s.settings.data_dir)}
        async with AsyncTestClient(serving_app(s)) as client:
            for agency in (HC, GOV, "auditor-lantern-bay"):
                r = await client.get(f"/v1/tasks/{task}", headers={"Authorization": f"Bearer {keys[agency]}"})
                assert r.status_code == 200, (agency, r.text)
                assert r.json()["text"] == "MKTASKzz visit with police" and r.json()["assignee"] == HC
            other = next(a for a in keys if a.startswith("police"))
            r = await client.get(f"/v1/tasks/{task}", headers={"Authorization": f"Bearer {keys[other]}"})
            assert r.status_code == 404
            r = await client.get(f"/v1/tasks/{uuid4()}", headers={"Authorization": f"Bearer {keys[HC]}"})
            assert r.status_code == 404


class TestWhereATaskMayGo:
    def test_a_task_at_a_place_outside_the_governance_centers_area_is_refused(self, care) -> None:
        from domain.jurisdiction import OutsideJurisdiction

        with pytest.raises(OutsideJurisdiction, match=r"data\.place"):
            assign(care.services, uuid4(), task_data(place="990101-002-v01", assignee="hc-reedmarsh"))

    def test_a_task_for_an_agency_that_does_not_work_at_its_place_is_refused(self, care) -> None:
        from domain.task import AssigneeDoesNotCoverThePlace

        with pytest.raises(AssigneeDoesNotCoverThePlace, match="hc-reedmarsh"):
            assign(care.services, uuid4(), task_data(place=VILLAGE, assignee="hc-reedmarsh"))
        with pytest.raises(AssigneeDoesNotCoverThePlace, match="residence"):
            assign(care.services, uuid4(), task_data(patient_id=str(care.patient), assignee="hc-reedmarsh"))
