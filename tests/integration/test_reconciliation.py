"""Three-source reconciliation (三网比对), on SQLite and PostgreSQL: a small generated district
with source lists that diverge from the register in every way the issue names, plus near-miss
names and rows outside mental health; the findings equal the planted cases written out below;
a second run creates nothing; no plaintext of an unmatched row is stored; rows go after their
retention."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest

from core.intake import accept
from core.reconciliation import NotTheListsUploader, all_findings, load_list, readable, report, run
from core.registry import load_file
from core.scheduler import Scheduler
from domain.reconciliation import finding_obligation_id
from domain.registry import AgencyKind
from domain.sources import ListKind, SourceFileInvalid
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope
from tests.support.id_numbers import fictional_id_number
from tests.support.stores import NOW

HC, POLICE, COMMITTEE, GOV = "hc-north", "police-east", "committee-north", "gov-willowbrook"
V1, V2 = "990101-001-v01", "990101-001-v02"
RETENTION = timedelta(days=30)


def _id(seq: int, born: date = date(1980, 1, 1)) -> str:
    return fictional_id_number(born, seq)


class District:
    """The register of a few patients, and the agencies' source lists about them and others."""

    def __init__(self, services) -> None:
        self.s = services
        load_file(services.case_record, DEMO_DISTRICT)
        self.patients: dict[str, UUID] = {}

    def send(self, agency: str, event_type: str, subject: UUID, data: dict, days_ago: float) -> None:
        raw = envelope(agency, event_type, subject, data, occurred=NOW - timedelta(days=days_ago))
        accept(self.s.case_record, self.s.registry, raw, agency, "test")

    def register(self, label: str, name: str, born: date, id_number: str | None, level: int, residence: str = V1):
        patient = self.patients[label] = uuid4()
        data = {"name": name, "residence": residence, "birth_date": born.isoformat(), "household_region": "990101"}
        if id_number:
            data["id_number"] = id_number
        self.send(HC, "cn.smd.patient.registered.v2", patient, data, days_ago=100)
        cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
        self.send(
            HC,
            "cn.smd.visit.recorded.v1",
            patient,
            {"face_to_face": True, "risk_level": level, "risk_class": cls},
            days_ago=10,
        )

    def load(self, kind: ListKind, agency: str, text: str):
        return load_list(self.s.sources, self.s.case_record, self.s.registry, kind, text, agency, NOW, RETENTION)

    def run(self, now=NOW):
        result = run(self.s.sources, self.s.case_record, self.s.registry, now)
        self.s.catch_up(self.s.case_record.recorder.max_notification_id() or 0)
        return result


B = date(1980, 1, 1)


@pytest.fixture
def district(services) -> District:
    d = District(services)
    d.register("known-high", "Amber Reed", B, _id(1), 4)  # level 4, on the police list: nothing
    d.register("unknown-high", "Basil Crane", B, _id(2), 3)  # level 3, not on the police list
    d.register("moved", "Cora Vale", B, _id(3), 1)  # the grid places her in another village
    d.register("dead", "Dov Marsh", B, _id(4), 0)  # the national system records him dead
    d.register("no-id", "Elin Shore", date(1975, 5, 5), None, 0)  # no ID number on the register
    d.register("quiet", "Fenn Wood", B, _id(6), 1)  # on the lists as expected: nothing
    # the police station's key persons: one mental-health row per known patient, other categories
    d.load(
        ListKind.POLICE_KEY_PERSONS,
        POLICE,
        "name,birth_date,id_number,org_unit,category,status\n"
        f"Amber Reed,,{_id(1)},{V1},肇事肇祸精神障碍,\n"
        f"Basil Crane,,{_id(2)},{V1},盗窃,\n"  # known to the police, but not as a mental-health key person
        f"Gale Ross,,{_id(7)},{V1},肇事肇祸精神障碍,\n"  # not registered: a lead
        f"Hal Tern,,{_id(8)},{V1},吸毒,\n",  # not mental health, not registered: nothing
    )
    d.load(
        ListKind.NATIONAL_SYSTEM,
        HC,
        f"name,birth_date,id_number,org_unit,status\nDov Marsh,,{_id(4)},{V1},dead\nFenn Wood,,{_id(6)},{V1},\n",
    )
    d.load(
        ListKind.PHARMACY_PURCHASES,
        HC,
        "\ufeffname,birth_date,id_number,org_unit,drug_class\n"
        f"Ivo Lark,,{_id(9)},{V2},antipsychotic\n"  # not registered: a lead
        "Elin Shore,1975-05-05,,{V1},antipsychotic\n".replace("{V1}", V1)  # name and birth date only
        + "Elin Shora,1975-05-05,,{V1},antipsychotic\n".replace("{V1}", V1)  # a near-miss name: nobody we know
        + f"Jun Pike,,{_id(10)},{V1},antihypertensive\n",  # not mental health: nothing
    )
    d.load(
        ListKind.REIMBURSEMENTS,
        HC,
        f"name,birth_date,id_number,org_unit,specialty\nGale Ross,,{_id(7)},{V1},psychiatric\n",
    )
    d.load(
        ListKind.GRID_PLATFORM,
        GOV,
        "name,birth_date,id_number,org_unit,category,status\n"
        f"Cora Vale,,{_id(3)},{V2},严重精神障碍,\n"
        f"Fenn Wood,,{_id(6)},{V1},严重精神障碍,\n",
    )
    return d


