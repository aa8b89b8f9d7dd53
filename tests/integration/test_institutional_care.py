"""Institutional care (集中照料救治) recorded by civil affairs, on SQLite and PostgreSQL: the file
shows it, the place and the reason are sealed in storage, and the rules for patients at home
hold back while it lasts, like a hospital stay."""

from __future__ import annotations

from uuid import uuid4

import pytest

from core.registry import load_file
from domain.access import NotAllowedToRecord
from domain.patient_file import NoInstitutionalCare
from domain.personal import SealedText
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_rules_care import CIVIL, HC, Care

PLACE = {"place": "MKPLACEzz care home", "care_kind": "homeless"}


@pytest.fixture
def care(services) -> Care:
    load_file(services.case_record, DEMO_DISTRICT)
    c = Care(services)
    c.register()
    return c


def start(care: Care, days_ago: float, **kw) -> str:
    return care.send(CIVIL, "institutional-care.started", PLACE, days_ago=days_ago, **kw).key


class TestRecording:
    def test_civil_affairs_records_the_start_and_the_end_and_the_health_center_may_not(self, care) -> None:
        with pytest.raises(NotAllowedToRecord, match="may not record"):
            care.send(HC, "institutional-care.started", PLACE, days_ago=3)
        start(care, 3)
        assert care.services.case_record.patient(care.patient).in_institutional_care
        care.send(CIVIL, "institutional-care.ended", {"reason": "MKREASONzz"}, days_ago=1)
        p = care.services.case_record.patient(care.patient)
        assert not p.in_institutional_care
        assert [e["place"] for e in p.facts["institution"]] == [SealedText(text="MKPLACEzz care home"), None]

    def test_an_end_without_a_start_is_refused(self, care) -> None:
        with pytest.raises(NoInstitutionalCare):
            care.send(CIVIL, "institutional-care.ended", {}, days_ago=1)

    def test_the_place_and_the_reason_are_sealed_in_storage(self, care, settings) -> None:
        start(care, 3)
        care.send(CIVIL, "institutional-care.ended", {"reason": "MKREASONzz"}, days_ago=1)
        from tests.integration.test_no_plaintext import stored_bytes

        data = stored_bytes(settings)
        assert b"MKPLACEzz" not in data and b"MKREASONzz" not in data


class TestTheRulesHoldBack:
    def test_a_placement_cancels_the_follow_up_visits_and_its_end_starts_them_again(self, care) -> None:
        visited = care.visit(2, 20)
        assert care.get("R4", "registration", "visit", care.version(visited)).status == "assigned"
        start(care, 10)
        cancelled = care.get("R4", "registration", "visit", care.version(visited))
        assert cancelled.cancel_reason == "the patient was placed in institutional care"
        ended = care.send(CIVIL, "institutional-care.ended", {}, days_ago=2).key
        assert care.get("R4", ended, "visit", care.version(ended)).status == "assigned"

    def test_a_duplicate_placement_records_nothing_more(self, care) -> None:
        message = uuid4()
        start(care, 5, message_id=message)
        assert care.send(CIVIL, "institutional-care.started", PLACE, days_ago=5, message_id=message).outcome == (
            "duplicate"
        )
        assert len(care.services.case_record.patient(care.patient).facts["institution"]) == 1
