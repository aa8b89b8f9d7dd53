"""The care and safety rules (issue 10) as stories: each rule's trigger, deadline, completion,
cancellation when the facts change, and a late and a duplicate report; on SQLite and PostgreSQL.
A replay into a fresh store decides the same, and a backfill opens only for the current state."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID, uuid4

import pytest

from core import go_live
from core.backfill import import_ledger
from core.calendar_view import load_year_file
from core.intake import accept
from core.obligations import act
from core.registry import load_file
from core.scheduler import Scheduler
from domain.identity import CHINA_TZ
from domain.obligation import Obligation, obligation_id
from ops.data_files import DEMO_DISTRICT, year_file
from tests.integration.test_coordination_engine import COMMITTEE, GOV, HC, POLICE, VILLAGE, Township
from tests.support.agency_client import envelope as agency_envelope
from tests.support.agency_client import envelope_json
from tests.support.replay import comparable, replica_of, split
from tests.support.stores import NOW

CIVIL, HOSPITAL = "civil-willowbrook", "hospital-lantern-bay"


def day(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


class Care(Township):
    """A patient's agencies sending care facts; helpers to find what the rules opened."""

    def visit(self, level: int, days_ago: float, *, joint: bool = False, cls: str | None = None, **kw) -> str:
        cls = cls or ("unstable" if level >= 3 else ("basically_stable" if level else "stable"))
        return self.send(
            HC,
            "visit.recorded",
            {"face_to_face": True, "joint": joint, "risk_level": level, "risk_class": cls},
            days_ago=days_ago,
            **kw,
        ).key

    def admit(self, days_ago: float) -> str:
        return self.send(
            HOSPITAL,
            "patient.admitted",
            {"hospital": "Lantern Bay Psychiatric Hospital", "admission_kind": "voluntary"},
            days_ago=days_ago,
        ).key

    def discharge(self, days_ago: float, **kw) -> str:
        return self.send(HOSPITAL, "patient.discharged", {}, days_ago=days_ago, **kw).key

    def refuse(self, refusal: str, days_ago: float, ended: bool = False) -> str:
        return self.send(COMMITTEE, "refusal.recorded", {"refusal": refusal, "ended": ended}, days_ago=days_ago).key

    def review(self, tier: str, level: int, days_ago: float) -> str:
        cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
        agency = {"community": COMMITTEE, "township": HC, "city": HOSPITAL}[tier]
        return self.send(
            agency, "review.recorded", {"tier": tier, "risk_level": level, "risk_class": cls}, days_ago=days_ago
        ).key

    def pickup(self, dispensed_days_ago: int, days_supplied: int, **kw) -> str:
        return self.send(
            HC,
            "medication.dispensed",
            {"dispensed_on": day(dispensed_days_ago), "days_supplied": days_supplied},
            days_ago=max(dispensed_days_ago - 0.5, 0.01),
            **kw,
        ).key

    def deregister(self) -> str:
        return self.send(HC, "patient.deregistered", {"reason": "death"}, days_ago=0.05).key

    def get(self, rule: str, key: str, role: str, cycle: int | None = None) -> Obligation | None:
        try:
            return self.services.case_record.repository.get(obligation_id(self.patient, rule, key, role, cycle))
        except Exception:
            return None

    def version(self, key: str) -> int:
        """The stream version of the fact ``key`` (a cycle's number)."""
        p = self.services.case_record.repository.get(self.patient)
        entries = p.visits + p.missed + [e for kind in p.facts.values() for e in kind]
        return next(e["v"] for e in entries if e["key"] == key)

    def rows(self, rule: str, agency: str | None = None):
        self.services.catch_up(self.services.case_record.recorder.max_notification_id())
        rows = self.services.work_queue.select("rule = ?", [rule], 0, 1000)
        return [r for r in rows if r.patient_id == self.patient and (agency is None or r.assignee == agency)]

    def scheduler(self, days_later: float) -> Scheduler:
        s = self.services
        return Scheduler(s.case_record, s.registry, s.work_queue, lambda: NOW + timedelta(days=days_later))


@pytest.fixture
def care(services) -> Care:
    load_file(services.case_record, DEMO_DISTRICT)
    c = Care(services)
    c.register()
    return c


def deadline(obligation: Obligation) -> timedelta:
    """How long the agency was given, from when the trigger was recorded."""
    return obligation.due_at - obligation.created_on


# -- event-driven rules ------------------------------------------------------------------------------


