"""Writes within jurisdiction (issue 17, docs/decisions/014), on SQLite and on PostgreSQL.

An agency records a fact about a patient (or a suspected case) only if its jurisdiction covered
the residence (the place seen) on the fact's day or covers it today, in the registry as recorded
now. Every kind is refused outside its area, each documented exception is allowed, a late police
fact about a village that has since moved to the other station is accepted, and the refusal (403
``outside-jurisdiction``) tells the sender nothing about the patient: through the shared intake,
over HTTP, over NATS and in `smd import`.

The demo district (ops/demo_district.toml): cluster c1 (v01-v04) is hc-north's, police-east's
and committee-north's; cluster c2 (v05-v08) hc-south's and committee-south's, its v05 and v06
police-east's and v07, v08 police-west's, except that Red Kiln (v06) passes to police-west on
2026-07-01; cluster c3 (v09-v11) is hc-north's, police-west's and committee-west's; Reedmarsh
(990101-002) has one agency of each kind; the hospital, the disabled persons' federation and the
auditor are region-wide.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.problems import status_for
from core.case_record import Recorded
from core.intake import accept
from core.registry import load_file
from domain.access import NotAllowedToRecord
from domain.errors import DomainError, PatientNotFound
from domain.jurisdiction import OutsideJurisdiction
from domain.suspected_case import SuspectedCaseNotFound
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_door_refusals import Doors, doors  # noqa: F401 - the doors fixture
from tests.integration.test_door_refusals import envelope as hc_north_envelope
from tests.support.agency_client import envelope as agency_envelope
from tests.support.agency_client import envelope_json
from tests.support.stores import NOW

V01 = "990101-001-v01"  # hc-north, police-east, committee-north
V05 = "990101-001-v05"  # hc-south, police-east, committee-south
V06 = "990101-001-v06"  # Red Kiln: hc-south; police-east until 2026-06-30, police-west from 2026-07-01
V09 = "990101-001-v09"  # hc-north, police-west, committee-west
R01 = "990101-002-v01"  # Reedmarsh: hc-reedmarsh, police-reedmarsh, committee-reedmarsh
HOSPITAL, DPF, AUDITOR = "hospital-lantern-bay", "dpf-lantern-bay", "auditor-lantern-bay"

HIGH = {"face_to_face": True, "risk_level": 5, "risk_class": "unstable"}
LOW = {"face_to_face": True, "risk_level": 1, "risk_class": "basically_stable"}


def cst(day: str, hour: int = 10) -> datetime:
    """A local (UTC+8) instant on ``day``."""
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+08:00")


class Desk:
    """Agencies' systems sending envelopes through the shared intake (HTTP, NATS and the import
    all call ``core.intake.accept``), on the test clock (NOW = 2026-11-20)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def send(
        self,
        agency: str,
        event_type: str,
        subject: UUID,
        data: dict[str, Any],
        *,
        occurred: datetime = NOW - timedelta(hours=1),
        message_id: UUID | None = None,
    ) -> Recorded:
        doc = agency_envelope(
            agency, f"cn.smd.{event_type}.v1", subject, data, occurred=occurred, message_id=message_id, actor=None
        )
        return accept(self.services.case_record, self.services.registry, doc, agency, "test")

    def register(self, residence: str, agency: str, *, occurred: datetime = NOW - timedelta(days=200)) -> UUID:
        patient = uuid4()
        data = {"name": "Test Person", "residence": residence, "diagnosis": "schizophrenia"}
        self.send(agency, "patient.registered", patient, data, occurred=occurred)
        return patient

    def head(self) -> int:
        return self.services.case_record.recorder.max_notification_id() or 0

    def refused(
        self, agency: str, event_type: str, subject: UUID, data: dict[str, Any], **kw: Any
    ) -> OutsideJurisdiction:
        """Send; it must be refused outside-jurisdiction (403) with nothing stored."""
        head, events = self.head(), len(self.services.case_record.recorder.select_events(subject))
        with pytest.raises(OutsideJurisdiction) as refused:
            self.send(agency, event_type, subject, data, **kw)
        assert (refused.value.code, status_for(refused.value.code)) == ("outside-jurisdiction", 403)
        assert self.head() == head, "nothing is stored"
        assert len(self.services.case_record.recorder.select_events(subject)) == events
        return refused.value

    def load(self, tmp_path: Path, toml: str) -> None:
        """Record a registry change on top of the demo district."""
        path = tmp_path / f"change-{uuid4().hex[:8]}.toml"
        path.write_text('region = "990101"\n' + toml)
        assert load_file(self.services.case_record, path) > 0


