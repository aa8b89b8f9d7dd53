"""Indicators recomputable at any log position, on both stores (issue 26).

A hand-built district of 30 patients with a year of facts, recorded once per module through the
real intake. The expected value of every indicator is written out by hand below from the
definitions (domain.indicators.DEFINITIONS, in words), never computed by the project's code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from core.intake import accept
from core.obligations import act
from core.registry import load_file
from domain.indicators import parse_period
from domain.task import task_obligation_id
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from projections.indicators import IndicatorsView, indicator_report, replayed_rows
from projections.runner import rebuild
from tests.support.agency_client import envelope as agency_envelope
from tests.support.servers import create_database, drop_database
from tests.support.stores import MovableClock, open_services, store_settings

CST = timezone(timedelta(hours=8))
TOWNSHIP = "990101-001"
V01, V02, V05, V09, M1, OTHER = (
    "990101-001-v01",
    "990101-001-v02",
    "990101-001-v05",
    "990101-001-v09",
    "990101-001-m1",
    "990101-002-v01",
)
HC_OF = {V01: "hc-north", V02: "hc-north", V09: "hc-north", M1: "hc-north", V05: "hc-south", OTHER: "hc-reedmarsh"}


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=CST)


def envelope(event_type: str, subject: UUID, data: dict, source: str, occurred: datetime) -> bytes:
    return agency_envelope(source, event_type, subject, data, occurred=occurred)


CLASS_LEVEL = {"stable": 0, "basically_stable": 1, "unstable": 3}


@dataclass
class District:
    """The district's patients by letter (A-O, and P01-P15 alike) and the log positions."""

    services: Services
    clock: MovableClock
    ids: dict[str, UUID] = field(default_factory=dict)
    residence: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, UUID] = field(default_factory=dict)
    position_before_late_fact: int = 0
    late_position: int = 0

    def send(self, who: str, event_type: str, data: dict, occurred: datetime, source: str | None = None) -> int:
        s = self.services
        source = source or HC_OF[self.residence[who]]
        recorded = accept(
            s.case_record, s.registry, envelope(event_type, self.ids[who], data, source, occurred), source, "test"
        )
        return recorded.position if hasattr(recorded, "position") else 0

    def register(self, who: str, residence: str, day: str) -> None:
        self.ids[who], self.residence[who] = uuid4(), residence
        body = {"name": f"Test Person {who}", "residence": residence, "diagnosis": "schizophrenia"}
        self.send(who, "cn.smd.patient.registered.v1", body, at(day))

    def visit(self, who: str, day: str, klass: str, face_to_face: bool = True) -> None:
        data = {"face_to_face": face_to_face, "joint": False, "risk_level": CLASS_LEVEL[klass], "risk_class": klass}
        self.send(who, "cn.smd.visit.recorded.v1", data, at(day))

    def adherence(self, who: str, day: str, value: str) -> None:
        self.send(who, "cn.smd.adherence.recorded.v1", {"adherence": value}, at(day))

    def settle(self) -> int:
        s = self.services
        head = s.case_record.recorder.max_notification_id() or 0
        assert s.catch_up(head, timeout=60)
        assert s.indicators.catch_up(s.case_record.recorder.max_notification_id() or 0, timeout=60)
        return s.case_record.recorder.max_notification_id() or 0


