"""Transfer of management between two regions (R8), on SQLite and PostgreSQL: two deployments in
one process, each with its own store and keys, messages carried by a small in-memory link.

A move reported in A opens an outgoing handover and sends B a signed request (personal fields
sealed to B); B's health center accepts or rejects by a deadline; acceptance registers the patient
in B under the same id and closes A's file as moved out; rejection or silence escalates on both
sides; at every instant at least one region is responsible. Crossing messages end as the first
decisive fact in A's log says. Forged, replayed and out-of-sequence messages are refused and kept.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from uuid import UUID, uuid4, uuid5

import msgspec
import pytest

from core.handover import Handovers
from core.handover_policy import answer_obligation_id, escalation_notice_id
from core.intake import accept
from core.region_keys import CrossRegionKeys
from core.registry import load_file
from domain.handover import (
    ErasedHere,
    HandoverAlreadyDecided,
    HandoverCancelledByOrigin,
    IncomingHandover,
    NotTheReceivingHealthCenter,
    handover_id,
)
from domain.patient_file import FactAfterDeregistration
from domain.receipt import receipt_id
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.id_numbers import fictional_id_number
from tests.support.stores import NOW, MovableClock, open_services, store_settings

A, B = "990101", "990202"  # fictional region codes
HC, COMMITTEE, GOV = "hc-north", "committee-north", "gov-willowbrook"
VILLAGE = "990101-001-v01"
B_VILLAGE = "990202-001-v01"  # region B's copy of the fictional demo district
SECRET_NAME = "MKXRzz Quill Mossgrove"
ANSWER_WITHIN = timedelta(days=10)
BASIC_VISIT = {"face_to_face": True, "joint": False, "risk_level": 1, "risk_class": "basically_stable"}
ID_NUMBER = fictional_id_number(date(1975, 6, 30), seq=17)


class Region:
    """One deployment: its services, its handovers, a way to send agencies' facts."""

    def __init__(self, services, keys: CrossRegionKeys, clock: MovableClock, by_agreement=()) -> None:
        self.services = services
        self.keys = keys
        self.clock = clock
        self.handovers = Handovers(
            services.case_record, keys, services.registry, ANSWER_WITHIN, clock, dual_management_regions=by_agreement
        )

    def send(self, agency: str, event_type: str, subject: UUID, data: dict, days_ago: float = 0.1, staff=None):
        doc = agency_envelope(
            agency,
            f"cn.smd.{event_type}",
            subject,
            data,
            occurred=self.clock.now - timedelta(days=days_ago),
            actor=staff,
        )
        return accept(self.services.case_record, self.services.registry, doc, agency, "test")

    def file(self, patient: UUID):
        return self.services.case_record.patient(patient)

    def view(self, hid: UUID) -> dict:
        return self.handovers.handover(hid)


class Link:
    """The transport between two regions in these tests: carries each side's outbox to the other
    after what the other applied (as a durable consumer would), or exactly what a test says."""

    def __init__(self, a: Region, b: Region) -> None:
        self.regions = {A: a, B: b}

    def pending(self, sender: str, receiver: str) -> list[str]:
        after = self.regions[receiver].handovers.applied_from(sender)
        return self.regions[sender].handovers.outbox(receiver, after)

    def deliver(self, sender: str, receiver: str) -> list[str]:
        return [self.regions[receiver].handovers.receive(w) for w in self.pending(sender, receiver)]

    def sync(self) -> None:
        for _ in range(3):
            self.deliver(A, B)
            self.deliver(B, A)


def district(code: str, tmp_path: Path) -> Path:
    """Region ``code``'s registry: the fictional demo district under that region code."""
    if code == A:
        return DEMO_DISTRICT
    path = tmp_path / f"district-{code}.toml"
    path.write_text(DEMO_DISTRICT.read_text(encoding="utf-8").replace(A, code), encoding="utf-8")
    return path


