"""A fact about a restricted patient that comes over NATS is rejected with ``patient-restricted``
on the sender's rejection subject, naming how to lift it; nothing is stored. On both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from nats.aio.client import Client

from core import restrictions
from core.restrictions import Requester
from domain.restriction import RestrictionAct
from integrations.intake import H_DETAIL, H_REASON
from integrations.streams import Names
from ops.bootstrap import Services
from tests.integration.test_bad_input_nats import HC, VILLAGE, intake, nats_env, registered, svc  # noqa: F401
from tests.support.agency_client import AgencyClient, envelope
from tests.support.nats_world import wait_for

pytestmark = pytest.mark.integration


async def test_a_fact_about_a_restricted_patient_is_rejected_over_nats_naming_how_to_lift_it(
    svc: Services,  # noqa: F811
    names: Names,
    nc: Client,
    intake: None,  # noqa: F811
) -> None:
    hc = AgencyClient(nc, names, HC)
    patient = uuid4()
    await hc.publish(hc.registration(patient, VILLAGE))
    dead = envelope(HC, "cn.smd.patient.deregistered.v1", patient, {"reason": "death"})
    await hc.publish(dead)
    await wait_for(
        lambda: registered(svc, patient) and svc.case_record.patient(patient).deregistered_at is not None,
        what="the registration and the deregistration",
    )
    filed = restrictions.request(
        svc.case_record, patient, RestrictionAct.RESTRICT, Requester(HC, "health_center", "k"), "asked"
    )
    restrictions.approve(svc.case_record, filed.id, Requester("auditor-lantern-bay", "auditor", "k2"), "ok")

    versions = svc.case_record.patient(patient).version
    late = {"face_to_face": True, "risk_level": 0, "risk_class": "stable"}
    raw = envelope(HC, "cn.smd.visit.recorded.v1", patient, late, occurred=datetime.now(UTC) - timedelta(hours=3))
    await hc.publish(raw)
    got = await hc.rejections(1)
    assert len(got) == 1
    assert got[0].headers[H_REASON] == "patient-restricted"
    assert "restriction-lift-requests" in got[0].headers[H_DETAIL]
    assert svc.case_record.patient(patient).version == versions  # nothing stored
