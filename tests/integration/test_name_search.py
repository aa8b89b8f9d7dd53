"""Search by exact name and birth date, through a keyed blind index of the two together.

Every test runs on SQLite and on PostgreSQL (the ``services`` / ``open_store`` fixtures).
"""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.identity import find_by_name
from core.registry import load_file
from domain.identity_errors import NameInvalid
from ops.data_files import DEMO_DISTRICT
from ops.logging import configure_logging
from tests.integration.test_identity_store import NOT_SEARCHERS, SEARCHERS, auth, envelope
from tests.integration.test_no_plaintext import stored_bytes
from tests.support.id_numbers import fictional_id_number
from tests.support.stores import NOW, Agency

VILLAGE = "990101-001-v01"  # hc-north's
REGISTERED_V2 = "cn.smd.patient.registered.v2"
UNIDENTIFIED = "cn.smd.patient.registered-unidentified.v1"
CONFIRMED = "cn.smd.patient.identity-confirmed.v2"
BORN = date(1971, 5, 17)


def register_v2(record, patient: UUID, name: str, born: date, **extra) -> None:
    data = {"name": name, "residence": VILLAGE, "birth_date": born.isoformat(), "household_region": "990101", **extra}
    agency = Agency("hc-north")
    record.record(agency.envelope(REGISTERED_V2, patient, data, occurred=NOW - timedelta(days=5)), "hc-north")


@pytest.fixture
def demo(services):
    load_file(services.case_record, DEMO_DISTRICT)
    return services


class TestNameAndBirthDateSearch:
    def test_a_patient_is_found_by_name_and_birth_date_and_not_with_another_birth_date(self, demo) -> None:
        record, patient = demo.case_record, uuid4()
        register_v2(record, patient, "欧阳明远", BORN)
        assert find_by_name(record, "欧阳明远", BORN, NOW) == [patient]
        assert find_by_name(record, "欧阳明远", BORN + timedelta(days=1), NOW) == []
        assert find_by_name(record, "欧阳明", BORN, NOW) == []  # exact names only: no prefix match

    def test_spaces_full_width_letters_and_middle_dot_variants_do_not_matter(self, demo) -> None:
        record, han, uyghur, latin = demo.case_record, uuid4(), uuid4(), uuid4()
        register_v2(record, han, "张 三", BORN)
        register_v2(record, uyghur, "买买提·艾力", BORN)
        register_v2(record, latin, "Anna Lee", BORN)
        assert find_by_name(record, "张三", BORN, NOW) == [han]
        assert find_by_name(record, "  张\u3000三 ", BORN, NOW) == [han]  # an ideographic space too
        assert find_by_name(record, "买买提•艾力", BORN, NOW) == [uyghur]  # a bullet for the dot
        assert find_by_name(record, "买买提・艾力", BORN, NOW) == [uyghur]  # a katakana middle dot
        assert find_by_name(record, "ＡＮＮＡＬＥＥ", BORN, NOW) == [latin]  # full-width, upper-case

    def test_two_people_with_the_same_name_and_birth_date_are_both_found(self, demo) -> None:
        record, first, second = demo.case_record, uuid4(), uuid4()
        register_v2(record, first, "王芳", BORN)
        register_v2(record, second, "王芳", BORN, id_number=fictional_id_number(BORN, seq=7))
        assert sorted(find_by_name(record, "王芳", BORN, NOW)) == sorted([first, second])

    def test_the_birth_date_of_the_id_number_is_the_one_searched_by(self, demo) -> None:
        record, patient = demo.case_record, uuid4()
        born = date(1985, 2, 3)
        record.record(
            Agency("hc-north").register(
                patient, name="李雷", residence=VILLAGE, id_number=fictional_id_number(born, seq=11)
            ),
            "hc-north",
        )
        assert find_by_name(record, "李雷", born, NOW) == [patient]

    def test_a_person_without_a_birth_date_is_found_once_the_identity_is_confirmed(self, demo) -> None:
        record, patient, agency = demo.case_record, uuid4(), Agency("hc-north")
        provisional = {"label": "man, about 40", "name": "老周", "residence": VILLAGE}
        record.record(agency.envelope(UNIDENTIFIED, patient, provisional, occurred=NOW - timedelta(days=3)), "hc-north")
        born = date(1983, 8, 9)
        assert find_by_name(record, "老周", born, NOW) == []  # no birth date known: not searchable
        confirmed = {"name": "周建国", "id_number": fictional_id_number(born, seq=21), "household_region": "990101"}
        record.record(agency.envelope(CONFIRMED, patient, confirmed, occurred=NOW - timedelta(days=1)), "hc-north")
        assert find_by_name(record, "周建国", born, NOW) == [patient]

    def test_an_empty_name_or_a_future_birth_date_is_refused_naming_the_field(self, demo) -> None:
        record = demo.case_record
        with pytest.raises(NameInvalid, match="name: is empty"):
            find_by_name(record, " \u3000 ", BORN, NOW)
        with pytest.raises(Exception, match="in the future"):
            find_by_name(record, "王芳", NOW.date() + timedelta(days=400), NOW)

    def test_no_plaintext_name_or_birth_date_in_any_table_or_log(self, open_store, settings) -> None:
        log_buffer = io.StringIO()
        configure_logging("json", stream=log_buffer)
        try:
            services = open_store()
            load_file(services.case_record, DEMO_DISTRICT)
            name, patient = "MKSEARCHqz55", uuid4()
            born = date(1969, 11, 23)
            register_v2(services.case_record, patient, name, born, address="MKCONTROL-not-sealed-here")
            assert find_by_name(services.case_record, name, born, NOW) == [patient]
            held = stored_bytes(settings)
        finally:
            configure_logging("console")
        for secret in (name.encode(), name.lower().encode(), b"1969-11-23", b"19691123"):
            assert secret not in held, secret
            assert secret.decode() not in log_buffer.getvalue()
        assert str(patient).encode() in held  # positive control: the patient's id is stored in the clear


