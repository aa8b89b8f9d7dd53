"""People of concern (Qingyang task 6), on SQLite and PostgreSQL: planted incident and dispute
records collide with registered patients and an open suspected case; the list, the notices and
the obligation equal what is written out by hand below; a second run changes nothing; a new
version of the collision rules changes only what it should."""

from __future__ import annotations

import json
from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest

from core.concern import on_the_list, readable, run
from core.intake import accept
from core.reconciliation import load_list
from core.registry import load_file
from domain.concern import concern_obligation_id, parse_rule_versions, parse_rules, rules_in_force
from domain.registry import AgencyKind
from domain.sources import ListKind, SourceFileInvalid
from ops.data_files import CONCERN_RULES_FILE, DEMO_DISTRICT
from tests.support.agency_client import envelope
from tests.support.id_numbers import fictional_id_number
from tests.support.stores import NOW

HC, POLICE, COMMITTEE, GOV = "hc-north", "police-east", "committee-north", "gov-willowbrook"
V1, V2 = "990101-001-v01", "990101-001-v02"
B = date(1980, 1, 1)

RULES_V1 = parse_rules(
    {
        "version": 1,
        "effective_from": "2026-01-01",
        "window_days": 90,
        "threshold": 2,
        "weights": {
            "incident-records": {"threat": 2, "violence": 3},
            "dispute-records": {"neighbour_dispute": 1, "family_dispute": 1, "land_dispute": 1, "petition": 1},
        },
    }
)
#: v2: a neighbour dispute weighs 2; a petition no longer counts; nothing else changes
RULES_V2 = parse_rules(
    {
        "version": 2,
        "effective_from": "2026-11-01",
        "window_days": 90,
        "threshold": 2,
        "weights": {
            "incident-records": {"threat": 2, "violence": 3},
            "dispute-records": {"neighbour_dispute": 2, "family_dispute": 1, "land_dispute": 1},
        },
    }
)


def _id(seq: int) -> str:
    return fictional_id_number(B, seq)


def _on(days_ago: int) -> str:
    return (NOW.date() - timedelta(days=days_ago)).isoformat()


class District:
    def __init__(self, services) -> None:
        self.s = services
        load_file(services.case_record, DEMO_DISTRICT)
        self.ids: dict[str, UUID] = {}

    def send(self, agency: str, event_type: str, subject: UUID, data: dict, days_ago: float) -> None:
        raw = envelope(agency, event_type, subject, data, occurred=NOW - timedelta(days=days_ago))
        accept(self.s.case_record, self.s.registry, raw, agency, "test")

    def register(self, label: str, name: str, seq: int, level: int) -> None:
        patient = self.ids[label] = uuid4()
        data = {"name": name, "residence": V1, "id_number": _id(seq)}
        self.send(HC, "cn.smd.patient.registered.v1", patient, data, days_ago=100)
        cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
        self.send(
            HC, "cn.smd.visit.recorded.v1", patient, {"face_to_face": True, "risk_level": level, "risk_class": cls}, 10
        )

    def load(self, kind: ListKind, text: str, agency: str = GOV):
        return load_list(self.s.sources, self.s.case_record, self.s.registry, kind, text, agency, NOW, timedelta(30))

    def run(self, rules=RULES_V1, now=NOW):
        result = run(self.s.sources, self.s.case_record, rules, now)
        self.s.catch_up(self.s.case_record.recorder.max_notification_id() or 0)
        return result


@pytest.fixture
def district(services) -> District:
    d = District(services)
    d.register("threat-high", "Amber Reed", 1, 4)  # a threat 10 days ago: listed; level 4: police obligation
    d.register("two-disputes", "Basil Crane", 2, 1)  # two disputes in the window: listed, notices only
    d.register("one-dispute", "Cora Vale", 3, 2)  # one neighbour dispute: below the threshold under v1
    d.register("long-ago", "Dov Marsh", 4, 3)  # violence 200 days ago: outside the window
    d.register("other-type", "Elin Shore", 5, 3)  # a record type the rules do not count
    d.register("quiet", "Fenn Wood", 6, 4)  # no record at all
    case = d.ids["case"] = uuid4()
    d.send(
        COMMITTEE,
        "cn.smd.suspected-case.reported.v1",
        case,
        {"observed": "shouting at night", "seen_in": V1, "person": {"name": "Wren Hollis"}},
        days_ago=30,
    )
    d.load(
        ListKind.INCIDENT_RECORDS,
        "name,birth_date,id_number,org_unit,record_type,occurred_on\n"
        f"Amber Reed,,{_id(1)},{V1},threat,{_on(10)}\n"
        f"Dov Marsh,,{_id(4)},{V1},violence,{_on(200)}\n"
        f"Elin Shore,,{_id(5)},{V1},traffic,{_on(3)}\n"
        f"Gale Ross,,{_id(7)},{V1},violence,{_on(3)}\n",  # nobody we know: nothing
    )
    d.load(
        ListKind.DISPUTE_RECORDS,
        "\ufeffname,birth_date,id_number,org_unit,record_type,occurred_on\n"
        f"Basil Crane,,{_id(2)},{V1},neighbour_dispute,{_on(20)}\n"
        f"Basil Crane,,{_id(2)},{V1},family_dispute,{_on(40)}\n"
        f"Cora Vale,,{_id(3)},{V1},neighbour_dispute,{_on(5)}\n"
        f"Wren Hollis,1990-02-02,,{V1},petition,{_on(8)}\n"  # the open suspected case (same name, same village)
        f"Wren Hollis,1990-02-02,,{V1},land_dispute,{_on(9)}\n"
        f"Wren Hollis,1990-02-02,,{V2},violence,{_on(9)}\n",  # same name elsewhere; and not a dispute type
    )
    return d