def build(services: Services, clock: MovableClock) -> District:
    d = District(services, clock)
    clock.now = at("2026-07-10")
    # A: three face-to-face stable visits (gaps 64 and 66 days), adherence regular
    d.register("A", V01, "2025-11-01")
    for day in ("2026-01-15", "2026-03-20", "2026-05-25"):
        d.visit("A", day, "stable")
    d.adherence("A", "2026-05-25", "regular")
    # B: two visits 161 days apart (not per the norm), latest basically stable; adherence intermittent
    d.register("B", V01, "2025-11-01")
    d.visit("B", "2026-01-10", "stable")
    d.visit("B", "2026-06-20", "basically_stable")
    d.adherence("B", "2026-06-20", "intermittent")
    # C: two visits by phone (not face to face), 59 days apart, stable
    d.register("C", V01, "2025-12-01")
    d.visit("C", "2026-02-01", "stable", face_to_face=False)
    d.visit("C", "2026-04-01", "stable", face_to_face=False)
    # D: visited in 2025 (unstable), in hospital since March: managed, not assessed at home
    d.register("D", V01, "2025-10-01")
    d.visit("D", "2025-12-01", "unstable")
    admission = {"hospital": "Lantern Bay Psychiatric Hospital", "admission_kind": "voluntary"}
    d.send("D", "cn.smd.patient.admitted.v1", admission, at("2026-03-01"))
    # E: visited (stable) in December 2025, then three missed visits: lost
    d.register("E", V01, "2025-10-01")
    d.visit("E", "2025-12-10", "stable")
    for day in ("2026-01-10", "2026-02-10", "2026-03-10"):
        d.send("E", "cn.smd.visit.missed.v1", {"scheduled_on": day}, at(day, 16))
    # F: whereabouts declared unknown: lost; never assessed
    d.register("F", V01, "2026-02-01")
    d.send("F", "cn.smd.whereabouts.unknown-declared.v1", {}, at("2026-04-01"))
    # G: deregistered (death) in May: on no figure of June
    d.register("G", V01, "2025-09-01")
    d.visit("G", "2026-01-20", "unstable")
    d.send("G", "cn.smd.patient.deregistered.v1", {"reason": "death"}, at("2026-05-01"))
    # I (c2): three basically stable visits 59 and 61 days apart; takes no medication
    d.register("I", V05, "2025-06-01")
    for day in ("2026-01-05", "2026-03-05", "2026-05-05"):
        d.visit("I", day, "basically_stable")
    d.adherence("I", "2026-05-05", "none")
    # J (c2): one visit (stable), then assessed unstable outside a visit
    d.register("J", V05, "2025-06-01")
    d.visit("J", "2026-02-14", "stable")
    d.send("J", "cn.smd.risk.assessed.v1", {"risk_level": 3, "risk_class": "unstable"}, at("2026-05-01"))
    # K (c2): in hospital in January, discharged, one visit (stable), adherence regular
    d.register("K", V05, "2025-06-01")
    d.send("K", "cn.smd.patient.admitted.v1", admission, at("2026-01-10"))
    d.send("K", "cn.smd.patient.discharged.v1", {}, at("2026-02-10"))
    d.visit("K", "2026-03-01", "stable")
    d.adherence("K", "2026-03-01", "regular")
    # L (c3): a stable visit every month, adherence regular
    d.register("L", V09, "2025-06-01")
    for month in range(1, 7):
        d.visit("L", f"2026-{month:02d}-05", "stable")
    d.adherence("L", "2026-06-05", "regular")
    # M (m1): registered, nothing else
    d.register("M", M1, "2025-06-01")
    # N: the other township, one visit
    d.register("N", OTHER, "2025-06-01")
    d.visit("N", "2026-03-01", "stable")
    # O: one stable visit by June's end as first recorded (a late visit comes later)
    d.register("O", V01, "2025-11-01")
    d.visit("O", "2026-02-01", "stable")
    # P01-P15 (v02): two face-to-face stable visits 59 days apart, adherence regular
    for n in range(1, 16):
        who = f"P{n:02d}"
        d.register(who, V02, "2025-08-01")
        d.visit(who, "2026-01-10", "stable")
        d.visit(who, "2026-03-10", "stable")
        d.adherence(who, "2026-03-10", "regular")
    d.settle()
    # August: the governance center assigns hc-north five tasks at v01; hc-north completes three
    clock.now = at("2026-08-01", 9)
    dues = {"t1": "2026-08-10", "t2": "2026-08-15", "t3": "2026-08-20", "t4": "2026-08-25", "t5": "2026-09-05"}
    for name, due in dues.items():
        d.tasks[name] = uuid4()
        data = {"assignee": "hc-north", "due_at": at(due, 12).isoformat(), "text": "joint visit", "place": V01}
        s = services
        raw = envelope("cn.smd.task.assigned.v1", d.tasks[name], data, "gov-willowbrook", at("2026-08-01", 8))
        accept(s.case_record, s.registry, raw, "gov-willowbrook", "test")
    d.settle()
    for name, done in (("t1", at("2026-08-08", 12)), ("t2", at("2026-08-18", 12)), ("t3", at("2026-08-21", 12))):
        clock.now = done
        act(services.case_record, task_obligation_id(d.tasks[name]), "hc-north", "staff-1", "complete")
    clock.now = at("2027-01-10")
    # H: registered in July, visited in August (after June's figures, in the year's)
    d.register("H", V01, "2026-07-15")
    d.visit("H", "2026-08-01", "stable")
    d.position_before_late_fact = d.settle()
    return d


