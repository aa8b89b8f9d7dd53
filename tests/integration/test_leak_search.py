"""The leak search: a patient whose every personal, clinical and free-text field holds a marker,
read with a key of each kind, in and out of reach; each marker appears exactly where the tables
below allow, and never in an error body, a log line, the access log or a message the outbox
publishes (built by the outbox's own handler from the log; publishing itself is tested in
test_outbox.py).

The tables are written here by hand from DESIGN.md section 4 and docs/decisions/021; this test
never reads the project's own read matrix (``domain.read_filter``).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest
import structlog
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.case_record import utc_now
from core.registry import load_file
from integrations.outbox import TOPICS, OutboxHandler
from integrations.streams import names_of
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope_json
from tests.support.id_numbers import fictional_id_number

VILLAGE = "990101-001-v01"
ID_NUMBER = fictional_id_number(date(1979, 5, 17), seq=731)

# who may read, in reach (their keys); and who may not (other areas)
IN_REACH = {
    "hc": "hc-north",
    "pol": "police-east",
    "civ": "civil-willowbrook",
    "com": "committee-north",
    "hos": "hospital-lantern-bay",
    "gov": "gov-willowbrook",
    "dpf": "dpf-lantern-bay",
    "aud": "auditor-lantern-bay",
}
OUT_OF_REACH = ("hc-south", "police-west", "committee-south")

# marker → the kinds (in reach) that may see it, anywhere in the file or the timeline
MAY_SEE = {
    "MK-NAME": "hc pol civ com hos gov dpf aud",
    ID_NUMBER: "hc pol civ hos dpf aud",
    "MK-PHONE": "hc pol civ hos aud",
    "MK-ADDRESS": "hc pol civ com hos aud",
    "paranoid_psychosis": "hc hos aud",  # the diagnosis
    "MK-GUARDIAN-NAME": "hc pol civ com aud",
    "MK-GUARDIAN-PHONE": "hc pol civ com aud",
    "MK-MEMBER-NAME": "hc com aud",
    "MK-CONTACT-NOTE": "hc com aud",
    "MK-MISSED-REASON": "hc com aud",
    "MK-REVIEW-OUTCOME": "hc hos gov aud",
    "MK-INJECTION-NOTE": "hc hos aud",  # long-acting injection coverage: clinical, not aid
    "MK-HOSPITAL": "hc hos aud",
    "MK-DISCHARGE-PLAN": "hc hos aud",
    "MK-POLICE-ACTION": "hc pol gov aud",
    "MK-INCIDENT-OUTCOME": "hc pol gov aud",
    "MK-DISABILITY-NOTE": "hc civ dpf aud",
    "MK-ALLOWANCE-NOTE": "hc civ aud",
}


def envelope(source: str, event_type: str, subject, data: dict, hours_ago: float) -> dict:
    occurred = datetime.now(UTC) - timedelta(hours=hours_ago)
    return envelope_json(source, event_type, subject, data, occurred=occurred, actor="staff-01")


def facts(patient) -> list[tuple[str, str, dict]]:
    incident = str(uuid4())
    missed_on = (datetime.now().astimezone() - timedelta(days=2)).date().isoformat()
    return [
        (
            "hc-north",
            "patient.registered",
            {
                "name": "MK-NAME",
                "id_number": ID_NUMBER,
                "phone": "MK-PHONE",
                "address": "MK-ADDRESS",
                "residence": VILLAGE,
                "diagnosis": "paranoid_psychosis",
            },
        ),
        ("hc-north", "guardian.assigned", {"contact": {"name": "MK-GUARDIAN-NAME", "phone": "MK-GUARDIAN-PHONE"}}),
        (
            "hc-north",
            "care-team-member.assigned",
            {"role": "mental_health_staff", "member": {"name": "MK-MEMBER-NAME"}},
        ),
        (
            "hc-north",
            "care-team-contact.recorded",
            {"role": "mental_health_staff", "mode": "phone", "outcome": "reached", "note": "MK-CONTACT-NOTE"},
        ),
        ("hc-north", "visit.missed", {"scheduled_on": missed_on, "reason": "MK-MISSED-REASON"}),
        (
            "hc-north",
            "review.recorded",
            {"tier": "community", "risk_level": 1, "risk_class": "basically_stable", "outcome": "MK-REVIEW-OUTCOME"},
        ),
        ("hc-north", "aid.granted", {"aid_type": "long_acting_injection_coverage", "note": "MK-INJECTION-NOTE"}),
        ("hospital-lantern-bay", "patient.admitted", {"hospital": "MK-HOSPITAL", "admission_kind": "voluntary"}),
        ("hospital-lantern-bay", "patient.discharged", {"discharge_plan": "MK-DISCHARGE-PLAN"}),
        (
            "police-east",
            "incident.reported",
            {"incident_id": incident, "incident_kind": "minor_trouble", "severity": 1},
        ),
        ("police-east", "incident.police-responded", {"incident_id": incident, "action": "MK-POLICE-ACTION"}),
        ("gov-willowbrook", "incident.reviewed", {"incident_id": incident, "outcome": "MK-INCIDENT-OUTCOME"}),
        (
            "dpf-lantern-bay",
            "aid.granted",
            {"aid_type": "disability_certificate", "disability_grade": 2, "note": "MK-DISABILITY-NOTE"},
        ),
        (
            "civil-willowbrook",
            "aid.granted",
            {"aid_type": "minimum_living_allowance", "note": "MK-ALLOWANCE-NOTE"},
        ),
    ]


@pytest.fixture
def demo(open_store):
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in (*IN_REACH.values(), *OUT_OF_REACH)}
    return services, keys


def headers(key: str, agency: str) -> dict:
    return {"Authorization": f"Bearer {key}", "X-Purpose": "audit" if agency.startswith("auditor") else "care"}


async def test_each_marker_appears_exactly_where_the_tables_allow(demo) -> None:
    services, keys = demo
    patient = uuid4()
    with structlog.testing.capture_logs() as logs:
        async with AsyncTestClient(create_app(services)) as client:
            steps = facts(patient)
            for n, (source, kind, data) in enumerate(steps):
                body = envelope(source, f"cn.smd.{kind}.v1", patient, data, hours_ago=48 - n)
                wait = "?wait=true" if n == len(steps) - 1 else ""
                r = await client.post(f"/v1/events{wait}", json=body, headers=headers(keys[source], source))
                assert r.status_code == 201, (kind, r.text)

            seen: dict[str, str] = {}
            for agency in (*IN_REACH.values(), *OUT_OF_REACH):
                h = headers(keys[agency], agency)
                file = await client.get(f"/v1/patients/{patient}", headers=h)
                timeline = await client.get(f"/v1/patients/{patient}/timeline", headers=h)
                seen[agency] = file.text + timeline.text
                expected = 200 if agency in IN_REACH.values() else 404
                assert (file.status_code, timeline.status_code) == (expected, expected), agency

            # errors: an outsider's write about the patient, a read with a wrong purpose
            refused = await client.post(
                "/v1/events",
                json=envelope(
                    "hc-south",
                    "cn.smd.visit.recorded.v1",
                    patient,
                    {"face_to_face": True, "risk_level": 1, "risk_class": "basically_stable"},
                    1,
                ),
                headers=headers(keys["hc-south"], "hc-south"),
            )
            wrong_purpose = await client.get(
                f"/v1/patients/{patient}", headers={**headers(keys["hc-north"], "hc-north"), "X-Purpose": "audit"}
            )
            assert (refused.status_code, wrong_purpose.status_code) == (403, 403)
            errors = refused.text + wrong_purpose.text

    wrong = []
    for marker, kinds in MAY_SEE.items():
        allowed = {IN_REACH[k] for k in kinds.split()}
        for agency, text in seen.items():
            if (marker in text) != (agency in allowed):
                wrong.append(f"{marker} {'seen by' if marker in text else 'hidden from'} {agency}")
        assert marker not in errors, marker
    assert wrong == []

    # what the outbox publishes to the agencies, built by its own handler from the whole log
    handler = OutboxHandler(services.case_record, names_of(services.settings))
    work = handler.begin()
    for n in services.case_record.recorder.select_notifications(1, 10_000, topics=TOPICS):
        handler.apply(work, n)
    outbound = b"".join(m.payload for m in work.messages).decode()
    assert str(patient) in outbound, "the outbox tells agencies about the patient"
    for marker in MAY_SEE:
        assert marker not in outbound, f"{marker} in an outbound message"

    log_text = json.dumps(logs, default=str)
    access = repr(services.access_log.entries(patient=patient, limit=500))
    for marker in MAY_SEE:
        assert marker not in log_text, f"{marker} in a log line"
        assert marker not in access, f"{marker} in the access log"
