"""The pieces of waiting for references that need no server: the window setting, what each
"not found" refusal waits for, what a recorded message provides, and the refusal's words."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from api.problems import status_for
from core.contract import decode_event
from core.waiting import provided
from domain.errors import PatientNotFound, ReferenceNotFound, ReferenceNotKnownYet
from domain.patient_file import NoMoveReported, UnknownIncident
from domain.suspected_case import PatientToLinkNotFound, SuspectedCaseNotFound
from ops.metrics import reason_label
from ops.settings import SettingsError, load_settings


class TestTheWindowSetting:
    def test_the_default_is_24_hours(self, tmp_path) -> None:
        assert load_settings({"SMD_DATA_DIR": str(tmp_path)}).waiting_window_seconds == 86400.0

    def test_a_number_of_seconds_is_taken(self, tmp_path) -> None:
        env = {"SMD_DATA_DIR": str(tmp_path), "SMD_WAITING_WINDOW_SECONDS": "3"}
        assert load_settings(env).waiting_window_seconds == 3.0

    @pytest.mark.parametrize("value", ["0", "-5", "a day", "nan", "inf"])
    def test_a_bad_value_stops_start_up_naming_the_variable(self, tmp_path, value: str) -> None:
        with pytest.raises(SettingsError, match=r"^SMD_WAITING_WINDOW_SECONDS: "):
            load_settings({"SMD_DATA_DIR": str(tmp_path), "SMD_WAITING_WINDOW_SECONDS": value})


class TestWhatWaitsForWhat:
    def test_every_not_found_refusal_of_a_reference_names_what_it_waits_for(self) -> None:
        patient, case, incident, move = uuid4(), uuid4(), uuid4(), uuid4()
        refusals = {
            PatientNotFound(patient): f"patient:{patient}",
            PatientToLinkNotFound(patient): f"patient:{patient}",
            SuspectedCaseNotFound(case): f"suspected-case:{case}",
            UnknownIncident(incident, patient): f"incident:{patient}:{incident}",
            NoMoveReported(move, patient): f"move:{patient}:{move}",
        }
        for error, reference in refusals.items():
            assert isinstance(error, ReferenceNotKnownYet)
            assert error.reference == reference
        assert {e.code for e in refusals} == {
            "patient-not-found",
            "suspected-case-not-found",
            "unknown-incident",
            "no-move-reported",
        }

    def test_a_recorded_message_provides_what_facts_wait_for(self) -> None:
        subject, incident, move = uuid4(), uuid4(), uuid4()

        def event(event_type: str, data: dict) -> object:
            doc = {
                "specversion": "1.0",
                "id": str(uuid4()),
                "source": "hc-north",
                "type": f"cn.smd.{event_type}.v1",
                "subject": str(subject),
                "time": "2026-11-20T09:30:00+08:00",
                "data": data,
            }
            return decode_event(json.dumps(doc))

        assert provided(event("patient.registered", {"name": "A", "residence": "u"})) == [f"patient:{subject}"]
        assert provided(event("patient.registered-unidentified", {"label": "L", "residence": "u"})) == [
            f"patient:{subject}"
        ]
        assert provided(event("suspected-case.reported", {"observed": "o", "seen_in": "u"})) == [
            f"suspected-case:{subject}"
        ]
        report = {"incident_id": str(incident), "incident_kind": "self_harm", "severity": 2}
        assert provided(event("incident.reported", report)) == [f"incident:{subject}:{incident}"]
        moving = {"move_id": str(move), "destination_region": "990102", "moving_on": "2026-11-21"}
        assert provided(event("move.reported", moving)) == [f"move:{subject}:{move}"]
        visit = {"face_to_face": True, "risk_level": 0, "risk_class": "stable"}
        assert provided(event("visit.recorded", visit)) == []


class TestTheRefusal:
    def test_reference_not_found_says_what_did_not_come_and_what_to_do(self) -> None:
        patient, incident = uuid4(), uuid4()
        error = ReferenceNotFound(f"patient:{patient}", 86400)
        assert (error.code, status_for(error.code)) == ("reference-not-found", 422)
        assert error.detail.startswith(f"no patient {patient} was registered within 24 h of this message's arrival")
        assert "send the message again" in error.detail
        later = ReferenceNotFound(f"incident:{patient}:{incident}", 3)
        assert later.detail.startswith(f"no incident {incident} was reported for patient {patient} within 3 s")

    def test_its_code_is_a_metrics_label(self) -> None:
        assert reason_label("reference-not-found") == "reference-not-found"