class TestR11FirstFollowUpAfterDischarge:
    def test_a_discharge_gives_the_health_center_seven_days_for_the_first_follow_up(self, care) -> None:
        care.admit(20)
        discharged = care.discharge(2)
        o = care.get("R11", discharged, "health-center")
        assert (o.assignee, o.action, o.status, deadline(o)) == (
            HC,
            "first_follow_up_after_discharge",
            "assigned",
            timedelta(days=7),
        )

    def test_a_visit_after_the_discharge_completes_it_and_an_older_one_does_not(self, care) -> None:
        care.admit(20)
        discharged = care.discharge(5)
        care.visit(1, days_ago=10)  # late report of a visit before the discharge: not a follow-up
        assert care.get("R11", discharged, "health-center").status == "assigned"
        followed = care.visit(1, days_ago=1)
        assert care.get("R11", discharged, "health-center").fulfilled_by == followed

    def test_re_admission_or_deregistration_cancels_it(self, care) -> None:
        care.admit(20)
        first = care.discharge(10)
        care.admit(5)
        assert "admitted to hospital again" in care.get("R11", first, "health-center").cancel_reason
        second = care.discharge(3)
        care.deregister()
        assert "left the register (death)" in care.get("R11", second, "health-center").cancel_reason

    def test_a_duplicate_discharge_opens_nothing_more_and_a_late_one_after_a_visit_opens_nothing(self, care) -> None:
        care.admit(20)
        message = uuid4()
        discharged = care.discharge(5, message_id=message)
        care.discharge(5, message_id=message)  # the same message again
        care.send(HC, "patient.discharged", {}, days_ago=4.9)  # the health center reports the same discharge
        assert [r.episode_key for r in care.rows("R11")] == [discharged]
        care.visit(1, days_ago=1)
        care.send(HOSPITAL, "patient.discharged", {}, days_ago=3)  # late, and a visit came after it
        assert len(care.rows("R11")) == 1

    def test_undone_after_seven_days_it_is_overdue_and_escalated(self, care) -> None:
        care.admit(20)
        care.discharge(1)
        care.scheduler(8).run_once(force=True)
        (row,) = care.rows("R11")
        assert (row.overdue, row.escalated_to) == (True, GOV)


class TestR14Incident:
    def incident(self, care, incident_id: UUID, days_ago: float = 0.5, agency: str = POLICE):
        return care.send(
            agency,
            "incident.reported",
            {"incident_id": str(incident_id), "incident_kind": "causing_trouble", "severity": 2},
            days_ago=days_ago,
        )

    def test_an_incident_asks_the_governance_center_to_review_and_the_police_to_respond(self, care) -> None:
        incident = uuid4()
        self.incident(care, incident, days_ago=3)  # reported late: the deadlines run from when we learned it
        review, response = care.get("R14", str(incident), "governance"), care.get("R14", str(incident), "police")
        assert (review.assignee, review.action, deadline(review)) == (GOV, "review_incident", timedelta(days=7))
        assert (response.assignee, response.action, deadline(response)) == (
            POLICE,
            "respond_to_incident",
            timedelta(hours=24),
        )

    def test_the_review_and_the_response_of_that_incident_complete_them(self, care) -> None:
        first, second = uuid4(), uuid4()
        self.incident(care, first)
        self.incident(care, second)
        responded = care.send(
            POLICE, "incident.police-responded", {"incident_id": str(first), "action": "attended"}
        ).key
        reviewed = care.send(GOV, "incident.reviewed", {"incident_id": str(first), "outcome": "reviewed"}).key
        assert care.get("R14", str(first), "police").fulfilled_by == responded
        assert care.get("R14", str(first), "governance").fulfilled_by == reviewed
        assert care.get("R14", str(second), "police").status == "assigned"

    def test_the_same_incident_reported_twice_opens_one_pair(self, care) -> None:
        incident = uuid4()
        self.incident(care, incident)
        self.incident(care, incident, agency=COMMITTEE)  # the committee saw it too: the same incident
        assert len(care.rows("R14")) == 2

    def test_deregistration_does_not_cancel_the_review_of_an_incident(self, care) -> None:
        incident = uuid4()
        self.incident(care, incident)
        care.deregister()
        assert care.get("R14", str(incident), "governance").status == "assigned"