def add_late_fact(d: District) -> None:
    """O's visit of 1 May, recorded only now (a village's late sync)."""
    d.clock.now = at("2027-01-12")
    d.visit("O", "2026-05-01", "stable")
    d.late_position = d.settle()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def district(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[District]:
    kind = request.param
    admin = request.getfixturevalue("pg_server") if kind == "postgres" else None
    db = create_database(admin) if admin else None
    clock = MovableClock(at("2026-07-10"))
    services = open_services(
        store_settings(kind, tmp_path_factory.mktemp(f"ind-{kind}"), db.url if db else None), clock=clock
    )
    try:
        load_file(services.case_record, DEMO_DISTRICT)
        d = build(services, clock)
        d.database_url = db.url if db else None  # type: ignore[attr-defined]
        d.before = report(d, TOWNSHIP, "2026-06", d.position_before_late_fact)  # type: ignore[attr-defined]
        add_late_fact(d)
        yield d
    finally:
        services.close()
        if db is not None:
            drop_database(admin, db.dbname)


def report(d: District, unit: str, period: str, position: int, head: int | None = None, kind: str = "org_unit"):
    s = d.services
    rows = s.indicators.rows(head or position)
    state = s.registry.state(as_of_position=position)
    return indicator_report(rows, state, kind, unit, parse_period(period), position, head)


def table(figures: list[dict]) -> dict[str, tuple]:
    return {f["name"]: (f["numerator"], f["denominator"], f["value"]) for f in figures}


#: Willowbrook township, June 2026 (year to date Jan-Jun: 2 visits make the norm), by hand:
#: registered A B C D E F I J K L M O + P01-P15 = 27 (G deregistered in May, H registered in July,
#: N in the other township); population 23985 (c1 5385 + c2 5820 + c3 3275 + m1 5120 + m2 4385).
#: managed: A B C D(in hospital) I J K L O + 15 = 24. norm: A C I L + 15 = 19 (B's gap 161 days;
#: J, K, O one visit). face to face: A B I J K L O + 15 = 22 (C by phone). taking: A B K L + 15 = 19;
#: regular: A K L + 15 = 18. assessed at home: A B C E I J K L O + 15 = 24 (D in hospital; F, M
#: never assessed); stable: A C E K L O + 15 = 21. lost: E (3 misses), F (declared) = 2.
TOWNSHIP_JUNE = {
    "registered": (27, None, 27),
    "reported_prevalence": (27, 23985, 1.13),  # 27 × 1000 ÷ 23985 = 1.1257
    "managed": (24, None, 24),
    "management_rate": (24, 27, 88.89),
    "norm_management_rate": (19, 27, 70.37),
    "face_to_face_rate": (22, 27, 81.48),
    "medication_rate": (19, 27, 70.37),
    "regular_medication_rate": (18, 27, 66.67),
    "stable_rate": (21, 24, 87.5),
    "lost_rate": (2, 27, 7.41),
}
#: South New Village (c2: I, J, K), June 2026: population 5820.
C2_JUNE = {
    "registered": (3, None, 3),
    "reported_prevalence": (3, 5820, 0.52),  # 0.5155
    "managed": (3, None, 3),
    "management_rate": (3, 3, 100.0),
    "norm_management_rate": (1, 3, 33.33),  # I
    "face_to_face_rate": (3, 3, 100.0),
    "medication_rate": (1, 3, 33.33),  # K (I takes none, J none recorded)
    "regular_medication_rate": (1, 3, 33.33),
    "stable_rate": (1, 3, 33.33),  # K (I basically stable, J unstable)
    "lost_rate": (0, 3, 0.0),
}


class TestHandComputedFigures:
    def test_every_indicator_of_the_township_for_june_equals_the_hand_computed_value(self, district) -> None:
        assert table(district.before["figures"]) == TOWNSHIP_JUNE
        assert all(f["position"] == district.position_before_late_fact for f in district.before["figures"])
        assert all(f["definition_version"] == 1 for f in district.before["figures"])

    def test_a_cluster_is_a_child_of_the_township_and_an_empty_community_has_no_rates(self, district) -> None:
        children = {c["id"]: c for c in district.before["children"]}
        assert table(children["990101-001-c2"]["figures"]) == C2_JUNE
        m2 = table(children["990101-001-m2"]["figures"])
        assert m2["registered"] == (0, None, 0.0) and m2["management_rate"] == (0, 0, None)
        assert table(children["990101-001-c3"]["figures"])["norm_management_rate"] == (1, 1, 100.0)  # L

    def test_the_region_counts_the_other_township_too(self, district) -> None:
        r = report(district, "990101", "2026-06", district.position_before_late_fact)
        # 27 + N; population 23985 + 3185
        assert table(r["figures"])["registered"] == (28, None, 28.0)
        assert table(r["figures"])["reported_prevalence"] == (28, 27170, 1.03)

    def test_the_year_needs_four_visits_and_counts_who_registered_in_july(self, district) -> None:
        r = report(district, TOWNSHIP, "2026", district.position_before_late_fact)
        f = table(r["figures"])
        assert f["registered"] == (28, None, 28.0)  # H joins
        assert f["norm_management_rate"] == (1, 28, 3.57)  # only L has 4+ visits
        assert f["managed"] == (25, None, 25.0)  # H visited in August

    def test_an_agency_scope_is_its_jurisdiction(self, district) -> None:
        r = report(district, "hc-south", "2026-06", district.position_before_late_fact, kind="agency")
        assert table(r["figures"]) == {**C2_JUNE, "reported_prevalence": (3, 5820 + 4385, 0.29)}

    def test_obligations_on_time_by_agency_and_rule_with_the_median_lateness(self, district) -> None:
        r = report(district, TOWNSHIP, "2026-08", district.position_before_late_fact)
        [task] = [o for o in r["obligations"] if o["rule"] == "TASK"]
        # due in August: t1 (done 2 days early), t2 (3 days late), t3 (1 day late), t4 (open); t5 in September
        assert (task["assignee"], task["due"], task["on_time"], task["late"], task["open"]) == ("hc-north", 4, 1, 2, 1)
        assert (task["rate"], task["median_lateness_days"]) == (25.0, 2.0)


class TestReproducibleByRecomputation:
    def test_the_report_at_a_position_is_the_same_after_late_facts(self, district) -> None:
        again = report(district, TOWNSHIP, "2026-06", district.position_before_late_fact)
        assert again == district.before

    def test_with_late_facts_the_report_differs_exactly_by_them_and_says_so(self, district) -> None:
        p, head = district.position_before_late_fact, district.late_position
        r = report(district, TOWNSHIP, "2026-06", p, head)
        late = r["with_late_facts"]
        assert str(p) in late["label"] and late["position"] == head
        assert [(f["patient_id"], f["kind"]) for f in late["late_facts"]] == [(str(district.ids["O"]), "visit")]
        # O's May visit makes two, 89 days apart: norm 19 → 20
        assert late["differences"] == [
            {
                "name": "norm_management_rate",
                "label": "规范管理率",
                "at_position": {"numerator": 19, "denominator": 27, "value": 70.37},
                "with_late_facts": {"numerator": 20, "denominator": 27, "value": 74.07},
            }
        ]
        assert table(r["figures"]) == TOWNSHIP_JUNE

    def test_replaying_the_log_up_to_a_position_gives_the_same_rows_and_figures(self, district) -> None:
        s = district.services
        for p in (district.position_before_late_fact, district.late_position):
            assert replayed_rows(s.case_record, p) == s.indicators.rows(p)
        replayed = replayed_rows(s.case_record, district.position_before_late_fact)
        state = s.registry.state(as_of_position=district.position_before_late_fact)
        again = indicator_report(
            replayed, state, "org_unit", TOWNSHIP, parse_period("2026-06"), district.position_before_late_fact
        )
        assert again == district.before


class TestLiveViewAndRebuild:
    def test_the_live_view_and_a_rebuild_hold_the_same_rows_row_by_row(self, district) -> None:
        s = district.services
        view = s.indicators.projection
        live = s.views.live(view)
        done = rebuild(s.case_record, s.views, IndicatorsView(), s.parking, keep_old=True)
        assert done.old is not None and done.old.generation == live.generation
        for table_name, key in (("facts", "position"), ("obligations", "position")):
            old = s.views.select(view, table_name, "1=1", [], order_by=key, limit=100000, generation=live)
            new = s.views.select(view, table_name, "1=1", [], order_by=key, limit=100000, generation=done.new)
            assert len(old) > 10 and old == new


def _json(value):
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))