@pytest.fixture
def desk(services: Services) -> Desk:
    load_file(services.case_record, DEMO_DISTRICT)
    return Desk(services)


def says_nothing_about_the_patient(detail: str, patient: UUID, *places: str) -> None:
    """No residence, no agency but the sender's, no patient id."""
    for hidden in (str(patient), *places, "hc-north", "police-east", "committee-north", "gov-willowbrook"):
        assert hidden not in detail, (hidden, detail)


# -- every kind, refused outside its area; the same write from inside is recorded ----------------

OUTSIDE_AND_INSIDE = [
    # (outsider, insider for V01, type, data)
    ("hc-south", "hc-north", "visit.recorded", HIGH),
    ("hc-reedmarsh", "hc-north", "risk.assessed", {"risk_level": 4, "risk_class": "unstable"}),
    ("committee-south", "committee-north", "refusal.recorded", {"refusal": "visits"}),
    (
        "committee-reedmarsh",
        "committee-north",
        "care-team-contact.recorded",
        {"role": "community_worker", "mode": "phone", "outcome": "reached"},
    ),
    ("police-west", "police-east", "patient.taken-under-management", {}),
    ("police-reedmarsh", "police-east", "whereabouts.unknown-declared", {}),
    ("civil-reedmarsh", "civil-willowbrook", "aid.applied", {"aid_type": "minimum_living_allowance"}),
    (
        "gov-reedmarsh",
        "gov-willowbrook",
        "review.recorded",
        {"tier": "township", "risk_level": 1, "risk_class": "basically_stable"},
    ),
]


