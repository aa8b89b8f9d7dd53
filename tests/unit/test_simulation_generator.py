"""The synthetic township: seeded, fictional, and as messy as real agencies' systems."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from core.contract import decode_event
from core.door import check_at_the_door
from core.registry import read_registry_file
from domain.jurisdiction import covers, covers_then_or_now
from domain.registry import RegistryState
from domain.values import EARLIEST_OCCURRED
from ops.data_files import DEMO_DISTRICT
from ops.simulation.generator import CST, PROFILES, REGISTRATION_TYPES, by_day, generate

SEEDS_DIR = Path(__file__).resolve().parents[3] / "shared" / "seeds"
REGISTERED = "cn.smd.patient.registered.v1"
MESSAGES = ("fact", "ledger", "duplicate")  # not "invalid", not "act" (an owner's act in the work queue: no message)


def _demo_registry() -> RegistryState:
    desired = read_registry_file(DEMO_DISTRICT)
    return RegistryState.of(desired.region, [*desired.org_units, *desired.agencies])


def _places(township) -> dict[str, str]:
    """Each subject's place: a patient's residence, the place a suspected person was seen, a task's
    patient's residence or its place."""
    places = {}
    for d in township.deliveries:
        if d.kind != "invalid" and d.event_type in (*REGISTRATION_TYPES, "cn.smd.suspected-case.reported.v1"):
            doc = json.loads(d.raw)
            places[doc["subject"]] = doc["data"].get("residence") or doc["data"]["seen_in"]
    for d in township.deliveries:
        if d.kind == "fact" and d.event_type == "cn.smd.task.assigned.v1":
            doc = json.loads(d.raw)
            places[doc["subject"]] = doc["data"].get("place") or places[doc["data"]["patient_id"]]
    return places


#: Facts about the sending agency itself (R21 reports, progress on the work plan's tasks).
ABOUT_THE_SENDER = ("cn.smd.report.submitted.v1", "cn.smd.task-progress.recorded.v1")


@pytest.fixture(scope="module")
def township():
    return generate(11, 120)


class TestTheSameSeedGivesTheSameTownship:
    def test_two_generations_with_one_seed_are_identical_byte_for_byte(self, township) -> None:
        again = generate(11, 120)
        assert [(d.at, d.agency, d.raw, d.kind) for d in again.deliveries] == [
            (d.at, d.agency, d.raw, d.kind) for d in township.deliveries
        ]

    def test_another_seed_gives_another_township(self, township) -> None:
        other = generate(12, 120)
        assert [d.raw for d in other.deliveries[:50]] != [d.raw for d in township.deliveries[:50]]


