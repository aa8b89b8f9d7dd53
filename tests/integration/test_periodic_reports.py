"""The monthly and quarterly reports, on both stores (issue 26 part 2; docs/decisions/038).

A small district with two quarters of facts, recorded once per module through the real intake:
three patients (A high-risk in Q1, B high-risk in Q2 with an incident, C lost in Q2), three
tasks the governance center gave civil affairs, a department's progress entry. The expected
figures are written out by hand from the definitions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import pytest

from core.intake import accept
from core.obligations import act
from core.registry import load_file
from domain.rules.r21_reporting_duties import Duty, duty_obligation_id
from domain.task import task_obligation_id
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT, WORK_PLAN_FILE
from projections.periodic_reports import load_work_plan
from tests.integration.test_indicators import at, envelope
from tests.support.servers import create_database, drop_database
from tests.support.stores import MovableClock, open_services, store_settings

TOWNSHIP = "990101-001"
V01, V05 = "990101-001-v01", "990101-001-v05"
DEPT, GOV, CIVIL = "dept-willowbrook-justice", "gov-willowbrook", "civil-willowbrook"
ENTRY = "Register of the sweep updated, MKPROGRESS"


@dataclass
class District:
    services: Services
    clock: MovableClock
    ids: dict[str, UUID] = field(default_factory=dict)
    position: int = 0
    database_url: str | None = None

    def send(self, source: str, event_type: str, subject: UUID, data: dict, occurred) -> None:
        s = self.services
        accept(s.case_record, s.registry, envelope(event_type, subject, data, source, occurred), source, "test")

    def settle(self) -> int:
        s = self.services
        head = s.case_record.recorder.max_notification_id() or 0
        assert s.catch_up(head, timeout=60)
        assert s.indicators.catch_up(head, timeout=60) and s.reports.catch_up(head, timeout=60)
        return head


def visit(d: District, who: str, day: str, level: int, klass: str, source: str = "hc-north") -> None:
    data = {"face_to_face": True, "joint": False, "risk_level": level, "risk_class": klass}
    d.send(source, "cn.smd.visit.recorded.v1", d.ids[who], data, at(day))


def build(services: Services, clock: MovableClock) -> District:
    d = District(services, clock)
    for who, residence, source in (("A", V01, "hc-north"), ("B", V01, "hc-north"), ("C", V05, "hc-south")):
        d.ids[who] = uuid4()
        body = {"name": f"Test Person {who}", "residence": residence, "diagnosis": "schizophrenia"}
        d.send(source, "cn.smd.patient.registered.v1", d.ids[who], body, at("2025-11-01"))
    visit(d, "A", "2026-02-10", 3, "unstable")  # Q1: high risk
    d.settle()
    clock.now = at("2026-03-01", 9)
    # three tasks for civil affairs: t3 due in March, done in April; t1 due in May, done late; t2 open
    tasks = {"t1": "2026-05-10", "t2": "2026-06-10", "t3": "2026-03-20"}
    for name, due in tasks.items():
        d.ids[name] = uuid4()
        data = {"assignee": CIVIL, "due_at": at(due, 12).isoformat(), "text": "joint visit", "place": V01}
        d.send(GOV, "cn.smd.task.assigned.v1", d.ids[name], data, at("2026-03-01", 8))
    d.settle()
    for name, done in (("t3", "2026-04-05"), ("t1", "2026-05-12")):
        clock.now = at(done, 12)
        act(services.case_record, task_obligation_id(d.ids[name]), CIVIL, "staff-1", "complete")
    clock.now = at("2026-07-05")
    visit(d, "A", "2026-05-10", 0, "stable")  # Q2: no longer high risk
    visit(d, "B", "2026-05-05", 4, "unstable")  # Q2: high risk
    incident = {"incident_id": str(uuid4()), "incident_kind": "causing_trouble", "severity": 3}
    d.send("police-east", "cn.smd.incident.reported.v1", d.ids["B"], incident, at("2026-05-20"))
    for day in ("2026-04-10", "2026-05-10", "2026-06-10"):  # C: three missed visits: lost
        d.send("hc-south", "cn.smd.visit.missed.v1", d.ids["C"], {"scheduled_on": day}, at(day, 16))
    progress = {"task_number": 1, "text": ENTRY}
    d.send(DEPT, "cn.smd.task-progress.recorded.v1", uuid4(), progress, at("2026-06-10"))
    d.position = d.settle()
    return d


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def district(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    kind = request.param
    admin = request.getfixturevalue("pg_server") if kind == "postgres" else None
    db = create_database(admin) if admin else None
    clock = MovableClock(at("2026-01-05"))  # the agencies join in January: June's duties are owed
    services = open_services(
        store_settings(kind, tmp_path_factory.mktemp(f"rep-{kind}"), db.url if db else None), clock=clock
    )
    try:
        load_file(services.case_record, DEMO_DISTRICT)
        services.registry.refresh()
        clock.now = at("2026-02-20")
        d = build(services, clock)
        d.database_url = db.url if db else None
        yield d
    finally:
        services.close()
        if db is not None:
            drop_database(admin, db.dbname)


def doc(d: District, name: str, scope: str, period: str, position: int | None = None, replay: bool = False):
    return d.services.periodic_reports.document(name, scope, period, position or d.position, replay=replay)


def agency(report: dict, agency_id: str) -> dict:
    return next(a for a in report["agencies"] if a["id"] == agency_id)


def task(a: dict, number: int) -> dict:
    return next(t for t in a["tasks"] if t["number"] == number)


class TestTheWorkPlan:
    def test_the_task_table_is_data_with_a_version_and_26_tasks(self) -> None:
        plan = load_work_plan(WORK_PLAN_FILE)
        assert plan.version == 1 and [t.number for t in plan.tasks] == list(range(1, 27))
        assert plan.task(3).rules == ("R5",) and not plan.task(5).evidenced


class TestTheMonthlyReport:
    def test_a_department_shows_its_own_entries_and_never_a_figure(self, district) -> None:
        r = doc(district, "monthly", TOWNSHIP, "2026-06")
        dept = agency(r, DEPT)
        assert dept["system_evidence"] is False
        assert all(t["evidence"] is None for t in dept["tasks"])
        t1 = task(dept, 1)
        assert t1["basis"] == "own_entries" and [e["text"] for e in t1["entries"]] == [ENTRY]
        assert task(dept, 5)["basis"] == "none" and task(dept, 5)["entries"] == []
        assert all(t["basis"] == "none" for t in agency(r, "dept-willowbrook-community")["tasks"])

    def test_an_agency_with_system_evidence_has_the_tasks_indicators_and_obligations(self, district) -> None:
        r = doc(district, "monthly", TOWNSHIP, "2026-06")
        hc = agency(r, "hc-north")
        t1 = task(hc, 1)
        assert t1["basis"] == "system"
        [registered] = t1["evidence"]["indicators"]
        assert (registered["name"], registered["numerator"]) == ("registered", 2)  # A, B in v01
        assert [o["rule"] for o in t1["evidence"]["obligations"]] == ["R18", "R19"]
        assert task(hc, 5)["basis"] == "none"  # no system evidence for the dual-management task: nothing invented
        assert r["work_plan"]["version"] == 1 and len(r["tasks"]) == 26
        assert {f["name"]: f["numerator"] for f in r["indicators"]["figures"]}["registered"] == 3

    def test_the_monthly_report_at_a_position_equals_replaying_the_log_and_ignores_what_came_later(
        self, district
    ) -> None:
        before = doc(district, "monthly", TOWNSHIP, "2026-06")
        assert doc(district, "monthly", TOWNSHIP, "2026-06", replay=True) == before
        late = {"task_number": 5, "text": "late entry"}
        district.send("dept-willowbrook-community", "cn.smd.task-progress.recorded.v1", uuid4(), late, at("2026-06-20"))
        district.settle()
        assert doc(district, "monthly", TOWNSHIP, "2026-06") == before
        now = district.services.periodic_reports.document("monthly", TOWNSHIP, "2026-06")
        assert task(agency(now, "dept-willowbrook-community"), 5)["basis"] == "own_entries"


class TestTheQuarterlyReports:
    def test_the_risk_analysis_counts_high_risk_lost_incidents_and_overdue_against_the_previous_quarter(
        self, district
    ) -> None:
        r = doc(district, "risk_analysis", TOWNSHIP, "2026-Q2")
        area = r["area"]
        assert r["previous_period"] == "2026-Q1"
        assert (area["registered"]["value"], area["registered"]["previous"]) == (3, 3)
        assert (area["high_risk"]["value"], area["high_risk"]["previous"]) == (1, 1)  # B now; A before
        assert (area["lost"]["value"], area["lost"]["previous"], area["lost"]["direction"]) == (1, 0, "up")  # C
        incidents = area["incidents"]
        assert (incidents["value"], incidents["previous"], incidents["severe"]) == (1, 0, 1)
        assert incidents["by_kind"] == {"causing_trouble": 1}
        [civil] = [o for o in r["overdue_by_agency"] if o["assignee"] == CIVIL]
        # Q2: t2 open past its deadline; t1 due in Q2 done late. Q1: t3 open at 3-31.
        assert (civil["overdue_open"]["value"], civil["overdue_open"]["previous"]) == (1, 1)
        assert (civil["due_in_period"], civil["late_in_period"]) == (2, 1)
        c2 = next(c for c in r["children"] if c["id"] == "990101-001-c2")
        assert c2["lost"]["value"] == 1 and c2["high_risk"]["value"] == 0

    def test_the_health_centers_quarterly_report_compares_with_the_previous_quarter(self, district) -> None:
        r = doc(district, "health_center_quarterly", "hc-north", "2026-Q2")
        trends = {t["name"]: t for t in r["trends"]}
        # year to date at Q2's end: A and B visited (100 %); at Q1's end only A (50 %)
        assert (trends["management_rate"]["value"], trends["management_rate"]["previous"]) == (100.0, 50.0)
        assert trends["management_rate"]["change"] == 50.0
        assert doc(district, "health_center_quarterly", "hc-north", "2026-Q2", replay=True) == r
        from domain.errors import DomainError

        with pytest.raises(DomainError, match="not a health center"):
            doc(district, "health_center_quarterly", "police-east", "2026-Q2")


def _json(value):
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))


class TestTheEndpointsAndTheCommand:
    async def test_the_endpoints_answer_json_csv_html_and_submitting_completes_the_r21_duty(self, district) -> None:
        from litestar.testing import AsyncTestClient

        from api.app import create_app

        s, p = district.services, district.position
        keys = {a: s.apikeys.issue(a).key for a in (GOV, "hc-north", DEPT)}

        def auth(a: str) -> dict:
            return {"Authorization": f"Bearer {keys[a]}"}

        monthly = {"unit": TOWNSHIP, "period": "2026-06", "at_position": p}
        async with AsyncTestClient(create_app(s)) as client:
            r = await client.get("/v1/reports/monthly", params=monthly, headers=auth(GOV))
            assert r.status_code == 200, r.text
            answered = r.json()
            answered.pop("checkpoint")  # beside the document (checked in test_indicators.py)
            assert answered == _json(doc(district, "monthly", TOWNSHIP, "2026-06", p, replay=True))
            r = await client.get("/v1/reports/monthly", params={**monthly, "format": "csv"}, headers=auth(GOV))
            assert (
                r.content.decode("utf-8").startswith("\ufeff") and f",{DEPT},department,1,own_entries,entry," in r.text
            )
            for path, params in (
                ("/v1/reports/monthly", monthly),
                ("/v1/reports/risk-analysis", {"unit": TOWNSHIP, "period": "2026-Q2"}),
                ("/v1/reports/quarterly", {"agency": "hc-north", "period": "2026-Q2"}),
            ):
                r = await client.get(path, params={**params, "format": "html"}, headers=auth(GOV))
                assert r.status_code == 200 and "<svg" in r.text and "<script" not in r.text and "src=" not in r.text
            assert (
                await client.get("/v1/reports/monthly", params=monthly, headers=auth("hc-north"))
            ).status_code == 403
            q = {"agency": "hc-north", "period": "2026-Q2"}
            assert (await client.get("/v1/reports/quarterly", params=q, headers=auth("hc-north"))).status_code == 200
            q = {"agency": "hc-south", "period": "2026-Q2"}
            assert (await client.get("/v1/reports/quarterly", params=q, headers=auth("hc-north"))).status_code == 403
            r = await client.get(
                "/v1/reports/risk-analysis", params={"unit": "990101-002", "period": "2026-Q2"}, headers=auth(GOV)
            )
            assert r.status_code == 403
            # submitting: the duty of the period is completed
            district.clock.now = at("2026-07-10")
            body = {"duty": "monthly_progress", "period": "2026-06", "at_position": p}
            r = await client.post("/v1/reports/submissions", json=body, headers=auth(DEPT))
            assert r.status_code == 201, r.text
            answer = r.json()
            assert answer["obligation_id"] == str(duty_obligation_id(DEPT, Duty.MONTHLY_PROGRESS, "2026-06"))
            assert answer["obligation_status"] == "completed" and answer["computed_at_position"] == p
            from api.periodic_reports import digest

            assert answer["digest"] == digest(doc(district, "monthly", TOWNSHIP, "2026-06", p, replay=True))
            body = {"duty": "quarterly_report", "period": "2026-Q2"}
            r = await client.post("/v1/reports/submissions", json=body, headers=auth("hc-north"))
            assert r.status_code == 201 and r.json()["obligation_status"] == "completed"
        district.settle()

    def test_smd_report_quarterly_writes_the_risk_analysis_and_each_health_centers_report(
        self, district, tmp_path, monkeypatch
    ) -> None:
        from ops.cli import main

        s = district.services
        monkeypatch.setenv("SMD_DATA_DIR", str(s.settings.data_dir))
        if district.database_url is not None:
            monkeypatch.setenv("SMD_DATABASE_URL", district.database_url)
        p = str(district.position)
        argv = ["report", "quarterly", "--unit", TOWNSHIP, "--period", "2026-Q2", "--at-position", p]
        assert main([*argv, "--out-dir", str(tmp_path)]) == 0
        names = sorted(f.name for f in tmp_path.iterdir())
        assert f"risk-analysis-{TOWNSHIP}-2026-Q2-{p}.csv" in names and f"quarterly-hc-south-2026-Q2-{p}.html" in names
        assert len(names) == 9  # risk analysis, hc-north, hc-south: JSON, CSV, HTML each
        written = json.loads((tmp_path / f"risk-analysis-{TOWNSHIP}-2026-Q2-{p}.json").read_text(encoding="utf-8"))
        assert written["area"]["high_risk"]["value"] == 1
        assert (
            main(
                [
                    "report",
                    "monthly",
                    "--unit",
                    TOWNSHIP,
                    "--period",
                    "2026-06",
                    "--at-position",
                    p,
                    "--out-dir",
                    str(tmp_path),
                ]
            )
            == 0
        )
        assert (tmp_path / f"monthly-{TOWNSHIP}-2026-06-{p}.csv").read_text(encoding="utf-8").startswith("\ufeff")