class TestNameSearchOverHttp:
    @pytest.fixture
    def http_demo(self, open_store):
        services = open_store(clock=utc_now)
        load_file(services.case_record, DEMO_DISTRICT)
        keys = {a: services.apikeys.issue(a).key for a in (*SEARCHERS, *NOT_SEARCHERS)}
        return services, keys

    async def test_searchers_find_the_patient_id_and_the_answer_is_in_the_access_log_without_the_name(
        self, http_demo
    ) -> None:
        services, keys = http_demo
        patient = uuid4()
        body = {"name": "陈静", "residence": VILLAGE, "birth_date": "1990-01-31", "household_region": "990101"}
        async with AsyncTestClient(create_app(services)) as client:
            r = await client.post(
                "/v1/events", json=envelope(REGISTERED_V2, patient, body, "hc-north"), headers=auth(keys["hc-north"])
            )
            assert r.status_code == 201, r.text
            for agency in SEARCHERS:
                r = await client.post(
                    "/v1/patients/search/by-name",
                    json={"name": "陈 静", "birth_date": "1990-01-31"},
                    headers=auth(keys[agency]),
                )
                assert r.status_code == 200, (agency, r.text)
                assert r.json() == {"patients": [{"patient_id": str(patient)}]}
            r = await client.post(
                "/v1/patients/search/by-name",
                json={"name": "陈静", "birth_date": "1990-02-01"},
                headers=auth(keys["police-east"]),
            )
            assert r.json() == {"patients": []}
        rows = [
            e
            for e in services.access_log.entries()
            if e.endpoint == "POST /v1/patients/search/by-name" and e.agency_id == "police-east"
        ]
        assert [list(e.patient_ids) for e in rows] == [[patient], []]
        assert "陈静" not in json.dumps([str(e) for e in services.access_log.entries()], ensure_ascii=False)

    async def test_committees_get_403_and_a_bad_body_a_400_naming_what_to_send(self, http_demo) -> None:
        services, keys = http_demo
        async with AsyncTestClient(create_app(services)) as client:
            for agency in NOT_SEARCHERS:
                r = await client.post(
                    "/v1/patients/search/by-name",
                    json={"name": "陈静", "birth_date": "1990-01-31"},
                    headers=auth(keys[agency]),
                )
                assert r.status_code == 403 and r.json()["type"].endswith("/not-allowed-to-search"), r.text
            for bad in (
                {"name": "陈静"},
                {"name": "陈静", "birth_date": "31/01/1990"},
                {"name": "x", "birth_date": "1990-01-31", "id_number": "1"},
            ):
                r = await client.post("/v1/patients/search/by-name", json=bad, headers=auth(keys["hc-north"]))
                assert r.status_code == 400 and r.json()["type"].endswith("/invalid-search"), r.text
                assert '"birth_date": "YYYY-MM-DD"' in r.json()["detail"]
                assert "陈静" not in r.text
            r = await client.post(
                "/v1/patients/search/by-name",
                json={"name": "   ", "birth_date": "1990-01-31"},
                headers=auth(keys["hc-north"]),
            )
            assert r.status_code == 422 and r.json()["type"].endswith("/invalid-name"), r.text


class TestIndexingPatientsRecordedBefore:
    def test_smd_search_index_names_makes_earlier_patients_findable_once(self, demo, monkeypatch, capsys) -> None:
        from domain.patient import Patient
        from domain.personal import PersonalDetails
        from domain.values import Provenance
        from ops.cli import main
        from tests.integration.test_verifiable_log import use_settings

        record, patient = demo.case_record, uuid4()
        by = Provenance("hc-north", None, NOW - timedelta(days=9), "hc-north:before-name-search")
        # stored as a registration was before name markers existed: the patient alone
        record.save(Patient.register(patient, by, NOW, PersonalDetails(name="赵敏", birth_date=BORN), VILLAGE))
        assert find_by_name(record, "赵敏", BORN, NOW) == []
        use_settings(monkeypatch, demo)
        demo.close()
        assert main(["search", "index-names"]) == 0
        assert "1 name marker(s) written" in capsys.readouterr().out
        assert main(["search", "index-names"]) == 0
        assert "0 name marker(s) written" in capsys.readouterr().out
        from tests.support.stores import open_services

        again = open_services(demo.settings)
        try:
            assert find_by_name(again.case_record, "赵敏", BORN, NOW) == [patient]
        finally:
            again.close()