class TestEachKindRecordsOnlyWhereItWorks:
    @pytest.mark.parametrize(
        ("outsider", "insider", "event_type", "data"), OUTSIDE_AND_INSIDE, ids=[r[0] for r in OUTSIDE_AND_INSIDE]
    )
    def test_a_write_for_a_patient_outside_the_agencys_area_is_refused_and_from_inside_recorded(
        self, desk: Desk, outsider: str, insider: str, event_type: str, data: dict[str, Any]
    ) -> None:
        patient = desk.register(V01, "hc-north")
        refused = desk.refused(outsider, event_type, patient, data)
        assert refused.detail.startswith(f"cn.smd.{event_type}.v1 refused: agency {outsider}'s jurisdiction")
        says_nothing_about_the_patient(refused.detail, patient, V01)
        assert desk.send(insider, event_type, patient, data).outcome == "recorded"

    def test_a_registration_in_another_agencys_village_is_refused_naming_only_the_residence_sent(
        self, desk: Desk
    ) -> None:
        patient = uuid4()
        data = {"name": "Test Person", "residence": V01}
        refused = desk.refused(
            "hc-south", "patient.registered", patient, data
        )  # issue 17: hc-south, hc-north's village
        assert (
            "$.data.residence is '990101-001-v01', which agency hc-south's jurisdiction did not cover" in refused.detail
        )
        with pytest.raises(PatientNotFound):
            desk.services.case_record.patient(patient)
        assert desk.send("hc-north", "patient.registered", patient, data).outcome == "recorded"

    def test_civil_affairs_registers_an_unidentified_person_only_in_its_township(self, desk: Desk) -> None:
        data = {"label": "man at the bus station", "residence": V01}
        desk.refused("civil-reedmarsh", "patient.registered-unidentified", uuid4(), data)
        assert desk.send("civil-willowbrook", "patient.registered-unidentified", uuid4(), data).outcome == "recorded"

    def test_a_suspected_case_is_reported_and_assessed_only_where_the_person_was_seen(self, desk: Desk) -> None:
        case = uuid4()
        report = {"observed": "shouts at night", "seen_in": V01}
        refused = desk.refused("committee-south", "suspected-case.reported", case, report)
        assert "$.data.seen_in is '990101-001-v01'" in refused.detail
        with pytest.raises(SuspectedCaseNotFound):
            desk.services.case_record.suspected_case(case)
        desk.send("committee-north", "suspected-case.reported", case, report)
        assessed = {"outcome": "no_severe_disorder"}
        refused = desk.refused("hc-south", "suspected-case.assessed", case, assessed)
        says_nothing_about_the_patient(refused.detail, case, V01)
        assert desk.send("hc-north", "suspected-case.assessed", case, assessed).outcome == "recorded"

    def test_a_hospital_and_a_federation_the_registry_narrows_to_one_township_are_refused_elsewhere(
        self, desk: Desk, tmp_path: Path
    ) -> None:
        desk.load(
            tmp_path,
            """
[[agencies]]
id = "hospital-lantern-bay"
kind = "psychiatric_hospital"
name = "Lantern Bay Psychiatric Hospital"
jurisdiction = ["990101-002"]
effective_from = 2026-01-01

[[agencies]]
id = "dpf-lantern-bay"
kind = "disabled_persons_federation"
name = "Lantern Bay Disabled Persons' Federation"
jurisdiction = ["990101-002"]
effective_from = 2026-01-01
""",
        )
        willowbrook, reedmarsh = desk.register(V01, "hc-north"), desk.register(R01, "hc-reedmarsh")
        certificate = {"aid_type": "disability_certificate"}
        desk.refused(DPF, "aid.applied", willowbrook, certificate)
        assert desk.send(DPF, "aid.applied", reedmarsh, certificate).outcome == "recorded"
        city = {"tier": "city", "risk_level": 3, "risk_class": "unstable"}
        desk.refused(HOSPITAL, "review.recorded", willowbrook, city)  # not its patient
        desk.refused(HOSPITAL, "patient.discharged", willowbrook, {})
        assert desk.send(HOSPITAL, "review.recorded", reedmarsh, city).outcome == "recorded"

    def test_the_auditor_records_nothing_anywhere(self, desk: Desk) -> None:
        patient = desk.register(V01, "hc-north")
        with pytest.raises(NotAllowedToRecord):  # its kind first: not a question of where
            desk.send(AUDITOR, "visit.recorded", patient, LOW)


class TestTheRefusalRevealsNothing:
    def test_two_patients_in_different_villages_one_deregistered_get_the_same_refusal(self, desk: Desk) -> None:
        active, gone = desk.register(V01, "hc-north"), desk.register(V09, "hc-north")
        desk.send("hc-north", "patient.deregistered", gone, {"reason": "death"}, occurred=NOW - timedelta(days=3))
        details = {
            desk.refused("hc-reedmarsh", "visit.recorded", p, HIGH).detail.replace(str(p), "") for p in (active, gone)
        }
        assert len(details) == 1  # not "after the patient left the register", not another area's name
        says_nothing_about_the_patient(details.pop(), active, V01, V09, "death", "deregist")

    def test_an_outsider_learns_nothing_from_what_the_file_holds(self, desk: Desk) -> None:
        patient = desk.register(V01, "hc-north")
        # an answer to no move, a response to no incident: refused for where, not for what is (not) on file
        desk.refused("hc-reedmarsh", "handover.accepted", patient, {"move_id": str(uuid4())})
        desk.refused(
            "police-reedmarsh", "incident.police-responded", patient, {"incident_id": str(uuid4()), "action": "x"}
        )

    def test_a_message_recorded_before_the_jurisdiction_changed_is_still_answered_duplicate(
        self, desk: Desk, tmp_path: Path
    ) -> None:
        patient = desk.register(V06, "hc-south")
        message = uuid4()
        june = cst("2026-06-20")  # police-east's then; police-west's today: covered now
        assert desk.send(
            "police-west", "patient.taken-under-management", patient, {}, occurred=june, message_id=message
        ).is_new
        desk.load(  # Red Kiln back to police-east from 2026-11-01: police-west covered it neither then nor now
            tmp_path,
            """
[[agencies]]
id = "police-east"
kind = "police_station"
name = "Willowbrook East Police Station"
jurisdiction = ["990101-001-c1", "990101-001-v05", "990101-001-v06", "990101-001-m1"]
effective_from = 2026-11-01

[[agencies]]
id = "police-west"
kind = "police_station"
name = "Willowbrook West Police Station"
jurisdiction = ["990101-001-c3", "990101-001-v07", "990101-001-v08", "990101-001-m2"]
effective_from = 2026-11-01
""",
        )
        again = desk.send(
            "police-west", "patient.taken-under-management", patient, {}, occurred=june, message_id=message
        )
        assert again.outcome == "duplicate"
        desk.refused("police-west", "patient.released-from-management", patient, {}, occurred=june)


