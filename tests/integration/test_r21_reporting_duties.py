"""R21 reporting duties, on SQLite and PostgreSQL: the scheduler opens each agency's duty as its
period begins (never one due before the agency joined), a submitted report completes it, R15
escalates a late one to the governance center, and a department records reports and task
progress but reads no patient's file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from core.go_live import complete as complete_go_live
from core.intake import accept
from core.patient_read import load_visible
from core.registry import load_file
from domain.access import NotAllowedToRecord
from domain.read_filter import PatientNotVisible
from domain.reporting import AlreadyRecorded, ReportPeriodNotStarted
from domain.rules.r21_reporting_duties import Duty, duty_obligation_id
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_no_plaintext import stored_bytes
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import MovableClock

DEPT = "dept-willowbrook-justice"  # a department of the demo district (Willowbrook, 990101-001)
GOV = "gov-willowbrook"
JOINED = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # 12:00 China time on 11-28


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(JOINED)


@pytest.fixture
def region(open_store, clock):
    s = open_store(clock=clock)
    load_file(s.case_record, DEMO_DISTRICT)
    s.registry.refresh()
    return s


def envelope(type_: str, subject, data: dict, source: str, time: datetime) -> bytes:
    return agency_envelope(source, type_, subject, data, occurred=time, actor=None)


def submit(s, clock: MovableClock, duty: str, period: str, source: str = DEPT, subject=None):
    body = envelope(
        "cn.smd.report.submitted.v1",
        subject or uuid4(),
        {"duty": duty, "period": period, "reference": "MKREPORTzz 2026-12 progress, filed as doc 17"},
        source,
        clock.now - timedelta(minutes=5),
    )
    recorded = accept(s.case_record, s.registry, body, source, "test")
    s.catch_up(s.case_record.recorder.max_notification_id())
    return recorded


def run_scheduler(s, clock: MovableClock, at: datetime) -> int:
    clock.now = at
    opened = s.scheduler.run_once(force=True)
    s.catch_up(s.case_record.recorder.max_notification_id())
    return opened


def duty(s, agency: str, kind: Duty, period: str):
    from eventsourcing.application import AggregateNotFoundError

    try:
        return s.case_record.repository.get(duty_obligation_id(agency, kind, period))
    except AggregateNotFoundError:
        return None


class TestDutiesOpenAsTheirPeriodsBegin:
    def test_r21_nothing_due_before_the_agency_joined_opens(self, region, clock) -> None:
        # joined 11-28: November's progress report (due 11-25) was never owed
        run_scheduler(region, clock, JOINED + timedelta(days=1))
        assert duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-11") is None
        assert duty(region, "committee-station-road", Duty.SUSPECTED_CASES, "2026-11").due_at == datetime(
            2026, 11, 30, 16, 0, tzinfo=UTC
        )

    def test_r21_each_period_opens_once_when_it_begins_in_the_owners_work_queue(self, region, clock) -> None:
        assert run_scheduler(region, clock, datetime(2026, 11, 30, 15, 0, tzinfo=UTC)) >= 1  # 23:00 China time
        assert duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12") is None
        run_scheduler(region, clock, datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 12-01 00:00 China time
        o = duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12")
        assert (o.assignee, o.rule, o.action, o.due_at) == (
            DEPT,
            "R21",
            "submit_monthly_report",
            datetime(2026, 12, 25, 16, 0, tzinfo=UTC),
        )
        assert run_scheduler(region, clock, datetime(2026, 12, 1, 1, 0, tzinfo=UTC)) == 0  # again: nothing new
        rows = [r for r in region.work_queue.for_assignee(DEPT) if r.rule == "R21"]
        assert [r.action for r in rows] == ["submit_monthly_report"]
        quarterly = duty(region, "hc-north", Duty.QUARTERLY_REPORT, "2026-Q4")
        assert quarterly is not None and quarterly.due_at == datetime(2026, 12, 28, 16, 0, tzinfo=UTC)

    def test_r21_while_a_go_live_is_open_nothing_is_owed_and_after_it_the_first_due_date_counts(
        self, region, clock
    ) -> None:
        from domain.go_live import GoLive

        go = GoLive.open(region.registry.region, clock.now)
        region.case_record.save(go)
        run_scheduler(region, clock, datetime(2026, 12, 2, tzinfo=UTC))
        assert duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12") is None
        clock.now = datetime(2026, 12, 26, 1, 0, tzinfo=UTC)  # go-live completed after 12-25
        complete_go_live(region.case_record, region.registry.region, "hc-north")
        run_scheduler(region, clock, datetime(2027, 1, 1, tzinfo=UTC))
        assert duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12") is None
        assert duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2027-01") is not None


class TestReportsCompleteDuties:
    def test_r21_a_submitted_report_completes_its_periods_duty(self, region, clock) -> None:
        run_scheduler(region, clock, datetime(2026, 12, 1, tzinfo=UTC))
        submit(region, clock, "monthly_progress", "2026-12")
        o = duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12")
        assert o.status == "completed" and not o.overdue

    def test_r21_a_report_before_the_schedulers_run_opens_and_completes_the_duty(self, region, clock) -> None:
        clock.now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
        submit(region, clock, "monthly_progress", "2026-12")
        assert duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12").status == "completed"
        run_scheduler(region, clock, clock.now + timedelta(hours=1))  # finds it there
        assert duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12").status == "completed"

    def test_r21_a_late_duty_is_escalated_by_r15_and_the_late_report_still_completes_it(self, region, clock) -> None:
        run_scheduler(region, clock, datetime(2026, 12, 1, tzinfo=UTC))
        run_scheduler(region, clock, datetime(2026, 12, 25, 16, 1, tzinfo=UTC))
        o = duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12")
        assert (o.overdue, o.escalated_to) == (True, GOV)
        submit(region, clock, "monthly_progress", "2026-12")
        assert duty(region, DEPT, Duty.MONTHLY_PROGRESS, "2026-12").status == "completed"

    def test_r21_a_report_for_a_period_not_begun_or_twice_with_one_id_is_refused(self, region, clock) -> None:
        with pytest.raises(ReportPeriodNotStarted):
            submit(region, clock, "monthly_progress", "2026-12")
        report = uuid4()
        submit(region, clock, "monthly_progress", "2026-11", subject=report)
        with pytest.raises(AlreadyRecorded):
            submit(region, clock, "monthly_progress", "2026-11", subject=report)

    def test_r21_a_report_nobody_owes_is_recorded_and_opens_nothing(self, region, clock) -> None:
        clock.now = datetime(2026, 12, 2, tzinfo=UTC)
        recorded = submit(region, clock, "quarterly_report", "2026-Q4")  # departments owe no quarterly report
        assert recorded.outcome == "recorded"
        assert duty(region, DEPT, Duty.QUARTERLY_REPORT, "2026-Q4") is None

    def test_r21_the_reference_is_sealed_under_the_reports_own_key(self, region, clock, settings) -> None:
        clock.now = datetime(2026, 12, 2, tzinfo=UTC)
        submit(region, clock, "monthly_progress", "2026-12")
        assert b"MKREPORTzz" not in stored_bytes(settings)


class TestDepartments:
    def test_r21_a_department_records_task_progress_sealed_and_the_auditor_may_not(
        self, region, clock, settings
    ) -> None:
        body = envelope(
            "cn.smd.task-progress.recorded.v1",
            uuid4(),
            {"task_number": 8, "text": "MKPROGRESSzz joint meeting held"},
            DEPT,
            clock.now - timedelta(minutes=1),
        )
        assert accept(region.case_record, region.registry, body, DEPT, "test").outcome == "recorded"
        assert b"MKPROGRESSzz" not in stored_bytes(settings)
        with pytest.raises(NotAllowedToRecord):
            accept(
                region.case_record,
                region.registry,
                body.replace(DEPT.encode(), b"auditor-lantern-bay"),
                "auditor-lantern-bay",
                "test",
            )

    def test_r21_a_department_records_no_patient_fact_and_reads_no_patient_file(self, region, clock) -> None:
        patient = uuid4()
        registration = envelope(
            "cn.smd.patient.registered.v1",
            patient,
            {"name": "Test Person", "residence": "990101-001-v01", "diagnosis": "schizophrenia"},
            DEPT,
            clock.now - timedelta(minutes=1),
        )
        with pytest.raises(NotAllowedToRecord):
            accept(region.case_record, region.registry, registration, DEPT, "test")
        hc_registration = registration.replace(DEPT.encode(), b"hc-north")
        accept(region.case_record, region.registry, hc_registration, "hc-north", "test")
        with pytest.raises(PatientNotVisible):
            load_visible(region.case_record, region.registry, "department", DEPT, patient, clock.now)


class TestReadingReports:
    """``GET /v1/reports``: the agency its own, the governance center those in its area, the
    auditor all; texts read from the sealed case record, none in the read model."""

    @pytest.fixture
    def keyed(self, region):
        from core.demo_keys import ensure_demo_keys

        keys = {k.agency_id: k.key for k in ensure_demo_keys(region.apikeys, region.registry, region.settings.data_dir)}
        return region, keys

    async def test_r21_the_governance_center_reads_its_departments_reports_and_progress_with_their_texts(
        self, keyed, clock
    ) -> None:
        from litestar.testing import AsyncTestClient

        from ops.workers import serving_app

        s, keys = keyed
        clock.now = datetime(2026, 12, 2, tzinfo=UTC)
        submit(s, clock, "monthly_progress", "2026-12", source="dept-willowbrook-community")
        progress = envelope(
            "cn.smd.task-progress.recorded.v1",
            uuid4(),
            {"task_number": 8, "text": "joint meeting held"},
            "dept-willowbrook-community",
            clock.now - timedelta(minutes=1),
        )
        accept(s.case_record, s.registry, progress, "dept-willowbrook-community", "test")
        submit(s, clock, "monthly_progress", "2026-12", source="dept-reedmarsh-health")  # another township
        while s.reports.run_once():
            pass
        async with AsyncTestClient(serving_app(s)) as client:
            gov = keys[GOV]
            r = await client.get("/v1/reports", headers={"Authorization": f"Bearer {gov}"})
            assert r.status_code == 200, r.text
            items = r.json()["items"]
            assert {i["agency_id"] for i in items} == {"dept-willowbrook-community"}
            report = next(i for i in items if i["what"] == "report")
            assert (report["duty"], report["period"]) == ("monthly_progress", "2026-12")
            assert report["reference"].startswith("MKREPORTzz")
            progress_item = next(i for i in items if i["what"] == "task_progress")
            assert (progress_item["task_number"], progress_item["text"]) == (8, "joint meeting held")
            r = await client.get("/v1/reports?what=report&period=2026-12", headers={"Authorization": f"Bearer {gov}"})
            assert [i["what"] for i in r.json()["items"]] == ["report"]
            r = await client.get("/v1/reports", headers={"Authorization": f"Bearer {keys['auditor-lantern-bay']}"})
            assert {i["agency_id"] for i in r.json()["items"]} == {
                "dept-willowbrook-community",
                "dept-reedmarsh-health",
            }
            r = await client.get("/v1/reports?period=2026-13", headers={"Authorization": f"Bearer {gov}"})
            assert r.status_code == 400

    async def test_r21_an_agency_reads_only_its_own_reports(self, keyed, clock) -> None:
        from litestar.testing import AsyncTestClient

        from ops.workers import serving_app

        s, keys = keyed
        clock.now = datetime(2026, 12, 2, tzinfo=UTC)
        submit(s, clock, "monthly_progress", "2026-12", source="hc-north")
        submit(s, clock, "monthly_progress", "2026-12", source="police-east")
        while s.reports.run_once():
            pass
        async with AsyncTestClient(serving_app(s)) as client:
            r = await client.get(
                "/v1/reports?agency=police-east", headers={"Authorization": f"Bearer {keys['hc-north']}"}
            )
            assert r.json()["items"] == []
            r = await client.get("/v1/reports", headers={"Authorization": f"Bearer {keys['hc-north']}"})
            assert [i["agency_id"] for i in r.json()["items"]] == ["hc-north"]