def _found(services) -> set[tuple]:
    out = set()
    for f in all_findings(services.case_record):
        out.add((f.finding_kind.value, f.place, f.patient_id, tuple(sorted(f.sources))))
    return out


class TestTheReconciliation:
    def test_the_findings_equal_the_planted_cases_and_a_second_run_creates_nothing(self, district) -> None:
        first = district.run()
        p = district.patients
        leads = {
            (f.finding_kind.value, f.place, tuple(sorted(f.sources)))
            for f in all_findings(district.s.case_record)
            if f.patient_id is None
        }
        assert leads == {
            ("not_registered", V1, ("police-key-persons", "reimbursements")),  # Gale Ross, on two lists
            ("not_registered", V2, ("pharmacy-purchases",)),  # Ivo Lark
            ("not_registered", V1, ("pharmacy-purchases",)),  # Elin Shora: a near miss is not Elin Shore
        }
        assert {x for x in _found(district.s) if x[2] is not None} == {
            ("unknown_to_police", V1, p["unknown-high"], ("police-key-persons", "register")),
            ("placed_elsewhere", V1, p["moved"], ("grid-platform", "register")),
            ("recorded_dead", V1, p["dead"], ("national-system",)),
            ("confirm_identity", V1, p["no-id"], ("pharmacy-purchases",)),
        }
        assert len(first.created) == 7
        second = district.run()
        assert second.created == [] and len(second.planned) == 7
        assert len(all_findings(district.s.case_record)) == 7

    def test_each_action_is_an_obligation_of_the_right_agency_and_r15_escalates_it(self, district) -> None:
        district.run()
        s, p = district.s, district.patients
        by_kind = {f.finding_kind.value: f for f in all_findings(s.case_record) if f.patient_id is not None}
        expected = {
            "unknown_to_police": (POLICE, "take_under_management", p["unknown-high"]),
            "placed_elsewhere": (COMMITTEE, "check_whereabouts", p["moved"]),
            "recorded_dead": (HC, "check_before_deregistration", p["dead"]),
            "confirm_identity": (HC, "confirm_identity", p["no-id"]),
        }
        for kind, (assignee, action, patient) in expected.items():
            o = s.case_record.repository.get(finding_obligation_id(by_kind[kind].id))
            assert (o.assignee, o.action, o.patient_id, o.rule) == (assignee, action, patient, "RECON"), kind
        # a lead is a suspected case: R18 gives the health center its assessment
        leads = [f for f in all_findings(s.case_record) if f.finding_kind.value == "not_registered"]
        r18 = [r for r in s.work_queue.for_assignee(HC) if r.rule == "R18"]
        assert {r.patient_id for r in r18} == {f.suspected_case_id for f in leads}
        # late: escalated to the governance center
        Scheduler(s.case_record, s.registry, s.work_queue, lambda: NOW + timedelta(days=4)).run_once(force=True)
        o = s.case_record.repository.get(finding_obligation_id(by_kind["unknown_to_police"].id))
        assert (o.overdue, o.escalated_to) == (True, GOV)

    def test_the_police_never_see_pharmacy_or_reimbursement_findings(self, district) -> None:
        district.run()
        everything = all_findings(district.s.case_record)
        police = readable(everything, AgencyKind.POLICE_STATION, None)
        assert {f.finding_kind.value for f in police} == {"unknown_to_police", "placed_elsewhere"}
        committee = readable(everything, AgencyKind.COMMITTEE, None)
        assert {f.finding_kind.value for f in committee} == {"placed_elsewhere"}
        assert len(readable(everything, AgencyKind.HEALTH_CENTER, None)) == 7
        assert readable(everything, AgencyKind.HEALTH_CENTER, {"990101-002-v01"}) == []

    def test_the_report_counts_per_category_and_unit(self, district) -> None:
        district.run()
        counts = report(all_findings(district.s.case_record))
        assert counts["total"] == 7
        assert counts["by_kind"] == {
            "not_registered": 3,
            "unknown_to_police": 1,
            "placed_elsewhere": 1,
            "recorded_dead": 1,
            "confirm_identity": 1,
        }
        assert [u["org_unit"] for u in counts["by_unit"]] == [V1, V2]
        assert counts["by_unit"][1]["not_registered"] == 1