# -- the documented exceptions --------------------------------------------------------------------


class TestTheExceptions:
    def test_the_hospital_registers_diagnoses_and_admits_anywhere_then_records_for_its_own_patients(
        self, desk: Desk, tmp_path: Path
    ) -> None:
        desk.load(  # a hospital the registry gives one township only: the exception is what remains
            tmp_path,
            """
[[agencies]]
id = "hospital-lantern-bay"
kind = "psychiatric_hospital"
name = "Lantern Bay Psychiatric Hospital"
jurisdiction = ["990101-002"]
effective_from = 2026-01-01
""",
        )
        registered = desk.register(V01, HOSPITAL)  # the new diagnosis it pushes to the township
        admitted, diagnosed, stranger = (desk.register(v, "hc-south") for v in (V05, V06, V05))
        city = {"tier": "city", "risk_level": 3, "risk_class": "unstable"}
        stay = {"hospital": "Lantern Bay Psychiatric Hospital", "admission_kind": "voluntary"}
        assert desk.send(HOSPITAL, "patient.admitted", admitted, stay, occurred=NOW - timedelta(days=20)).is_new
        assert desk.send(HOSPITAL, "patient.discharged", admitted, {}).is_new  # its own: it admitted them
        assert desk.send(HOSPITAL, "diagnosis.recorded", diagnosed, {"diagnosis": "bipolar_disorder"}).is_new
        assert desk.send(HOSPITAL, "review.recorded", diagnosed, city).is_new  # its own: it diagnosed them
        assert desk.send(HOSPITAL, "diagnosis.revoked", registered, {"reason": "reassessed"}).is_new  # registered
        desk.refused(HOSPITAL, "review.recorded", stranger, city)
        desk.refused(HOSPITAL, "patient.discharged", stranger, {})

    def test_a_region_wide_hospital_records_for_every_patient(self, desk: Desk) -> None:
        patient = desk.register(R01, "hc-reedmarsh")
        city = {"tier": "city", "risk_level": 3, "risk_class": "unstable"}
        assert desk.send(HOSPITAL, "review.recorded", patient, city).is_new  # its jurisdiction is the region

    def test_a_police_station_reports_a_patient_found_and_an_incident_where_it_happened(self, desk: Desk) -> None:
        patient = desk.register(V01, "hc-north")  # police-east's
        assert desk.send("police-west", "patient.located", patient, {}).is_new
        ours, theirs = str(uuid4()), str(uuid4())
        incident = {"incident_kind": "causing_trouble", "severity": 2}
        assert desk.send("police-west", "incident.reported", patient, {"incident_id": ours, **incident}).is_new
        assert desk.send("police-east", "incident.reported", patient, {"incident_id": theirs, **incident}).is_new
        responded = {"incident_id": ours, "action": "attended"}
        assert desk.send("police-west", "incident.police-responded", patient, responded).is_new  # the one it reported
        desk.refused("police-west", "incident.police-responded", patient, {"incident_id": theirs, "action": "x"})
        # what only the station where the patient lives knows or must do stays its own
        desk.refused("police-west", "whereabouts.unknown-declared", patient, {})
        desk.refused("police-west", "patient.taken-under-management", patient, {})

    def test_the_destination_of_a_move_inside_the_region_reports_it_and_answers_the_handover(self, desk: Desk) -> None:
        patient = desk.register(V01, "hc-north")
        move = str(uuid4())
        to_v05 = {"move_id": move, "destination_region": "990101", "destination_unit": V05, "moving_on": "2026-11-15"}
        assert desk.send("committee-south", "move.reported", patient, to_v05).is_new
        desk.refused("hc-reedmarsh", "handover.accepted", patient, {"move_id": move})  # not the destination
        elsewhere = {"move_id": str(uuid4()), "destination_region": "990202", "moving_on": "2026-11-15"}
        desk.refused("hc-south", "move.reported", patient, elsewhere)  # another region: the origin reports it
        to_v09 = {**to_v05, "move_id": str(uuid4()), "destination_unit": V09}
        desk.refused("hc-south", "move.reported", patient, to_v09)  # not its village either
        assert desk.send("hc-north", "move.reported", patient, elsewhere).is_new
        # accepted: the residence is V05 from now on (docs/decisions/042), hc-south's to record
        assert desk.send("hc-south", "handover.accepted", patient, {"move_id": move}).is_new
        assert desk.send("hc-south", "move.reported", patient, to_v09).is_new

    def test_a_region_wide_federation_and_a_region_level_governance_center_record_everywhere(
        self, desk: Desk, tmp_path: Path
    ) -> None:
        willowbrook, reedmarsh = desk.register(V01, "hc-north"), desk.register(R01, "hc-reedmarsh")
        certificate = {"aid_type": "disability_certificate"}
        for patient in (willowbrook, reedmarsh):  # the demo's federation covers the region
            assert desk.send(DPF, "aid.applied", patient, certificate).is_new
        desk.load(  # from October one governance center for the whole region
            tmp_path,
            """
effective_from = 2026-10-01

[[agencies]]
id = "gov-willowbrook"
kind = "governance_center"
name = "Willowbrook Governance Center"
jurisdiction = []

[[agencies]]
id = "gov-reedmarsh"
kind = "governance_center"
name = "Reedmarsh Governance Center"
jurisdiction = []

[[agencies]]
id = "gov-lantern-bay"
kind = "governance_center"
name = "Lantern Bay Governance Center"
jurisdiction = ["990101"]
""",
        )
        incident = {"incident_kind": "minor_trouble", "severity": 1}
        ids = {}
        for patient, police in ((willowbrook, "police-east"), (reedmarsh, "police-reedmarsh")):
            ids[patient] = str(uuid4())
            desk.send(
                police,
                "incident.reported",
                patient,
                {"incident_id": ids[patient], **incident},
                occurred=cst("2026-09-20"),
            )
            reviewed = {"incident_id": ids[patient], "outcome": "reviewed"}
            assert desk.send("gov-lantern-bay", "incident.reviewed", patient, reviewed).is_new
        late = {"incident_id": ids[willowbrook], "outcome": "reviewed in September, sent late"}
        assert desk.send("gov-willowbrook", "incident.reviewed", willowbrook, late, occurred=cst("2026-09-25")).is_new
        desk.refused("gov-willowbrook", "incident.reviewed", willowbrook, late)  # its area no more


