"""As-of replay on both axes, on SQLite and PostgreSQL (DESIGN.md "two time axes"; issue 23): a
late fact makes "what was true" and "what we knew" differ exactly where it says they should."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from core.demo_keys import ensure_demo_keys
from core.intake import accept
from core.patient_as_of import NotRegisteredAsOf, patient_as_of
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from ops.workers import serving_app
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import MovableClock

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # registration recorded
T1 = T0 + timedelta(days=1)  # a level-1 visit, recorded at once
T2 = T0 + timedelta(days=3)  # a level-3 visit occurred ...
T3 = T0 + timedelta(days=6)  # ... and was recorded only now (a late fact)
HC, VILLAGE = "hc-north", "990101-001-v01"


def send(s, clock: MovableClock, type_: str, subject, data: dict, occurred: datetime, recorded: datetime) -> None:
    clock.now = recorded
    body = agency_envelope(HC, type_, subject, data, occurred=occurred, actor=None)
    accept(s.case_record, s.registry, body, HC, "test")
    s.catch_up(s.case_record.recorder.max_notification_id())


@pytest.fixture
def story(open_store):
    clock = MovableClock(T0 - timedelta(days=1))
    s = open_store(clock=clock)
    load_file(s.case_record, DEMO_DISTRICT)
    s.registry.refresh()
    patient = uuid4()
    send(
        s,
        clock,
        "cn.smd.patient.registered.v1",
        patient,
        {"name": "Test Person", "residence": VILLAGE, "diagnosis": "schizophrenia"},
        T0 - timedelta(hours=1),
        T0,
    )
    visit = {"face_to_face": True, "joint": False, "risk_class": "unstable"}
    send(s, clock, "cn.smd.visit.recorded.v1", patient, {**visit, "risk_level": 1}, T1, T1)
    send(s, clock, "cn.smd.visit.recorded.v1", patient, {**visit, "risk_level": 3}, T2, T3)
    while s.chain.run_once():
        pass
    s.checkpointer.sign_now()
    return s, clock, patient


def as_of(s, patient, when: datetime, axis: str):
    ids = [r.obligation_id for r in s.patient_obligations(patient)]
    return patient_as_of(s.case_record, patient, when, axis, ids, s.chain_store)


class TestTwoAxes:
    def test_as_of_the_recorded_axis_knows_only_what_was_recorded_by_then(self, story) -> None:
        s, _, patient = story
        knew = as_of(s, patient, T2 + timedelta(hours=1), "recorded")
        assert knew.file["risk"]["level"] == 1
        assert not [o for o in knew.file["obligations"] if o["rule"] == "R1"]  # nothing asked of the police yet
        assert [f["occurred_at"] for f in knew.late_facts] == [T2]

    def test_as_of_the_occurred_axis_counts_the_late_fact_where_it_occurred(self, story) -> None:
        s, _, patient = story
        true = as_of(s, patient, T2 + timedelta(hours=1), "occurred")
        assert true.file["risk"]["level"] == 3
        assert true.versions == 3
        # the obligations are the system's acts: as they stood then by recorded time
        assert not [o for o in true.file["obligations"] if o["rule"] == "R1"]

    def test_as_of_after_the_late_fact_was_recorded_the_axes_agree(self, story) -> None:
        s, _, patient = story
        knew = as_of(s, patient, T3 + timedelta(hours=1), "recorded")
        true = as_of(s, patient, T3 + timedelta(hours=1), "occurred")
        assert knew.file["risk"] == true.file["risk"] == {"level": 3, "class": "unstable"}
        assert knew.late_facts == true.late_facts == []
        assert "take_under_management" in [o["action"] for o in knew.file["obligations"] if o["rule"] == "R1"]

    def test_as_of_before_the_first_visit_both_axes_show_the_registration_only(self, story) -> None:
        s, _, patient = story
        for axis in ("occurred", "recorded"):
            found = as_of(s, patient, T0 + timedelta(hours=1), axis)
            assert found.file["risk"]["level"] is None and found.versions == 1

    def test_as_of_names_its_log_position_and_a_checkpoint_holding_it(self, story) -> None:
        s, _, patient = story
        knew = as_of(s, patient, T2 + timedelta(hours=1), "recorded")
        true = as_of(s, patient, T2 + timedelta(hours=1), "occurred")
        assert knew.position is not None and true.position is not None and knew.position < true.position
        assert knew.checkpoint_size is not None

    def test_as_of_before_the_registration_is_not_found(self, story) -> None:
        s, _, patient = story
        with pytest.raises(NotRegisteredAsOf):
            as_of(s, patient, T0 - timedelta(days=1), "recorded")


class TestOverHttp:
    async def test_as_of_is_for_auditors_and_every_answer_is_in_the_access_log(self, story) -> None:
        s, _, patient = story
        keys = {k.agency_id: k.key for k in ensure_demo_keys(s.apikeys, s.registry, s.settings.data_dir)}
        async with AsyncTestClient(serving_app(s)) as client:
            url = f"/v1/audit/patients/{patient}"
            params = {"as_of": (T2 + timedelta(hours=1)).isoformat(), "axis": "occurred"}
            r = await client.get(url, params=params, headers={"Authorization": f"Bearer {keys['auditor-lantern-bay']}"})
            assert r.status_code == 200, r.text
            assert r.json()["file"]["risk"]["level"] == 3
            r = await client.get(url, params=params, headers={"Authorization": f"Bearer {keys[HC]}"})
            assert r.status_code == 403
            r = await client.get(
                url,
                params={"as_of": "2026-11-20T09:00:00"},
                headers={"Authorization": f"Bearer {keys['auditor-lantern-bay']}"},
            )
            assert r.status_code == 400
        reads = [e for e in s.access_log.entries(patient=patient) if e.endpoint.startswith("GET /v1/audit/patients")]
        assert [e.status for e in reads][:1] == [200]
