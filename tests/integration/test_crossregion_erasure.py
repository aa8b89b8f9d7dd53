"""Erasure notices between two regions (decision 049), on SQLite and PostgreSQL, two deployments in
one process linked by the in-memory link of test_handovers.py: an erasure in A queues a signed
notice to B in its own transaction; B erases what it stored of the patient where its own law keeps
nothing (the request's sealed details), records the notice and answers; after B's `smd erasure run`
none of the patient's personal or free-text values is readable in either region's tables (a
positive control finds them before). A notice about a file B must keep is kept with its reason and
destroys nothing; a notice about a patient never handed over between the two is refused."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from core import restrictions
from core.erasure import erase_due
from core.handover_messages import build
from core.restrictions import Requester
from domain.erasure_notice import CrossRegionErasure, erasure_notice_id
from domain.restriction import PatientRestricted, RestrictionAct
from ops.bootstrap import Services
from tests.integration.test_erasure import SEALED, forms, raw_blobs
from tests.integration.test_handovers import HC, ID_NUMBER, SECRET_NAME, A, B, Link, Region, move_to_b, regions

pytestmark = pytest.mark.integration

__all__ = ["regions"]  # the fixture

AUDITOR = "auditor-lantern-bay"
PHONE = "13900000017"  # move_to_b's fictional phone
NOTE = "registered in error: the neighbour 邻居王 was meant"  # free text, A's deregistration
VALUES = (SECRET_NAME, ID_NUMBER, PHONE, NOTE)


def pg_url(region: Region) -> str | None:
    target = region.services.settings.postgres
    return target.conninfo() if target is not None else None


def plaintext(blobs: list[bytes]) -> set[str]:
    return {v for v in VALUES for b in blobs for f in forms(v) if f in b}


def readable(services: Services, blobs: list[bytes], patient: UUID) -> set[str]:
    """The values that the patient's sealed cells in the raw store still open to."""
    found: set[str] = set()
    for blob in blobs:
        for alg, subject, kind, nonce, ct in SEALED.findall(blob):
            if subject.decode() != str(patient):
                continue
            sealed = {"v": 1, "alg": alg.decode(), "subject": subject.decode(), "type": kind.decode()}
            value = services.case_record.mapper.unseal({**sealed, "nonce": nonce.decode(), "ct": ct.decode()})
            found |= {v for v in VALUES if v in repr(value)}
    return found


def scan(region: Region, patient: UUID) -> tuple[set[str], set[str]]:
    blobs = raw_blobs(region.services, pg_url(region))
    return plaintext(blobs), readable(region.services, blobs, patient)


def registered_in_error(a: Region, patient: UUID) -> None:
    a.send(HC, "patient.deregistered.v1", patient, {"reason": "registered_in_error", "note": NOTE})


def erased_in_a(a: Region, patient: UUID) -> list:
    """Requested by A's health center, approved by its auditor; carried out after the cooling-off."""
    case_record = a.services.case_record
    hc, auditor = Requester(HC, "health_center", "k-hc"), Requester(AUDITOR, "auditor", "k-au")
    filed = restrictions.request(case_record, patient, RestrictionAct.ERASE, hc, "registered in error")
    restrictions.approve(case_record, filed.id, auditor, "checked", timedelta(days=30))
    a.clock.now += timedelta(days=31)
    return erase_due(case_record, handovers=a.handovers)


def rejected_in_b(a: Region, b: Region, link: Link) -> tuple[UUID, UUID]:
    patient, hid = move_to_b(a, id_number=ID_NUMBER)
    link.sync()
    b.handovers.answer(hid, accepted=False, by_agency=HC)
    link.sync()
    return patient, hid