class TestR12Refusal:
    def test_a_refusal_of_visits_is_told_to_the_care_team_and_the_governance_center_once(self, care) -> None:
        refused = care.refuse("visits", 5)
        care.refuse("visits", 3)  # reported again while it holds: not told again
        rows = care.rows("R12")
        assert sorted((r.assignee, r.kind, r.action) for r in rows) == [
            (COMMITTEE, "notice", "refuses_visits_notice"),
            (GOV, "notice", "refuses_visits_notice"),
        ]
        assert {r.episode_key for r in rows} == {refused}
        notice, changed = act(care.services.case_record, rows[0].obligation_id, rows[0].assignee, None, "read")
        assert changed and notice.status == "read"

    def test_a_new_refusal_after_the_end_of_one_is_a_new_episode(self, care) -> None:
        first = care.refuse("visits", 20)
        care.refuse("visits", 10, ended=True)
        second = care.refuse("management", 5)
        assert {r.episode_key for r in care.rows("R12")} == {first, second}
        assert {r.action for r in care.rows("R12") if r.episode_key == second} == {"refuses_management_notice"}

    def test_a_late_refusal_dated_before_its_end_opens_nothing(self, care) -> None:
        care.refuse("visits", 10, ended=True)
        care.refuse("visits", 20)  # late: happened before the refusal ended
        assert care.rows("R12") == []


class TestR10FamilyRefusesAdmission:
    def test_a_high_risk_patient_whose_family_refuses_admission_needs_a_guardianship_agreement(self, care) -> None:
        care.visit(4, days_ago=5)
        refused = care.refuse("admission_by_family", 2)
        o = care.get("R10", refused, "committee")
        assert (o.assignee, o.action, deadline(o)) == (COMMITTEE, "sign_guardianship_agreement", timedelta(days=7))
        assert {(r.assignee, r.action) for r in care.rows("R10") if r.kind == "notice"} == {
            (GOV, "family_refuses_admission_notice"),
            (HC, "visit_more_often_notice"),
        }

    def test_an_agreement_signed_after_the_refusal_completes_it_and_an_older_one_does_not(self, care) -> None:
        care.visit(4, days_ago=10)
        refused = care.refuse("admission_by_family", 5)
        care.send(COMMITTEE, "guardianship-agreement.signed", {"signed_on": day(30)}, days_ago=30)  # late, older
        assert care.get("R10", refused, "committee").status == "assigned"
        signed = care.send(COMMITTEE, "guardianship-agreement.signed", {"signed_on": day(1)}, days_ago=1).key
        assert care.get("R10", refused, "committee").fulfilled_by == signed

    def test_it_is_cancelled_when_the_family_agrees_or_the_level_falls(self, care) -> None:
        care.visit(4, days_ago=20)
        first = care.refuse("admission_by_family", 15)
        care.refuse("admission_by_family", 10, ended=True)
        assert "no longer refuses" in care.get("R10", first, "committee").cancel_reason
        second = care.refuse("admission_by_family", 5)
        care.visit(1, days_ago=1)
        assert "fell below 3" in care.get("R10", second, "committee").cancel_reason

    def test_a_refusal_while_low_risk_waits_for_the_level_and_a_duplicate_opens_nothing(self, care) -> None:
        care.visit(1, days_ago=10)
        care.refuse("admission_by_family", 5)
        care.refuse("admission_by_family", 4)  # reported again
        assert care.rows("R10") == []
        entered = care.visit(4, days_ago=1)
        assert care.get("R10", entered, "committee").status == "assigned"
        assert len([r for r in care.rows("R10") if r.kind == "obligation"]) == 1


class TestR9SocialGuardian:
    def test_no_guardian_asks_civil_affairs_to_designate_one_and_tells_the_committee(self, care) -> None:
        none = care.send(CIVIL, "guardian.none-recorded", {}, days_ago=2).key
        o = care.get("R9", none, "civil-affairs")
        assert (o.assignee, o.action, deadline(o)) == (CIVIL, "designate_social_guardian", timedelta(days=30))
        assert care.get("R9", none, "committee-notice").kind == "notice"
        designated = care.send(CIVIL, "guardian.social-designated", {"designated_by": COMMITTEE}, days_ago=1).key
        assert care.get("R9", none, "civil-affairs").fulfilled_by == designated

    def test_a_weak_guardian_opens_it_and_a_capable_guardian_cancels_it(self, care) -> None:
        weak = care.send(HC, "guardian.assigned", {"contact": {"name": "Guardian One"}, "weak": True}, days_ago=9).key
        care.send(CIVIL, "guardian.none-recorded", {}, days_ago=8)  # still no capable guardian: same episode
        care.send(HC, "guardian.assigned", {"contact": {"name": "Guardian Two"}}, days_ago=1)
        assert "capable guardian" in care.get("R9", weak, "civil-affairs").cancel_reason
        assert len(care.rows("R9", CIVIL)) == 1

    def test_a_late_no_guardian_report_older_than_a_capable_guardian_opens_nothing(self, care) -> None:
        care.send(HC, "guardian.assigned", {"contact": {"name": "Guardian One"}}, days_ago=3)
        care.send(CIVIL, "guardian.none-recorded", {}, days_ago=10)
        assert care.rows("R9") == []


