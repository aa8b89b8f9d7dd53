"""Tasks people assign: the governance center, after a joint consultation (会商), gives an agency
in its area a task with a deadline and a text, about a patient or not (Qingyang 三、保障措施:
任务下达, 反馈督办). The task is its own aggregate, so its text is sealed under the task's own
data key (its id is the subject, as decision 004 allows); the obligation that carries the
deadline is opened by the policy process like any rule's, so it is completed, marked overdue and
escalated like any other.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.obligation import obligation_id
from domain.personal import SealedText
from domain.values import Provenance, check_not_in_future

RULE = "TASK"
ACTION = "assigned_task"


def task_obligation_id(task_id: UUID) -> UUID:
    """The assignee's obligation for the task (one per task)."""
    return obligation_id(task_id, RULE, str(task_id), "assignee")


class AssignedTask(Aggregate):
    """A task the governance center assigned (TaskAssigned)."""

    TOPIC = "smd.AssignedTask"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.AssignedTask.Created"

    class Assigned(Aggregate.Created):
        """TaskAssigned: who must do what (sealed) by when, about which patient or place."""

        TOPIC = "smd.TaskAssigned"
        agency_id: str
        staff_id: str | None
        occurred_at: datetime
        message_id: str
        assignee: str
        due_at: datetime
        text: SealedText
        patient_id: UUID | None
        place: str

    def __init__(
        self,
        agency_id: str,
        staff_id: str | None,
        occurred_at: datetime,
        message_id: str,
        assignee: str,
        due_at: datetime,
        text: SealedText,
        patient_id: UUID | None,
        place: str,
    ) -> None:
        self.assigned_by = agency_id
        self.occurred_at = occurred_at
        self.message_id = message_id
        self.assignee = assignee
        self.due_at = due_at
        self.text = text
        self.patient_id = patient_id
        self.place = place

    @classmethod
    def assign(
        cls,
        task_id: UUID,
        by: Provenance,
        now: datetime,
        *,
        assignee: str,
        due_at: datetime,
        text: str,
        place: str,
        patient_id: UUID | None = None,
    ) -> AssignedTask:
        """Assign a task; the deadline must lie after the assignment."""
        check_not_in_future("the task", by.occurred_at, now)
        if due_at <= by.occurred_at:
            raise TaskDueBeforeAssigned()
        return cls._create(
            cls.Assigned,
            id=task_id,
            timestamp=now,
            agency_id=by.agency_id,
            staff_id=by.staff_id,
            occurred_at=by.occurred_at,
            message_id=by.message_id,
            assignee=assignee,
            due_at=due_at,
            text=SealedText(text=text),
            patient_id=patient_id,
            place=place,
        )


class TaskDueBeforeAssigned(DomainError):
    """A task's deadline lies after its assignment."""

    code = "task-due-before-assigned"

    def __init__(self) -> None:
        super().__init__("the task's due_at is not after its time; send a deadline after the assignment")


class TaskAlreadyAssigned(DomainError):
    """A task id is assigned once."""

    code = "task-already-assigned"

    def __init__(self, task_id: UUID) -> None:
        super().__init__(f"task {task_id} is already assigned; choose a new id (the subject) for a new task")


class TaskNeedsAPlace(DomainError):
    """A task is about a patient (its residence is the place) or names a place (an org unit)."""

    code = "task-needs-a-place"

    def __init__(self) -> None:
        super().__init__("a task about no patient names its place: send data.place (an org unit id of the registry)")


class AssigneeDoesNotCoverThePlace(DomainError):
    """A task goes to an agency that works where the task is."""

    code = "assignee-outside-the-place"

    def __init__(self, assignee: str, place: str | None) -> None:
        where = f"place {place!r}" if place is not None else "the patient's residence"
        super().__init__(
            f"agency {assignee}'s jurisdiction does not cover {where}; assign the task to an agency that works there"
        )