class TestTheEndpointAndTheCommand:
    async def test_the_figures_name_the_first_signed_checkpoint_that_holds_their_position(self, district) -> None:
        from litestar.testing import AsyncTestClient

        from api.app import create_app

        s, p = district.services, district.position_before_late_fact
        gov = {"Authorization": f"Bearer {s.apikeys.issue('gov-willowbrook').key}"}
        query = {"unit": TOWNSHIP, "period": "2026-06", "at_position": p}
        async with AsyncTestClient(create_app(s)) as client:
            while s.chain.run_once():
                pass
            s.checkpointer.sign_now()
            signed = s.chain_store.latest_checkpoint()
            r = await client.get("/v1/indicators", params=query, headers=gov)
            held = r.json()["checkpoint"]
            leaf = s.chain_store.leaf_at(p)
            # a checkpoint whose tree holds the fact at p, the first such (none smaller holds it)
            assert leaf.leaf_index < held["size"] <= signed.size
            assert not [c for c in s.chain_store.checkpoints() if leaf.leaf_index < c.size < held["size"]]
            assert held["cosigned_by"] == [] and held["signed_at"]
            r = await client.get("/v1/reports/monthly", params=query, headers=gov)
            assert r.json()["checkpoint"] == held

    async def test_the_endpoint_answers_what_replaying_the_log_gives_in_json_csv_and_html(self, district) -> None:
        from litestar.testing import AsyncTestClient

        from api.app import create_app
        from ops.cli_report import indicators_by_replay

        s, p = district.services, district.position_before_late_fact
        keys = {a: s.apikeys.issue(a).key for a in ("gov-willowbrook", "auditor-lantern-bay", "hc-north")}
        query = {"unit": TOWNSHIP, "period": "2026-06", "at_position": p, "late_facts": "true"}
        replayed = _json(indicators_by_replay(s, "org_unit", TOWNSHIP, "2026-06", p, True))
        async with AsyncTestClient(create_app(s)) as client:
            for agency in ("gov-willowbrook", "auditor-lantern-bay"):
                r = await client.get(
                    "/v1/indicators", params=query, headers={"Authorization": f"Bearer {keys[agency]}"}
                )
                assert r.status_code == 200, r.text
                answered = r.json()
                answered.pop("checkpoint")  # beside the figures, not one of them (the test below)
                assert answered == replayed
            gov = {"Authorization": f"Bearer {keys['gov-willowbrook']}"}
            r = await client.get("/v1/indicators", params={**query, "format": "csv"}, headers=gov)
            text = r.content.decode("utf-8")
            assert r.headers["content-type"].startswith("text/csv") and text.startswith("\ufeff")
            assert (
                f"at_position,{TOWNSHIP},Willowbrook Subdistrict,2026-06,norm_management_rate,规范管理率,"
                f"19,27,70.37,%,{p},1\r\n" in text
            )
            assert ",norm_management_rate,规范管理率,20,27,74.07,%," in text  # the late facts' part, labelled
            r = await client.get("/v1/indicators", params={**query, "format": "html"}, headers=gov)
            page = r.text
            assert r.headers["content-type"].startswith("text/html") and "<svg" in page and "规范管理率" in page
            assert "<script" not in page and "src=" not in page and "href=" not in page  # no external assets
            # refusals
            r = await client.get(
                "/v1/indicators", params=query, headers={"Authorization": f"Bearer {keys['hc-north']}"}
            )
            assert r.status_code == 403
            r = await client.get("/v1/indicators", params={**query, "unit": "990101-002"}, headers=gov)
            assert r.status_code == 403 and "org-unit-outside-jurisdiction" in r.json()["type"]
            for bad in ("2026-13", "0000-01", "9999-Q4", "0001"):  # no month 13; years outside 1900-2199
                r = await client.get("/v1/indicators", params={**query, "period": bad}, headers=gov)
                assert r.status_code == 400 and "period-invalid" in r.json()["type"], bad
            r = await client.get("/v1/indicators", params={**query, "at_position": 10**9}, headers=gov)
            assert r.status_code == 400 and "position-beyond-head" in r.json()["type"]
            r = await client.get(
                "/v1/indicators",
                params={**query, "unit": "990101-009"},
                headers={"Authorization": f"Bearer {keys['auditor-lantern-bay']}"},
            )
            assert r.status_code == 404 and "unknown-scope" in r.json()["type"]

    def test_smd_report_indicators_writes_the_figures_at_a_position(self, district, tmp_path, monkeypatch) -> None:
        from ops.cli import main

        s = district.services
        monkeypatch.setenv("SMD_DATA_DIR", str(s.settings.data_dir))
        if s.settings.postgres is not None:
            monkeypatch.setenv("SMD_DATABASE_URL", district.database_url)
        out = tmp_path / "june.json"
        argv = ["report", "indicators", "--unit", TOWNSHIP, "--period", "2026-06"]
        assert main([*argv, "--at-position", str(district.position_before_late_fact), "--out", str(out)]) == 0
        written = json.loads(out.read_text(encoding="utf-8"))
        assert {f["name"]: (f["numerator"], f["denominator"], f["value"]) for f in written["figures"]} == TOWNSHIP_JUNE