class TestWhatAgenciesSend:
    def test_every_valid_message_decodes_with_the_one_contract(self, township) -> None:
        for d in township.deliveries:
            if d.kind in MESSAGES:
                assert decode_event(d.raw).source == d.agency

    def test_messages_come_in_delivery_order_within_the_year(self, township) -> None:
        instants = [d.at for d in township.deliveries]
        assert instants == sorted(instants)
        assert instants[-1] < township.end

    def test_nothing_is_delivered_before_it_happened(self, township) -> None:
        for d in township.deliveries:
            if d.kind == "fact":
                assert decode_event(d.raw).time <= d.at

    def test_some_facts_arrive_late_and_out_of_order(self, township) -> None:
        assert township.planted["late"] >= 100
        seen: dict[str, object] = {}
        overtaken = 0
        for d in township.deliveries:
            if d.kind == "fact":
                doc = json.loads(d.raw)
                occurred = decode_event(d.raw).time
                if doc["subject"] in seen and occurred < seen[doc["subject"]]:
                    overtaken += 1
                seen[doc["subject"]] = max(occurred, seen.get(doc["subject"], occurred))
        assert overtaken >= 20

    def test_duplicates_repeat_a_message_exactly(self, township) -> None:
        facts = {d.raw for d in township.deliveries if d.kind == "fact"}
        duplicates = [d for d in township.deliveries if d.kind == "duplicate"]
        assert len(duplicates) >= 20 and all(d.raw in facts for d in duplicates)

    def test_every_valid_message_passes_the_door_with_the_demo_district(self, township) -> None:
        desired = read_registry_file(DEMO_DISTRICT)
        registry = RegistryState.of(desired.region, [*desired.org_units, *desired.agencies])
        for d in township.deliveries:
            if d.kind in MESSAGES:  # known org units and agencies, times in range, on the day it arrives
                check_at_the_door(decode_event(d.raw), registry, d.at, d.at.astimezone(CST).date(), EARLIEST_OCCURRED)

    def test_every_valid_message_comes_from_an_agency_whose_jurisdiction_covers_its_subject(self, township) -> None:
        # strictly: the sender covers the residence (the place seen) on the fact's day or the day it
        # arrives, none of docs/decisions/014's exceptions needed (the simulation's derived facts
        # stayed the same when the check came in)
        registry = _demo_registry()
        places = _places(township)
        checked = 0
        for d in township.deliveries:
            if d.kind in MESSAGES:
                doc = json.loads(d.raw)
                if doc["type"] in ABOUT_THE_SENDER:
                    continue  # a report or a task's progress is about its sender, not a place
                occurred = decode_event(d.raw).time.astimezone(CST).date()
                unit = places[doc["subject"]]
                assert covers_then_or_now(registry, d.agency, unit, occurred, d.at.astimezone(CST).date()), doc
                checked += 1
        assert checked > 1000

    def test_writes_outside_jurisdiction_are_planted_each_from_an_agency_that_never_covered_the_place(
        self, township
    ) -> None:
        registry = _demo_registry()
        places = _places(township)
        planted = [d for d in township.deliveries if d.why_invalid == "outside-jurisdiction"]
        assert {d.event_type for d in planted} == {
            "cn.smd.visit.recorded.v1",
            "cn.smd.refusal.recorded.v1",
            "cn.smd.patient.registered.v1",
        }
        assert township.planted["invalid outside-jurisdiction"] == len(planted) == 3
        for d in planted:
            event = decode_event(d.raw)  # valid in every other respect
            assert event.source == d.agency
            unit = event.data.residence if d.event_type == REGISTERED else places[str(event.subject)]
            days = (event.time.astimezone(CST).date(), d.at.astimezone(CST).date())
            assert not any(covers(registry, d.agency, unit, day) for day in days)

    def test_every_invalid_message_says_what_is_wrong_with_it(self, township) -> None:
        invalid = [d for d in township.deliveries if d.kind == "invalid"]
        assert len(invalid) >= 6 and all(d.why_invalid for d in invalid)

    def test_the_police_send_in_batches_and_committees_often_in_a_weekly_sync(self, township) -> None:
        urgent = ("cn.smd.emergency.", "cn.smd.risk.escalated.")  # the emergency line: at once, never batched
        police = [
            d.at.astimezone(CST)
            for d in township.deliveries
            if d.agency.startswith("police") and d.kind == "fact" and not d.event_type.startswith(urgent)
        ]
        assert sum(t.hour in (2, 10, 18) and t.minute == 0 for t in police) >= len(police) * 0.8
        committee = [d.at.astimezone(CST) for d in township.deliveries if d.agency.startswith("committee")]
        assert sum(t.weekday() == 0 and t.hour == 20 for t in committee) >= len(committee) * 0.3


class TestAYearOfATownship:
    def test_the_register_has_the_usual_mix_of_patients(self, township) -> None:
        assert set(township.profiles) == set(PROFILES)
        assert township.profiles["stable"] > township.profiles["unstable"]

    def test_the_year_holds_every_kind_of_event_the_rules_react_to(self, township) -> None:
        for kind in (
            "visit.recorded",
            "visit.missed",
            "risk.assessed",
            "medication.dispensed",
            "patient.admitted",
            "patient.discharged",
            "patient.deregistered",
            "guardian.none-recorded",
            "refusal.recorded",
            "review.recorded",
            "incident.reported",
            "aid.applied",
            "care-team-contact.recorded",
            "suspected-case.reported",
            "late visit breaking a run of misses",
            "second report of a missed visit",
        ):
            assert township.planted[kind] >= 1, kind

    def test_by_day_groups_the_deliveries_by_local_day(self, township) -> None:
        days = list(by_day(township))
        assert sum(len(batch) for _, batch in days) == len(township.deliveries)
        assert all(d.at.astimezone(CST).date() == day for day, batch in days for d in batch)
        assert days[-1][0] < township.start + timedelta(days=township.days)