class TestSourceRowsAreKeptApartAndBriefly:
    def test_no_plaintext_of_an_unmatched_row_is_stored_and_rows_go_after_their_retention(
        self, district, settings
    ) -> None:
        from tests.integration.test_no_plaintext import stored_bytes

        district.load(
            ListKind.PHARMACY_PURCHASES,
            HC,
            f"name,birth_date,id_number,org_unit,drug_class\nMKUNMATCHEDzz,,{_id(11)},{V1},antihypertensive\n",
        )
        district.run()
        stored = stored_bytes(settings)
        assert b"MKUNMATCHEDzz" not in stored and _id(11).encode() not in stored
        assert b"Hal Tern" not in stored and "吸毒".encode() not in stored
        assert district.s.sources.store.count() == 14
        later = district.run(NOW + RETENTION + timedelta(seconds=1))
        assert later.purged == 14 and district.s.sources.store.count() == 0 and later.rows == 0
        # the findings stay: they are the record
        assert len(all_findings(district.s.case_record)) == 7

    def test_only_the_uploader_kind_loads_a_list_and_bad_lines_are_named(self, district) -> None:
        with pytest.raises(NotTheListsUploader):
            district.load(ListKind.PHARMACY_PURCHASES, POLICE, "name,org_unit,drug_class\nA,990101-001-v01,x\n")
        with pytest.raises(SourceFileInvalid, match="line 2: org_unit"):
            district.load(
                ListKind.PHARMACY_PURCHASES, HC, f"name,id_number,org_unit,drug_class\nA,{_id(12)},nowhere,x\n"
            )
        with pytest.raises(SourceFileInvalid, match="unknown"):
            district.load(ListKind.PHARMACY_PURCHASES, HC, "name,org_unit,drug\nA,990101-001-v01,x\n")


