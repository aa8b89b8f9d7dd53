"""Dual management (双管控, seed Q-5), on SQLite and PostgreSQL: after a handover between two
regions of one city is accepted, the region that manages the patient now (C, the residence) feeds
the region they came from (A, which keeps tracking them) the facts A may see — risk level and
class, lost and located, incidents, hospital stays, deregistration — as signed, sealed messages
over the link. A stores them as ``smd.ReportedByRegion`` on the patient's file, marked with the
sender region and the sender's agency and staff as asserted; A's rules open nothing from them;
A's file and timeline show them to the kinds that see each group. A region of another city (B) is
not fed unless named by agreement. Two deployments in one process, messages carried by a small
in-memory link (as tests/integration/test_handovers.py).
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

import pytest

from core.patient_read import visible_file
from core.region_keys import CrossRegionKeys
from core.registry import load_file
from domain.dual_management import dual_management_id, feeds, same_city
from domain.handover import handover_id
from tests.integration.test_handovers import COMMITTEE, HC, VILLAGE, A, B, district
from tests.integration.test_handovers import Region as HandoverRegion
from tests.support.crossregion import two_regions
from tests.support.stores import NOW, MovableClock, open_services, store_settings

pytestmark = pytest.mark.integration

__all__ = ["two_regions"]  # the fixture

C = "990102"  # fictional: A (990101) and C one city (9901), B (990202) another
POLICE, HOSPITAL, CIVIL = "police-east", "hospital-lantern-bay", "civil-affairs"
NAME = "Feedwell Quill Tarn"  # fictional


class Region(HandoverRegion):
    """One deployment (test_handovers.py's), with what its service does in the background."""

    def __init__(self, services, keys: CrossRegionKeys, clock: MovableClock, by_agreement=()) -> None:
        super().__init__(services, keys, clock, by_agreement)
        self.code = keys.region

    def follow(self) -> None:
        """What this region's service does in the background: the rules and views, the bridge."""
        self.services.catch_up(self.services.case_record.recorder.max_notification_id())
        self.handovers.follow_moves()
        self.handovers.follow_feed()

    def obligations(self, patient: UUID) -> list:
        return [r for r in self.services.work_queue.select("patient_id = ?", [patient], 0, 1000)]


def deliver(sender: Region, receiver: Region) -> list[str]:
    after = receiver.handovers.applied_from(sender.code)
    return [receiver.handovers.receive(w) for w in sender.handovers.outbox(receiver.code, after)]


def sync(one: Region, other: Region) -> None:
    for _ in range(3):
        one.follow(), other.follow()
        deliver(one, other), deliver(other, one)


@pytest.fixture
def open_region(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    opened = []

    def make(code: str, keys: CrossRegionKeys, by_agreement=()) -> Region:
        pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
        clock = MovableClock(NOW)
        services = open_services(store_settings(store_kind, tmp_path / code, pg_url, SMD_REGION=code), clock=clock)
        opened.append(services)
        load_file(services.case_record, district(code, tmp_path))
        return Region(services, keys, clock, by_agreement)

    yield make
    for services in opened:
        services.close()


def linked(open_region, origin: str, destination: str, by_agreement=()) -> tuple[Region, Region]:
    keys = {origin: CrossRegionKeys.generate(origin), destination: CrossRegionKeys.generate(destination)}
    keys[origin].link(keys[destination].as_peer())
    keys[destination].link(keys[origin].as_peer())
    return open_region(origin, keys[origin]), open_region(destination, keys[destination], by_agreement)


def handed_over(a: Region, dest: Region) -> tuple[UUID, UUID]:
    """A patient registered in A moves to ``dest``'s first village; ``dest`` accepts."""
    patient, move = uuid4(), uuid4()
    a.send(
        HC,
        "patient.registered.v2",
        patient,
        {"name": NAME, "residence": VILLAGE, "birth_date": "1980-02-29", "household_region": A},
        days_ago=100,
    )
    a.send(
        COMMITTEE,
        "move.reported.v1",
        patient,
        {
            "move_id": str(move),
            "destination_region": dest.code,
            "destination_unit": f"{dest.code}-001-v01",
            "moving_on": "2026-11-15",
        },
    )
    hid = handover_id(A, patient, move)
    sync(a, dest)
    dest.handovers.answer(hid, accepted=True, by_agency=HC)
    sync(a, dest)
    assert a.handovers.handover(hid)["status"] == "accepted" == dest.handovers.handover(hid)["status"]
    return patient, hid


def care_in(dest: Region, patient: UUID) -> None:
    """What C's agencies record after the acceptance: one fact of every kind fed, and two not fed."""
    dest.send(
        HC,
        "visit.recorded.v1",
        patient,
        {"face_to_face": True, "risk_level": 3, "risk_class": "unstable"},
        0.09,
        "hc-staff-7",
    )
    dest.send(POLICE, "whereabouts.unknown-declared.v1", patient, {}, 0.08)
    dest.send(POLICE, "patient.located.v1", patient, {}, 0.07)
    incident = {"incident_id": str(uuid4()), "incident_kind": "causing_trouble", "severity": 2}
    dest.send(POLICE, "incident.reported.v1", patient, incident, 0.06)
    dest.send(HOSPITAL, "patient.admitted.v1", patient, {"hospital": "H", "admission_kind": "voluntary"}, 0.05)
    dest.send(HOSPITAL, "patient.discharged.v1", patient, {"discharge_plan": "SECRET PLAN TEXT"}, 0.04)
    dest.send(COMMITTEE, "refusal.recorded.v1", patient, {"refusal": "visits"}, 0.03)  # not fed


class TestTheFeed:
    def test_regions_of_one_city_feed_each_other_and_others_only_by_agreement(self) -> None:
        assert same_city(A, C) and not same_city(A, B)
        assert feeds(C, A) and not feeds(B, A) and feeds(B, A, by_agreement={A}) and not feeds(A, A)

    def test_after_acceptance_the_residence_region_feeds_what_the_household_region_may_see(self, open_region) -> None:
        a, c = linked(open_region, A, C)
        patient, hid = handed_over(a, c)
        before = {r.obligation_id for r in a.obligations(patient)}
        care_in(c, patient)
        sync(a, c)
        reported = a.file(patient).reported_by_region()
        assert [e["fact"] for e in reported] == ["risk", "lost", "located", "incident", "hospital", "hospital"]
        assert {e["region"] for e in reported} == {C} and {e["handover_id"] for e in reported} == {hid}
        risk = reported[0]
        assert (risk["by"], risk["reported_by"], risk["reported_staff"]) == (f"region:{C}", HC, "hc-staff-7")
        assert risk["key"].startswith(f"xr:{C}:")
        # A's rules opened nothing from B's facts (a level-3 visit there: no R1 here)
        assert {r.obligation_id for r in a.obligations(patient)} == before
        # no free text crossed: the discharge plan stays in C
        assert all("SECRET PLAN TEXT" not in str(e) for e in reported)

    def test_the_file_in_the_tracking_region_shows_each_reported_fact_to_the_kinds_that_see_its_group(
        self, open_region
    ) -> None:
        a, c = linked(open_region, A, C)
        patient, _ = handed_over(a, c)
        care_in(c, patient)
        sync(a, c)
        file = a.file(patient)
        health = visible_file(file, "health_center", HC, NOW, [])["reported_by_region"]
        assert [(e["fact"], e.get("risk_level")) for e in health][:2] == [("risk", 3), ("lost", None)]
        assert health[0] | {"risk_class": "unstable", "reported_by": HC, "region": C} == health[0]
        # the police see risk, lost and incidents here, not hospital stays: likewise reported
        police = [e["fact"] for e in visible_file(file, "police_station", POLICE, NOW, [])["reported_by_region"]]
        assert police == ["risk", "lost", "located", "incident"]
        # civil affairs sees none of those groups: no reported facts at all
        assert "reported_by_region" not in visible_file(file, "civil_affairs", CIVIL, NOW, [])

    def test_deregistration_there_is_reported_and_ends_the_feed(self, open_region) -> None:
        a, c = linked(open_region, A, C)
        patient, _ = handed_over(a, c)
        c.send(HC, "patient.deregistered.v1", patient, {"reason": "death"}, 0.05)
        sync(a, c)
        assert [e["fact"] for e in a.file(patient).reported_by_region()] == ["deregistered"]
        record = c.services.case_record.repository.get(dual_management_id(patient))
        assert record.tracking_region is None  # the feed ended with it

    def test_facts_recorded_before_acceptance_and_a_region_of_another_city_are_not_fed(self, open_region) -> None:
        a, b = linked(open_region, A, B)
        patient, _ = handed_over(a, b)
        care_in(b, patient)
        sync(a, b)
        assert a.file(patient).reported_by_region() == []
        assert b.handovers.outbox(A, 1) == []  # only the acceptance was sent

    def test_a_region_of_another_city_feeds_when_named_by_agreement(self, open_region) -> None:
        a, b = linked(open_region, A, B, by_agreement=(A,))
        patient, _ = handed_over(a, b)
        b.send(
            HC,
            "visit.recorded.v1",
            patient,
            {"face_to_face": True, "risk_level": 1, "risk_class": "basically_stable"},
            0.05,
        )
        sync(a, b)
        assert [(e["fact"], e["region"]) for e in a.file(patient).reported_by_region()] == [("risk", B)]

    def test_the_timeline_shows_reported_facts_by_group(self, open_region) -> None:
        from core.patient_read import timeline

        a, c = linked(open_region, A, C)
        patient, _ = handed_over(a, c)
        care_in(c, patient)
        sync(a, c)

        def reported(kind: str, agency: str) -> list[str]:
            items, _ = timeline(a.services.case_record, patient, kind, agency, limit=500)
            return [i["data"]["fact"] for i in items if i["type"] == "ReportedByRegion"]

        assert reported("health_center", HC) == ["risk", "lost", "located", "incident", "hospital", "hospital"]
        assert "risk" not in reported("civil_affairs", CIVIL)


class TestOverTheNatsLink:
    """The feed over the real link: two nats-servers (Debian's 2.9.10) in JetStream domains ra/rb,
    joined by a leaf node under the restricted cross-region account (tests/support/crossregion.py);
    B is in another city, fed by agreement."""

    def test_a_fact_recorded_in_b_after_acceptance_reaches_a_as_reported_by_b(self, two_regions) -> None:
        from tests.integration.test_handovers import move_to_b
        from tests.support.crossregion import run

        a, b = two_regions
        b.region.handovers.dual_management_regions = frozenset({A})

        async def story() -> None:
            await a.connect(), await b.connect()
            assert a.link is not None and b.link is not None
            patient, hid = move_to_b(a.region)
            assert await a.link.publish() == 1 and await b.pump(1) == ["applied"]
            b.region.handovers.answer(hid, accepted=True, by_agency=HC)
            visit = {"face_to_face": True, "risk_level": 3, "risk_class": "unstable"}
            b.region.send(HC, "visit.recorded.v1", patient, visit, days_ago=0.05)
            assert b.region.handovers.follow_feed() > 0
            assert await b.link.publish() == 2  # the acceptance, then the visit's risk
            assert await a.pump(2) == ["applied", "applied"]
            reported = a.region.file(patient).reported_by_region()
            assert [(e["fact"], e["region"], e["reported_by"]) for e in reported] == [("risk", B, HC)]
            await a.disconnect(), await b.disconnect()

        run(story())


class TestTheManagedElsewhereList:
    def test_the_tracking_region_lists_the_patient_with_the_latest_reported_facts_until_the_feed_ends(
        self, open_region
    ) -> None:
        from api.lists import row_of

        a, c = linked(open_region, A, C)
        patient, _ = handed_over(a, c)
        stays = uuid4()  # a patient of A's who never moved: on A's lists, never on this one
        a.send(
            HC,
            "patient.registered.v2",
            stays,
            {"name": "Stayhome Quill", "residence": VILLAGE, "birth_date": "1970-01-02", "household_region": A},
            days_ago=50,
        )
        a.send(HC, "visit.recorded.v1", stays, {"face_to_face": True, "risk_level": 3, "risk_class": "unstable"}, 1)
        care_in(c, patient)
        sync(a, c)
        a.follow()

        def members(name: str) -> list[UUID]:
            return [r.patient_id for r in a.services.lists.page(name, NOW, residences=[VILLAGE])]

        assert members("managed-elsewhere") == [patient]
        assert members("high-risk") == [stays]  # C's level-3 visit puts no moved-out patient on A's lists
        row = row_of(a.file(patient), "police_station", POLICE, NOW)
        # the latest of each kind (located after lost: one kind), oldest first; the police see no
        # hospital stays
        assert [(e["fact"], e["region"]) for e in row["reported_by_region"]] == [
            ("risk", C),
            ("located", C),
            ("incident", C),
        ]
        c.send(HC, "patient.deregistered.v1", patient, {"reason": "death"}, 0.01)
        sync(a, c)
        a.follow()
        assert members("managed-elsewhere") == []