class TestErasureNotice:
    def test_an_erasure_in_a_leaves_none_of_the_patients_values_readable_in_bs_tables(self, regions) -> None:
        a, b, link = regions
        patient, hid = rejected_in_b(a, b, link)
        registered_in_error(a, patient)

        # the positive control: B's tables hold the request's details, sealed under the patient's key
        assert scan(b, patient) == (set(), {SECRET_NAME, ID_NUMBER, PHONE})
        assert scan(a, patient) == (set(), set(VALUES))

        done = erased_in_a(a, patient)
        assert [(e.subject_id, e.key_destroyed, e.notified) for e in done] == [(patient, True, (B,))]
        assert erase_due(a.services.case_record, handovers=a.handovers) == []  # once: no second notice
        assert [len(a.handovers.outbox(B)), len(b.handovers.outbox(A))] == [2, 1]  # request, notice; rejection

        link.sync()  # B records the notice (restricting at once) and answers
        [notice] = b.handovers.erasure_notices_received()
        assert (notice.sender, notice.patient_id, notice.handover_ids, notice.decision) == (A, patient, [hid], "erase")
        assert restrictions.is_restricted(b.services.case_record, patient)
        sent = a.services.case_record.repository.get(erasure_notice_id(A, B, patient))
        assert isinstance(sent, CrossRegionErasure) and (sent.decision, sent.reason) == ("erase", None)
        assert b.handovers.refused_from(A) == [] and a.handovers.refused_from(B) == []

        # B's `smd erasure run` carries it out (and tells no one back: A knows)
        [erased] = erase_due(b.services.case_record, handovers=b.handovers)
        assert (erased.subject_id, erased.key_destroyed, erased.notified) == (patient, True, ())
        link.sync()
        assert len(a.handovers.outbox(B)) == 2 and len(b.handovers.outbox(A)) == 2  # the answer; nothing more

        assert scan(b, patient) == (set(), set())
        assert scan(a, patient) == (set(), set())
        view = b.view(hid)  # the handover itself stays, its details erased
        assert view["status"] == "rejected"
        assert b.services.case_record.repository.get(hid).details.text is None

        # what the streams must no longer hold: the handover's messages, on both sides
        for region, peer, applied, acked in ((a, B, 2, 1), (b, A, 2, 1)):
            plan = region.handovers.erased_messages()
            assert plan.handover_ids == {hid}
            assert (plan.applied_from, plan.acked_by) == ({peer: applied}, {peer: acked})

    def test_a_notice_about_a_file_b_must_keep_destroys_nothing_and_is_kept_with_its_reason(self, regions) -> None:
        a, b, link = regions
        patient, hid = move_to_b(a, id_number=ID_NUMBER)
        link.sync()
        b.handovers.answer(hid, accepted=True, by_agency=HC)  # B registers the patient ...
        a.handovers.cancel(hid, by_agency=HC, reason="stays")  # ... while A cancels: voided in B
        link.sync()
        assert b.view(hid)["status"] == "voided" and b.file(patient).deregistration_reason == "other"
        registered_in_error(a, patient)

        erased_in_a(a, patient)
        link.sync()
        [notice] = b.handovers.erasure_notices_received()
        assert (notice.decision, notice.reason) == ("kept", "retention-applies")
        assert not restrictions.is_restricted(b.services.case_record, patient)
        assert erase_due(b.services.case_record, handovers=b.handovers) == []
        assert b.file(patient).personal.name == SECRET_NAME  # B's own clinical record stays readable
        sent = a.services.case_record.repository.get(erasure_notice_id(A, B, patient))
        assert (sent.decision, sent.reason) == ("kept", "retention-applies")
        assert b.handovers.erased_messages().handover_ids == {hid}  # the streams' copies go all the same

    def test_a_notice_about_a_patient_never_handed_over_between_the_two_is_refused(self, regions) -> None:
        a, b, link = regions
        _, hid = rejected_in_b(a, b, link)
        stranger = uuid4()  # a patient of B's that A never handed over
        b.send(HC, "patient.registered.v1", stranger, {"name": "Other Person", "residence": "990202-001-v01"})
        seq = len(a.handovers.outbox(B)) + 1
        body = {"patient_id": str(stranger), "handover_ids": [str(hid)], "erased_at": a.clock.now.isoformat()}
        wire = build(
            a.keys, B, handover_id=erasure_notice_id(A, B, stranger), sequence=seq, acked=1, kind="erasure", body=body
        )
        assert b.handovers.receive(wire) == "unknown-handover"
        assert [r["reason"] for r in b.handovers.refused_from(A)] == ["unknown-handover"]
        assert b.handovers.erasure_notices_received() == []
        assert not restrictions.is_restricted(b.services.case_record, stranger)

    def test_a_request_still_open_in_b_cannot_be_accepted_once_the_patient_is_erased(self, regions) -> None:
        a, b, link = regions
        patient, hid = move_to_b(a, id_number=ID_NUMBER)
        link.sync()
        registered_in_error(a, patient)
        erased_in_a(a, patient)
        link.sync()
        assert b.view(hid)["status"] == "requested"
        with pytest.raises(PatientRestricted):
            b.handovers.answer(hid, accepted=True, by_agency=HC)
        b.handovers.answer(hid, accepted=False, by_agency=HC)  # rejecting still ends the obligation
        assert b.view(hid)["status"] == "rejected"