def _list(services) -> dict[UUID, tuple]:
    return {
        e.subject_id: (e.subject_kind.value, e.place, e.score, e.rules_version, [tuple(r.values()) for r in e.reasons])
        for e in on_the_list(services.case_record)
    }


class TestPeopleOfConcern:
    def test_planted_records_give_the_expected_entries_and_a_second_run_changes_nothing(self, district) -> None:
        first = district.run()
        i = district.ids
        assert _list(district.s) == {
            i["threat-high"]: ("patient", V1, 2, 1, [("incident-records", "threat", _on(10), 2)]),
            i["two-disputes"]: (
                "patient",
                V1,
                2,
                1,
                [
                    ("dispute-records", "family_dispute", _on(40), 1),
                    ("dispute-records", "neighbour_dispute", _on(20), 1),
                ],
            ),
            i["case"]: (
                "suspected_case",
                V1,
                2,
                1,
                [("dispute-records", "land_dispute", _on(9), 1), ("dispute-records", "petition", _on(8), 1)],
            ),
        }
        assert (len(first.listed), first.revised, first.taken_off, first.rows) == (3, [], [], 10)
        again = district.run()
        assert (again.listed, again.revised, again.taken_off) == ([], [], [])

    def test_a_listing_notifies_the_police_and_the_governance_center_and_obliges_at_level_3(self, district) -> None:
        district.run()
        s, i = district.s, district.ids
        rows = [r for a in (POLICE, GOV) for r in s.work_queue.for_assignee(a) if r.rule == "CONCERN"]
        got = sorted((r.assignee, r.kind, r.action, r.patient_id) for r in rows)
        want = sorted(
            [
                (a, "notice", "person_of_concern_listed", i[who])
                for a in (POLICE, GOV)
                for who in ("threat-high", "two-disputes", "case")
            ]
            + [(POLICE, "obligation", "review_person_of_concern", i["threat-high"])]
        )
        assert got == want
        # nothing else opened for the committee or the health center by the list
        assert not [r for a in (HC, COMMITTEE) for r in s.work_queue.for_assignee(a) if r.rule == "CONCERN"]

    def test_a_new_rule_version_changes_only_what_it_should(self, district) -> None:
        district.run()
        s, i = district.s, district.ids
        threat_entry = s.case_record.repository.get(_entry(i["threat-high"]))
        version_before = threat_entry.version
        result = district.run(RULES_V2, NOW + timedelta(hours=1))
        assert result.listed == [_entry(i["one-dispute"])]
        assert result.revised == [_entry(i["two-disputes"])]
        assert result.taken_off == [_entry(i["case"])]
        now = _list(s)
        assert now[i["threat-high"]][3] == 1  # unchanged reasons: keeps the version that listed it
        assert s.case_record.repository.get(_entry(i["threat-high"])).version == version_before
        assert now[i["two-disputes"]][2:4] == (3, 2)
        assert now[i["one-dispute"]] == ("patient", V1, 2, 2, [("dispute-records", "neighbour_dispute", _on(5), 2)])
        assert i["case"] not in now
        # the new listing notifies; taking off cancels nothing it did not open (no obligation for a case)
        police = {r.patient_id for r in s.work_queue.for_assignee(POLICE) if r.rule == "CONCERN"}
        assert i["one-dispute"] in police

    def test_taking_a_level_3_patient_off_cancels_the_police_obligation(self, district) -> None:
        district.run()
        s, i = district.s, district.ids
        none_count = parse_rules({**_doc(RULES_V2), "version": 3, "weights": {"dispute-records": {"petition": 5}}})
        result = district.run(none_count, NOW + timedelta(hours=1))
        assert _entry(i["threat-high"]) in result.taken_off
        o = s.case_record.repository.get(concern_obligation_id(_entry(i["threat-high"]), 1, "police-action"))
        assert o.status == "cancelled"

    def test_the_list_is_separate_from_the_focus_grade(self, district) -> None:
        s, i = district.s, district.ids
        before = s.case_record.repository.get(i["threat-high"]).version
        district.run()
        assert s.case_record.repository.get(i["threat-high"]).version == before  # the patient's file untouched

    def test_who_may_read_the_list(self, district) -> None:
        district.run()
        everything = on_the_list(district.s.case_record)
        for kind in (AgencyKind.POLICE_STATION, AgencyKind.GOVERNANCE_CENTER, AgencyKind.HEALTH_CENTER):
            assert len(readable(everything, kind, {V1})) == 3
        for kind in (AgencyKind.COMMITTEE, AgencyKind.CIVIL_AFFAIRS, AgencyKind.PSYCHIATRIC_HOSPITAL):
            assert readable(everything, kind, {V1}) == []
        assert readable(everything, AgencyKind.POLICE_STATION, {V2}) == []

    def test_only_the_governance_center_loads_incident_records_and_dates_are_checked(self, district) -> None:
        from core.reconciliation import NotTheListsUploader

        with pytest.raises(NotTheListsUploader):
            district.load(ListKind.INCIDENT_RECORDS, "name,id_number,org_unit,record_type,occurred_on\n", POLICE)
        with pytest.raises(SourceFileInvalid, match="line 2: occurred_on"):
            district.load(
                ListKind.DISPUTE_RECORDS,
                f"name,id_number,org_unit,record_type,occurred_on\nX Y,{_id(1)},{V1},petition,yesterday\n",
            )

    def test_the_shipped_rules_parse_and_the_newest_in_force_applies(self) -> None:
        versions = parse_rule_versions(CONCERN_RULES_FILE.read_text(encoding="utf-8"))
        assert rules_in_force(versions, NOW.date()).version == max(v.version for v in versions)
        assert rules_in_force([RULES_V1, RULES_V2], date(2026, 10, 1)).version == 1


