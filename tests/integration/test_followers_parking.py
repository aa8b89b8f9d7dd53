"""Followers that never stop: an event a rule cannot handle is parked, that patient's later
facts wait behind it, every other patient is served; a retry after the fix gives exactly what
an unfaulted run gives. A registry fact that fails stops the rules instead. On both stores."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

import core.policy_process as policy_process
from core.followers.parking import HELD, PARKED
from core.intake import accept
from core.obligations import act
from core.registry import load_file
from domain.obligation import obligation_id
from ops.bootstrap import Services
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.replay import DERIVED
from tests.support.stores import NOW, open_services, store_settings

HC, POLICE, GOV = "hc-north", "police-east", "gov-willowbrook"
VILLAGE = "990101-001-v01"


class Story:
    """The same agencies' messages, with the same ids, for a faulted and an unfaulted run."""

    def __init__(self) -> None:
        self.faulted, self.other = uuid4(), uuid4()
        self.ids: dict[str, UUID] = {}

    def envelope(self, label: str, agency: str, patient: UUID, type_: str, data: dict, days_ago: float) -> bytes:
        mid = self.ids.setdefault(label, uuid4())
        occurred = NOW - timedelta(days=days_ago)
        return agency_envelope(
            agency, f"cn.smd.{type_}.v1", patient, data, occurred=occurred, message_id=mid, actor=None
        )


def send(
    services: Services, story: Story, label: str, agency: str, patient: UUID, type_: str, data: dict, days_ago: float
) -> int:
    raw = story.envelope(label, agency, patient, type_, data, days_ago)
    return accept(services.case_record, services.registry, raw, agency, "test").notification_id or 0


def visit(level: int) -> dict[str, Any]:
    cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
    return {"face_to_face": True, "risk_level": level, "risk_class": cls}


def derived(services: Services) -> list[tuple[str, int, str, dict]]:
    """What the rules recorded, by aggregate and version (log positions differ between runs)."""
    out = []
    for n in services.case_record.recorder.select_notifications(1, 100_000):
        if n.topic.startswith(DERIVED):
            state = dict(vars(services.case_record.mapper.to_domain_event(n)))
            state.pop("trigger_position", None)
            out.append((str(n.originator_id), n.originator_version, n.topic, state))
    return sorted(out, key=lambda r: (r[0], r[1]))


def run_story(services: Services, story: Story, between: Callable[[str], None] = lambda step: None) -> None:
    """Two patients; the first goes high, is visited while parked, acknowledged, taken in."""
    load_file(services.case_record, DEMO_DISTRICT)
    for label, patient in (("reg-a", story.faulted), ("reg-b", story.other)):
        send(
            services,
            story,
            label,
            HC,
            patient,
            "patient.registered",
            {"name": "Test Person", "residence": VILLAGE},
            200,
        )
    entered = send(services, story, "high-a", HC, story.faulted, "visit.recorded", visit(4), 10)
    services.catch_up(entered)
    between("fault on")
    services.catch_up(send(services, story, "visit-a", HC, story.faulted, "visit.recorded", visit(4), 5))
    r1 = obligation_id(story.faulted, "R1", f"{HC}:{story.ids['high-a']}", "police")
    act(services.case_record, r1, POLICE, "staff-1", "acknowledge")
    services.catch_up(send(services, story, "visit2-a", HC, story.faulted, "visit.recorded", visit(5), 3))
    services.catch_up(send(services, story, "taken-a", POLICE, story.faulted, "patient.taken-under-management", {}, 1))
    services.catch_up(send(services, story, "high-b", HC, story.other, "visit.recorded", visit(4), 1))
    between("parked")


