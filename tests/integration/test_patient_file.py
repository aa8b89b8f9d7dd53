"""The patient's file, part 1: each fact recorded by a kind allowed to, refused to others,
with its derived state, on SQLite and PostgreSQL (through the same path as HTTP and NATS)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from core.intake import accept
from core.registry import load_file
from domain.access import NotAllowedToRecord
from domain.errors import DomainError
from domain.patient import Patient
from domain.patient_file import (
    Adherence,
    FactAfterDeregistration,
    GuardianStatus,
    NoAcceptedMove,
    RefusalKind,
    ReviewTier,
    UnknownIncident,
)
from domain.personal import GuardianContact
from domain.values import Diagnosis
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import NOW

HC, HOSPITAL, POLICE, CIVIL, COMMITTEE, GOV = (
    "hc-north",
    "hospital-lantern-bay",
    "police-east",
    "civil-willowbrook",
    "committee-north",
    "gov-willowbrook",
)
INCIDENT, MOVE = UUID("00000000-0000-4000-8000-0000000000a1"), UUID("00000000-0000-4000-8000-0000000000b2")


class Desk:
    """Sends envelopes as each agency's system would, through the shared intake path."""

    def __init__(self, services) -> None:
        self.services = services
        self.patient = uuid4()

    def send(self, agency: str, event_type: str, data: dict[str, Any], *, occurred=NOW - timedelta(hours=1)):
        doc = agency_envelope(agency, f"cn.smd.{event_type}.v1", self.patient, data, occurred=occurred, actor=None)
        return accept(self.services.case_record, self.services.registry, doc, agency, "test")

    def file(self) -> Patient:
        return self.services.case_record.patient(self.patient)


@pytest.fixture
def desk(services) -> Desk:
    load_file(services.case_record, DEMO_DISTRICT)
    d = Desk(services)
    d.send(
        HC,
        "patient.registered",
        {"name": "Test Person", "residence": "990101-001-v01", "diagnosis": "schizophrenia"},
        occurred=NOW - timedelta(days=90),
    )
    return d


Check = Callable[[Patient], bool]
# (who records, type, data, a kind that may not, what the file shows afterwards)
FACTS: list[tuple[str, str, dict[str, Any], str, Check]] = [
    (
        COMMITTEE,
        "circumstances.recorded",
        {"lives_alone": True, "can_drive": False},
        POLICE,
        lambda p: p.lives_alone is True and p.can_drive is False and p.family_history is None,
    ),
    (
        CIVIL,
        "circumstances.recorded",
        {"economic_status": "extreme_poverty"},
        GOV,
        lambda p: p.economic_status == "extreme_poverty",
    ),
    (COMMITTEE, "confinement.recorded", {"confined": True}, CIVIL, lambda p: p.confined),
    (
        HOSPITAL,
        "diagnosis.recorded",
        {"diagnosis": "bipolar_disorder"},
        POLICE,
        lambda p: p.current_diagnosis == Diagnosis.BIPOLAR,
    ),
    (
        HOSPITAL,
        "diagnosis.revoked",
        {"reason": "review by the city hospital"},
        COMMITTEE,
        lambda p: p.current_diagnosis is None,
    ),
    (
        HOSPITAL,
        "patient.admitted",
        {"hospital": "Lantern Bay Mental Health Hospital", "admission_kind": "involuntary"},
        CIVIL,
        lambda p: p.in_hospital and p.ever_admitted_involuntarily,
    ),
    (
        HC,
        "guardian.assigned",
        {"contact": {"name": "Guardian Person", "relation": "mother", "phone": "13900000000"}},
        POLICE,
        lambda p: p.guardian_status == GuardianStatus.CAPABLE and p.guardian_contact.name == "Guardian Person",
    ),
    (CIVIL, "guardian.none-recorded", {}, POLICE, lambda p: p.guardian_status == GuardianStatus.NONE),
    (
        COMMITTEE,
        "guardian.social-designated",
        {"designated_by": "committee-north"},
        HC,
        lambda p: p.guardian_status == GuardianStatus.SOCIAL,
    ),
    (
        COMMITTEE,
        "guardianship-agreement.signed",
        {"signed_on": "2026-11-01"},
        POLICE,
        lambda p: p.guardianship_agreement_signed_on == date(2026, 11, 1),
    ),
    (HC, "legal-duty-notice.given", {"given_on": "2026-11-02"}, POLICE, lambda p: bool(p.facts["legal_duty_notice"])),
    (
        HC,
        "medication.dispensed",
        {"dispensed_on": "2026-11-01", "days_supplied": 30},
        COMMITTEE,
        lambda p: p.supply_ends_on == date(2026, 12, 1),
    ),
    (
        HC,
        "adherence.recorded",
        {"adherence": "intermittent"},
        COMMITTEE,
        lambda p: p.adherence == Adherence.INTERMITTENT,
    ),
    (
        POLICE,
        "incident.reported",
        {"incident_id": str(INCIDENT), "incident_kind": "causing_trouble", "severity": 2},
        CIVIL,
        lambda p: p.has_incident_history,
    ),
    (POLICE, "patient.taken-under-management", {}, HC, lambda p: p.under_police_management),
    (POLICE, "whereabouts.unknown-declared", {}, CIVIL, lambda p: p.declared_whereabouts_unknown),
    (
        COMMITTEE,
        "move.reported",
        {"move_id": str(MOVE), "destination_region": "990202", "moving_on": "2026-11-15"},
        CIVIL,
        lambda p: p.move_status == "pending",
    ),
    (COMMITTEE, "refusal.recorded", {"refusal": "visits"}, POLICE, lambda p: p.refuses(RefusalKind.VISITS)),
    (
        GOV,
        "review.recorded",
        {"tier": "township", "risk_level": 3, "risk_class": "unstable"},
        POLICE,
        lambda p: p.review(ReviewTier.TOWNSHIP)["risk_level"] == 3,
    ),
    (HC, "patient.deregistered", {"reason": "death"}, COMMITTEE, lambda p: p.deregistration_reason == "death"),
]