class TestR13Hardship:
    def status(self, care, status: str, days_ago: float) -> str:
        return care.send(HC, "circumstances.recorded", {"economic_status": status}, days_ago=days_ago).key

    def test_hardship_asks_civil_affairs_to_review_aid_and_a_grant_completes_it(self, care) -> None:
        flagged = self.status(care, "minimum_living_allowance", 5)
        o = care.get("R13", flagged, "civil-affairs")
        assert (o.assignee, o.action, deadline(o)) == (CIVIL, "review_aid_eligibility", timedelta(days=30))
        granted = care.send(CIVIL, "aid.granted", {"aid_type": "minimum_living_allowance"}, days_ago=1).key
        assert care.get("R13", flagged, "civil-affairs").fulfilled_by == granted

    def test_found_ineligible_completes_it_and_restating_the_same_hardship_does_not_reopen(self, care) -> None:
        flagged = self.status(care, "extreme_poverty", 10)
        found = care.send(
            CIVIL,
            "aid.found-ineligible",
            {"aid_type": "extreme_poverty_support", "reason": "income above the line"},
            days_ago=5,
        ).key
        assert care.get("R13", flagged, "civil-affairs").fulfilled_by == found
        self.status(care, "extreme_poverty", 1)
        assert len(care.rows("R13")) == 1

    def test_an_application_opens_it_and_a_statement_of_ordinary_means_cancels_it(self, care) -> None:
        flagged = self.status(care, "unable_to_pay_treatment", 10)
        self.status(care, "ordinary", 5)
        assert "no longer stated" in care.get("R13", flagged, "civil-affairs").cancel_reason
        applied = care.send(CIVIL, "aid.applied", {"aid_type": "minimum_living_allowance"}, days_ago=2).key
        assert care.get("R13", applied, "civil-affairs").status == "assigned"

    def test_a_late_decision_dated_before_the_statement_does_not_complete_it(self, care) -> None:
        flagged = self.status(care, "minimum_living_allowance", 5)
        care.send(CIVIL, "aid.applied", {"aid_type": "minimum_living_allowance"}, days_ago=40)
        care.send(CIVIL, "aid.found-ineligible", {"aid_type": "minimum_living_allowance", "reason": "old"}, days_ago=30)
        assert care.get("R13", flagged, "civil-affairs").status == "assigned"


class TestR17ThreeTierReview:
    def test_a_community_review_asks_for_the_township_review_in_seven_days(self, care) -> None:
        community = care.review("community", 1, 2)
        o = care.get("R17", community, "township")
        assert (o.assignee, o.action, deadline(o)) == (HC, "township_review", timedelta(days=7))
        assert care.get("R17", community, "city") is None  # not unstable: no city review

    def test_an_unstable_patient_also_needs_the_city_review_in_fifteen_days(self, care) -> None:
        community = care.review("community", 3, 2)
        o = care.get("R17", community, "city")
        assert (o.assignee, o.action, deadline(o)) == (HOSPITAL, "city_review", timedelta(days=15))
        township = care.review("township", 4, 1)
        city = care.review("city", 4, 0.5)
        assert care.get("R17", community, "township").fulfilled_by == township
        assert care.get("R17", community, "city").fulfilled_by == city

    def test_a_township_review_finding_the_patient_not_unstable_cancels_the_city_review(self, care) -> None:
        community = care.review("community", 3, 3)
        care.review("township", 1, 1)
        assert "not unstable" in care.get("R17", community, "city").cancel_reason

    def test_a_late_township_review_older_than_the_community_review_does_not_count(self, care) -> None:
        community = care.review("community", 1, 2)
        care.review("community", 1, 1.5)  # a second community review while one is pending: same episode
        care.review("township", 1, 20)
        assert care.get("R17", community, "township").status == "assigned"
        assert len(care.rows("R17")) == 1