class TestOverHttp:
    async def test_upload_run_findings_and_report_each_filtered_for_the_caller(self, services) -> None:
        from litestar.testing import AsyncTestClient

        from ops.workers import serving_app

        d = District(services)
        d.register("unknown-high", "Basil Crane", B, _id(2), 3)
        keys = {a: services.apikeys.issue(a).key for a in (HC, POLICE, GOV)}

        def auth(agency: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {keys[agency]}"}

        police_csv = f"name,birth_date,id_number,org_unit,category\nGale Ross,,{_id(7)},{V1},肇事肇祸精神障碍\n"
        pharmacy_csv = f"name,birth_date,id_number,org_unit,drug_class\nIvo Lark,,{_id(9)},{V1},antipsychotic\n"
        async with AsyncTestClient(serving_app(services)) as client:
            csv_headers = {"Content-Type": "text/csv"}
            r = await client.post(
                "/v1/sources/police-key-persons", content=police_csv.encode(), headers={**auth(POLICE), **csv_headers}
            )
            assert r.status_code == 201 and r.json()["rows"] == 1, r.text
            r = await client.post(
                "/v1/sources/pharmacy-purchases", content=pharmacy_csv.encode(), headers={**auth(POLICE), **csv_headers}
            )
            assert r.status_code == 403 and r.json()["type"].endswith("not-allowed-to-upload")
            r = await client.post(
                "/v1/sources/pharmacy-purchases", content=pharmacy_csv.encode(), headers={**auth(HC), **csv_headers}
            )
            assert r.status_code == 201
            r = await client.post("/v1/sources/nowhere", content=b"x", headers={**auth(HC), **csv_headers})
            assert r.status_code == 404
            assert (await client.post("/v1/reconciliation/runs", headers=auth(POLICE))).status_code == 403
            r = await client.post("/v1/reconciliation/runs", headers=auth(GOV))
            assert r.status_code == 201 and (r.json()["planned"], r.json()["created"]) == (3, 3), r.text
            r = await client.post("/v1/reconciliation/runs", headers=auth(GOV))
            assert r.json()["created"] == 0
            police = (await client.get("/v1/reconciliation/findings", headers=auth(POLICE))).json()["items"]
            assert sorted((f["kind"], tuple(f["sources"])) for f in police) == [
                ("not_registered", ("police-key-persons",)),
                ("unknown_to_police", ("register", "police-key-persons")),
            ]
            assert all("details" not in f for f in police)
            hc = (await client.get("/v1/reconciliation/findings", headers=auth(HC))).json()["items"]
            assert len(hc) == 3
            [lead] = [f for f in hc if f["sources"] == ["pharmacy-purchases"]]
            assert lead["details"][0]["name"] == "Ivo Lark" and lead["suspected_case_id"]
            r = await client.get("/v1/reconciliation/report?format=csv", headers=auth(HC))
            assert r.content.startswith("\ufeff".encode())
            assert r.text.splitlines()[-1] == "total,2,1,0,0,0,3"
            r = await client.get("/v1/reconciliation/report?format=html", headers=auth(GOV))
            assert r.status_code == 200 and "<table>" in r.text and "三网比对" in r.text
            assert (await client.get("/v1/reconciliation/report", headers=auth(POLICE))).json()["total"] == 2
        [row] = [e for e in services.access_log.entries(agency=POLICE) if e.endpoint.endswith("findings")]
        assert row.patient_ids == (d.patients["unknown-high"],) and row.fields == ("finding",)


class TestSmdSourcesAndReconcile:
    def test_smd_sources_load_then_reconcile_run_and_report(self, services, monkeypatch, capsys, tmp_path) -> None:
        from ops.cli import main
        from tests.integration.test_verifiable_log import use_settings

        d = District(services)
        d.register("unknown-high", "Basil Crane", B, _id(2), 3)
        use_settings(monkeypatch, services)
        police = tmp_path / "police.csv"
        police.write_text(f"\ufeffname,id_number,org_unit,category\nGale Ross,{_id(7)},{V1},肇事肇祸精神障碍\n")
        assert main(["sources", "load", "police-key-persons", str(police), "--agency", POLICE]) == 0
        assert main(["sources", "load", "grid-platform", str(police), "--agency", POLICE]) == 1
        assert main(["reconcile", "run"]) == 0
        assert main(["reconcile", "run"]) == 0
        assert main(["reconcile", "report", "--format", "csv"]) == 0
        out = capsys.readouterr().out
        assert "sources load: 1 police-key-persons row(s)" in out
        assert "2 finding(s), 2 new" in out and "2 finding(s), 0 new" in out
        assert out.rstrip().splitlines()[-1] == "total,1,1,0,0,0,2"
