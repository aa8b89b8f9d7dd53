"""The read filter against a table written by hand from DESIGN.md section 4 and
docs/decisions/021 (it never reads the module's own table): every kind, every field."""

from __future__ import annotations

import pytest

from domain.read_filter import FIELDS, filter_fact_data, filter_file, may_open, sees_fact

KINDS = (
    "health_center",
    "police_station",
    "civil_affairs",
    "committee",
    "psychiatric_hospital",
    "governance_center",
    "disabled_persons_federation",
    "auditor",
)

# Y: seen; M: seen masked; O: only the caller's own items; -: absent.
#                              hc  pol civ com hos gov dpf aud
EXPECTED = """
registration                   Y   Y   Y   Y   Y   Y   Y   Y
name                           Y   Y   Y   Y   Y   Y   Y   Y
id_number                      Y   Y   Y   M   Y   -   Y   Y
phone                          Y   Y   Y   -   Y   -   -   Y
address                        Y   Y   Y   Y   Y   -   -   Y
residence                      Y   Y   Y   Y   Y   Y   Y   Y
provisional_identity           Y   Y   Y   -   Y   -   -   Y
circumstances                  Y   -   Y   Y   -   -   -   Y
confinement                    Y   -   -   Y   -   -   -   Y
diagnosis                      Y   -   -   -   Y   -   -   Y
risk                           Y   Y   -   -   Y   Y   -   Y
review                         Y   -   -   -   Y   Y   -   Y
visit_schedule                 Y   -   -   Y   -   -   -   Y
medication                     Y   -   -   -   Y   -   -   Y
hospital                       Y   -   -   -   Y   -   -   Y
guardian                       Y   Y   Y   Y   -   -   -   Y
guardian_exists                Y   Y   Y   Y   -   Y   -   Y
agreement                      Y   -   Y   Y   -   -   -   Y
care_team                      Y   -   -   Y   -   -   -   Y
care_team_contacts             Y   -   -   Y   -   -   -   Y
aid                            Y   -   Y   -   -   -   -   Y
aid_exists                     Y   -   Y   -   -   Y   -   Y
disability                     Y   -   Y   -   -   -   Y   Y
incidents                      Y   Y   -   -   -   Y   -   Y
police_management              Y   Y   -   -   -   -   -   Y
moves                          Y   Y   -   Y   -   -   -   Y
refusals                       Y   -   -   Y   -   -   -   Y
lost                           Y   Y   -   -   -   Y   -   Y
focus                          Y   -   -   -   -   Y   -   Y
suspected_case                 Y   -   -   -   -   -   -   Y
obligations                    Y   O   O   O   O   Y   O   Y
"""

TABLE = {line.split()[0]: dict(zip(KINDS, line.split()[1:], strict=True)) for line in EXPECTED.strip().splitlines()}

ID_NUMBER = "110101199003071234"
ME, OTHER = "me-agency", "other-agency"


def marked_file() -> dict:
    """A file whose every field holds a marker naming it."""
    file: dict = {f: f"marker-{f}" for f in FIELDS}
    file["id_number"] = ID_NUMBER
    file["obligations"] = [{"assignee": ME, "id": "mine"}, {"assignee": OTHER, "id": "theirs"}]
    return file