class TestEachFactOfTheFile:
    @pytest.mark.parametrize(
        ("agency", "event_type", "data", "not_allowed", "shows"),
        FACTS,
        ids=[f"{f[1]}-{i}" for i, f in enumerate(FACTS)],
    )
    def test_an_allowed_kind_records_it_and_the_file_shows_it_and_another_kind_is_refused(
        self, desk, agency, event_type, data, not_allowed, shows
    ) -> None:
        with pytest.raises(NotAllowedToRecord, match="may not record"):
            desk.send(not_allowed, event_type, data)
        assert desk.send(agency, event_type, data).outcome == "recorded"
        assert shows(desk.file())


class TestStoriesOfTheFile:
    def test_a_discharge_ends_the_hospital_stay(self, desk) -> None:
        desk.send(
            HOSPITAL,
            "patient.admitted",
            {"hospital": "H", "admission_kind": "voluntary"},
            occurred=NOW - timedelta(days=20),
        )
        desk.send(
            HOSPITAL,
            "patient.discharged",
            {"discharge_plan": "follow-up within 7 days"},
            occurred=NOW - timedelta(days=2),
        )
        assert not desk.file().in_hospital
        assert desk.file().last_discharged_at == NOW - timedelta(days=2)

    def test_an_incident_is_reviewed_by_the_governance_center_and_answered_by_the_police(self, desk) -> None:
        desk.send(
            POLICE, "incident.reported", {"incident_id": str(INCIDENT), "incident_kind": "self_harm", "severity": 3}
        )
        desk.send(GOV, "incident.reviewed", {"incident_id": str(INCIDENT), "outcome": "joint visit arranged"})
        desk.send(POLICE, "incident.police-responded", {"incident_id": str(INCIDENT), "action": "officer on site"})
        assert desk.file().incident_status(INCIDENT) == {"reviewed": True, "responded": True}

    def test_the_same_incident_reported_twice_is_one_incident(self, desk) -> None:
        body = {"incident_id": str(INCIDENT), "incident_kind": "minor_trouble", "severity": 1}
        assert desk.send(POLICE, "incident.reported", body).outcome == "recorded"
        assert desk.send(COMMITTEE, "incident.reported", body).outcome == "no-change"

    def test_a_review_of_an_unreported_incident_is_refused(self, desk) -> None:
        with pytest.raises(UnknownIncident, match="report it first"):
            desk.send(GOV, "incident.reviewed", {"incident_id": str(uuid4()), "outcome": "x"})

    def test_pickups_carry_over_leftover_supply(self, desk) -> None:
        desk.send(HC, "medication.dispensed", {"dispensed_on": "2026-10-01", "days_supplied": 30})
        desk.send(HC, "medication.dispensed", {"dispensed_on": "2026-10-20", "days_supplied": 30})
        assert desk.file().supply_ends_on == date(2026, 11, 30)

    def test_moved_out_needs_the_destinations_acceptance_first(self, desk) -> None:
        desk.send(
            COMMITTEE,
            "move.reported",
            {"move_id": str(MOVE), "destination_region": "990202", "moving_on": "2026-11-10"},
        )
        with pytest.raises(NoAcceptedMove, match="only after the destination accepted"):
            desk.send(HC, "patient.deregistered", {"reason": "moved_out"})
        desk.send(HC, "handover.accepted", {"move_id": str(MOVE)})
        assert desk.send(HC, "patient.deregistered", {"reason": "moved_out"}).outcome == "recorded"

    def test_a_rejected_handover_leaves_the_patient_in_the_origins_file(self, desk) -> None:
        desk.send(
            COMMITTEE,
            "move.reported",
            {"move_id": str(MOVE), "destination_region": "990202", "moving_on": "2026-11-10"},
        )
        desk.send(HC, "handover.rejected", {"move_id": str(MOVE), "reason": "not resident here"})
        assert desk.file().move_status == "rejected" and desk.file().deregistered_at is None

    def test_facts_dated_after_deregistration_are_refused_and_earlier_late_ones_accepted(self, desk) -> None:
        desk.send(HC, "patient.deregistered", {"reason": "death"}, occurred=NOW - timedelta(days=5))
        with pytest.raises(FactAfterDeregistration, match="after the patient left the register"):
            desk.send(
                HC,
                "visit.recorded",
                {"face_to_face": True, "risk_level": 0, "risk_class": "stable"},
                occurred=NOW - timedelta(days=1),
            )
        late = desk.send(
            HC,
            "visit.recorded",
            {"face_to_face": True, "risk_level": 0, "risk_class": "stable"},
            occurred=NOW - timedelta(days=30),
        )
        assert late.outcome == "recorded"

    def test_lost_and_refusing_patients_stay_registered(self, desk) -> None:
        desk.send(POLICE, "whereabouts.unknown-declared", {})
        desk.send(COMMITTEE, "refusal.recorded", {"refusal": "management"})
        patient = desk.file()
        assert patient.declared_whereabouts_unknown and patient.refuses(RefusalKind.MANAGEMENT)
        assert patient.deregistered_at is None

    def test_a_located_declaration_ends_the_unknown_whereabouts(self, desk) -> None:
        desk.send(POLICE, "whereabouts.unknown-declared", {}, occurred=NOW - timedelta(days=3))
        desk.send(COMMITTEE, "patient.located", {}, occurred=NOW - timedelta(days=1))
        assert not desk.file().declared_whereabouts_unknown

    @pytest.mark.parametrize(
        ("event_type", "data", "says"),
        [
            ("diagnosis.recorded", {"diagnosis": "flu"}, "not one of the six"),
            ("review.recorded", {"tier": "city", "risk_level": 4, "risk_class": "stable"}, "class is unstable"),
            ("circumstances.recorded", {}, "carries no value"),
        ],
    )
    def test_rule_errors_say_what_to_fix(self, desk, event_type, data, says) -> None:
        agency = HOSPITAL if event_type != "circumstances.recorded" else COMMITTEE
        with pytest.raises(DomainError, match=says):
            desk.send(agency, event_type, data)

    def test_the_guardian_contact_is_personal_and_sealed_in_storage(self, desk, settings) -> None:
        desk.send(HC, "guardian.assigned", {"contact": {"name": "MKGUARDIANzz", "phone": "MKGPHONE99"}})
        assert desk.file().guardian_contact == GuardianContact(name="MKGUARDIANzz", phone="MKGPHONE99")
        from tests.integration.test_no_plaintext import stored_bytes

        data = stored_bytes(settings)
        assert b"MKGUARDIANzz" not in data and b"MKGPHONE99" not in data
