"""`GET /v1/tasks/{task_id}`: a task the governance center assigned, with its text.

The text is sealed under the task's own key in the case record and read from there for the
assignee, the governance center that assigned it and auditors; anyone else gets 404, as for a
task that does not exist. The obligation that carries the deadline is in the assignee's work
queue (rule ``TASK``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from uuid import UUID

import msgspec
from eventsourcing.application import AggregateNotFoundError
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from api.auth import Caller, agency_guard, provide_caller
from api.ports import CaseRecordPort, Port
from core.restrictions import hidden_from
from domain.task import AssignedTask


class TaskView(msgspec.Struct, omit_defaults=True):
    """A task: who assigned it to whom, by when, where, and what to do."""

    task_id: UUID
    assigned_by: str
    assignee: str
    assigned_at: datetime
    due_at: datetime
    place: str
    text: str
    patient_id: UUID | None = None


class TasksController(Controller):
    """Tasks people assign, read back by those involved."""

    tags = ["tasks"]  # noqa: RUF012
    guards = [agency_guard]  # noqa: RUF012
    dependencies = {"caller": Provide(provide_caller)}  # noqa: RUF012

    @get(
        "/v1/tasks/{task_id:uuid}",
        operation_id="getTask",
        summary="A task with its text: for its assignee, the governance center that assigned it, auditors",
        description="404 for anyone else, exactly as for an unknown task id, and for a task about a restricted "
        "patient (but to an auditor).",
    )
    async def task(
        self, task_id: FromPath[UUID], caller: NamedDependency[Caller], services: Port[CaseRecordPort]
    ) -> TaskView:
        def read() -> TaskView:
            try:
                task = services.case_record.repository.get(task_id)
            except AggregateNotFoundError:
                task = None
            if not isinstance(task, AssignedTask) or not (
                caller.agency_id in (task.assignee, task.assigned_by) or caller.kind == "auditor"
            ):
                raise NotFoundException(detail=f"no task {task_id} assigned by or to {caller.agency_id}")
            if task.patient_id is not None and hidden_from(caller.kind, services.case_record, [task.patient_id]):
                # about a restricted patient: refused like any read of it (the auditor still reads it)
                raise NotFoundException(detail=f"no task {task_id} assigned by or to {caller.agency_id}")
            return TaskView(
                task_id=task.id,
                assigned_by=task.assigned_by,
                assignee=task.assignee,
                assigned_at=task.occurred_at,
                due_at=task.due_at,
                place=task.place,
                text=task.text.text,
                patient_id=task.patient_id,
            )

        return await asyncio.to_thread(read)