# -- dates: the fact's day, or today ----------------------------------------------------------------


class TestTheFactsDayOrToday:
    def test_a_late_police_fact_about_a_village_that_has_since_moved_to_the_other_station_is_accepted(
        self, desk: Desk
    ) -> None:
        patient = desk.register(V06, "hc-south")
        before, after = cst("2026-06-20"), cst("2026-07-05")
        registry = desk.services.registry  # the registry's own dates, not the test's
        assert registry.responsible(V06, "police_station", date(2026, 6, 30)) == "police-east"
        assert registry.responsible(V06, "police_station", date(2026, 7, 1)) == "police-west"
        # police-east's batch, five months late (NOW is 2026-11-20): Red Kiln was its village then
        assert desk.send("police-east", "patient.taken-under-management", patient, {}, occurred=before).is_new
        # after the change, the east station has no say in Red Kiln
        desk.refused("police-east", "patient.released-from-management", patient, {}, occurred=after)
        # the west station covers it now: its record of an earlier day is accepted
        assert desk.send("police-west", "patient.released-from-management", patient, {}, occurred=before).is_new
        assert desk.send("police-west", "patient.taken-under-management", patient, {}, occurred=after).is_new

    def test_an_agency_defined_after_the_facts_day_records_it_when_it_covers_the_village_today(
        self, desk: Desk
    ) -> None:
        # the demo's agencies exist from 2025-01-01: a ledger row of 2019 is covered today
        occurred = cst("2019-05-04")
        patient = desk.register(V01, "hc-north", occurred=occurred)
        assert desk.services.case_record.patient(patient).registered_at == occurred