class TestThePerUnitPath:
    """The store narrows the rows to the scope's patients and the period (docs/decisions/036):
    the same figures as from every row, on both stores."""

    def test_every_figure_of_every_scope_is_the_same_from_the_scopes_rows_as_from_every_row(self, district) -> None:
        from tests.support.per_unit import compare_figures

        periods = ["2025-12", "2026-06", "2026-08", "2026-Q2", "2026-Q3", "2026"]
        for p in (district.position_before_late_fact, district.late_position):
            assert compare_figures(district.services, p, periods) > 50

    def test_the_reports_are_the_same_from_their_rows_as_from_every_row(self, district) -> None:
        from ops.data_files import WORK_PLAN_FILE
        from projections.periodic_reports import load_work_plan
        from tests.support.per_unit import compare_documents

        plan = load_work_plan(WORK_PLAN_FILE)
        for p in (district.position_before_late_fact, district.late_position):
            assert compare_documents(district.services, p, ["2026-06", "2026-08"], ["2026-Q2", "2026-Q3"], plan) > 10

    def test_a_village_reads_the_rows_of_its_own_patients_only(self, district) -> None:
        from projections.indicators import Narrowing

        s, p = district.services, district.position_before_late_fact
        c2 = {district.ids[w] for w in "IJK"}
        rows = s.indicators.rows_within(p, Narrowing(frozenset({V05})))
        assert rows.facts == [f for f in s.indicators.rows(p).facts if f.patient_id in c2]  # all theirs, no other
        june = s.indicators.rows_within(p, Narrowing(frozenset({V01}), occurred_before=parse_period("2026-06").ends_at))
        assert june.facts and all(f.occurred_at < at("2026-07-01", 0) for f in june.facts)
        assert district.ids["H"] not in {f.patient_id for f in june.facts}  # registered in July
        august = s.indicators.rows_within(
            p, Narrowing(frozenset({V01}), due_from=at("2026-08-01", 0), due_before=at("2026-09-01", 0))
        )
        tasks = {o.obligation_id for o in august.obligations if o.rule == "TASK"}
        assert len(tasks) == 4  # t1-t4 (t5 is due in September)
        assert all(at("2026-08-01", 0) <= o.due_at < at("2026-09-01", 0) for o in august.obligations)

    def test_the_endpoint_at_a_position_is_the_per_unit_path_and_equals_the_replay(self, district) -> None:
        s, p = district.services, district.position_before_late_fact
        ours = s.indicators.report(s.registry, "org_unit", TOWNSHIP, "2026-06", p)
        replayed = indicator_report(
            replayed_rows(s.case_record, p),
            s.registry.state(as_of_position=p),
            "org_unit",
            TOWNSHIP,
            parse_period("2026-06"),
            p,
        )
        assert ours == replayed == district.before
