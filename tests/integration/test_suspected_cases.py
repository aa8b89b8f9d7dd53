"""Suspected cases (疑似患者): reported, assessed, then registered as a patient (linked both ways) or
dismissed; each step by the kinds allowed to, with errors that say what to fix, on both stores."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from core.contract import ContractError
from core.intake import accept
from core.registry import load_file
from domain.access import NotAllowedToRecord
from domain.errors import DomainError
from domain.patient_file import FactAfterDeregistration
from domain.personal import CaseReporter, SuspectedPerson
from domain.suspected_case import (
    AssessmentOutcome,
    CaseStatus,
    DatedBeforeReport,
    PatientToLinkNotFound,
    SuspectedCaseAlreadyReported,
    SuspectedCaseClosed,
    SuspectedCaseNotAssessed,
    SuspectedCaseNotFound,
)
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import NOW

HC, HOSPITAL, POLICE, CIVIL, COMMITTEE, GOV, DPF, AUDITOR = (
    "hc-north",
    "hospital-lantern-bay",
    "police-east",
    "civil-willowbrook",
    "committee-north",
    "gov-willowbrook",
    "dpf-lantern-bay",
    "auditor-lantern-bay",
)
VILLAGE = "990101-001-v01"
REPORT = {"observed": "shouts at passers-by at night, has not slept for days", "seen_in": VILLAGE}
ASSESSMENT = {"outcome": "suspected_severe_disorder", "note": "referred to the city hospital"}


def day(n: int):
    return NOW - timedelta(days=n)


class Desk:
    """Sends envelopes about one suspected case (and its patient) through the shared intake path."""

    def __init__(self, services) -> None:
        self.services = services
        self.case = uuid4()
        self.patient = uuid4()

    def send(
        self,
        agency: str,
        event_type: str,
        data: dict[str, Any],
        *,
        subject: UUID | None = None,
        occurred=NOW - timedelta(hours=1),
    ):
        doc = agency_envelope(
            agency, f"cn.smd.{event_type}.v1", subject or self.case, data, occurred=occurred, actor=None
        )
        return accept(self.services.case_record, self.services.registry, doc, agency, "test")

    def report(self, agency: str = COMMITTEE, occurred=None, **extra: Any):
        return self.send(agency, "suspected-case.reported", {**REPORT, **extra}, occurred=occurred or day(20))

    def register_patient(self, occurred=None):
        return self.send(
            HC,
            "patient.registered",
            {"name": "Test Person", "residence": VILLAGE},
            subject=self.patient,
            occurred=occurred or day(3),
        )

    def case_(self):
        return self.services.case_record.suspected_case(self.case)


@pytest.fixture
def desk(services) -> Desk:
    load_file(services.case_record, DEMO_DISTRICT)
    return Desk(services)


class TestWhoRecordsWhat:
    @pytest.mark.parametrize("agency", [COMMITTEE, POLICE, HC, CIVIL, GOV, HOSPITAL, DPF])
    def test_any_kind_that_records_may_report_a_suspected_case(self, desk, agency) -> None:
        assert desk.report(agency).outcome == "recorded"
        case = desk.case_()
        assert case.status == CaseStatus.REPORTED and case.reported_by == agency and case.seen_in == VILLAGE

    def test_the_auditor_may_not_report(self, desk) -> None:
        with pytest.raises(NotAllowedToRecord, match=r"auditor, which may not record .*suspected-case\.reported"):
            desk.report(AUDITOR)

    @pytest.mark.parametrize("refused", [COMMITTEE, POLICE, HOSPITAL, CIVIL, GOV])
    def test_only_the_health_center_assesses(self, desk, refused) -> None:
        desk.report()
        with pytest.raises(NotAllowedToRecord, match=r"may not record cn\.smd\.suspected-case\.assessed"):
            desk.send(refused, "suspected-case.assessed", ASSESSMENT)
        assert desk.send(HC, "suspected-case.assessed", ASSESSMENT).outcome == "recorded"
        assert desk.case_().status == CaseStatus.ASSESSED
        assert desk.case_().assessment == AssessmentOutcome.SUSPECTED_SEVERE_DISORDER

    @pytest.mark.parametrize("agency", [HC, HOSPITAL])
    def test_the_health_center_or_the_hospital_registers_and_a_committee_may_not(self, desk, agency) -> None:
        desk.report()
        desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(10))
        desk.register_patient()
        with pytest.raises(NotAllowedToRecord, match=r"may not record cn\.smd\.suspected-case\.registered"):
            desk.send(COMMITTEE, "suspected-case.registered", {"patient_id": str(desk.patient)})
        assert desk.send(agency, "suspected-case.registered", {"patient_id": str(desk.patient)}).outcome == "recorded"

    @pytest.mark.parametrize("agency", [HC, HOSPITAL])
    def test_the_health_center_or_the_hospital_dismisses_and_the_police_may_not(self, desk, agency) -> None:
        desk.report()
        desk.send(HC, "suspected-case.assessed", {"outcome": "no_severe_disorder"}, occurred=day(10))
        with pytest.raises(NotAllowedToRecord, match=r"may not record cn\.smd\.suspected-case\.dismissed"):
            desk.send(POLICE, "suspected-case.dismissed", {"reason": "no_severe_disorder"})
        assert desk.send(agency, "suspected-case.dismissed", {"reason": "no_severe_disorder"}).outcome == "recorded"
        case = desk.case_()
        assert case.status == CaseStatus.DISMISSED and case.dismissal_reason == "no_severe_disorder"


class TestTheCaseToItsPatient:
    def test_a_registered_case_and_its_patient_link_both_ways(self, desk) -> None:
        desk.report()
        desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(10))
        desk.register_patient()
        desk.send(HOSPITAL, "suspected-case.registered", {"patient_id": str(desk.patient)}, occurred=day(2))
        case = desk.case_()
        patient = desk.services.case_record.patient(desk.patient)
        assert case.status == CaseStatus.REGISTERED and case.patient_id == desk.patient
        assert patient.suspected_case_id == desk.case and patient.suspected_case_ids == (desk.case,)
        assert case.closed_by == HOSPITAL and case.closed_at == day(2)

    def test_two_reports_of_one_person_both_link_to_the_patient(self, desk) -> None:
        first, second = desk.case, uuid4()
        desk.register_patient(occurred=day(3))
        for case_id, reported, registered in ((second, day(15), day(1)), (first, day(20), day(2))):
            desk.case = case_id
            desk.report(occurred=reported)
            desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(10))
            desk.send(HC, "suspected-case.registered", {"patient_id": str(desk.patient)}, occurred=registered)
        assert desk.services.case_record.patient(desk.patient).suspected_case_ids == (first, second)

    def test_the_patient_must_be_registered_first_and_nothing_is_linked_otherwise(self, desk) -> None:
        desk.report()
        desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(10))
        with pytest.raises(PatientToLinkNotFound, match="register the patient first"):
            desk.send(HC, "suspected-case.registered", {"patient_id": str(desk.patient)})
        assert desk.case_().status == CaseStatus.ASSESSED and desk.case_().patient_id is None

    def test_a_case_id_is_not_a_patient_id(self, desk) -> None:
        desk.register_patient()
        desk.report()
        desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(10))
        with pytest.raises(PatientToLinkNotFound):
            desk.send(HC, "suspected-case.registered", {"patient_id": str(desk.case)})
        with pytest.raises(SuspectedCaseNotFound, match="report it first"):
            desk.send(HC, "suspected-case.assessed", ASSESSMENT, subject=desk.patient)

    def test_a_patient_who_left_the_register_before_cannot_be_linked(self, desk) -> None:
        desk.report()
        desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(10))
        desk.register_patient(occurred=day(9))
        desk.send(HC, "patient.deregistered", {"reason": "death"}, subject=desk.patient, occurred=day(5))
        with pytest.raises(FactAfterDeregistration):
            desk.send(HC, "suspected-case.registered", {"patient_id": str(desk.patient)}, occurred=day(1))
        assert desk.case_().status == CaseStatus.ASSESSED


class TestRulesSayWhatToFix:
    @pytest.mark.parametrize(
        ("event_type", "data", "verb"),
        [
            ("suspected-case.registered", None, "registered"),
            ("suspected-case.dismissed", {"reason": "not_found"}, "dismissed"),
        ],
    )
    def test_assess_before_registering_or_dismissing(self, desk, event_type, data, verb) -> None:
        desk.report()
        desk.register_patient()
        with pytest.raises(SuspectedCaseNotAssessed, match=f"records the assessment .* before the case is {verb}"):
            desk.send(HC, event_type, data or {"patient_id": str(desk.patient)})

    def test_an_assessment_dated_after_the_registration_does_not_count(self, desk) -> None:
        desk.report()
        desk.register_patient()
        desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(1))
        with pytest.raises(SuspectedCaseNotAssessed, match="no assessment dated at or before"):
            desk.send(HC, "suspected-case.registered", {"patient_id": str(desk.patient)}, occurred=day(2))

    def test_a_registered_case_cannot_be_dismissed_nor_registered_twice_nor_assessed(self, desk) -> None:
        desk.report()
        desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(10))
        desk.register_patient()
        desk.send(HC, "suspected-case.registered", {"patient_id": str(desk.patient)}, occurred=day(2))
        with pytest.raises(SuspectedCaseClosed, match=f"registered as patient {desk.patient} .* cannot be dismissed"):
            desk.send(HC, "suspected-case.dismissed", {"reason": "other"})
        with pytest.raises(SuspectedCaseClosed, match="cannot be registered again; record facts on the patient"):
            desk.send(HC, "suspected-case.registered", {"patient_id": str(desk.patient)})
        with pytest.raises(SuspectedCaseClosed, match="cannot be assessed"):
            desk.send(HC, "suspected-case.assessed", ASSESSMENT)

    def test_a_dismissed_case_is_closed_and_a_new_report_is_the_way_back(self, desk) -> None:
        desk.report()
        desk.send(HC, "suspected-case.assessed", {"outcome": "not_assessable"}, occurred=day(10))
        desk.send(HC, "suspected-case.dismissed", {"reason": "not_found", "note": "moved away"}, occurred=day(9))
        desk.register_patient()
        with pytest.raises(SuspectedCaseClosed, match=r"dismissed \(not_found\) .* report a new suspected case"):
            desk.send(HC, "suspected-case.registered", {"patient_id": str(desk.patient)})

    def test_the_same_case_id_is_reported_once(self, desk) -> None:
        desk.report()
        with pytest.raises(SuspectedCaseAlreadyReported, match="a new report needs a new subject"):
            desk.report(POLICE)

    def test_facts_about_an_unreported_case_are_refused(self, desk) -> None:
        with pytest.raises(SuspectedCaseNotFound, match="report it first"):
            desk.send(HC, "suspected-case.assessed", ASSESSMENT)

    def test_nothing_happens_to_a_case_before_its_report(self, desk) -> None:
        desk.report(occurred=day(20))
        with pytest.raises(DatedBeforeReport, match="before the case was reported"):
            desk.send(HC, "suspected-case.assessed", ASSESSMENT, occurred=day(25))

    def test_an_unknown_outcome_is_refused_at_the_envelope(self, desk) -> None:
        desk.report()
        with pytest.raises(ContractError, match=r"data.outcome"):
            desk.send(HC, "suspected-case.assessed", {"outcome": "maybe"})

    def test_a_report_dated_in_the_future_is_refused(self, desk) -> None:
        with pytest.raises(DomainError, match="after the server time"):
            desk.report(occurred=NOW + timedelta(hours=2))


class TestPersonalData:
    def test_what_was_seen_and_who_are_sealed_in_storage_and_where_stays_readable(self, desk, settings) -> None:
        desk.report(
            COMMITTEE,
            observed="MKOBSERVEDxx7",
            seen_in="990101-001-v02",
            person={"name": "MKPERSONqq1", "phone": "MKPPHONE31", "address": "MKPADDR55", "description": "MKDESCR88"},
            reporter={"name": "MKREPORTERz2", "phone": "MKRPHONE64", "relation": "neighbour"},
        )
        case = desk.case_()
        assert case.person == SuspectedPerson(
            observed="MKOBSERVEDxx7",
            name="MKPERSONqq1",
            phone="MKPPHONE31",
            address="MKPADDR55",
            description="MKDESCR88",
        )
        assert case.reporter == CaseReporter(name="MKREPORTERz2", phone="MKRPHONE64", relation="neighbour")
        from tests.integration.test_no_plaintext import stored_bytes

        data = stored_bytes(settings)
        for marker in (
            b"MKOBSERVEDxx7",
            b"MKPERSONqq1",
            b"MKPPHONE31",
            b"MKPADDR55",
            b"MKDESCR88",
            b"MKREPORTERz2",
            b"MKRPHONE64",
        ):
            assert marker not in data, marker
        assert b"990101-001-v02" in data
