"""A patient's proof bundle: built over HTTP for an auditor, checked by `smd verify-bundle` with
no database and public keys only; one byte changed anywhere makes it fail. On both stores."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from core.audit.bundle import BundleError, verify_bundle
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.integration.test_verifiable_log import follow, record_patients
from tests.support.stores import Agency


@pytest.fixture
def bundled(open_store):
    """An auditor's bundle of one patient (three facts) among others, against a signed checkpoint."""
    services = open_store()
    load_file(services.case_record, DEMO_DISTRICT)
    key = services.apikeys.issue("auditor-lantern-bay").key
    record_patients(services, patients=2, visits=1)
    patient = uuid4()
    agency = Agency("hc-east")
    services.case_record.record(agency.register(patient), "hc-east")
    services.case_record.record(agency.visit(patient, 4, "unstable"), "hc-east")
    record_patients(services, patients=1, visits=1)
    services.case_record.record(agency.visit(patient, 1, "basically_stable"), "hc-east")
    follow(services)
    services.checkpointer.sign_now()
    return services, key, patient


async def fetch(services, key: str, patient) -> bytes:
    async with AsyncTestClient(app=create_app(services)) as client:
        r = await client.get(f"/v1/audit/patients/{patient}/bundle", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        return r.content


class TestProofBundle:
    async def test_the_bundle_verifies_offline_with_the_logs_public_key(self, bundled, tmp_path, capsys) -> None:
        from ops.cli import main

        services, key, patient = bundled
        raw = await fetch(services, key, patient)
        doc = json.loads(raw)
        assert [r["originator_version"] for r in doc["rows"]] == [1, 2, 3]
        assert "Test Person" not in raw.decode()  # the name is sealed: ciphertext, never a key
        path = tmp_path / "bundle.json"
        path.write_bytes(raw)
        log_key = services.audit.keys.signer("checkpoint").verifier.encode()
        assert main(["verify-bundle", str(path), "--key", log_key]) == 0
        out = capsys.readouterr().out
        assert f"verify-bundle: OK: patient {patient}: 3 stored rows in the tree of" in out

    async def test_one_byte_changed_anywhere_fails(self, bundled) -> None:
        services, key, patient = bundled
        raw = await fetch(services, key, patient)
        log_key = services.audit.keys.signer("checkpoint").verifier.encode()
        verify_bundle(raw, [log_key])
        positions = sorted({*range(0, len(raw), max(1, len(raw) // 400)), len(raw) - 1})
        for i in positions:
            for replacement in {raw[i] ^ 0x01, ord("0") if raw[i] != ord("0") else ord("1")}:
                changed = raw[:i] + bytes([replacement]) + raw[i + 1 :]
                with pytest.raises(BundleError):
                    verify_bundle(changed, [log_key])

    async def test_a_bundle_of_a_tampered_row_does_not_verify(self, bundled) -> None:
        from tests.support.rogue import RogueAdmin

        services, key, patient = bundled
        stream = services.chain_store.leaves_of(str(patient))
        RogueAdmin(services).update_state(stream[1].notification_id, b'{"forged": true}')
        raw = await fetch(services, key, patient)
        with pytest.raises(BundleError, match=r"row 2 .*not in the signed tree"):
            verify_bundle(raw)

    async def test_an_unknown_patient_is_a_404_problem_and_only_auditors_get_bundles(self, bundled) -> None:
        services, key, _ = bundled
        other = services.apikeys.issue("hc-north").key
        async with AsyncTestClient(app=create_app(services)) as client:
            r = await client.get(f"/v1/audit/patients/{uuid4()}/bundle", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 404 and r.json()["type"].endswith("not-in-tree")
            r = await client.get(f"/v1/audit/patients/{uuid4()}/bundle", headers={"Authorization": f"Bearer {other}"})
            assert r.status_code == 403

    async def test_a_bundle_is_recorded_in_the_access_log_with_its_patient_and_a_refusal_too(self, bundled) -> None:
        services, key, patient = bundled
        other = services.apikeys.issue("hc-north").key
        await fetch(services, key, patient)
        async with AsyncTestClient(app=create_app(services)) as client:
            r = await client.get(f"/v1/audit/patients/{patient}/bundle", headers={"Authorization": f"Bearer {other}"})
            assert r.status_code == 403
        rows = [e for e in services.access_log.entries(limit=100) if e.endpoint.endswith("/bundle")]
        assert [(e.agency_id, e.purpose, e.status, e.patient_ids, e.fields) for e in rows] == [
            ("auditor-lantern-bay", "audit", 200, (patient,), ("proof_bundle",)),
            ("hc-north", "assigned-duty", 403, (), ()),
        ]