class TestR3MobiliseTheGuardian:
    def contact(self, care, outcome: str, days_ago: float) -> str:
        return care.send(
            COMMITTEE,
            "care-team-contact.recorded",
            {"role": "community_worker", "mode": "visit", "outcome": outcome},
            days_ago=days_ago,
        ).key

    def test_a_basically_stable_patient_at_home_gives_the_care_team_mobilisation_work(self, care) -> None:
        entered = care.visit(2, days_ago=3)
        o = care.get("R3", entered, "committee")
        assert (o.assignee, o.action, deadline(o)) == (COMMITTEE, "mobilise_guardian_for_treatment", timedelta(days=7))
        care.visit(4, days_ago=2)  # unstable now: the same episode
        assert len(care.rows("R3")) == 1

    def test_a_contact_that_reached_the_family_completes_it_and_one_that_did_not_does_not(self, care) -> None:
        entered = care.visit(2, days_ago=5)
        self.contact(care, "not_reached", 3)
        assert care.get("R3", entered, "committee").status == "assigned"
        reached = self.contact(care, "reached", 1)
        assert care.get("R3", entered, "committee").fulfilled_by == reached

    def test_an_admission_completes_it_and_a_stable_class_cancels_it(self, care) -> None:
        first = care.visit(2, days_ago=20)
        admitted = care.admit(15)
        assert care.get("R3", first, "committee").fulfilled_by == admitted
        second = care.discharge(10)  # at home again, still basically stable: a new episode
        care.visit(0, days_ago=1)
        assert care.get("R3", second, "committee").cancel_reason == "the patient is stable"

    def test_a_late_older_assessment_changes_nothing(self, care) -> None:
        care.visit(0, days_ago=2)
        care.visit(2, days_ago=10)  # late: the patient is stable now
        assert care.rows("R3") == []


class TestR18SuspectedCase:
    def report(self, services, case: UUID, message: UUID | None = None):
        doc = agency_envelope(
            COMMITTEE,
            "cn.smd.suspected-case.reported.v1",
            case,
            {"observed": "shouting at night", "seen_in": VILLAGE},
            occurred=NOW,
            message_id=message,
            actor=None,
        )
        recorded = accept(services.case_record, services.registry, doc, COMMITTEE, "test")
        services.catch_up(recorded.notification_id or 0)
        return recorded

    def assess(self, services, case: UUID):
        doc = agency_envelope(
            HC, "cn.smd.suspected-case.assessed.v1", case, {"outcome": "no_severe_disorder"}, occurred=NOW, actor=None
        )
        recorded = accept(services.case_record, services.registry, doc, HC, "test")
        services.catch_up(recorded.notification_id or 0)
        return recorded

    def get(self, services, case: UUID) -> Obligation:
        return services.case_record.repository.get(obligation_id(case, "R18", str(case), "health-center"))

    def test_a_reported_case_is_assessed_within_ten_working_days_and_the_assessment_completes_it(
        self, services
    ) -> None:
        load_file(services.case_record, DEMO_DISTRICT)
        case = uuid4()
        message = uuid4()
        self.report(services, case, message)
        self.report(services, case, message)  # the same message again
        o = self.get(services, case)
        # reported Friday 2026-11-20: ten working days later is Friday 2026-12-04, due by its end
        assert (o.assignee, o.action, o.due_at) == (
            HC,
            "assess_suspected_case",
            datetime.combine(date(2026, 12, 5), time(0), CHINA_TZ),
        )
        assert len([r for r in services.work_queue.for_assignee(HC) if r.rule == "R18"]) == 1
        assessed = self.assess(services, case)
        assert self.get(services, case).fulfilled_by == assessed.key

    def test_the_working_days_skip_national_day_and_count_its_make_up_saturday(self, open_store) -> None:
        services = open_store(clock=lambda: datetime(2026, 9, 28, 2, 0, tzinfo=UTC))  # Monday, China time
        load_file(services.case_record, DEMO_DISTRICT)
        load_year_file(services.case_record, year_file(2026))
        case = uuid4()
        doc = agency_envelope(
            COMMITTEE,
            "cn.smd.suspected-case.reported.v1",
            case,
            {"observed": "wandering", "seen_in": VILLAGE},
            occurred=datetime(2026, 9, 28, 1, 0, tzinfo=UTC),
            actor=None,
        )
        recorded = accept(services.case_record, services.registry, doc, COMMITTEE, "test")
        services.catch_up(recorded.notification_id or 0)
        # 29, 30 Sep; 1-7 Oct off; 8, 9, 10 (make-up Saturday), 12, 13, 14, 15, 16 Oct
        assert self.get(services, case).due_at == datetime.combine(date(2026, 10, 17), time(0), CHINA_TZ)