@pytest.fixture
def second_store(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Another empty store of the same kind (the unfaulted run)."""
    pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
    services = open_services(store_settings(store_kind, tmp_path / "unfaulted", pg_url))
    yield services
    services.close()


def fault_for(monkeypatch: pytest.MonkeyPatch, patient: UUID) -> list[int]:
    """Make one rule fail for one patient (the rules' decide, as the policy process calls it)."""
    calls: list[int] = []
    real = policy_process.decide

    def failing(trigger, patient_state, responsible, settings):
        if trigger.patient_id == patient:
            calls.append(trigger.position)
            raise ZeroDivisionError("injected")
        return real(trigger, patient_state, responsible, settings)

    monkeypatch.setattr(policy_process, "decide", failing)
    return calls


def test_a_patient_whose_fact_a_rule_cannot_handle_is_parked_and_every_other_patient_is_served(
    services: Services, second_store: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = Story()
    state: dict[str, Any] = {}

    def between(step: str) -> None:
        if step == "fault on":
            fault_for(monkeypatch, story.faulted)
        else:
            state["rows"] = services.parking.rows("policies")
            state["police"] = services.work_queue.for_assignee(POLICE)

    run_story(services, story, between)

    rows = state["rows"]
    assert [r.status for r in rows] == [PARKED, HELD, HELD, HELD], "the visit parked; ack, visit and taken-in held"
    parked = rows[0]
    assert str(story.faulted) in parked.keys and parked.reason.startswith("ZeroDivisionError at ")
    assert "injected" not in parked.reason, "an exception's message is never stored (it may quote personal data)"
    assert rows[1].topic == "smd.ObligationAcknowledged", "an acknowledgement of its obligation is held too"
    police = {(r.patient_id, r.rule): r for r in state["police"]}
    assert (story.other, "R1") in police, "the other patient got its R1 while the first was parked"
    assert police[(story.faulted, "R1")].status == "acknowledged", "not completed: the taking-in is held"
    while services.policies.run_once():
        pass
    status = {s.name: s for s in services.follower_status()}["policies"]
    assert (status.parked, status.held, status.state) == (1, 3, "parked")
    assert status.lag_events == 0, "parking does not stop the follower"

    monkeypatch.undo()  # the fix
    report = services.policies.follower.retry({str(story.faulted)})
    assert len(report.handled) == 4 and not report.still_parked
    assert services.parking.rows("policies") == []
    services.catch_up(services.case_record.recorder.max_notification_id() or 0)

    run_story(second_store, story)
    assert derived(services) == derived(second_store), "retry gives exactly what an unfaulted run gives"
    r1 = obligation_id(story.faulted, "R1", f"{HC}:{story.ids['high-a']}", "police")
    assert services.case_record.repository.get(r1).status == "completed"

    before = services.case_record.recorder.max_notification_id()
    assert services.policies.follower.retry().handled == [] and not services.policies.run_once()
    assert services.case_record.recorder.max_notification_id() == before, "nothing applied twice"


def test_a_retry_that_fails_again_keeps_the_event_parked_and_the_rest_held(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = Story()
    run_story(services, story, lambda step: fault_for(monkeypatch, story.faulted) if step == "fault on" else None)
    report = services.policies.follower.retry()
    assert report.handled == [] and len(report.still_parked) == 4
    assert [r.status for r in services.parking.rows("policies")] == [PARKED, HELD, HELD, HELD]


def test_a_registry_fact_the_rules_cannot_handle_stops_them_until_fixed(
    services: Services, second_store: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    story = Story()
    load_file(services.case_record, DEMO_DISTRICT)
    send(
        services,
        story,
        "reg-b",
        HC,
        story.other,
        "patient.registered",
        {"name": "Test Person", "residence": VILLAGE},
        200,
    )
    services.catch_up(services.case_record.recorder.max_notification_id() or 0)

    real_apply = policy_process.PolicyProcess.apply

    def failing(self, work, n):
        if n.topic.startswith("smd.OrgUnit"):
            raise KeyError("injected")
        return real_apply(self, work, n)

    monkeypatch.setattr(policy_process.PolicyProcess, "apply", failing)
    changed = _registry_with_one_more_village(tmp_path)
    load_file(services.case_record, changed)
    stop_at = services.case_record.recorder.max_notification_id() or 0
    high = send(services, story, "high-b", HC, story.other, "visit.recorded", visit(4), 1)
    assert not services.catch_up(high, timeout=1.0), "the rules do not move past the registry fact"
    status = {s.name: s for s in services.follower_status()}["policies"]
    assert status.state == "stopped" and status.stopped_at == stop_at and "KeyError" in (status.stopped_reason or "")
    assert status.position == stop_at - 1
    assert not [r for r in services.work_queue.for_assignee(POLICE) if r.patient_id == story.other]
    status_body, metrics_text = asyncio.run(_status_and_metrics(services))
    policies = next(f for f in status_body["followers"] if f["name"] == "policies")
    assert (policies["state"], policies["stopped_at"]) == ("stopped", stop_at), "/v1/status names the stop"
    assert 'smd_follower_stopped{follower="policies"} 1.0' in metrics_text, "and the metrics"

    monkeypatch.undo()
    assert services.catch_up(high)
    assert services.parking.rows("policies") == [], "the stop is cleared once the fact is handled"

    load_file(second_store.case_record, DEMO_DISTRICT)
    send(
        second_store,
        story,
        "reg-b",
        HC,
        story.other,
        "patient.registered",
        {"name": "Test Person", "residence": VILLAGE},
        200,
    )
    load_file(second_store.case_record, changed)
    second_store.catch_up(send(second_store, story, "high-b", HC, story.other, "visit.recorded", visit(4), 1))
    assert derived(services) == derived(second_store)


async def _status_and_metrics(services: Services) -> tuple[dict, str]:
    from litestar.testing import AsyncTestClient

    from api.app import create_app

    key = services.apikeys.issue(GOV).key
    async with AsyncTestClient(app=create_app(services)) as client:
        status = await client.get("/v1/status", headers={"Authorization": f"Bearer {key}"})
        metrics = await client.get("/metrics")
    assert status.status_code == 200 and metrics.status_code == 200
    return status.json(), metrics.text


def _registry_with_one_more_village(tmp_path: Path) -> Path:
    """The demo district with one more village (a registry change the operator loads)."""
    text = DEMO_DISTRICT.read_text(encoding="utf-8")
    village = (
        '[[org_units]]\nid = "990101-001-v99"\nkind = "village"\nname = "New Village"\nparent = "990101-001-c1"\n\n'
    )
    path = tmp_path / "district.toml"
    path.write_text(text.replace("[[agencies]]", village + "[[agencies]]", 1), encoding="utf-8")
    assert len(tomllib.loads(path.read_text(encoding="utf-8"))["org_units"]) == 24
    return path


def test_a_read_model_parks_one_patient_and_its_retry_equals_an_unfaulted_view(
    services: Services, second_store: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from projections.work_queue import WorkQueueView

    story = Story()
    real = WorkQueueView.apply

    def failing(self, event, notification, batch):
        if getattr(event, "patient_id", None) == story.faulted or (
            notification.topic != "smd.ObligationAssigned"
            and services.case_record.repository.get(event.originator_id).patient_id == story.faulted
        ):
            raise ValueError("injected")
        return real(self, event, notification, batch)

    def between(step: str) -> None:
        if step == "fault on":
            monkeypatch.setattr(WorkQueueView, "apply", failing)

    run_story(services, story, between)
    name = services.work_queue.name
    statuses = [r.status for r in services.parking.rows(name)]
    assert statuses[0] == PARKED and set(statuses[1:]) == {HELD}
    rows = services.work_queue.for_assignee(POLICE)
    assert any(r.patient_id == story.other and r.rule == "R1" for r in rows), "the other patient is in the view"

    monkeypatch.undo()
    report = services.work_queue.retry()
    assert not report.still_parked and services.parking.rows(name) == []
    run_story(second_store, story)

    def view(s: Services) -> list[tuple]:
        found = s.work_queue.select("1 = 1", [], 0, 10_000)
        return sorted((r.obligation_id, r.status, r.overdue, r.closed_note, r.due_at) for r in found)

    assert view(services) == view(second_store)
    assert services.work_queue.retry().handled == [], "nothing applied twice"


def test_a_crash_between_parking_and_the_commit_loses_no_event_and_applies_none_twice(
    services: Services, second_store: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = Story()
    real_commit = policy_process.PolicyProcess.commit
    crashes: list[int] = []

    def crash_once(self, work, tracking_name, position, *, exclusive=False):
        if not crashes and services.parking.rows("policies"):
            crashes.append(position)
            raise RuntimeError("the process died here")
        return real_commit(self, work, tracking_name, position, exclusive=exclusive)

    def between(step: str) -> None:
        if step == "fault on":
            fault_for(monkeypatch, story.faulted)
            monkeypatch.setattr(policy_process.PolicyProcess, "commit", crash_once)
            with pytest.raises(RuntimeError):
                services.catch_up(send(services, story, "visit-a0", HC, story.faulted, "visit.recorded", visit(4), 6))

    run_story(services, story, between)
    assert crashes, "the commit crashed once, after the parked row was written"
    assert [r.status for r in services.parking.rows("policies")][:1] == [PARKED]
    monkeypatch.undo()
    services.policies.follower.retry()
    services.catch_up(services.case_record.recorder.max_notification_id() or 0)
    assert services.parking.rows("policies") == []

    def story_with_extra(step: str) -> None:
        if step == "fault on":
            second_store.catch_up(
                send(second_store, story, "visit-a0", HC, story.faulted, "visit.recorded", visit(4), 6)
            )

    run_story(second_store, story, story_with_extra)
    assert derived(services) == derived(second_store)
