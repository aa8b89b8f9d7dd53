"""Writes within jurisdiction, the pure decision (docs/decisions/014); the stores and the doors
are tests/integration/test_writes_within_jurisdiction.py."""

from __future__ import annotations

from datetime import date
from uuid import uuid4

import pytest

from api.problems import status_for
from core.registry import read_registry_file
from domain.jurisdiction import (
    OutsideJurisdiction,
    Subject,
    Write,
    check_may_write,
    covers,
    covers_then_or_now,
    may_write,
)
from domain.registry import AgencyKind, AgencyVersion, RegistryState
from ops.data_files import DEMO_DISTRICT

JUNE, JULY, TODAY = date(2026, 6, 20), date(2026, 7, 5), date(2026, 11, 20)
V01, V06, R01 = "990101-001-v01", "990101-001-v06", "990101-002-v01"


@pytest.fixture(scope="module")
def demo() -> RegistryState:
    desired = read_registry_file(DEMO_DISTRICT)
    return RegistryState.of(desired.region, [*desired.org_units, *desired.agencies])


def write(agency: str, kind: AgencyKind, event_type: str, on: date = TODAY, **kw) -> Write:
    return Write(agency, kind, f"cn.smd.{event_type}.v1", on, TODAY, **kw)


class TestCovers:
    def test_an_agency_covers_the_units_under_its_jurisdiction(self, demo) -> None:
        assert covers(demo, "hc-north", V01, TODAY)  # through its cluster c1
        assert covers(demo, "hospital-lantern-bay", R01, TODAY)  # through the region
        assert not covers(demo, "hc-south", V01, TODAY)
        assert not covers(demo, "hc-north", R01, TODAY)

    def test_a_village_that_changed_station_is_covered_by_each_on_its_own_days(self, demo) -> None:
        assert covers(demo, "police-east", V06, JUNE) and not covers(demo, "police-east", V06, JULY)
        assert covers(demo, "police-west", V06, JULY) and not covers(demo, "police-west", V06, JUNE)
        assert covers_then_or_now(demo, "police-east", V06, JUNE, TODAY)  # the late batch
        assert covers_then_or_now(demo, "police-west", V06, JUNE, TODAY)  # covers it now
        assert not covers_then_or_now(demo, "police-east", V06, JULY, TODAY)

    def test_before_the_registry_begins_and_for_unknown_units_or_agencies_nothing_is_covered(self, demo) -> None:
        assert not covers(demo, "hc-north", V01, date(2019, 1, 1))
        assert not covers(demo, "hc-north", "990101-009-v99", TODAY)
        assert not covers(demo, "hc-nowhere", V01, TODAY)


class TestTheDecision:
    def test_a_subject_not_given_is_decided_by_the_place_in_the_data(self, demo) -> None:
        ours = write("hc-north", AgencyKind.HEALTH_CENTER, "patient.registered", place_in_data=V01)
        theirs = write("hc-south", AgencyKind.HEALTH_CENTER, "patient.registered", place_in_data=V01)
        assert may_write(demo, ours, None) and not may_write(demo, theirs, None)

    def test_the_refusal_names_only_what_the_sender_sent(self, demo) -> None:
        with pytest.raises(OutsideJurisdiction) as about_a_patient:
            check_may_write(demo, write("hc-south", AgencyKind.HEALTH_CENTER, "visit.recorded"), Subject(V01))
        assert V01 not in about_a_patient.value.detail and "hc-north" not in about_a_patient.value.detail
        assert status_for(about_a_patient.value.code) == 403
        with pytest.raises(OutsideJurisdiction, match=r"\$\.data\.residence is '990101-001-v01'"):
            check_may_write(
                demo, write("hc-south", AgencyKind.HEALTH_CENTER, "patient.registered", place_in_data=V01), None
            )

    def test_the_hospital_is_let_through_for_its_own_patients_only_beyond_its_own_acts(self, demo) -> None:
        hospital = AgencyKind.PSYCHIATRIC_HOSPITAL
        one_township = frozenset({"990101-002"})
        narrowed = demo.with_change(
            AgencyVersion("hospital-lantern-bay", hospital, "H", one_township, date(2026, 1, 1))
        )
        admit = write("hospital-lantern-bay", hospital, "patient.admitted")
        discharge = write("hospital-lantern-bay", hospital, "patient.discharged")
        assert may_write(narrowed, admit, Subject(V01))
        assert not may_write(narrowed, discharge, Subject(V01))
        assert may_write(narrowed, discharge, Subject(V01, own_patient_of=frozenset({"hospital-lantern-bay"})))

    def test_a_police_response_is_let_through_for_the_station_that_reported_the_incident(self, demo) -> None:
        incident = uuid4()
        subject = Subject(V01, incident_reporters={incident: frozenset({"police-west"})})
        police = AgencyKind.POLICE_STATION
        assert may_write(demo, write("police-west", police, "incident.police-responded", incident_id=incident), subject)
        other = write("police-west", police, "incident.police-responded", incident_id=uuid4())
        assert not may_write(demo, other, subject)
        assert may_write(demo, write("police-west", police, "patient.located"), Subject(V01))
        assert not may_write(demo, write("police-west", police, "whereabouts.unknown-declared"), Subject(V01))

    def test_the_destination_of_a_move_reports_it_and_answers_for_it(self, demo) -> None:
        move = uuid4()
        hc = AgencyKind.HEALTH_CENTER
        report = write("hc-south", hc, "move.reported", destination_unit="990101-001-v05")
        assert may_write(demo, report, Subject(V01))
        answer = write("hc-south", hc, "handover.accepted", move_id=move)
        assert may_write(demo, answer, Subject(V01, move_destinations={move: "990101-001-v05"}))
        assert not may_write(demo, answer, Subject(V01, move_destinations={move: "990101-001-v09"}))
        assert not may_write(demo, write("hc-south", hc, "move.reported"), Subject(V01))  # another region