# -- periodic rules ----------------------------------------------------------------------------------


class TestR2JointVisits:
    def test_an_unstable_patient_at_home_needs_a_joint_visit_every_fourteen_days(self, care) -> None:
        entered = care.visit(4, days_ago=3)
        cycle = care.get("R2", entered, "joint-visit", care.version(entered))
        assert (cycle.assignee, cycle.action) == (HC, "joint_visit")
        assert cycle.due_at == NOW - timedelta(days=3) + timedelta(days=14)  # from the visit's date
        notices = {(r.assignee, r.action) for r in care.rows("R2") if r.kind == "notice"}
        assert notices == {
            (COMMITTEE, "joint_visits_every_14_days_notice"),
            (POLICE, "joint_visits_every_14_days_notice"),
        }
        assert care.get("R2", entered, "legal-duty").action == "tell_guardian_of_legal_duty"

    def test_a_joint_visit_completes_the_cycle_opens_the_next_and_satisfies_r4(self, care) -> None:
        entered = care.visit(4, days_ago=20)
        joint = care.visit(4, days_ago=6, joint=True)
        assert care.get("R2", entered, "joint-visit", care.version(entered)).fulfilled_by == joint
        assert care.get("R4", "registration", "visit", care.version(entered)).fulfilled_by == joint
        nxt = care.get("R2", entered, "joint-visit", care.version(joint))
        assert (nxt.status, nxt.due_at) == ("assigned", NOW - timedelta(days=6) + timedelta(days=14))

    def test_telling_the_guardian_of_the_legal_duty_completes_that_part(self, care) -> None:
        entered = care.visit(4, days_ago=5)
        told = care.send(COMMITTEE, "legal-duty-notice.given", {"given_on": day(1)}, days_ago=1).key
        assert care.get("R2", entered, "legal-duty").fulfilled_by == told

    def test_an_admission_or_a_calmer_class_cancels_the_cycle(self, care) -> None:
        first = care.visit(4, days_ago=30)
        care.admit(25)
        assert "admitted" in care.get("R2", first, "joint-visit", care.version(first)).cancel_reason
        assert "admitted" in care.get("R2", first, "legal-duty").cancel_reason
        second = care.discharge(20)  # at home again, still unstable: a new episode
        care.visit(2, days_ago=10)
        assert "no longer unstable" in care.get("R2", second, "joint-visit", care.version(second)).cancel_reason

    def test_a_joint_visit_that_finds_the_patient_calmer_completes_the_cycle_and_ends_the_episode(self, care) -> None:
        entered = care.visit(4, days_ago=10)
        calmer = care.visit(2, days_ago=2, joint=True)
        assert care.get("R2", entered, "joint-visit", care.version(entered)).fulfilled_by == calmer
        assert "no longer unstable" in care.get("R2", entered, "legal-duty").cancel_reason
        assert care.get("R2", entered, "joint-visit", care.version(calmer)) is None  # no next cycle

    def test_a_late_older_joint_visit_or_a_duplicate_opens_nothing(self, care) -> None:
        entered = care.visit(4, days_ago=20)
        message = uuid4()
        joint = care.visit(4, days_ago=5, joint=True, message_id=message)
        care.visit(4, days_ago=5, joint=True, message_id=message)
        care.visit(4, days_ago=10, joint=True)  # late, older than the latest joint visit
        cycles = [r for r in care.rows("R2") if r.action == "joint_visit"]
        assert sorted(r.status for r in cycles) == ["assigned", "completed"]
        assert care.get("R2", entered, "joint-visit", care.version(joint)).status == "assigned"

    def test_a_missed_fortnight_is_overdue_once_however_often_the_scheduler_runs(self, care) -> None:
        entered = care.visit(4, days_ago=1)
        for scheduler in (care.scheduler(20), care.scheduler(20)):
            scheduler.run_once(force=True)
            care.services.catch_up(care.services.case_record.recorder.max_notification_id())
        events = list(
            care.services.case_record.events.get(
                obligation_id(care.patient, "R2", entered, "joint-visit", care.version(entered))
            )
        )
        assert [type(e).TOPIC for e in events].count("smd.ObligationOverdue") == 1