class TestEveryoneIsFictional:
    def test_names_are_marked_pseudonyms_and_appear_nowhere_in_the_seeds(self, township) -> None:
        seeds = "".join(p.read_text(encoding="utf-8") for p in SEEDS_DIR.glob("*.txt")) if SEEDS_DIR.exists() else ""
        names = [json.loads(d.raw)["data"]["name"] for d in township.deliveries if d.event_type in REGISTRATION_TYPES]
        assert names and all(n.startswith("化名") for n in names)
        assert not any(n[2:4] in seeds for n in names)

    def test_no_identifier_is_ever_generated(self, township) -> None:
        for d in township.deliveries:
            if d.kind in MESSAGES:
                data = json.loads(d.raw)["data"]
                assert "id_number" not in data and "phone" not in data


class TestWhatIssue19Added:
    """The hospital's new patients, emergencies, tasks, institutional care, v2 registrations."""

    def test_registrations_come_in_both_versions_and_v2_carries_a_birth_date_and_a_county_code(self, township) -> None:
        regs = [d for d in township.deliveries if d.event_type in REGISTRATION_TYPES and d.kind in ("fact", "ledger")]
        versions = {d.event_type for d in regs}
        assert versions == set(REGISTRATION_TYPES)
        for d in regs:
            if d.event_type.endswith(".v2"):
                data = decode_event(d.raw).data
                assert data.birth_date.year >= 1950 and data.household_region.startswith("99")  # fictional codes

    def test_the_hospital_pushes_new_patients_taken_over_in_time_late_or_never(self, township) -> None:
        p = township.planted
        assert p["r19 registered by the hospital"] + p["r19 diagnosed by the hospital"] >= 4
        assert p["r19 taken over in time"] > p["r19 taken over late"] >= 1

    def test_danger_reports_and_answers_to_emergencies_come_after_what_they_answer(self, township) -> None:
        p = township.planted
        assert p["risk.escalated"] >= 5 and p["emergency.responded"] >= p["risk.escalated"]
        assert p["r20 police responded in time"] > p["r20 police responded late"] >= 1
        dangers: dict[str, list] = {}
        for d in township.deliveries:  # in delivery order
            if d.kind != "fact":
                continue
            event = decode_event(d.raw)
            if d.event_type in ("cn.smd.risk.escalated.v1", "cn.smd.visit.recorded.v1", "cn.smd.risk.assessed.v1"):
                if d.event_type == "cn.smd.risk.escalated.v1" or event.data.risk_level >= 4:
                    dangers.setdefault(str(event.subject), []).append(event.time)
            elif d.event_type in ("cn.smd.emergency.responded.v1", "cn.smd.emergency.coordinated.v1"):
                assert any(t <= event.time for t in dangers.get(str(event.subject), [])), d.raw

    def test_tasks_are_done_by_their_assignee_after_they_were_assigned(self, township) -> None:
        assigned = {}
        acts = 0
        for d in township.deliveries:
            doc = json.loads(d.raw)
            if d.event_type == "cn.smd.task.assigned.v1" and d.kind == "fact":
                assigned[doc["subject"]] = doc["data"]["assignee"]
            elif d.kind == "act":
                assert assigned[doc["task"]] == d.agency
                acts += 1
        assert len(assigned) >= 8 and 0 < acts < len(assigned)

    def test_civil_affairs_places_some_patients_in_institutional_care(self, township) -> None:
        p = township.planted
        assert p["institutional care started"] >= 1
        assert all(
            d.agency.startswith("civil")
            for d in township.deliveries
            if d.event_type.startswith("cn.smd.institutional-care.")
        )


class TestReports:
    def test_r21_each_agency_that_owes_reports_sends_most_on_time_some_late_and_a_few_never(self, township) -> None:
        from ops.simulation.reporting import _periods

        reports = [json.loads(d.raw) for d in township.deliveries if d.event_type == "cn.smd.report.submitted.v1"]
        registry = _demo_registry()
        senders = {r["source"] for r in reports}
        assert {str(registry.agency(a, township.start).kind) for a in senders} >= {
            "department",
            "health_center",
            "police_station",
            "committee",
        }
        owed = sum(
            len(_periods(str(registry.agency(a, township.start).kind), township.start, township.days)) for a in senders
        )
        assert 0.8 * owed <= len(reports) < owed  # some never come
        assert all(r["data"]["period"] for r in reports)
        progress = [d for d in township.deliveries if d.event_type == "cn.smd.task-progress.recorded.v1"]
        assert progress and all(str(registry.agency(d.agency, township.start).kind) == "department" for d in progress)