def test_the_hand_written_table_names_every_field_of_the_file() -> None:
    assert list(TABLE) == list(FIELDS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("field", list(TABLE))
def test_each_kind_sees_each_field_exactly_as_the_table_says(kind: str, field: str) -> None:
    seen = filter_file(kind, ME, marked_file())
    expected = TABLE[field][kind]
    if expected == "-":
        assert field not in seen
    elif expected == "Y":
        assert seen[field] == marked_file()[field]
    elif expected == "M":
        assert seen[field] == "110*************34"
        assert ID_NUMBER not in str(seen)
    elif expected == "O":
        assert seen[field] == [{"assignee": ME, "id": "mine"}]


# kind × fact type: Y in the timeline, - absent.
#                                  hc  pol civ com hos gov dpf aud
EXPECTED_FACTS = """
smd.PatientRegistered              Y   Y   Y   Y   Y   Y   Y   Y
smd.VisitRecorded                  Y   Y   -   Y   Y   Y   -   Y
smd.VisitMissed                    Y   -   -   Y   -   -   -   Y
smd.RiskAssessed                   Y   Y   -   -   Y   Y   -   Y
smd.DiagnosisRecorded              Y   -   -   -   Y   -   -   Y
smd.MedicationDispensed            Y   -   -   -   Y   -   -   Y
smd.AdherenceRecorded              Y   -   -   -   Y   -   -   Y
smd.HospitalStayRecorded           Y   -   -   -   Y   -   -   Y
smd.GuardianRecorded               Y   Y   Y   Y   -   -   -   Y
smd.IncidentReported               Y   Y   -   -   -   Y   -   Y
smd.IncidentReviewed               Y   Y   -   -   -   Y   -   Y
smd.WhereaboutsDeclared            Y   Y   -   -   -   Y   -   Y
smd.ReviewRecorded                 Y   -   -   -   Y   Y   -   Y
smd.CareTeamContactRecorded        Y   -   -   Y   -   -   -   Y
smd.AidGranted                     Y   -   Y   -   -   -   -   Y
smd.CircumstancesRecorded          Y   -   Y   Y   -   -   -   Y
smd.LostToFollowUp                 Y   Y   -   -   -   Y   -   Y
smd.SomethingNotKnownToTheFilter   -   -   -   -   -   -   -   -
"""


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("line", EXPECTED_FACTS.strip().splitlines())
def test_each_kind_sees_each_fact_type_exactly_as_the_table_says(kind: str, line: str) -> None:
    topic, *marks = line.split()
    assert sees_fact(kind, topic, {}) is (dict(zip(KINDS, marks, strict=True))[kind] == "Y")


@pytest.mark.parametrize(("kind", "seen"), [("disabled_persons_federation", True), ("governance_center", False)])
def test_a_disability_certificate_grant_is_seen_by_the_federation_but_not_other_aid(kind: str, seen: bool) -> None:
    assert sees_fact(kind, "smd.AidGranted", {"aid_type": "disability_certificate"}) is seen
    assert sees_fact(kind, "smd.AidGranted", {"aid_type": "minimum_living_allowance"}) is False


def test_a_registration_seen_by_the_police_has_no_diagnosis_and_by_a_committee_a_masked_number() -> None:
    data = {"name": "N", "id_number": ID_NUMBER, "phone": "P", "residence": "v", "diagnosis": "D"}
    assert filter_fact_data("police_station", "smd.PatientRegistered", data) == {
        "name": "N",
        "id_number": ID_NUMBER,
        "phone": "P",
        "residence": "v",
    }
    assert filter_fact_data("committee", "smd.PatientRegistered", data) == {
        "name": "N",
        "id_number": "110*************34",
        "residence": "v",
    }


def test_a_visit_seen_by_a_committee_keeps_its_kind_but_not_its_risk_level_and_by_the_police_the_reverse() -> None:
    data = {"face_to_face": True, "joint": False, "risk_level": 4, "risk_class": "unstable"}
    assert filter_fact_data("committee", "smd.VisitRecorded", data) == {"face_to_face": True, "joint": False}
    assert filter_fact_data("police_station", "smd.VisitRecorded", data) == {"risk_level": 4, "risk_class": "unstable"}


@pytest.mark.parametrize("kind", KINDS)
def test_who_may_open_a_file(kind: str) -> None:
    if kind == "auditor":
        assert may_open(kind, covered_today=False, own_patient=False)
    elif kind == "psychiatric_hospital":
        assert may_open(kind, covered_today=True, own_patient=True)
        assert not may_open(kind, covered_today=True, own_patient=False)
    else:
        assert may_open(kind, covered_today=True, own_patient=False)
        assert not may_open(kind, covered_today=False, own_patient=True)


@pytest.mark.parametrize(("kind", "seen"), [("civil_affairs", False), ("psychiatric_hospital", True)])
def test_clinical_aid_is_seen_with_medication_not_with_aid(kind: str, seen: bool) -> None:
    assert sees_fact(kind, "smd.AidGranted", {"aid_type": "long_acting_injection_coverage"}) is seen


def test_every_fact_type_of_a_patient_is_classified_for_the_timelines() -> None:
    """A fact type a timeline shows has a group; one none shows says why: a new type is never
    hidden, or shown, by forgetting it (``smd.ResidenceChanged`` once was)."""
    from domain.read_filter import FACT_GROUP, HIDDEN_FROM_TIMELINES
    from projections.patient_lists import PATIENT_TOPICS

    assert sorted(t for t in PATIENT_TOPICS if t not in FACT_GROUP and t not in HIDDEN_FROM_TIMELINES) == []
    assert not set(FACT_GROUP) & set(HIDDEN_FROM_TIMELINES)
