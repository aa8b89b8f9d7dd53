"""Go-live: several agencies' ledgers join it, nothing opens until it is declared complete, each
patient is then assessed once; a ledger imported afterwards is a late join (both stores)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from core import go_live
from core.backfill import import_lines
from core.intake import accept
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope as agency_envelope
from tests.support.stores import NOW

HC, POLICE, COMMITTEE, GOVERNANCE = "hc-north", "police-east", "committee-north", "gov-willowbrook"
VILLAGE = "990101-001-v01"


def row(source: str, patient: UUID, kind: str, data: dict, days_ago: float) -> bytes:
    occurred = NOW - timedelta(days=days_ago)
    return agency_envelope(source, f"cn.smd.{kind}.v1", patient, data, occurred=occurred, actor=None)


def visit(source: str, patient: UUID, level: int, days_ago: float) -> bytes:
    cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
    data = {"face_to_face": True, "risk_level": level, "risk_class": cls}
    return row(source, patient, "visit.recorded", data, days_ago)


@pytest.fixture
def district(open_store):
    services = open_store()
    load_file(services.case_record, DEMO_DISTRICT)
    services.registry.refresh()
    return services


def obligations(services) -> list:
    services.catch_up(services.case_record.recorder.max_notification_id())
    return [
        services.case_record.repository.get(r.obligation_id) for r in services.work_queue.select("1 = 1", [], 0, 10_000)
    ]


def imported(services, lines: bytes, agency: str) -> str:
    report = import_lines(services.case_record, services.registry, lines, agency)
    assert report.refused == [] and report.recorded
    return report.go_live


def ledger(*lines: bytes) -> bytes:
    return b"\n".join(lines)


def test_three_ledgers_and_live_facts_open_nothing_until_the_go_live_then_one_obligation_per_identity(
    district,
) -> None:
    s = district
    stable, unstable = uuid4(), uuid4()
    hc_rows = [
        row(HC, p, "patient.registered", {"name": "Ledger Person", "residence": VILLAGE}, 2000)
        for p in (stable, unstable)
    ]
    hc_rows += [visit(HC, stable, 0, 1500), visit(HC, stable, 0, 200), visit(HC, unstable, 3, 40)]
    assert imported(s, ledger(*hc_rows), HC) == "joined"
    # a live visit arrives while the other ledgers are still being imported: it opens nothing yet
    accept(s.case_record, s.registry, visit(HC, unstable, 4, 1), HC, "test")
    police = ledger(row(POLICE, unstable, "patient.taken-under-management", {}, 30))
    contacts = ledger(
        row(
            COMMITTEE,
            stable,
            "care-team-contact.recorded",
            {"role": "community_worker", "mode": "visit", "outcome": "reached"},
            100,
        )
    )
    assert import_lines(s.case_record, s.registry, police, POLICE).go_live == "joined"
    assert import_lines(s.case_record, s.registry, contacts, COMMITTEE).go_live == "joined"
    assert obligations(s) == []
    assert go_live.status(s.case_record, s.registry.region).waiting_patients == 2

    went_live = s.case_record.clock()
    assert go_live.complete(s.case_record, s.registry.region, GOVERNANCE) == 2
    assert go_live.complete(s.case_record, s.registry.region, GOVERNANCE) == 0  # once
    found = obligations(s)
    assert found, "the go-live assessed the patients"
    identities = Counter((o.patient_id, o.rule, o.episode_key, o.action) for o in found if o.kind == "obligation")
    assert max(identities.values()) == 1, "one obligation per identity"
    per_rule = Counter((o.patient_id, o.rule, o.action) for o in found if o.kind == "obligation" and o.is_open)
    assert max(per_rule.values()) == 1, "one open cycle per rule and patient"
    assert all(o.due_at is None or o.due_at >= went_live for o in found), "none due before the go-live"
    assert not [o for o in found if (not o.is_open and o.status != "completed") or o.status == "cancelled"]
    assert go_live.status(s.case_record, s.registry.region).complete


def test_a_cycle_already_overdue_at_go_live_is_due_a_period_later_at_most_the_grace_and_keeps_its_deadline(
    district,
) -> None:
    s = district
    p = uuid4()
    rows = [row(HC, p, "patient.registered", {"name": "Ledger Person", "residence": VILLAGE}, 400)]
    rows += [visit(HC, p, 0, 200)]  # stable: next visit due 90 days later, 110 days ago
    imported(s, ledger(*rows), HC)
    went_live = s.case_record.clock()
    go_live.complete(s.case_record, s.registry.region, GOVERNANCE)
    (r4,) = [o for o in obligations(s) if o.rule == "R4" and o.is_open]
    assert r4.natural_due_at == NOW - timedelta(days=200) + timedelta(days=90)
    assert r4.due_at - went_live == timedelta(days=14)  # min(90 days, the 14-day grace)


def test_a_ledger_imported_after_the_go_live_is_a_late_join_that_opens_nothing_for_the_past(district) -> None:
    s = district
    p = uuid4()
    rows = [row(HC, p, "patient.registered", {"name": "Ledger Person", "residence": VILLAGE}, 400)]
    rows += [visit(HC, p, 0, 30)]
    imported(s, ledger(*rows), HC)
    go_live.complete(s.case_record, s.registry.region, GOVERNANCE)
    before = {(o.id, o.status, o.due_at) for o in obligations(s)}

    # the police's ledger arrives late: a search for the patient long over, management long ago
    late = ledger(
        row(POLICE, p, "whereabouts.unknown-declared", {}, 300),
        row(POLICE, p, "patient.located", {}, 250),
        row(POLICE, p, "patient.taken-under-management", {}, 240),
    )
    assert imported(s, late, POLICE) == "late join"
    after = {(o.id, o.status, o.due_at) for o in obligations(s)}
    assert after == before  # nothing for the past; the health center's R4 untouched
