"""The derived RiskEscalated fact on SQLite and PostgreSQL, and its outbound message over NATS:
told to the agencies that may see risk levels, with the level before and after, no personal data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client

from core.contract import decode_event
from core.registry import load_file
from domain.risk_escalation import RiskEscalation, escalation_id
from integrations.streams import Names
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_coordination_engine import GOV, HC, POLICE
from tests.integration.test_outbox import VILLAGE, outbox, register_patient  # noqa: F401  (fixture)
from tests.integration.test_rules_care import Care
from tests.support.agency_client import AgencyClient
from tests.support.agency_client import envelope as agency_envelope


@pytest.fixture
def care(services) -> Care:
    load_file(services.case_record, DEMO_DISTRICT)
    c = Care(services)
    c.register()
    return c


def escalation(care: Care, key: str) -> RiskEscalation | None:
    try:
        return care.services.case_record.repository.get(escalation_id(care.patient, key))
    except Exception:
        return None


class TestDerived:
    def test_a_worse_level_is_recorded_once_with_before_after_and_who_may_see_risk_levels(self, care) -> None:
        care.visit(1, days_ago=20)
        worse = care.visit(4, days_ago=10)
        e = escalation(care, worse)
        assert (e.level_before, e.level_after, e.class_before, e.class_after) == (1, 4, "basically_stable", "unstable")
        assert e.recipients == sorted([HC, POLICE, GOV])
        calmer = care.visit(2, days_ago=5)
        assert escalation(care, calmer) is None

    def test_a_late_assessment_is_judged_by_occurred_time(self, care) -> None:
        care.visit(0, days_ago=20, cls="stable")
        care.visit(3, days_ago=5)
        late = care.visit(1, days_ago=10)  # between them: worse than the stable one before it
        e = escalation(care, late)
        assert e is not None and (e.level_before, e.level_after) == (0, 1)


async def test_an_escalation_reaches_the_police_over_nats_without_personal_data(
    svc: Services,
    names: Names,
    nc: Client,
    outbox: None,  # noqa: F811
) -> None:
    patient = register_patient(svc)
    for level, cls, hours in ((1, "basically_stable", 3), (4, "unstable", 2)):
        doc = agency_envelope(
            "hc-north",
            "cn.smd.risk.assessed.v1",
            patient,
            {"risk_level": level, "risk_class": cls},
            occurred=datetime.now(UTC) - timedelta(hours=hours),
            actor=None,
        )
        svc.case_record.record(decode_event(doc), "hc-north")
    svc.catch_up(svc.case_record.recorder.max_notification_id())
    msgs = await AgencyClient(nc, names, "police-east").assignments(10, timeout=5, durable="risk")
    [msg] = [m for m in msgs if m.subject == names.out("police-east", "risk", "escalated")]
    body = json.loads(msg.data)
    assert body["type"] == "cn.smd.patient.risk-escalated.v1" and body["subject"] == str(patient)
    assert (body["data"]["level_before"], body["data"]["level_after"], body["data"]["residence"]) == (1, 4, VILLAGE)
    assert "Marker Person" not in msg.data.decode()
