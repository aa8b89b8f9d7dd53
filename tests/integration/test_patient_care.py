"""The patient's file, part 2: care team, contacts and aid, each recorded by a kind allowed to,
refused to others, with its derived state, on SQLite and PostgreSQL (the path HTTP and NATS use)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from uuid import uuid4

import pytest

from core.contract import ContractError
from core.intake import accept
from core.registry import load_file
from domain.access import AidTypeNotAllowed, NotAllowedToRecord
from domain.errors import DomainError
from domain.patient import Patient
from domain.patient_care import AidStatus, AidType, CareRole
from domain.patient_file import FactAfterDeregistration
from domain.personal import CareTeamMember
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import NOW

HC, HOSPITAL, POLICE, CIVIL, COMMITTEE, GOV, DPF = (
    "hc-north",
    "hospital-lantern-bay",
    "police-east",
    "civil-willowbrook",
    "committee-north",
    "gov-willowbrook",
    "dpf-lantern-bay",
)
EARLIER = NOW - timedelta(days=10)


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


def member(role: str, name: str = "Member Person", **extra: Any) -> dict[str, Any]:
    return {"role": role, "member": {"name": name, "phone": "13900000001"}, **extra}


Check = Callable[[Patient], bool]
Sent = tuple[str, str, dict[str, Any]]
GRANT_LOW_INCOME: Sent = (CIVIL, "aid.granted", {"aid_type": "minimum_living_allowance", "amount_yuan": 800})
GRANT_SUBSIDY: Sent = (CIVIL, "aid.granted", {"aid_type": "guardian_subsidy", "amount_yuan": 200})
ASSIGN_POLICE: Sent = (HC, "care-team-member.assigned", member("community_police", member_agency=POLICE))
# (recorded first, at EARLIER), who records, type, data, a kind that may not, what the file shows afterwards
FACTS: list[tuple[list[Sent], str, str, dict[str, Any], str, Check]] = [
    (
        [],
        COMMITTEE,
        "care-team-member.assigned",
        member("community_worker", member_agency=COMMITTEE),
        POLICE,
        lambda p: p.care_team()[CareRole.COMMUNITY_WORKER]["member"].name == "Member Person",
    ),
    (
        [],
        HC,
        "care-team-member.assigned",
        member("mental_health_staff", member_agency=HC),
        CIVIL,
        lambda p: p.care_team()[CareRole.MENTAL_HEALTH_STAFF]["member_agency"] == HC,
    ),
    (
        [ASSIGN_POLICE],
        COMMITTEE,
        "care-team-member.removed",
        {"role": "community_police", "reason": "transferred"},
        GOV,
        lambda p: CareRole.COMMUNITY_POLICE not in p.care_team(),
    ),
    (
        [],
        POLICE,
        "care-team-contact.recorded",
        {"role": "community_police", "mode": "visit", "outcome": "reached"},
        CIVIL,
        lambda p: p.last_care_team_contact_at == NOW - timedelta(hours=1),
    ),
    (
        [],
        COMMITTEE,
        "care-team-contact.recorded",
        {"role": "grid_worker", "mode": "phone", "outcome": "not_reached"},
        DPF,
        lambda p: p.care_team_contacts[-1]["outcome"] == "not_reached" and p.last_care_team_contact_at is None,
    ),
    (
        [],
        HC,
        "care-team-contact.recorded",
        {"role": "mental_health_staff", "mode": "video", "outcome": "reached"},
        HOSPITAL,
        lambda p: p.care_team_contacts[-1]["agency"] == HC,
    ),
    (
        [],
        CIVIL,
        "aid.applied",
        {"aid_type": "minimum_living_allowance"},
        COMMITTEE,
        lambda p: p.aid_status(AidType.MINIMUM_LIVING_ALLOWANCE) == AidStatus.PENDING and p.hardship,
    ),
    (
        [],
        CIVIL,
        "aid.granted",
        {"aid_type": "extreme_poverty_support", "amount_yuan": 1200},
        HC,
        lambda p: p.aid_status(AidType.EXTREME_POVERTY_SUPPORT) == AidStatus.GRANTED and p.in_extreme_poverty,
    ),
    (
        [],
        CIVIL,
        "aid.found-ineligible",
        {"aid_type": "temporary_aid", "reason": "income above the line"},
        POLICE,
        lambda p: p.aid_status(AidType.TEMPORARY_AID) == AidStatus.INELIGIBLE,
    ),
    (
        [GRANT_LOW_INCOME],
        CIVIL,
        "aid.revoked",
        {"aid_type": "minimum_living_allowance", "reason": "moved in"},
        GOV,
        lambda p: p.aid_status(AidType.MINIMUM_LIVING_ALLOWANCE) == AidStatus.REVOKED and not p.hardship,
    ),
    (
        [],
        CIVIL,
        "aid.granted",
        {"aid_type": "guardian_subsidy", "amount_yuan": 200},
        COMMITTEE,
        lambda p: p.aid_status(AidType.GUARDIAN_SUBSIDY) == AidStatus.GRANTED,
    ),
    (
        [GRANT_SUBSIDY],
        COMMITTEE,
        "guardian-subsidy.collected",
        {"month": "2026-11", "amount_yuan": 200},
        HC,
        lambda p: p.guardian_subsidy_months == ("2026-11",),
    ),
    (
        [GRANT_SUBSIDY],
        CIVIL,
        "guardian-subsidy.collected",
        {"month": "2026-10"},
        POLICE,
        lambda p: p.guardian_subsidy_months == ("2026-10",),
    ),
    (
        [],
        DPF,
        "aid.granted",
        {"aid_type": "disability_certificate", "disability_grade": 2},
        POLICE,
        lambda p: p.aid_status(AidType.DISABILITY_CERTIFICATE) == AidStatus.GRANTED and p.disability_grade == 2,
    ),
    (
        [],
        HC,
        "aid.granted",
        {"aid_type": "long_acting_injection_coverage"},
        COMMITTEE,
        lambda p: p.aid_status(AidType.LONG_ACTING_INJECTION_COVERAGE) == AidStatus.GRANTED,
    ),
    (
        [],
        HC,
        "aid.applied",
        {"aid_type": "special_disease_status"},
        GOV,
        lambda p: p.aid_status(AidType.SPECIAL_DISEASE_STATUS) == AidStatus.PENDING,
    ),
]


class TestEachFactOfTheCareFile:
    @pytest.mark.parametrize(
        ("before", "agency", "event_type", "data", "not_allowed", "shows"),
        FACTS,
        ids=[f"{f[2]}-{i}" for i, f in enumerate(FACTS)],
    )
    def test_an_allowed_kind_records_it_and_the_file_shows_it_and_another_kind_is_refused(
        self, desk, before, agency, event_type, data, not_allowed, shows
    ) -> None:
        for sender, sent_type, sent in before:
            desk.send(sender, sent_type, sent, occurred=EARLIER)
        with pytest.raises(NotAllowedToRecord, match="may not record"):
            desk.send(not_allowed, event_type, data)
        assert desk.send(agency, event_type, data).outcome == "recorded"
        assert shows(desk.file())

    @pytest.mark.parametrize(
        ("agency", "aid_type"),
        [
            (HC, "minimum_living_allowance"),
            (DPF, "extreme_poverty_support"),
            (CIVIL, "disability_certificate"),
            (CIVIL, "long_acting_injection_coverage"),
            (DPF, "special_disease_status"),
            (HC, "guardian_subsidy"),
        ],
    )
    def test_an_aid_type_is_recorded_only_by_the_kind_that_decides_it(self, desk, agency, aid_type) -> None:
        with pytest.raises(AidTypeNotAllowed, match=f"may not record aid of type {aid_type}; a .* may record"):
            desk.send(agency, "aid.granted", {"aid_type": aid_type})
        assert desk.file().aid() == {}


class TestCareTeam:
    def test_the_team_by_role_changes_over_time_and_reads_as_of_any_occurred_time(self, desk) -> None:
        day = lambda n: NOW - timedelta(days=n)  # noqa: E731
        desk.send(COMMITTEE, "care-team-member.assigned", member("guardian", "First Guardian"), occurred=day(30))
        desk.send(COMMITTEE, "care-team-member.assigned", member("grid_worker", "Grid Person"), occurred=day(29))
        desk.send(COMMITTEE, "care-team-member.removed", {"role": "grid_worker"}, occurred=day(5))
        # arrives last, happened in between: a replacement
        desk.send(HC, "care-team-member.assigned", member("guardian", "Second Guardian"), occurred=day(10))
        patient = desk.file()
        assert patient.care_team()[CareRole.GUARDIAN]["member"] == CareTeamMember(
            name="Second Guardian", phone="13900000001"
        )
        assert CareRole.GRID_WORKER not in patient.care_team()
        as_of = patient.care_team(as_of=day(20))
        assert as_of[CareRole.GUARDIAN]["member"].name == "First Guardian" and CareRole.GRID_WORKER in as_of
        assert [(h["role"], h["change"]) for h in patient.care_team_history] == [
            ("guardian", "assigned"),
            ("grid_worker", "assigned"),
            ("guardian", "replaced"),
            ("grid_worker", "removed"),
        ]
        assert set(patient.missing_care_team_roles()) == set(CareRole) - {CareRole.GUARDIAN}

    def test_a_complete_team_has_all_five_roles(self, desk) -> None:
        for role in CareRole:
            desk.send(COMMITTEE, "care-team-member.assigned", member(role))
        assert desk.file().missing_care_team_roles() == ()

    def test_a_removal_from_a_role_nobody_held_says_to_assign_first(self, desk) -> None:
        desk.send(COMMITTEE, "care-team-member.assigned", member("grid_worker"), occurred=NOW - timedelta(days=1))
        with pytest.raises(DomainError, match=r"no grid_worker was assigned .* assign one first"):
            desk.send(COMMITTEE, "care-team-member.removed", {"role": "grid_worker"}, occurred=NOW - timedelta(days=3))

    def test_contacts_keep_who_when_how_and_outcome_and_only_reached_ones_count(self, desk) -> None:
        desk.send(
            POLICE,
            "care-team-contact.recorded",
            {"role": "community_police", "mode": "visit", "outcome": "reached"},
            occurred=NOW - timedelta(days=20),
        )
        desk.send(
            COMMITTEE,
            "care-team-contact.recorded",
            {"role": "guardian", "mode": "phone", "outcome": "refused", "note": "family declined"},
            occurred=NOW - timedelta(days=3),
        )
        desk.send(
            COMMITTEE,
            "care-team-contact.recorded",
            {"role": "mental_health_staff", "mode": "other", "outcome": "reached", "member_agency": HC},
            occurred=NOW - timedelta(days=8),
        )
        patient = desk.file()
        assert patient.last_care_team_contact_at == NOW - timedelta(days=8)
        assert [(c["role"], c["agency"], c["mode"], c["outcome"], c["by"]) for c in patient.care_team_contacts] == [
            ("community_police", POLICE, "visit", "reached", POLICE),
            ("mental_health_staff", HC, "other", "reached", COMMITTEE),
            ("guardian", COMMITTEE, "phone", "refused", COMMITTEE),
        ]

    def test_an_unknown_role_is_refused_at_the_envelope_naming_the_field(self, desk) -> None:
        with pytest.raises(ContractError, match=r"data.role"):
            desk.send(COMMITTEE, "care-team-member.assigned", member("neighbour"))

    def test_care_team_facts_after_deregistration_are_refused(self, desk) -> None:
        desk.send(HC, "patient.deregistered", {"reason": "death"}, occurred=NOW - timedelta(days=5))
        with pytest.raises(FactAfterDeregistration, match="after the patient left the register"):
            desk.send(
                COMMITTEE,
                "care-team-contact.recorded",
                {"role": "guardian", "mode": "visit", "outcome": "reached"},
                occurred=NOW - timedelta(days=1),
            )

    def test_member_names_and_phones_are_personal_and_sealed_in_storage(self, desk, settings) -> None:
        desk.send(
            COMMITTEE,
            "care-team-member.assigned",
            {"role": "grid_worker", "member": {"name": "MKGRIDWORKERqq", "phone": "MKGRIDPHONE55"}},
        )
        assert desk.file().care_team()[CareRole.GRID_WORKER]["member"].name == "MKGRIDWORKERqq"
        from tests.integration.test_no_plaintext import stored_bytes

        data = stored_bytes(settings)
        assert b"MKGRIDWORKERqq" not in data and b"MKGRIDPHONE55" not in data
        assert b"grid_worker" in data  # the role stays readable


class TestAid:
    def test_each_aid_type_has_its_own_status_by_occurred_time(self, desk) -> None:
        desk.send(CIVIL, "aid.applied", {"aid_type": "minimum_living_allowance"}, occurred=NOW - timedelta(days=40))
        desk.send(CIVIL, "aid.granted", {"aid_type": "minimum_living_allowance"}, occurred=NOW - timedelta(days=20))
        desk.send(
            CIVIL,
            "aid.revoked",
            {"aid_type": "minimum_living_allowance", "reason": "income rose"},
            occurred=NOW - timedelta(days=2),
        )
        desk.send(CIVIL, "aid.applied", {"aid_type": "temporary_aid"}, occurred=NOW - timedelta(days=1))
        patient = desk.file()
        assert patient.aid() == {
            AidType.MINIMUM_LIVING_ALLOWANCE: AidStatus.REVOKED,
            AidType.TEMPORARY_AID: AidStatus.PENDING,
        }
        assert patient.aid_status(AidType.MINIMUM_LIVING_ALLOWANCE, as_of=NOW - timedelta(days=10)) == AidStatus.GRANTED
        assert patient.aid_status(AidType.MINIMUM_LIVING_ALLOWANCE, as_of=NOW - timedelta(days=30)) == AidStatus.PENDING
        assert patient.aid_status(AidType.SPECIAL_DISEASE_STATUS) is None

    def test_a_revocation_without_a_grant_says_to_record_the_grant_first(self, desk) -> None:
        with pytest.raises(DomainError, match=r"needs a grant of extreme_poverty_support .* record the grant first"):
            desk.send(CIVIL, "aid.revoked", {"aid_type": "extreme_poverty_support", "reason": "x"})

    def test_the_guardian_subsidy_is_collected_once_a_month_after_it_was_granted(self, desk) -> None:
        subsidy = {"month": "2026-11"}
        with pytest.raises(DomainError, match="needs a grant of guardian_subsidy"):
            desk.send(COMMITTEE, "guardian-subsidy.collected", subsidy)
        desk.send(CIVIL, "aid.granted", {"aid_type": "guardian_subsidy"}, occurred=NOW - timedelta(days=60))
        assert desk.send(COMMITTEE, "guardian-subsidy.collected", subsidy).outcome == "recorded"
        assert desk.send(CIVIL, "guardian-subsidy.collected", subsidy).outcome == "no-change"
        desk.send(COMMITTEE, "guardian-subsidy.collected", {"month": "2026-10"}, occurred=NOW - timedelta(days=40))
        assert desk.file().guardian_subsidy_months == ("2026-10", "2026-11")

    @pytest.mark.parametrize(
        ("agency", "event_type", "data", "says"),
        [
            (COMMITTEE, "guardian-subsidy.collected", {"month": "2026-12"}, "before that month began"),
            (
                CIVIL,
                "aid.granted",
                {"aid_type": "minimum_living_allowance", "disability_grade": 1},
                "belongs to disability_certificate only",
            ),
        ],
    )
    def test_rule_errors_say_what_to_fix(self, desk, agency, event_type, data, says) -> None:
        desk.send(CIVIL, "aid.granted", {"aid_type": "guardian_subsidy"}, occurred=NOW - timedelta(days=60))
        with pytest.raises(DomainError, match=says):
            desk.send(agency, event_type, data)

    @pytest.mark.parametrize(
        ("data", "path"),
        [({"month": "2026-13"}, "data.month"), ({"month": "2026-11", "amount_yuan": -5}, "data.amount_yuan")],
    )
    def test_malformed_values_are_refused_at_the_envelope(self, desk, data, path) -> None:
        with pytest.raises(ContractError, match=path):
            desk.send(COMMITTEE, "guardian-subsidy.collected", data)


class TestHardship:
    def test_economic_status_from_the_circumstances_flags_hardship(self, desk) -> None:
        assert not desk.file().hardship
        desk.send(CIVIL, "circumstances.recorded", {"economic_status": "unable_to_pay_treatment"})
        assert desk.file().hardship_reasons() == ("economic_status:unable_to_pay_treatment",)

    def test_a_pending_or_granted_low_income_or_extreme_poverty_aid_flags_hardship(self, desk) -> None:
        desk.send(CIVIL, "aid.applied", {"aid_type": "minimum_living_allowance"}, occurred=NOW - timedelta(days=9))
        assert desk.file().hardship_reasons() == ("aid:minimum_living_allowance:pending",)
        desk.send(CIVIL, "aid.granted", {"aid_type": "extreme_poverty_support"}, occurred=NOW - timedelta(days=8))
        assert desk.file().hardship_reasons() == (
            "aid:extreme_poverty_support:granted",
            "aid:minimum_living_allowance:pending",
        )
        desk.send(
            CIVIL,
            "aid.found-ineligible",
            {"aid_type": "minimum_living_allowance", "reason": "x"},
            occurred=NOW - timedelta(days=7),
        )
        desk.send(
            CIVIL,
            "aid.revoked",
            {"aid_type": "extreme_poverty_support", "reason": "y"},
            occurred=NOW - timedelta(days=6),
        )
        patient = desk.file()
        assert not patient.hardship and patient.hardship_reasons(as_of=NOW - timedelta(days=8)) != ()

    def test_other_aid_does_not_flag_hardship(self, desk) -> None:
        desk.send(CIVIL, "aid.granted", {"aid_type": "temporary_aid"})
        desk.send(HC, "aid.granted", {"aid_type": "special_disease_status"})
        desk.send(CIVIL, "circumstances.recorded", {"economic_status": "ordinary"})
        assert not desk.file().hardship


def test_the_care_file_reads_the_same_from_snapshots_after_a_restart(open_store, settings) -> None:
    first = open_store(snapshot_every=1)  # a snapshot after every event: member names sit in its state
    load_file(first.case_record, DEMO_DISTRICT)
    desk = Desk(first)
    desk.send(
        HC,
        "patient.registered",
        {"name": "Test Person", "residence": "990101-001-v01"},
        occurred=NOW - timedelta(days=90),
    )
    desk.send(COMMITTEE, "care-team-member.assigned", member("guardian", "MKSNAPGUARDIANq"))
    desk.send(POLICE, "care-team-contact.recorded", {"role": "community_police", "mode": "phone", "outcome": "reached"})
    desk.send(CIVIL, "aid.granted", {"aid_type": "guardian_subsidy"}, occurred=NOW - timedelta(days=30))
    desk.send(COMMITTEE, "guardian-subsidy.collected", {"month": "2026-11"})
    before = desk.file()
    assert list(first.case_record.snapshots.get(desk.patient)), "snapshots were taken"
    again = open_store(snapshot_every=1).case_record.patient(desk.patient)
    for read in (
        lambda p: p.care_team(),
        lambda p: p.care_team_contacts,
        lambda p: p.aid(),
        lambda p: p.guardian_subsidy_months,
        lambda p: p.last_care_team_contact_at,
    ):
        assert read(again) == read(before)
    from tests.integration.test_no_plaintext import stored_bytes

    assert b"MKSNAPGUARDIANq" not in stored_bytes(settings)


def test_a_date_is_not_a_month(desk) -> None:
    with pytest.raises(ContractError, match=r"data\.month"):
        desk.send(COMMITTEE, "guardian-subsidy.collected", {"month": date(2026, 11, 1).isoformat()})
