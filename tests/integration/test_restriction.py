"""Restricting a patient's data: only off the register, requested and approved by two agencies
(one an auditor); while it lasts every read but the auditor's is refused or leaves the patient
out, new facts are refused with ``patient-restricted``, and the rules, R15 and the outbox do
nothing for the patient; lifting restores reads and intake. On both stores."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core import restrictions
from core.case_record import utc_now
from core.intake import accept
from core.registry import load_file
from core.restrictions import Requester
from domain.obligation import Obligation
from domain.restriction import (
    ApprovalBySameAgency,
    ApprovalNeedsAnAuditor,
    PatientRestricted,
    PatientUnderManagement,
    RestrictionAct,
)
from integrations.outbox import TOPICS, OutboxHandler
from integrations.streams import names_of
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_patient_read import VILLAGE, auth, envelope
from tests.support.stores import NOW, MovableClock

AUDITOR = "auditor-lantern-bay"
HC, POLICE, COMMITTEE, GOV = "hc-north", "police-east", "committee-north", "gov-willowbrook"
AGENCIES = (HC, POLICE, COMMITTEE, GOV, AUDITOR, "hc-south")
ID_NUMBER = "11010519491231002X"


@pytest.fixture
def demo(open_store):
    services = open_store(clock=utc_now)
    load_file(services.case_record, DEMO_DISTRICT)
    keys = {a: services.apikeys.issue(a).key for a in AGENCIES}
    return services, keys


async def post_fact(client, keys, event_type: str, patient: UUID, data: dict, source: str = HC):
    return await client.post(
        "/v1/events?wait=true", json=envelope(event_type, patient, data, source), headers=auth(keys[source])
    )


async def registered_with_risk(client, keys, patient: UUID) -> None:
    body = {"name": "Test Person", "id_number": ID_NUMBER, "residence": VILLAGE, "diagnosis": "schizophrenia"}
    assert (await post_fact(client, keys, "cn.smd.patient.registered.v1", patient, body)).status_code == 201
    visit = {"face_to_face": True, "joint": False, "risk_level": 4, "risk_class": "unstable"}
    assert (await post_fact(client, keys, "cn.smd.visit.recorded.v1", patient, visit)).status_code == 201


async def deregistered(client, keys, patient: UUID) -> None:
    r = await post_fact(client, keys, "cn.smd.patient.deregistered.v1", patient, {"reason": "death"})
    assert r.status_code == 201, r.text


async def act(client, keys, path: str, agency: str, reason: str = "the family asked, PIPL art. 44"):
    return await client.post(path, json={"reason": reason}, headers=auth(keys[agency]))


async def restricted(client, keys, patient: UUID, requester: str = HC, approver: str = AUDITOR) -> str:
    r = await act(client, keys, f"/v1/audit/patients/{patient}/restriction-requests", requester)
    assert r.status_code == 201, r.text
    request_id = r.json()["request_id"]
    r = await act(client, keys, f"/v1/audit/restriction-requests/{request_id}/approval", approver)
    assert r.status_code == 200, r.text
    return request_id


async def search(client, keys, agency: str, *, by_name: bool = False) -> list[str]:
    if by_name:
        path, body = "/v1/patients/search/by-name", {"name": "Test Person", "birth_date": "1949-12-31"}
    else:
        path, body = "/v1/patients/search", {"id_number": ID_NUMBER}
    r = await client.post(path, json=body, headers=auth(keys[agency], None))
    assert r.status_code == 200, r.text
    return [p["patient_id"] for p in r.json()["patients"]]


async def oversight_patients(client, keys, agency: str = GOV) -> set[str]:
    purpose = "audit" if agency == AUDITOR else "care"
    r = await client.get("/v1/oversight/obligations?status=all", headers=auth(keys[agency], purpose))
    assert r.status_code == 200, r.text
    return {i["patient_id"] for i in r.json()["items"]}


class TestRestrictingAPatient:
    async def test_restricting_a_registered_patient_is_refused_as_under_management(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered_with_risk(client, keys, patient)
            r = await act(client, keys, f"/v1/audit/patients/{patient}/restriction-requests", AUDITOR)
            assert r.status_code == 409 and r.json()["type"].endswith("/patient-under-management"), r.text
            assert r.headers["content-type"].startswith("application/problem+json")

    async def test_approval_needs_a_different_agency_and_one_of_the_two_an_auditor(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered_with_risk(client, keys, patient)
            await deregistered(client, keys, patient)
            r = await act(client, keys, f"/v1/audit/patients/{patient}/restriction-requests", HC)
            request_id = r.json()["request_id"]
            approval = f"/v1/audit/restriction-requests/{request_id}/approval"
            r = await act(client, keys, approval, HC)
            assert r.status_code == 403 and r.json()["type"].endswith("/approval-by-requesting-agency")
            r = await act(client, keys, approval, POLICE)
            assert r.status_code == 403 and r.json()["type"].endswith("/approval-needs-an-auditor")
            r = await act(client, keys, approval, AUDITOR, reason="")
            assert r.status_code == 422 and r.json()["type"].endswith("/reason-required")
            assert (await client.get(f"/v1/patients/{patient}", headers=auth(keys[HC]))).status_code == 200
            assert (await act(client, keys, approval, AUDITOR)).status_code == 200
            r = await act(client, keys, approval, GOV)
            assert r.status_code == 409 and r.json()["type"].endswith("/restriction-request-decided")
            unknown = await act(client, keys, f"/v1/audit/restriction-requests/{uuid4()}/approval", AUDITOR)
            assert unknown.status_code == 404

    async def test_a_restricted_patient_is_hidden_from_every_kind_but_the_auditor_until_lifted(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered_with_risk(client, keys, patient)
            task = uuid4()  # a task about the patient, assigned before it left the register
            due = (utc_now() + timedelta(days=3)).isoformat()
            body = {"assignee": HC, "due_at": due, "text": "visit with the police", "patient_id": str(patient)}
            r = await post_fact(client, keys, "cn.smd.task.assigned.v1", task, body, source=GOV)
            assert r.status_code == 201, r.text
            assert (await client.get(f"/v1/tasks/{task}", headers=auth(keys[HC]))).status_code == 200
            await deregistered(client, keys, patient)
            assert str(patient) in await oversight_patients(client, keys)  # its (cancelled) obligations
            counted = services.work_queue.counts_by_rule()  # the aggregate behind /metrics
            await restricted(client, keys, patient)
            assert services.work_queue.counts_by_rule() == counted  # aggregates still count the patient
            # the task about the patient: 404 to its assignee and its assigner, read by the auditor
            for agency in (HC, GOV):
                assert (await client.get(f"/v1/tasks/{task}", headers=auth(keys[agency]))).status_code == 404
            assert (await client.get(f"/v1/tasks/{task}", headers=auth(keys[AUDITOR], "audit"))).status_code == 200

            # every agency's file and timeline: 404, as for an unknown patient
            for agency in (HC, POLICE, COMMITTEE, GOV):
                for path in (f"/v1/patients/{patient}", f"/v1/patients/{patient}/timeline"):
                    r = await client.get(path, headers=auth(keys[agency]))
                    assert r.status_code == 404, (agency, path, r.text)
            # search by ID number: nothing, except for the auditor
            assert await search(client, keys, HC) == [] and await search(client, keys, POLICE) == []
            assert await search(client, keys, AUDITOR) == [str(patient)]
            assert await search(client, keys, HC, by_name=True) == []
            assert await search(client, keys, AUDITOR, by_name=True) == [str(patient)]
            # lists: the governance center's oversight leaves the patient out; the auditor's has it
            assert str(patient) not in await oversight_patients(client, keys)
            assert str(patient) in await oversight_patients(client, keys, AUDITOR)
            # the auditor still reads the file, as of any time
            r = await client.get(f"/v1/patients/{patient}", headers=auth(keys[AUDITOR], "audit"))
            assert r.status_code == 200, r.text
            r = await client.get(
                f"/v1/audit/patients/{patient}",
                params={"as_of": utc_now().isoformat()},
                headers=auth(keys[AUDITOR], "audit"),
            )
            assert r.status_code == 200, r.text

            # a new fact (a late visit, dated before the deregistration) is refused, naming how to lift
            late = {"face_to_face": True, "joint": False, "risk_level": 1, "risk_class": "basically_stable"}
            doc = envelope("cn.smd.visit.recorded.v1", patient, late)
            doc["time"] = (utc_now() - timedelta(hours=3)).isoformat()
            r = await client.post("/v1/events", json=doc, headers=auth(keys[HC]))
            assert r.status_code == 409 and r.json()["type"].endswith("/patient-restricted"), r.text
            assert "restriction-lift-requests" in r.json()["detail"]

            # lifting: requested by the auditor, approved by the health center
            r = await act(client, keys, f"/v1/audit/patients/{patient}/restriction-lift-requests", AUDITOR)
            assert r.status_code == 201, r.text
            r = await act(client, keys, f"/v1/audit/restriction-requests/{r.json()['request_id']}/approval", HC)
            assert r.status_code == 200, r.text
            assert (await client.get(f"/v1/patients/{patient}", headers=auth(keys[HC]))).status_code == 200
            assert await search(client, keys, HC) == [str(patient)]
            assert str(patient) in await oversight_patients(client, keys)
            doc["id"] = str(uuid4())
            r = await client.post("/v1/events", json=doc, headers=auth(keys[HC]))
            assert r.status_code == 201, r.text

            # the auditor lists both requests with their reasons; nobody else may
            r = await client.get(
                f"/v1/audit/restriction-requests?patient_id={patient}", headers=auth(keys[AUDITOR], "audit")
            )
            assert r.status_code == 200, r.text
            listed = r.json()["requests"]
            assert [(q["act"], q["requested_by"], q["approved_by"]) for q in listed] == [
                ("restrict", HC, AUDITOR),
                ("lift", AUDITOR, HC),
            ]
            assert listed[0]["request_reason"] == "the family asked, PIPL art. 44"
            assert listed[-1]["restricted_now"] is False
            r = await client.get("/v1/audit/restriction-requests", headers=auth(keys[HC]))
            assert r.status_code == 403
            reads = services.access_log.entries(patient=patient, limit=1000)
            assert any(e.endpoint == "GET /v1/audit/restriction-requests" for e in reads)

    async def test_lifting_a_patient_that_is_not_restricted_is_refused(self, demo) -> None:
        services, keys = demo
        patient = uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered_with_risk(client, keys, patient)
            await deregistered(client, keys, patient)
            r = await act(client, keys, f"/v1/audit/patients/{patient}/restriction-lift-requests", AUDITOR)
            assert r.status_code == 409 and r.json()["type"].endswith("/not-restricted")
            await restricted(client, keys, patient)
            r = await act(client, keys, f"/v1/audit/patients/{patient}/restriction-requests", AUDITOR)
            assert r.status_code == 409 and r.json()["type"].endswith("/already-restricted")


# -- the followers, without the app (nothing runs in the background) ---------------------------------


@pytest.fixture
def quiet(open_store):
    clock = MovableClock(NOW)
    services = open_store(clock=clock)
    load_file(services.case_record, DEMO_DISTRICT)
    return services, clock


def send(services, agency: str, event_type: str, patient: UUID, data: dict, occurred) -> None:
    doc = envelope(event_type, patient, data, agency)
    doc["time"] = occurred.isoformat()
    accept(services.case_record, services.registry, json.dumps(doc).encode(), agency, "test")


def record_patient(services, patient: UUID, *, deregister: bool) -> None:
    body = {"name": "Test Person", "residence": VILLAGE, "diagnosis": "schizophrenia"}
    send(services, HC, "cn.smd.patient.registered.v1", patient, body, NOW - timedelta(days=3))
    visit = {"face_to_face": True, "joint": False, "risk_level": 4, "risk_class": "unstable"}
    send(services, HC, "cn.smd.visit.recorded.v1", patient, visit, NOW - timedelta(days=2))
    if deregister:
        send(services, HC, "cn.smd.patient.deregistered.v1", patient, {"reason": "death"}, NOW - timedelta(days=1))


def restrict(services, patient: UUID) -> None:
    filed = restrictions.request(
        services.case_record, patient, RestrictionAct.RESTRICT, Requester(HC, "health_center", "k-hc"), "family asked"
    )
    restrictions.approve(services.case_record, filed.id, Requester(AUDITOR, "auditor", "k-aud"), "checked")


def follow_rules(services) -> None:
    while services.policies.run_once() or services.work_queue.run_once():
        pass


def derived_about(services, patient: UUID) -> list[str]:
    """The topics of obligations, notices and escalations recorded about the patient."""
    found = []
    for n in services.case_record.recorder.select_notifications(1, 100_000):
        if n.topic.startswith(("smd.Obligation", "smd.RiskEscalated")):
            event = services.case_record.mapper.to_domain_event(n)
            owner = getattr(event, "patient_id", None)
            if owner is None:
                owner = services.case_record.repository.get(n.originator_id).patient_id
            if owner == patient:
                found.append(n.topic)
    return found


class TestTheFollowersDoNothingForARestrictedPatient:
    def test_the_rules_open_nothing_for_a_restricted_patient_while_another_gets_its_obligations(self, quiet) -> None:
        services, _ = quiet
        hidden, control = uuid4(), uuid4()
        record_patient(services, hidden, deregister=True)
        record_patient(services, control, deregister=False)
        restrict(services, hidden)  # before the rules saw any of its facts
        follow_rules(services)
        assert derived_about(services, hidden) == []
        assert "smd.ObligationAssigned" in derived_about(services, control)

    def test_r15_and_the_outbox_do_nothing_for_work_opened_before_the_restriction(self, quiet) -> None:
        services, clock = quiet
        patient, control = uuid4(), uuid4()
        record_patient(services, patient, deregister=False)
        record_patient(services, control, deregister=False)
        follow_rules(services)  # R1 and its peers open work for the police and others
        opened = [t for t in derived_about(services, patient) if t == "smd.ObligationAssigned"]
        assert opened
        send(services, HC, "cn.smd.patient.deregistered.v1", patient, {"reason": "death"}, NOW - timedelta(hours=1))
        restrict(services, patient)  # before the rules cancel its work
        clock.now = NOW + timedelta(days=90)  # every deadline passed
        services.scheduler.run_once(force=True)
        assert "smd.ObligationOverdue" not in derived_about(services, patient)
        assert "smd.ObligationOverdue" in derived_about(services, control)  # R15 did run
        # the outbox, going over every obligation fact, sends nothing about the patient
        handler = OutboxHandler(services.case_record, names_of(services.settings), services.access_log)
        published: list = []
        handler.sync_publish = published.extend
        work = handler.begin()
        notifications = services.case_record.recorder.select_notifications(1, 100_000, topics=TOPICS)
        for n in notifications:
            handler.apply(work, n)
        assert any(m.patient_id == patient for m in work.messages)  # what it would have sent
        handler.commit(work, "outbox-test", notifications[-1].id)
        assert [m for m in published if m.patient_id == patient] == []
        # the rules still close the work the deregistration ends (notices only wait to be read)
        follow_rules(services)
        found = services.case_record.load_many(_obligations(services, patient)).values()
        assert {o.status for o in found if o.kind == "obligation"} <= {"cancelled", "completed"}


def _obligations(services, patient: UUID) -> set[UUID]:
    ids = services.case_record.originators_of(Obligation.Assigned.TOPIC)
    return {i for i, o in services.case_record.load_many(ids).items() if o.patient_id == patient}


class TestTheRulesOfRestriction:
    def test_the_door_refuses_a_new_fact_and_the_requests_check_their_pairing(self, quiet) -> None:
        services, _ = quiet
        patient = uuid4()
        record_patient(services, patient, deregister=False)
        with pytest.raises(PatientUnderManagement):
            restrictions.request(
                services.case_record, patient, RestrictionAct.RESTRICT, Requester(AUDITOR, "auditor", "k"), "why"
            )
        send(services, HC, "cn.smd.patient.deregistered.v1", patient, {"reason": "death"}, NOW - timedelta(hours=1))
        filed = restrictions.request(
            services.case_record, patient, RestrictionAct.RESTRICT, Requester(POLICE, "police", "k-p"), "why"
        )
        with pytest.raises(ApprovalBySameAgency):
            restrictions.approve(services.case_record, filed.id, Requester(POLICE, "police", "k-p2"), "ok")
        with pytest.raises(ApprovalNeedsAnAuditor):
            restrictions.approve(services.case_record, filed.id, Requester(HC, "health_center", "k-h"), "ok")
        restrictions.approve(services.case_record, filed.id, Requester(AUDITOR, "auditor", "k-a"), "ok")
        assert restrictions.is_restricted(services.case_record, patient)
        visit = {"face_to_face": True, "joint": False, "risk_level": 0, "risk_class": "stable"}
        with pytest.raises(PatientRestricted, match="restriction-lift-requests"):
            send(services, HC, "cn.smd.visit.recorded.v1", patient, visit, NOW - timedelta(hours=5))


class TestSmdRestriction:
    def test_smd_restriction_requests_approves_and_lists_and_refuses_a_second_approval_by_the_same_agency(
        self, quiet, monkeypatch, capsys
    ) -> None:
        from ops.cli import main
        from tests.integration.test_verifiable_log import use_settings

        services, _ = quiet
        patient = uuid4()
        record_patient(services, patient, deregister=True)
        use_settings(monkeypatch, services)
        assert main(["restriction", "request", "--patient", str(patient), "--agency", HC, "--reason", "asked"]) == 0
        out = capsys.readouterr().out
        request_id = out.split()[1].rstrip(":")
        assert main(["restriction", "approve", request_id, "--agency", HC, "--reason", "ok"]) == 1
        assert "approval-by-requesting-agency" in capsys.readouterr().out
        assert main(["restriction", "approve", request_id, "--agency", AUDITOR, "--reason", "checked"]) == 0
        assert f"{patient} is restricted" in capsys.readouterr().out
        assert restrictions.is_restricted(services.case_record, patient)
        assert main(["restriction", "list", "--patient", str(patient)]) == 0
        listed = capsys.readouterr().out
        assert f"{request_id}  restrict" in listed and "restricted now" in listed and "asked" not in listed
        filed = restrictions.load_request(services.case_record, UUID(request_id))
        assert filed.approved_by == AUDITOR
        stored = services.case_record.events.get(UUID(request_id))
        assert next(e.key_id for e in stored).startswith("cli:")


class TestASuspectedCase:
    def test_a_dismissed_suspected_case_can_be_restricted_and_an_open_one_cannot(self, quiet) -> None:
        services, _ = quiet
        case = uuid4()
        report = {"observed": "shouts at passers-by at night", "seen_in": VILLAGE}
        send(services, COMMITTEE, "cn.smd.suspected-case.reported.v1", case, report, NOW - timedelta(days=3))
        hc, auditor = Requester(HC, "health_center", "k-hc"), Requester(AUDITOR, "auditor", "k-a")
        with pytest.raises(PatientUnderManagement):
            restrictions.request(services.case_record, case, RestrictionAct.RESTRICT, hc, "why")
        assessed = {"outcome": "no_severe_disorder"}
        send(services, HC, "cn.smd.suspected-case.assessed.v1", case, assessed, NOW - timedelta(days=2))
        dismissed = {"reason": "no_severe_disorder"}
        send(services, HC, "cn.smd.suspected-case.dismissed.v1", case, dismissed, NOW - timedelta(days=1))
        filed = restrictions.request(services.case_record, case, RestrictionAct.RESTRICT, hc, "why")
        assert filed.subject_kind == "suspected_case"
        restrictions.approve(services.case_record, filed.id, auditor, "ok")
        assert restrictions.is_restricted(services.case_record, case)
        assert restrictions.hidden_from("health_center", services.case_record, [case]) == {case}
        assert restrictions.hidden_from("auditor", services.case_record, [case]) == frozenset()


class TestErasureRequestsOverHttp:
    async def test_erasure_is_refused_under_retention_and_once_approved_locks_the_patient(self, demo) -> None:
        services, keys = demo
        kept, in_error = uuid4(), uuid4()
        async with AsyncTestClient(create_app(services)) as client:
            await registered_with_risk(client, keys, kept)
            await deregistered(client, keys, kept)
            r = await act(client, keys, f"/v1/audit/patients/{kept}/erasure-requests", HC)
            assert r.status_code == 409 and r.json()["type"].endswith("/retention-applies"), r.text
            body = {"name": "Test Person", "residence": VILLAGE}
            assert (await post_fact(client, keys, "cn.smd.patient.registered.v1", in_error, body)).status_code == 201
            gone = {"reason": "registered_in_error", "note": "wrong person"}
            assert (await post_fact(client, keys, "cn.smd.patient.deregistered.v1", in_error, gone)).status_code == 201
            r = await act(client, keys, f"/v1/audit/patients/{in_error}/erasure-requests", HC)
            assert r.status_code == 201, r.text
            r = await act(client, keys, f"/v1/audit/restriction-requests/{r.json()['request_id']}/approval", AUDITOR)
            assert r.status_code == 200, r.text
            assert r.json()["act"] == "erase" and r.json()["erase_after"] > r.json()["approved_at"]
            assert (await client.get(f"/v1/patients/{in_error}", headers=auth(keys[HC]))).status_code == 404
            r = await act(client, keys, f"/v1/audit/patients/{in_error}/restriction-lift-requests", AUDITOR)
            assert r.status_code == 409 and r.json()["type"].endswith("/erasure-approved"), r.text


class TestSmdErasureRun:
    def test_smd_erasure_run_waits_for_the_cooling_off_then_destroys_the_key(self, quiet, monkeypatch, capsys) -> None:
        from ops.cli import main
        from tests.integration.test_verifiable_log import use_settings

        services, _ = quiet
        patient = uuid4()
        body = {"name": "Test Person", "residence": VILLAGE}
        send(services, HC, "cn.smd.patient.registered.v1", patient, body, NOW - timedelta(hours=2))
        gone = {"reason": "registered_in_error"}
        send(services, HC, "cn.smd.patient.deregistered.v1", patient, gone, NOW - timedelta(hours=1))
        use_settings(monkeypatch, services)
        monkeypatch.setenv("SMD_ERASURE_COOLING_OFF_DAYS", "0")
        assert (
            main(
                [
                    "restriction",
                    "request",
                    "--patient",
                    str(patient),
                    "--act",
                    "erase",
                    "--agency",
                    HC,
                    "--reason",
                    "registered in error",
                ]
            )
            == 0
        )
        request_id = capsys.readouterr().out.split()[1].rstrip(":")
        assert main(["restriction", "approve", request_id, "--agency", AUDITOR, "--reason", "checked"]) == 0
        assert "data key is destroyed by `smd erasure run`" in capsys.readouterr().out
        assert main(["erasure", "run"]) == 0
        out = capsys.readouterr().out
        assert f"erased {patient}: data key destroyed" in out and "NATS streams were not searched" in out
        assert services.case_record.mapper.keystore.table.get(patient) is None  # the key row is gone
