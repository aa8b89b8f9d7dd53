"""Reports submitted (R21) and progress recorded on the work plan's tasks.

Neither is about a patient: each is its own aggregate, so its free text is sealed under its own
data key (its id is the subject, as decision 004 allows). A submitted report names its duty and
period; the policy process completes the agency's R21 obligation for that period from it.
Progress on a task of the work plan (Qingyang's task table, 任务 1–25: 反馈督办) is a number and
a text; it completes nothing (the plan's tasks are not obligations of ours).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import DomainError
from domain.personal import SealedText
from domain.rules.r21_reporting_duties import Duty, period_label_error, period_start
from domain.values import Provenance, check_not_in_future


class SubmittedReport(Aggregate):
    """A report an agency submitted (ReportSubmitted)."""

    TOPIC = "smd.SubmittedReport"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.SubmittedReport.Created"

    class Submitted(Aggregate.Created):
        """ReportSubmitted: which duty, which period, and the report's reference (sealed)."""

        TOPIC = "smd.ReportSubmitted"
        agency_id: str
        staff_id: str | None
        occurred_at: datetime
        message_id: str
        duty: str
        period: str
        reference: SealedText | None

    def __init__(
        self,
        agency_id: str,
        staff_id: str | None,
        occurred_at: datetime,
        message_id: str,
        duty: str,
        period: str,
        reference: SealedText | None,
    ) -> None:
        self.agency_id = agency_id
        self.staff_id = staff_id
        self.occurred_at = occurred_at
        self.message_id = message_id
        self.duty = duty
        self.period = period
        self.reference = reference

    @classmethod
    def submit(
        cls, report_id: UUID, by: Provenance, now: datetime, *, duty: str, period: str, reference: str | None
    ) -> SubmittedReport:
        """Submit a report for a period that has begun."""
        check_not_in_future("the report", by.occurred_at, now)
        problem = period_label_error(duty, period)
        if problem is not None:
            raise ReportPeriodInvalid(period, problem)
        starts = period_start(duty, period)
        if by.occurred_at < starts:
            raise ReportPeriodNotStarted(period, starts)
        return cls._create(
            cls.Submitted,
            id=report_id,
            timestamp=now,
            agency_id=by.agency_id,
            staff_id=by.staff_id,
            occurred_at=by.occurred_at,
            message_id=by.message_id,
            duty=str(Duty(duty)),
            period=period,
            reference=SealedText(text=reference) if reference else None,
        )


class TaskProgress(Aggregate):
    """Progress an agency recorded on a task of the work plan (TaskProgressRecorded)."""

    TOPIC = "smd.TaskProgress"

    class Created(Aggregate.Created):
        """Never recorded: the library requires a topic on its default first event."""

        TOPIC = "smd.TaskProgress.Created"

    class Recorded(Aggregate.Created):
        """TaskProgressRecorded: the task's number in the work plan and what was done (sealed)."""

        TOPIC = "smd.TaskProgressRecorded"
        agency_id: str
        staff_id: str | None
        occurred_at: datetime
        message_id: str
        task_number: int
        text: SealedText

    def __init__(
        self,
        agency_id: str,
        staff_id: str | None,
        occurred_at: datetime,
        message_id: str,
        task_number: int,
        text: SealedText,
    ) -> None:
        self.agency_id = agency_id
        self.staff_id = staff_id
        self.occurred_at = occurred_at
        self.message_id = message_id
        self.task_number = task_number
        self.text = text

    @classmethod
    def record(cls, progress_id: UUID, by: Provenance, now: datetime, *, task_number: int, text: str) -> TaskProgress:
        """Record progress on task ``task_number`` of the work plan."""
        check_not_in_future("the progress", by.occurred_at, now)
        return cls._create(
            cls.Recorded,
            id=progress_id,
            timestamp=now,
            agency_id=by.agency_id,
            staff_id=by.staff_id,
            occurred_at=by.occurred_at,
            message_id=by.message_id,
            task_number=task_number,
            text=SealedText(text=text),
        )


class ReportPeriodInvalid(DomainError):
    """A report's period is written as its duty's periods are."""

    code = "report-period-invalid"

    def __init__(self, period: str, problem: str) -> None:
        super().__init__(f"data.period {period!r} does not fit the duty: {problem}")


class ReportPeriodNotStarted(DomainError):
    """A report is about a period that has begun."""

    code = "report-period-not-started"

    def __init__(self, period: str, starts: datetime) -> None:
        super().__init__(
            f"period {period} begins {starts.isoformat()}; a report about it is dated (time) on or after that"
        )


class AlreadyRecorded(DomainError):
    """A report or progress id is recorded once."""

    code = "already-recorded"

    def __init__(self, what: str, subject: UUID) -> None:
        super().__init__(f"{what} {subject} is already recorded; choose a new id (the subject) for a new one")