class TestR4VisitIntervals:
    def test_a_new_patient_is_due_a_first_visit_and_each_visit_sets_the_next_by_class(self, care) -> None:
        first = care.get("R4", "registration", "visit", 1)
        assert (first.assignee, first.action, first.due_at) == (
            HC,
            "follow_up_visit",
            NOW - timedelta(days=200) + timedelta(days=14),
        )
        for level, cls, interval in ((0, "stable", 90), (2, "basically_stable", 30), (4, "unstable", 14)):
            v = care.visit(level, days_ago=10 - level, cls=cls)
            o = care.get("R4", "registration", "visit", care.version(v))
            assert o.due_at == NOW - timedelta(days=10 - level) + timedelta(days=interval)
        assert [r.status for r in care.rows("R4")].count("assigned") == 1

    def test_an_admission_cancels_it_and_a_discharge_starts_again(self, care) -> None:
        care.admit(10)
        assert "admitted" in care.get("R4", "registration", "visit", 1).cancel_reason
        discharged = care.discharge(5)
        assert care.get("R4", discharged, "visit", care.version(discharged)).status == "assigned"

    def test_a_late_older_visit_or_a_duplicate_moves_nothing(self, care) -> None:
        latest = care.visit(0, days_ago=5)
        care.visit(0, days_ago=30)  # late, older
        message = uuid4()
        care.visit(0, days_ago=5, message_id=message)
        care.visit(0, days_ago=5, message_id=message)
        open_rows = [r for r in care.rows("R4") if r.status == "assigned"]
        assert len(open_rows) == 1 and latest  # one visit is due, whatever arrived late or twice

    def test_an_interval_exceeded_is_a_visit_overdue_escalated_to_the_governance_center(self, care) -> None:
        visited = care.visit(0, days_ago=80)
        care.scheduler(11).run_once(force=True)
        care.services.catch_up(care.services.case_record.recorder.max_notification_id())
        row = next(
            r
            for r in care.rows("R4")
            if r.obligation_id == obligation_id(care.patient, "R4", "registration", "visit", care.version(visited))
        )
        assert (row.overdue, row.escalated_to) == (True, GOV)


class TestR6MedicationSupply:
    def test_a_pickup_is_due_again_when_its_supply_runs_out(self, care) -> None:
        picked = care.pickup(10, 30)
        o = care.get("R6", picked, "health-center", care.version(picked))
        run_out = (NOW - timedelta(days=10)).date() + timedelta(days=30)
        assert (o.assignee, o.action, o.due_at) == (
            HC,
            "medication_pickup_due",
            datetime.combine(run_out, time(0), CHINA_TZ),
        )

    def test_a_new_pickup_completes_it_and_carries_the_leftover_supply(self, care) -> None:
        first = care.pickup(20, 30)
        second = care.pickup(5, 30)  # 15 days left over: runs out 40 days after the first pickup
        assert care.get("R6", first, "health-center", care.version(first)).fulfilled_by == second
        o = care.get("R6", first, "health-center", care.version(second))
        assert o.due_at == datetime.combine((NOW - timedelta(days=20)).date() + timedelta(days=60), time(0), CHINA_TZ)

    def test_when_the_supply_runs_out_the_care_team_is_warned_once(self, care) -> None:
        picked = care.pickup(40, 30)  # ran out ten days ago
        for scheduler in (care.scheduler(0), care.scheduler(0)):  # a second scheduler, or a restart
            scheduler.run_once(force=True)
            care.services.catch_up(care.services.case_record.recorder.max_notification_id())
        warnings = [r for r in care.rows("R6", COMMITTEE)]
        assert [(r.kind, r.action) for r in warnings] == [("notice", "medication_run_out_warning")]
        assert warnings[0].obligation_id == obligation_id(
            care.patient, "R6", picked, "care-team-warning", care.version(picked)
        )
        (due,) = care.rows("R6", HC)
        assert (due.overdue, due.escalated_to) == (True, GOV)

    def test_an_admission_cancels_it_and_a_late_or_duplicate_pickup_is_counted_once(self, care) -> None:
        message = uuid4()
        picked = care.pickup(10, 30, message_id=message)
        care.pickup(10, 30, message_id=message)
        late = care.pickup(12, 10)  # late, dated earlier: still medication the patient has
        assert care.get("R6", picked, "health-center", care.version(picked)).fulfilled_by == late
        care.admit(1)
        assert "admitted" in care.get("R6", picked, "health-center", care.version(late)).cancel_reason