@pytest.fixture
def regions(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Regions A and B, each with its own store (its own database) and keys, linked."""
    opened = []
    made = []
    keys = {A: CrossRegionKeys.generate(A), B: CrossRegionKeys.generate(B)}
    keys[A].link(keys[B].as_peer())
    keys[B].link(keys[A].as_peer())
    for code in (A, B):
        pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
        clock = MovableClock(NOW)
        services = open_services(store_settings(store_kind, tmp_path / code, pg_url, SMD_REGION=code), clock=clock)
        opened.append(services)
        load_file(services.case_record, district(code, tmp_path))
        made.append(Region(services, keys[code], clock))
    yield made[0], made[1], Link(made[0], made[1])
    for services in opened:
        services.close()


def move_to_b(a: Region, id_number: str | None = None) -> tuple[UUID, UUID]:
    """A patient registered in A is reported moving to B; A's bridge opens the handover."""
    patient, move = uuid4(), uuid4()
    number = {"id_number": id_number} if id_number else {}
    a.send(
        HC,
        "patient.registered.v2",
        patient,
        {
            "name": SECRET_NAME,
            "residence": VILLAGE,
            "birth_date": "1975-06-30",
            "household_region": A,
            "phone": "13900000017",
            **number,
        },
        days_ago=100,
    )
    a.send(
        COMMITTEE,
        "move.reported.v1",
        patient,
        {"move_id": str(move), "destination_region": B, "destination_unit": B_VILLAGE, "moving_on": "2026-11-15"},
    )
    assert a.handovers.follow_moves() == 1
    return patient, handover_id(A, patient, move)


def responsible(a: Region, b: Region, hid: UUID) -> set[str]:
    """Who is responsible now, as the two sides' own records say (each says it of itself)."""
    out, incoming = a.view(hid), b.view(hid)
    return ({A} if A in out["responsible"] else set()) | ({B} if B in incoming["responsible"] else set())


class TestTransferOfManagement:
    def test_a_move_to_another_region_opens_an_outgoing_handover_once(self, regions) -> None:
        a, _, _ = regions
        _, hid = move_to_b(a)
        assert a.handovers.follow_moves() == 0  # the bridge's position is stored with the handover
        view = a.view(hid)
        assert (view["direction"], view["status"], view["responsible"]) == ("out", "open", [A])
        assert len(a.handovers.outbox(B)) == 1

    def test_accepted_the_patient_is_registered_in_b_and_a_closes_its_file_as_moved_out(self, regions) -> None:
        a, b, link = regions
        patient, hid = move_to_b(a)
        link.sync()
        incoming = b.view(hid)
        assert (incoming["direction"], incoming["status"], incoming["assignee"]) == ("in", "requested", HC)
        assert responsible(a, b, hid) == {A}
        b.handovers.answer(hid, accepted=True, by_agency=HC)
        assert responsible(a, b, hid) == {A, B}  # in flight: both, never neither
        registered = b.file(patient)  # same patient id, B's own blind indexes and data key
        assert registered.personal.name == SECRET_NAME and registered.residence == B_VILLAGE
        # the registration's receipt names what authenticated it: the origin's signed request
        receipt = b.services.case_record.repository.get(receipt_id(f"{HC}:{uuid5(hid, 'registration')}"))
        assert receipt.authenticated_by == f"handover:{hid}"
        link.sync()
        assert a.view(hid)["status"] == "accepted" and a.file(patient).deregistration_reason == "moved_out"
        assert responsible(a, b, hid) == {B}

    def test_rejected_a_keeps_the_patient_and_both_sides_escalate(self, regions) -> None:
        a, b, link = regions
        patient, hid = move_to_b(a)
        link.sync()
        b.handovers.answer(hid, accepted=False, by_agency=HC)
        link.sync()
        assert a.view(hid)["status"] == "rejected" and a.view(hid)["escalations"] == ["rejected"]
        assert b.view(hid)["escalations"] == ["rejected"]
        assert a.file(patient).move_status == "rejected" and a.file(patient).deregistered_at is None
        assert responsible(a, b, hid) == {A}

    def test_unanswered_by_the_deadline_escalates_on_both_sides_once(self, regions) -> None:
        a, b, link = regions
        _, hid = move_to_b(a)
        link.sync()
        for region in (a, b):
            region.clock.now = NOW + ANSWER_WITHIN + timedelta(hours=1)
            assert region.handovers.check_deadlines() == [hid]
            assert region.handovers.check_deadlines() == []
        assert a.view(hid)["escalations"] == ["unanswered"] == b.view(hid)["escalations"]
        assert responsible(a, b, hid) == {A}

    def test_only_the_receiving_health_center_answers_and_only_once(self, regions) -> None:
        a, b, link = regions
        _, hid = move_to_b(a)
        link.sync()
        with pytest.raises(NotTheReceivingHealthCenter):
            b.handovers.answer(hid, accepted=True, by_agency="hc-reedmarsh")
        b.handovers.answer(hid, accepted=False, by_agency=HC)
        with pytest.raises(HandoverAlreadyDecided):
            b.handovers.answer(hid, accepted=True, by_agency=HC)


class TestObligations:
    def test_the_receiving_health_center_owes_an_answer_by_the_deadline_and_answering_completes_it(
        self, regions
    ) -> None:
        a, b, link = regions
        _, hid = move_to_b(a)
        link.sync()
        b.services.catch_up(b.services.case_record.recorder.max_notification_id())
        owed = b.services.case_record.repository.get(answer_obligation_id(hid))
        assert (owed.assignee, owed.status, owed.due_at) == (HC, "assigned", NOW + ANSWER_WITHIN)
        b.handovers.answer(hid, accepted=False, by_agency=HC)
        link.sync()
        for region in (a, b):
            region.services.catch_up(region.services.case_record.recorder.max_notification_id())
        assert b.services.case_record.repository.get(answer_obligation_id(hid)).status == "completed"
        for region in (a, b):  # the rejection told each side's governance center
            notice = region.services.case_record.repository.get(escalation_notice_id(hid, "rejected"))
            assert notice.assignee == GOV


class TestCrossingMessages:
    def test_acceptance_crossing_a_cancellation_voids_it_in_b_and_a_stays_responsible(self, regions) -> None:
        a, b, link = regions
        patient, hid = move_to_b(a)
        link.sync()
        b.handovers.answer(hid, accepted=True, by_agency=HC)  # crosses …
        a.handovers.cancel(hid, by_agency=HC, reason="the family stays")  # … A's cancellation
        link.sync()
        assert a.view(hid)["status"] == "cancelled" and a.view(hid)["late_answers"] == ["accepted"]
        assert b.view(hid)["status"] == "voided"
        assert a.file(patient).deregistered_at is None
        assert b.file(patient).deregistered_at is not None  # B's registration undone
        assert responsible(a, b, hid) == {A}

    def test_rejection_crossing_a_cancellation_ends_cancelled_in_a_and_voided_in_b(self, regions) -> None:
        a, b, link = regions
        patient, hid = move_to_b(a)
        link.sync()
        b.handovers.answer(hid, accepted=False, by_agency=HC)
        a.handovers.cancel(hid, by_agency=HC, reason="the family stays")
        link.sync()
        assert a.view(hid)["status"] == "cancelled" and a.view(hid)["escalations"] == []
        assert b.view(hid)["status"] == "voided"
        assert a.file(patient).deregistered_at is None and responsible(a, b, hid) == {A}

    def test_a_cancellation_that_arrives_first_leaves_nothing_to_answer(self, regions) -> None:
        a, b, link = regions
        _, hid = move_to_b(a)
        link.sync()
        a.handovers.cancel(hid, by_agency=HC, reason="moved back")
        link.sync()
        assert b.view(hid)["status"] == "cancelled"
        with pytest.raises(HandoverCancelledByOrigin):
            b.handovers.answer(hid, accepted=True, by_agency=HC)

    def test_a_cancellations_reason_is_sealed_in_the_store_and_in_the_message(self, regions) -> None:
        from tests.integration.test_erasure import forms, raw_blobs

        a, b, link = regions
        patient, hid = move_to_b(a)
        link.sync()
        reason = "the family stays: 母亲住院 (free text)"
        a.handovers.cancel(hid, by_agency=HC, reason=reason)
        wires = link.pending(A, B)
        link.sync()
        assert b.view(hid)["status"] == "cancelled"
        stored = a.services.case_record.events.get(hid)
        cancelled = [e for e in stored if type(e).__name__ == "Cancelled"]
        assert [e.reason.text for e in cancelled] == [reason] and cancelled[0].patient_id == patient
        target = a.services.settings.postgres
        blobs = raw_blobs(a.services, target.conninfo() if target is not None else None)

        def found(text: str) -> bool:
            return any(f in blob for blob in blobs for f in forms(text))

        assert found("smd.HandoverCancelled")  # the scan reads the rows (the topic is stored in the clear)
        assert not found("母亲住院") and not found("family stays")
        assert wires and not any("母亲住院" in w or "family stays" in w for w in wires)

    def test_a_second_move_before_the_first_is_answered_is_a_second_handover(self, regions) -> None:
        a, b, link = regions
        patient, first = move_to_b(a)
        second_move = uuid4()
        a.send(
            COMMITTEE,
            "move.reported.v1",
            patient,
            {
                "move_id": str(second_move),
                "destination_region": B,
                "destination_unit": B_VILLAGE,
                "moving_on": "2026-11-18",
            },
        )
        a.handovers.follow_moves()
        second = handover_id(A, patient, second_move)
        a.handovers.cancel(first, by_agency=HC, reason="superseded by a second move")
        link.sync()
        b.handovers.answer(second, accepted=True, by_agency=HC)
        link.sync()
        assert (a.view(first)["status"], b.view(first)["status"]) == ("cancelled", "cancelled")
        assert (a.view(second)["status"], b.view(second)["status"]) == ("accepted", "accepted")
        assert a.file(patient).deregistration_reason == "moved_out" and b.file(patient).deregistered_at is None

    def test_duplicated_and_reordered_messages_apply_once_and_converge(self, regions) -> None:
        a, b, link = regions
        _patient, hid = move_to_b(a)
        a.handovers.cancel(hid, by_agency=HC, reason="a mistake")
        first, second = a.handovers.outbox(B)
        assert b.handovers.receive(second) == "out-of-sequence"  # held back: the gap is waited for
        assert b.handovers.receive(first) == "applied"
        assert b.handovers.receive(first) == "replayed"
        assert b.handovers.receive(second) == "applied"
        link.sync()
        assert b.view(hid)["status"] == "cancelled" and a.view(hid)["status"] == "cancelled"
        assert [r["reason"] for r in b.handovers.refused_from(A)] == ["out-of-sequence", "replayed"]

    def test_the_link_down_with_messages_queued_on_both_sides_loses_nothing(self, regions) -> None:
        a, b, link = regions
        _p1, h1 = move_to_b(a)
        link.sync()
        b.handovers.answer(h1, accepted=True, by_agency=HC)  # queued in B, link down
        _p2, h2 = move_to_b(a)  # queued in A, link down
        for region in (a, b):
            region.clock.now = NOW + timedelta(hours=24)
        link.sync()  # the link is back
        b.handovers.answer(h2, accepted=False, by_agency=HC)
        link.sync()
        assert (a.view(h1)["status"], b.view(h1)["status"]) == ("accepted", "accepted")
        assert (a.view(h2)["status"], b.view(h2)["status"]) == ("rejected", "rejected")
        assert a.handovers.applied_from(B) == 2 and b.handovers.applied_from(A) == 2
        assert link.pending(A, B) == [] and link.pending(B, A) == []


class TestForgedMessages:
    def test_wrong_key_wrong_region_unsigned_and_replayed_messages_are_refused_and_kept(self, regions) -> None:
        a, b, _ = regions
        move_to_b(a)
        [genuine] = a.handovers.outbox(B)
        doc = json.loads(genuine)
        impostor = CrossRegionKeys.generate(A)  # claims to be A, signs with its own key
        impostor.link(b.keys.as_peer())
        from core.handover_messages import build

        forged = build(impostor, B, handover_id=uuid4(), sequence=1, acked=0, kind="cancel", body={})
        assert b.handovers.receive(forged) == "unknown-key"
        wrong_sig = json.dumps({**doc, "body": {**doc["body"], "deadline": "2099-01-01T00:00:00+00:00"}})
        assert b.handovers.receive(wrong_sig) == "bad-signature"
        assert b.handovers.receive(json.dumps({**doc, "signature": ""})) == "unsigned"
        elsewhere = CrossRegionKeys.generate("990303")
        a.keys.link(elsewhere.as_peer())
        for_c = build(a.keys, "990303", handover_id=uuid4(), sequence=1, acked=0, kind="cancel", body={})
        assert b.handovers.receive(for_c) == "wrong-region"
        assert b.handovers.receive(genuine) == "applied"
        assert b.handovers.receive(genuine) == "replayed"
        reasons = [r["reason"] for r in b.handovers.refused_from(A)]
        assert reasons == ["unknown-key", "bad-signature", "unsigned", "wrong-region", "replayed"]

    def test_no_personal_value_in_plaintext_in_either_store_or_on_the_wire(self, regions) -> None:
        a, b, link = regions
        _patient, hid = move_to_b(a)
        link.sync()
        b.handovers.answer(hid, accepted=True, by_agency=HC)
        link.sync()
        for wire in a.handovers.outbox(B) + b.handovers.outbox(A):
            assert "Mossgrove" not in wire and "13900000017" not in wire
        for region in (a, b):
            for stored in region.services.case_record.recorder.select_notifications(1, 10_000):
                assert b"Mossgrove" not in stored.state and b"13900000017" not in stored.state
        assert msgspec.json.decode(a.handovers.outbox(B)[0])["sealed"]


def move_back_to_a(b: Region, patient: UUID) -> UUID:
    """The patient, managed in B since an accepted handover, is reported moving back to A."""
    move = uuid4()
    b.send(
        COMMITTEE,
        "move.reported.v1",
        patient,
        {"move_id": str(move), "destination_region": A, "destination_unit": VILLAGE, "moving_on": "2026-12-20"},
    )
    assert b.handovers.follow_moves() == 1
    return handover_id(B, patient, move)


def settle(*regions: Region) -> None:
    """Run each region's rules and views up to its log's head."""
    for region in regions:
        region.services.catch_up(region.services.case_record.recorder.max_notification_id())


def opened_by(region: Region, patient: UUID, message_id: str) -> set[tuple[str, str, str, str]]:
    """The obligations and notices about the patient that the fact ``message_id`` opened:
    (rule, action, assignee, status)."""
    rows = region.services.patient_obligations(patient)
    return {(o.rule, o.action, o.assignee, o.status) for o in rows if o.trigger_message_id == message_id}


def moved_in(region: Region, agency: str) -> set[UUID]:
    """The members of the agency's "moved-in" list (its jurisdiction, as the API scopes it)."""
    services = region.services
    on = region.clock.now.date()
    units = services.units_within(list(services.registry.state().agency(agency, on).jurisdiction))
    return {r.patient_id for r in services.lists.page("moved-in", region.clock.now, residences=sorted(units))}


def registered_in_a_and_moved_to_b(a: Region, b: Region, link: Link) -> tuple[UUID, UUID]:
    """A patient with an ID number registered in A, moved to B, accepted there (A deregistered
    the patient as moved out)."""
    patient, there = move_to_b(a, id_number=ID_NUMBER)
    link.sync()
    b.handovers.answer(there, accepted=True, by_agency=HC)
    link.sync()
    assert a.file(patient).deregistration_reason == "moved_out"
    return patient, there


def day_later(*regions: Region, days: float = 30) -> None:
    for region in regions:
        region.clock.now += timedelta(days=days)


class TestMoveBack:
    def test_a_move_back_is_accepted_a_registers_the_patient_again_and_b_closes_its_file(self, regions) -> None:
        a, b, link = regions
        patient, there = registered_in_a_and_moved_to_b(a, b, link)
        settle(a, b)
        arrived_in_b = f"{HC}:{uuid5(there, 'registration')}"  # B's registration's message id
        opened_in_b = opened_by(b, patient, arrived_in_b)
        day_later(a, b)
        b.send(
            HC,
            "visit.recorded.v1",
            patient,
            BASIC_VISIT,
        )
        back = move_back_to_a(b, patient)
        link.sync()
        assert a.view(back)["status"] == "requested" and a.view(back)["responsible"] == [B]
        a.handovers.answer(back, accepted=True, by_agency=HC)
        link.sync()
        settle(a, b)
        # A: the same file registered again, living where the request says, from the acceptance
        again = a.file(patient)
        assert again.deregistered_at is None and again.deregistration_reason is None
        assert again.reregistered_at == a.clock.now and again.residence == VILLAGE
        assert again.personal.name == SECRET_NAME and again.registered_at < again.reregistered_at
        assert again.arrived_from == {"at": a.clock.now, "origin_region": B, "handover_id": back}
        assert a.view(back)["status"] == "accepted" and a.view(back)["responsible"] == [B, A]
        # B: its file closed as moved out, A alone responsible
        assert b.view(back)["status"] == "accepted" and b.view(back)["responsible"] == [A]
        assert b.file(patient).deregistration_reason == "moved_out"
        # the rules in A open what a registration opens (B's registration by the first handover
        # opened the same): the first visit, from the re-registration's time
        reregistered = f"handover:{back}:reregistration"
        assert opened_by(a, patient, reregistered) == {("R4", "follow_up_visit", HC, "assigned")}
        assert {(r, act) for r, act, _, _ in opened_in_b} == {("R4", "follow_up_visit")}
        [visit] = [o for o in a.services.patient_obligations(patient) if o.trigger_message_id == reregistered]
        first_visit = a.services.rule_settings.settings(a.clock.now.date()).r4_first_visit
        assert visit.due_at == a.clock.now + first_visit
        # nothing else is open for the patient in A: what the deregistration cancelled stays so
        still_open = {o.trigger_message_id for o in a.services.patient_obligations(patient) if o.status == "assigned"}
        assert still_open == {reregistered}
        # the file shows both registrations; facts dated while the patient lived in B are refused
        facts = [
            e.topic
            for e in a.services.case_record.recorder.select_notifications(1, 10_000)
            if e.originator_id == patient
        ]
        assert facts[0] == "smd.PatientRegistered" and facts[-2:] == [
            "smd.PatientReregistered",
            "smd.ArrivedFromRegion",
        ]
        assert "smd.PatientDeregistered" in facts
        with pytest.raises(FactAfterDeregistration):  # a visit dated while the patient lived in B
            a.send(HC, "visit.recorded.v1", patient, BASIC_VISIT, days_ago=15)
        a.send(HC, "visit.recorded.v1", patient, BASIC_VISIT, days_ago=0)  # one after the move back is heard
        # the ID number still finds the patient in A (its marker kept), once
        from core.identity import find_by_id_number

        assert find_by_id_number(a.services.case_record, ID_NUMBER, a.clock.now) == [patient]

    def test_the_same_acceptance_retried_registers_nothing_twice(self, regions) -> None:
        a, b, link = regions
        patient, _ = registered_in_a_and_moved_to_b(a, b, link)
        day_later(a, b)
        back = move_back_to_a(b, patient)
        link.sync()
        incoming = a.handovers._load(back, IncomingHandover)
        a.handovers._reregister(incoming)  # as if the service stopped after the re-registration …
        a.handovers.answer(back, accepted=True, by_agency=HC)  # … and the health center answers again
        with pytest.raises(HandoverAlreadyDecided):
            a.handovers.answer(back, accepted=True, by_agency=HC)
        facts = [
            e.topic
            for e in a.services.case_record.recorder.select_notifications(1, 10_000)
            if e.originator_id == patient
        ]
        assert facts.count("smd.PatientReregistered") == 1 and facts.count("smd.ArrivedFromRegion") == 1
        assert len(a.handovers.outbox(B)) == 2  # the request there, one acceptance back

    def test_a_patient_whose_data_was_erased_here_is_not_registered_again(self, regions) -> None:
        a, b, link = regions
        patient, _ = registered_in_a_and_moved_to_b(a, b, link)
        day_later(a, b)
        back = move_back_to_a(b, patient)
        link.sync()
        record = a.services.case_record
        record.mapper.keystore.destroy(patient)  # the erasure's last step: the key destroyed
        record.repository.cache.get(patient, evict=True) if record.repository.cache else None
        with pytest.raises(ErasedHere):
            a.handovers.answer(back, accepted=True, by_agency=HC)
        assert a.view(back)["status"] == "requested" and a.file(patient).deregistered_at is not None
        a.handovers.answer(back, accepted=False, by_agency=HC)  # what remains: reject, both escalate
        link.sync()
        assert (b.view(back)["status"], a.view(back)["status"]) == ("rejected", "rejected")
        assert b.file(patient).deregistered_at is None and b.view(back)["responsible"] == [B]


class TestMovedInList:
    def test_the_destination_health_centers_moved_in_list_holds_the_arrivals_from_another_region(self, regions) -> None:
        a, b, link = regions
        stayed = uuid4()  # registered in A, never moved: on no moved-in list
        a.send(
            HC,
            "patient.registered.v2",
            stayed,
            {"name": "Orrin Ashdown", "residence": VILLAGE, "birth_date": "1980-02-02", "household_region": A},
            days_ago=50,
        )
        patient, _ = registered_in_a_and_moved_to_b(a, b, link)
        settle(a, b)
        assert moved_in(b, HC) == {patient}  # registered in B by the accepted handover
        assert moved_in(a, HC) == set()  # A deregistered the patient: on none of A's lists
        assert moved_in(b, "hc-south") == set()  # not B's south health center's jurisdiction
        day_later(a, b)
        back = move_back_to_a(b, patient)
        link.sync()
        a.handovers.answer(back, accepted=True, by_agency=HC)
        link.sync()
        settle(a, b)
        assert moved_in(a, HC) == {patient}  # registered again in A by the move back
        assert moved_in(b, HC) == set()  # B deregistered the patient as moved out
        [row] = [r for r in a.services.lists.page("moved-in", a.clock.now, residences=[VILLAGE])]
        assert (row.values["arrived_from_region"], row.values["moved_from"]) == (B, None)
        day_later(a, b, days=91)  # past the list's 90 days
        assert moved_in(a, HC) == set()
