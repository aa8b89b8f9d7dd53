"""Personal fields never reach storage or logs in plaintext; other fields stay readable."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from uuid import UUID, uuid4

from ops.logging import configure_logging
from tests.support.stores import NOW, Agency

# ASCII markers, one per personal field; a non-personal field carries the positive control.
# The ID number must pass the GB 11643 checks: a fictional one (county code 9901 exists nowhere).
MARKERS = {"name": "MKNAMEqz81", "id_number": "37990119710517551X", "phone": "MKPHONE772", "address": "MKADDRx9k3"}
CONTROL = "mkcontrol42"  # the residence org unit id: not personal, must stay readable


def stored_bytes(settings) -> bytes:
    """Every byte the store holds: SQLite files (with -wal), or a pg_dump of the database."""
    if settings.postgres is None:
        files = sorted(Path(settings.data_dir).glob("*.sqlite*"))
        assert any(f.name.endswith("-wal") for f in files), f"expected WAL files among {files}"
        return b"".join(f.read_bytes() for f in files)
    pg = settings.postgres
    dump = subprocess.run(
        ["pg_dump", "-h", pg.host, "-p", str(pg.port), "-U", pg.user or "postgres", pg.dbname],
        check=True,
        capture_output=True,
    ).stdout
    # bytea columns are dumped as hex (\\x7b22...): decode them so the search sees their bytes
    decoded = b"".join(bytes.fromhex(h.decode()) for h in re.findall(rb"\\\\x((?:[0-9a-f]{2})+)", dump))
    assert decoded, "the dump holds bytea rows"
    return dump + decoded


class TestNoPlaintext:
    def test_personal_markers_are_found_nowhere_and_the_control_marker_is_found(self, open_store, settings) -> None:
        log_buffer = io.StringIO()
        configure_logging("json", stream=log_buffer)  # our lines and the stdlib's
        try:
            services, patient = open_store(snapshot_every=1), uuid4()  # a snapshot after every event
            record = services.case_record
            agency = Agency("hc-east")
            record.record(
                agency.register(
                    patient,
                    residence=CONTROL,
                    **{k: v for k, v in MARKERS.items() if k != "name"},
                    name=MARKERS["name"],
                ),
                "hc-east",
            )
            for day in range(1, 4):
                record.record(agency.visit(patient, 3, "unstable", occurred=NOW - timedelta(days=day)), "hc-east")
            assert record.patient(patient).personal.name == MARKERS["name"]  # readable through the service
            assert list(record.snapshots.get(patient)), "snapshots were taken"
            logging.getLogger("smd.test").info("story done")

            haystacks = {"store": stored_bytes(settings), "logs": log_buffer.getvalue().encode()}
        finally:
            configure_logging("json")  # back to stderr

        for where, data in haystacks.items():
            for field, marker in MARKERS.items():
                assert marker.encode() not in data, f"{field} found in plaintext in {where}"
        assert CONTROL.encode() in haystacks["store"], "the positive control is found by the same search"
        assert b"story done" in haystacks["logs"], "the log capture worked"


# One marker per free-text field of the older fact types, sealed from their v2 on (decision 024).
FREE_TEXT = {
    "visit.missed reason": "MKMISSEDzq1",
    "diagnosis.revoked reason": "MKREVOKEzq2",
    "patient.discharged discharge_plan": "MKPLANzq3",
    "incident.reviewed outcome": "MKREVIEWzq4",
    "incident.police-responded action": "MKACTIONzq5",
    "handover.rejected reason": "MKHANDOVERzq6",
    "review.recorded outcome": "MKTIERzq7",
    "care-team-member.removed reason": "MKREMOVEDzq8",
    "care-team-contact.recorded note": "MKCONTACTzq9",
    "aid.applied note": "MKAPPLIEDzr1",
    "aid.granted note": "MKGRANTEDzr2",
    "aid.found-ineligible reason": "MKINELIGzr3",
    "aid.revoked reason": "MKREVOKEDzr4",
    "patient.deregistered note": "MKDEREGzr5",
    "suspected-case.assessed note": "MKASSESSzr6",
    "suspected-case.dismissed note": "MKDISMISSzr7",
    "obligation completed note": "MKDONEzr8",
}
VILLAGE = "990101-001-v01"


def record_every_free_text(services) -> tuple[UUID, UUID]:
    """Every older fact type with free text, each field holding its marker; returns (patient, case)."""
    from core.obligations import act
    from core.registry import load_file
    from domain.obligation import Obligation, ObligationKind, obligation_id
    from ops.data_files import DEMO_DISTRICT
    from tests.integration.test_patient_file import COMMITTEE, GOV, HC, HOSPITAL, INCIDENT, MOVE, POLICE, Desk

    civil, m = "civil-willowbrook", FREE_TEXT
    load_file(services.case_record, DEMO_DISTRICT)

    def day(n: int):
        return NOW - timedelta(days=n)

    desk = Desk(services)
    sent = [
        (HC, "patient.registered", {**MARKERS, "residence": VILLAGE, "diagnosis": "schizophrenia"}, 90),
        (HC, "visit.missed", {"scheduled_on": day(40).date().isoformat(), "reason": m["visit.missed reason"]}, 39),
        (HOSPITAL, "patient.admitted", {"hospital": "H", "admission_kind": "voluntary"}, 30),
        (HOSPITAL, "patient.discharged", {"discharge_plan": m["patient.discharged discharge_plan"]}, 25),
        (HOSPITAL, "diagnosis.revoked", {"reason": m["diagnosis.revoked reason"]}, 24),
        (
            POLICE,
            "incident.reported",
            {"incident_id": str(INCIDENT), "incident_kind": "causing_trouble", "severity": 2},
            20,
        ),
        (GOV, "incident.reviewed", {"incident_id": str(INCIDENT), "outcome": m["incident.reviewed outcome"]}, 19),
        (
            POLICE,
            "incident.police-responded",
            {"incident_id": str(INCIDENT), "action": m["incident.police-responded action"]},
            19,
        ),
        (
            COMMITTEE,
            "move.reported",
            {"move_id": str(MOVE), "destination_region": "990202", "moving_on": day(18).date().isoformat()},
            18,
        ),
        (HC, "handover.rejected", {"move_id": str(MOVE), "reason": m["handover.rejected reason"]}, 17),
        (
            GOV,
            "review.recorded",
            {"tier": "township", "risk_level": 3, "risk_class": "unstable", "outcome": m["review.recorded outcome"]},
            16,
        ),
        (COMMITTEE, "care-team-member.assigned", {"role": "grid_worker", "member": {"name": "Member Person"}}, 15),
        (
            COMMITTEE,
            "care-team-member.removed",
            {"role": "grid_worker", "reason": m["care-team-member.removed reason"]},
            14,
        ),
        (
            COMMITTEE,
            "care-team-contact.recorded",
            {
                "role": "grid_worker",
                "mode": "phone",
                "outcome": "reached",
                "note": m["care-team-contact.recorded note"],
            },
            13,
        ),
        (civil, "aid.applied", {"aid_type": "temporary_aid", "note": m["aid.applied note"]}, 12),
        (civil, "aid.granted", {"aid_type": "minimum_living_allowance", "note": m["aid.granted note"]}, 11),
        (
            civil,
            "aid.found-ineligible",
            {"aid_type": "extreme_poverty_support", "reason": m["aid.found-ineligible reason"]},
            10,
        ),
        (civil, "aid.revoked", {"aid_type": "minimum_living_allowance", "reason": m["aid.revoked reason"]}, 9),
        (HC, "patient.deregistered", {"reason": "other", "note": m["patient.deregistered note"]}, 1),
    ]
    for agency, event_type, data, days_ago in sent:
        desk.send(agency, event_type, data, occurred=day(days_ago))
    # a suspected case, assessed and dismissed with notes (sealed under the case's own key)
    case = Desk(services)
    case.send(COMMITTEE, "suspected-case.reported", {"observed": "seen at night", "seen_in": VILLAGE}, occurred=day(8))
    assessed = {"outcome": "no_severe_disorder", "note": m["suspected-case.assessed note"]}
    case.send(HC, "suspected-case.assessed", assessed, occurred=day(7))
    dismissed = {"reason": "no_severe_disorder", "note": m["suspected-case.dismissed note"]}
    case.send(HC, "suspected-case.dismissed", dismissed, occurred=day(6))
    # an obligation completed by its owner's word, with a note (sealed under the patient's key)
    oid = obligation_id(desk.patient, "R1", "ep-free-text", "obligation")
    obligation = Obligation.assign(
        id=oid,
        kind=ObligationKind.OBLIGATION,
        rule="R1",
        action="take-under-management",
        patient_id=desk.patient,
        episode_key="ep-free-text",
        assignee=POLICE,
        residence=VILLAGE,
        due_at=NOW + timedelta(days=3),
        trigger_message_id="test:1",
        trigger_position=1,
        risk_level=4,
        now=NOW,
    )
    services.case_record.save(obligation)
    act(services.case_record, oid, POLICE, None, "complete", m["obligation completed note"])
    return desk.patient, case.patient


class TestFreeTextIsSealed:
    def test_the_free_text_of_every_older_fact_type_is_found_nowhere_in_the_store_and_reads_back(
        self, open_store, settings
    ) -> None:
        from core.patient_read import timeline, whole_file
        from domain.obligation import Obligation
        from domain.personal import SealedText

        log_buffer = io.StringIO()
        configure_logging("json", stream=log_buffer)
        try:
            services = open_store(snapshot_every=1)  # snapshots hold the facts' entries: sealed too
            patient, case = record_every_free_text(services)
            record = services.case_record
            assert list(record.snapshots.get(patient)), "snapshots were taken"
            # readable through the service: the file, the timeline, the suspected case
            items, _ = timeline(record, patient, "health_center", "hc-north", [], 0, 500)
            shown = repr(whole_file(record.patient(patient), NOW, [])) + repr(items)
            suspected = record.repository.get(case)
            shown += repr(suspected.assessments) + repr(suspected.dismissal_note)
            [completed] = record.recorder.select_notifications(1, 10_000, topics=[Obligation.Completed.TOPIC])
            note = record.mapper.to_domain_event(completed).note
            assert note == SealedText(text=FREE_TEXT["obligation completed note"])
            # sealed under the patient's key, not the obligation's: erasing the patient erases it
            assert json.loads(completed.state)["note"]["_sealed"]["subject"] == str(patient)
            haystacks = {"store": stored_bytes(settings), "logs": log_buffer.getvalue().encode()}
        finally:
            configure_logging("json")

        for field, marker in FREE_TEXT.items():
            if field != "obligation completed note":
                assert marker in shown, f"{field} is not readable through the service"
            for where, data in haystacks.items():
                assert marker.encode() not in data, f"{field} found in plaintext in {where}"
        assert VILLAGE.encode() in haystacks["store"], "the positive control is found by the same search"


class TestReadModelsHoldNoPlaintext:
    def test_the_work_queue_view_holds_ids_and_org_units_but_no_name_number_or_free_text(
        self, open_store, settings
    ) -> None:
        services = open_store()
        patient, _ = record_every_free_text(services)
        record = services.case_record
        assert services.catch_up(record.recorder.max_notification_id() or 0, timeout=120)
        rows = services.work_queue.select("patient_id = ?", [patient], 0, 500)
        assert "completed" in {r.status for r in rows}, "the view holds the patient's obligations"
        view = repr(rows).encode()
        assert str(patient).encode() in view and VILLAGE.encode() in view  # ids and org units: readable
        stored = stored_bytes(settings)  # the view's tables beside the events
        for marker in (*MARKERS.values(), *FREE_TEXT.values()):
            assert marker.encode() not in view, f"{marker} in a work-queue row"
            assert marker.encode() not in stored, f"{marker} in the store"
