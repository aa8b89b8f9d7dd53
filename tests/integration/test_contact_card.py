"""The emergency contact card (应急联系卡), on SQLite and PostgreSQL: the right contacts per patient
from the care team; the Chinese names read back out of the PDF's text; one A6 page; each print
in the access log; a care-team change reissues it (a new edition with the new contact)."""

from __future__ import annotations

import io
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from core.contact_card import card_of
from core.intake import accept
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope
from tests.support.id_numbers import fictional_id_number
from tests.support.stores import NOW

HC, POLICE, COMMITTEE, GOV = "hc-north", "police-east", "committee-north", "gov-willowbrook"
V1 = "990101-001-v01"


class Desk:
    def __init__(self, services) -> None:
        self.s = services
        load_file(services.case_record, DEMO_DISTRICT)

    def send(self, agency: str, event_type: str, subject: UUID, data: dict, days_ago: float) -> None:
        raw = envelope(agency, event_type, subject, data, occurred=NOW - timedelta(days=days_ago))
        accept(self.s.case_record, self.s.registry, raw, agency, "test")

    def register(self, name: str, seq: int) -> UUID:
        p = uuid4()
        number = fictional_id_number(NOW.date().replace(year=1980), seq)
        self.send(HC, "cn.smd.patient.registered.v1", p, {"name": name, "residence": V1, "id_number": number}, 50)
        return p

    def assign(self, patient: UUID, role: str, name: str, phone: str, days_ago: float, agency: str = COMMITTEE):
        self.send(
            agency,
            "cn.smd.care-team-member.assigned.v1",
            patient,
            {"role": role, "member": {"name": name, "phone": phone}},
            days_ago,
        )

    def card(self, patient: UUID):
        return card_of(self.s.case_record.repository.get(patient))


@pytest.fixture
def desk(services) -> tuple[Desk, UUID, UUID]:
    d = Desk(services)
    first, second = d.register("陈明远", 1), d.register("林小雨", 2)
    d.assign(first, "community_worker", "李桂兰", "13800000001", 40)
    d.assign(first, "community_police", "王建国", "13800000002", 40)
    d.assign(first, "mental_health_staff", "张晓梅", "13800000003", 40, HC)
    d.assign(first, "guardian", "陈母", "13800000009", 40)  # not on the card
    d.assign(second, "community_worker", "赵德明", "13900000001", 30)
    d.assign(second, "mental_health_staff", "张晓梅", "13800000003", 30, HC)
    return d, first, second


def _contacts(card) -> list[tuple]:
    return [(c.role.value, c.name, c.phone) for c in card.contacts]


class TestTheContactCard:
    def test_each_patient_gets_the_contacts_of_their_own_care_team(self, desk) -> None:
        d, first, second = desk
        assert _contacts(d.card(first)) == [
            ("community_worker", "李桂兰", "13800000001"),
            ("community_police", "王建国", "13800000002"),
            ("mental_health_staff", "张晓梅", "13800000003"),
        ]
        assert _contacts(d.card(second)) == [
            ("community_worker", "赵德明", "13900000001"),
            ("community_police", None, None),  # nobody yet: the card says so
            ("mental_health_staff", "张晓梅", "13800000003"),
        ]
        assert d.card(first).edition == 1 and d.card(first).patient_name == "陈明远"

    def test_a_care_team_change_reissues_the_card(self, desk) -> None:
        d, first, _ = desk
        before = d.card(first)
        d.assign(first, "community_police", "周海峰", "13700000002", 5)
        after = d.card(first)
        assert after.edition == before.edition + 1
        assert after.issued_at > before.issued_at
        assert ("community_police", "周海峰", "13700000002") in _contacts(after)
        d.assign(first, "guardian", "陈父", "13800000010", 4)  # a role not on the card: no new edition
        assert d.card(first).edition == after.edition

    def test_r23_tells_the_committee_to_reissue_the_card_at_each_change_of_a_card_role(self, desk) -> None:
        d, first, second = desk

        def reissues() -> list[tuple]:
            d.s.catch_up(d.s.case_record.recorder.max_notification_id() or 0)
            rows = [r for r in d.s.work_queue.for_assignee(COMMITTEE) if r.rule == "R23"]
            assert all(r.kind == "notice" and r.action == "reissue_contact_card" for r in rows)
            return sorted(str(r.patient_id) for r in rows)

        # the first team: three card roles for the first patient, two for the second (the guardian: none)
        assert reissues() == sorted([str(first)] * 3 + [str(second)] * 2)
        d.assign(first, "community_police", "周海峰", "13700000002", 5)
        assert reissues() == sorted([str(first)] * 4 + [str(second)] * 2)
        d.assign(first, "guardian", "陈父", "13800000010", 4)  # not on the card: no notice
        assert reissues() == sorted([str(first)] * 4 + [str(second)] * 2)

    def test_no_card_for_a_patient_in_hospital(self, desk) -> None:
        from domain.errors import DomainError

        d, first, _ = desk
        d.send(
            HC, "cn.smd.patient.admitted.v1", first, {"hospital": "City Psychiatric", "admission_kind": "voluntary"}, 1
        )
        with pytest.raises(DomainError, match="in hospital"):
            d.card(first)

    async def test_the_committee_prints_it_as_pdf_with_the_chinese_names_and_the_print_is_logged(self, desk) -> None:
        from litestar.testing import AsyncTestClient
        from pypdf import PdfReader

        from ops.workers import serving_app

        d, first, _ = desk
        s = d.s
        keys = {a: s.apikeys.issue(a).key for a in (COMMITTEE, POLICE, HC)}
        url = f"/v1/patients/{first}/contact-card"
        async with AsyncTestClient(serving_app(s)) as client:
            r = await client.get(url, headers={"Authorization": f"Bearer {keys[COMMITTEE]}"})
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            assert "应急联系卡" in r.text and "王建国" in r.text and "110" in r.text and "陈母" not in r.text
            r = await client.get(f"{url}?format=pdf", headers={"Authorization": f"Bearer {keys[COMMITTEE]}"})
            assert r.status_code == 200 and r.headers["content-type"] == "application/pdf", r.text
            r2 = await client.get(url, headers={"Authorization": f"Bearer {keys[POLICE]}"})
            assert r2.status_code == 403 and r2.json()["type"].endswith("not-allowed-to-print-card")
        pdf = PdfReader(io.BytesIO(r.content))
        assert len(pdf.pages) == 1
        width, height = (float(v) for v in pdf.pages[0].mediabox[2:])
        assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (105, 148)  # A6
        text = pdf.pages[0].extract_text()
        for name in ("陈明远", "李桂兰", "王建国", "张晓梅", "应急联系卡", "120"):
            assert name in text, name
        prints = [e for e in s.access_log.entries(agency=COMMITTEE) if e.endpoint.endswith("contact-card")]
        assert len(prints) == 2
        assert all(e.patient_ids == (first,) and e.fields == ("name", "residence", "care_team") for e in prints)
        [refused] = [e for e in s.access_log.entries(agency=POLICE) if e.endpoint.endswith("contact-card")]
        assert refused.patient_ids == ()