# -- the doors: HTTP 403 problem, NATS rejection with its reason, `smd import` refused line -----------


async def test_over_http_a_write_outside_jurisdiction_is_a_403_problem_that_names_no_patient(open_store) -> None:
    from core.case_record import utc_now

    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in ("hc-north", "hc-south")}
    patient = uuid4()
    occurred = datetime.now(UTC) - timedelta(hours=1)

    def doc(source: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        return envelope_json(source, f"cn.smd.{event_type}.v1", patient, data, occurred=occurred, actor=None)

    async with AsyncTestClient(create_app(services)) as client:

        async def post(source: str, event_type: str, data: dict[str, Any]):
            body = doc(source, event_type, data)
            return await client.post("/v1/events", json=body, headers={"Authorization": f"Bearer {keys[source]}"})

        refused = await post("hc-south", "patient.registered", {"name": "Test Person", "residence": V01})
        assert refused.status_code == 403, refused.text
        assert (
            await post("hc-north", "patient.registered", {"name": "Test Person", "residence": V01})
        ).status_code == 201
        head = services.case_record.recorder.max_notification_id()
        r = await post("hc-south", "visit.recorded", HIGH)  # issue 17: a level-5 visit from the other area
        assert services.case_record.recorder.max_notification_id() == head
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith("/outside-jurisdiction") and problem["status"] == 403
    assert problem["title"] == "Outside the agency's jurisdiction: facts are recorded only where the agency works."
    says_nothing_about_the_patient(problem["detail"], patient, V01)
    assert "agency hc-south's jurisdiction did not cover this subject's place" in problem["detail"]
    assert refused.json()["type"].endswith("/outside-jurisdiction") and "$.data.residence" in refused.json()["detail"]


@pytest.mark.integration
async def test_over_nats_and_in_smd_import_a_write_outside_jurisdiction_is_refused_with_its_reason(
    doors: Doors,  # noqa: F811 - the fixture imported above
) -> None:
    # hc-south's patient in its village; hc-north's systems send for it
    patient = uuid4()
    registration = hc_north_envelope("patient.registered", patient, {"name": "Test Person", "residence": V05})
    registration["source"] = "hc-south"
    raw = json.dumps(registration).encode()
    accept(doors.services.case_record, doors.services.registry, raw, "hc-south", "test")
    visit = lambda: hc_north_envelope("visit.recorded", patient, HIGH)  # noqa: E731
    elsewhere = lambda: hc_north_envelope("patient.registered", uuid4(), {"name": "Test Person", "residence": V05})  # noqa: E731
    for door in ("NATS", "import"):
        for doc in (visit(), elsewhere()):
            head, events = await doors.settled_head(), doors.events_of(patient)
            reason, detail = await doors.refused(door, doc)
            assert reason == "outside-jurisdiction", (door, reason, detail)
            assert "agency hc-north's jurisdiction did not cover" in detail or "$.data.residence" in detail, detail
            says_nothing_about_the_patient(detail.replace("hc-north's", ""), patient, "990101-001-v01")
            assert doors.head() == head and doors.events_of(patient) == events, door
        await doors.valid_patient_still_gets_r1(door)
    r = await doors.http(visit())
    assert r.status_code == 403 and r.json()["type"].endswith("/outside-jurisdiction"), r.text


def test_the_refusal_is_a_domain_error_the_doors_turn_into_their_answers() -> None:
    assert issubclass(OutsideJurisdiction, DomainError)