def _entry(subject: UUID) -> UUID:
    from domain.concern import entry_id

    return entry_id(subject)


def _doc(rules) -> dict:
    return {
        "version": rules.version,
        "effective_from": rules.effective_from.isoformat(),
        "window_days": rules.window_days,
        "threshold": rules.threshold,
        "weights": rules.weights,
    }


class TestOverHttpAndCli:
    async def test_run_and_read_the_list_each_filtered_and_every_read_in_the_access_log(self, district) -> None:
        from litestar.testing import AsyncTestClient

        from ops.workers import serving_app

        s, i = district.s, district.ids
        keys = {a: s.apikeys.issue(a).key for a in (HC, POLICE, GOV, COMMITTEE)}

        def auth(agency: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {keys[agency]}"}

        async with AsyncTestClient(serving_app(s)) as client:
            assert (await client.post("/v1/concern/runs", headers=auth(POLICE))).status_code == 403
            r = await client.post("/v1/concern/runs", headers=auth(GOV))
            assert r.status_code == 201, r.text
            assert (r.json()["listed"], r.json()["on_list"], r.json()["rules_version"]) == (3, 3, 1)
            police = (await client.get("/v1/concern/entries", headers=auth(POLICE))).json()["items"]
            assert {e["patient_id"] or e["suspected_case_id"] for e in police} == {
                str(i["threat-high"]),
                str(i["two-disputes"]),
                str(i["case"]),
            }
            assert all(e["rules_version"] == 1 and e["reasons"] for e in police)
            r = await client.get("/v1/concern/entries?format=csv", headers=auth(GOV))
            assert r.content.startswith("\ufeff".encode()) and len(r.text.splitlines()) == 4
            assert f"incident-records:threat:{_on(10)}:2" in r.text
            r = await client.get("/v1/concern/entries", headers=auth(COMMITTEE))
            assert r.status_code == 403 and r.json()["type"].endswith("not-allowed-to-read-concern")
        [row] = [e for e in s.access_log.entries(agency=POLICE) if e.endpoint == "GET /v1/concern/entries"]
        assert set(row.patient_ids) == {i["threat-high"], i["two-disputes"], i["case"]} and row.fields == ("concern",)
        assert [e for e in s.access_log.entries(agency=GOV) if e.endpoint == "GET /v1/concern/entries"]
        [refused] = [e for e in s.access_log.entries(agency=COMMITTEE) if e.endpoint == "GET /v1/concern/entries"]
        assert refused.patient_ids == ()

    def test_smd_concern_run_with_a_rules_file_and_a_bad_one_refused(
        self, district, monkeypatch, capsys, tmp_path
    ) -> None:
        from ops.cli import main
        from tests.integration.test_verifiable_log import use_settings

        use_settings(monkeypatch, district.s)
        rules = tmp_path / "rules.json"
        rules.write_text(json.dumps([_doc(RULES_V1), _doc(RULES_V2)]))
        assert main(["concern", "run", "--rules", str(rules)]) == 0
        assert main(["concern", "run", "--rules", str(rules)]) == 0
        bad = tmp_path / "bad.json"
        bad.write_text('[{"version": 1}]')
        assert main(["concern", "run", "--rules", str(bad)]) == 1
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("concern run: rules v2;") and out[0].endswith(
            "3 on the list: 3 listed, 0 revised, 0 taken off"
        )
        assert out[1].endswith("3 on the list: 0 listed, 0 revised, 0 taken off")