# -- replay and backfill ------------------------------------------------------------------------------

DERIVED = ("smd.Obligation", "smd.Notice", "smd.LostTo")


class TestReplayAndBackfill:
    def story(self, care) -> None:
        care.visit(4, days_ago=60)
        care.refuse("admission_by_family", 55)
        care.send(CIVIL, "guardian.none-recorded", {}, days_ago=50)
        care.send(HC, "circumstances.recorded", {"economic_status": "extreme_poverty"}, days_ago=45)
        care.review("community", 4, 44)
        care.pickup(40, 30)
        care.visit(4, days_ago=35, joint=True)
        care.admit(30)
        care.discharge(20)
        care.send(
            POLICE,
            "incident.reported",
            {"incident_id": str(uuid4()), "incident_kind": "self_harm", "severity": 1},
            days_ago=15,
        )
        care.refuse("visits", 10)
        care.visit(2, days_ago=12)  # late: dated before the refusal, after the discharge
        care.send(COMMITTEE, "guardianship-agreement.signed", {"signed_on": day(5)}, days_ago=5)
        care.send(CIVIL, "aid.granted", {"aid_type": "extreme_poverty_support"}, days_ago=3)

    def test_replaying_the_facts_into_a_fresh_store_decides_exactly_the_same(
        self, care, tmp_path, store_kind, request
    ) -> None:
        self.story(care)
        _, derived = split(care.services)
        assert {
            r for r in ("R2", "R3", "R4", "R6", "R9", "R10", "R11", "R12", "R13", "R14", "R17") if care.rows(r)
        } == {"R2", "R3", "R4", "R6", "R9", "R10", "R11", "R12", "R13", "R14", "R17"}
        with replica_of(care.services, store_kind, tmp_path / "replica", request) as replica:
            while replica.policies.run_once():
                pass
            _, again = split(replica)
            assert comparable(replica, again) == comparable(care.services, derived)

    def test_a_backfill_opens_the_care_rules_for_the_current_state_only(self, services, tmp_path) -> None:
        load_file(services.case_record, DEMO_DISTRICT)
        patient = uuid4()

        def row(agency, event_type, data, days_ago):
            occurred = NOW - timedelta(days=days_ago)
            return envelope_json(agency, f"cn.smd.{event_type}.v1", patient, data, occurred=occurred, actor=None)

        rows = [
            row(HC, "patient.registered", {"name": "Ledger Person", "residence": VILLAGE}, 400),
            row(HC, "visit.recorded", {"face_to_face": True, "risk_level": 0, "risk_class": "stable"}, 300),
            row(HC, "guardian.none-recorded", {}, 200),  # still none: R9 is open now
            row(HC, "refusal.recorded", {"refusal": "visits", "ended": False}, 150),
            row(HC, "refusal.recorded", {"refusal": "visits", "ended": True}, 100),  # over: nothing
            row(
                HC,
                "incident.reported",
                {"incident_id": str(uuid4()), "incident_kind": "minor_trouble", "severity": 1},
                90,
            ),  # the past's review: nothing
            row(HC, "visit.recorded", {"face_to_face": True, "risk_level": 0, "risk_class": "stable"}, 20),
        ]
        ledger = tmp_path / "ledger.jsonl"
        ledger.write_text("\n".join(json.dumps(r) for r in rows))
        import_ledger(services.case_record, services.registry, ledger, HC)
        go_live.complete(services.case_record, services.registry.region, "gov-willowbrook")
        services.catch_up(services.case_record.recorder.max_notification_id())
        found = {
            (r.rule, r.kind, r.status)
            for r in services.work_queue.select("1 = 1", [], 0, 1000)
            if r.patient_id == patient
        }
        assert found == {
            ("R9", "obligation", "assigned"),
            ("R9", "notice", "assigned"),
            ("R4", "obligation", "assigned"),
            ("R16", "obligation", "assigned"),
        }  # no guardian + incident history: key (R16)
        p = services.case_record.repository.get(patient)
        latest = max(p.visits, key=lambda v: v["at"])
        r4 = services.case_record.repository.get(obligation_id(patient, "R4", "registration", "visit", latest["v"]))
        assert r4.due_at == NOW - timedelta(days=20) + timedelta(days=90)  # the latest visit, stable: 3 months
