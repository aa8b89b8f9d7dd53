"""Backfill: an agency's ledger is imported as history; it opens nothing for the past, and the
rules then assess each imported patient's current state once."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from core import go_live
from core.backfill import import_ledger
from core.intake import accept
from core.registry import load_file
from ops.data_files import DEMO_DISTRICT
from tests.support.agency_client import envelope_json
from tests.support.stores import NOW

HC, VILLAGE, GOVERNANCE = "hc-north", "990101-001-v01", "gov-willowbrook"


def complete_go_live(services) -> int:
    return go_live.complete(services.case_record, services.registry.region, GOVERNANCE)


def envelope(patient: UUID, event_type: str, data: dict, days_ago: float) -> dict:
    occurred = NOW - timedelta(days=days_ago)
    return envelope_json(HC, f"cn.smd.{event_type}.v1", patient, data, occurred=occurred, actor=None)


def visit(patient, level, days_ago):
    cls = "unstable" if level >= 3 else ("basically_stable" if level else "stable")
    return envelope(patient, "visit.recorded", {"face_to_face": True, "risk_level": level, "risk_class": cls}, days_ago)


def miss(patient, days_ago):
    return envelope(
        patient, "visit.missed", {"scheduled_on": (NOW - timedelta(days=days_ago)).date().isoformat()}, days_ago - 1
    )


def generated_ledger() -> tuple[list[dict], dict[str, UUID]]:
    """Four patients whose pasts differ: high risk then and now, lost then and now."""
    p = {name: uuid4() for name in ("was_high", "is_high", "was_lost", "is_lost")}
    rows = [
        envelope(pid, "patient.registered", {"name": "Ledger Person", "residence": VILLAGE}, 400) for pid in p.values()
    ]
    rows += [visit(p["was_high"], 4, 100), visit(p["was_high"], 1, 50)]
    rows += [visit(p["is_high"], 1, 100), visit(p["is_high"], 4, 10)]
    rows += [miss(p["was_lost"], 90), miss(p["was_lost"], 60), miss(p["was_lost"], 30), visit(p["was_lost"], 0, 10)]
    rows += [visit(p["is_lost"], 0, 200), miss(p["is_lost"], 90), miss(p["is_lost"], 60), miss(p["is_lost"], 30)]
    return rows, p


def obligations(services, rules: tuple[str, ...] = ("R1", "R5")) -> list[tuple[UUID, str, str]]:
    # the engine's rules; the care rules' backfill: tests/integration/test_rules_care.py
    services.catch_up(services.case_record.recorder.max_notification_id())
    rows = services.work_queue.select("1 = 1", [], 0, 1000)
    return sorted((r.patient_id, r.rule, r.kind) for r in rows if r.rule in rules)


@pytest.fixture
def district(open_store):
    def make():
        services = open_store()
        load_file(services.case_record, DEMO_DISTRICT)
        return services

    return make


class TestBackfill:
    def test_an_imported_ledger_opens_nothing_for_the_past_only_for_the_current_state(self, district, tmp_path) -> None:
        services = district()
        rows, p = generated_ledger()
        ledger = tmp_path / "hc-north-ledger.jsonl"
        ledger.write_text("\n".join(json.dumps(r) for r in reversed(rows)))  # registrations last: sorted first

        report = import_ledger(services.case_record, services.registry, ledger, HC)
        assert (report.recorded, report.refused, report.go_live) == (len(rows), [], "joined")
        assert obligations(services) == []  # nothing until the go-live is declared complete
        assert complete_go_live(services) == 4

        assert obligations(services) == sorted(
            [
                (p["is_high"], "R1", "obligation"),
                (p["is_high"], "R1", "notice"),
                (p["is_lost"], "R5", "obligation"),
                (p["is_lost"], "R5", "notice"),
            ]
        )

    def test_importing_the_same_ledger_again_changes_nothing(self, district, tmp_path) -> None:
        services = district()
        rows, _ = generated_ledger()
        ledger = tmp_path / "ledger.jsonl"
        ledger.write_text("\n".join(json.dumps(r) for r in rows))
        import_ledger(services.case_record, services.registry, ledger, HC)
        before = services.case_record.recorder.max_notification_id()
        again = import_ledger(services.case_record, services.registry, ledger, HC)
        assert (again.recorded, again.duplicates) == (0, len(rows))
        assert services.case_record.recorder.max_notification_id() == before

    def test_a_live_recording_of_the_same_facts_opens_obligations_for_the_past_too(self, district) -> None:
        services = district()
        rows, p = generated_ledger()
        for row in rows:
            accept(services.case_record, services.registry, json.dumps(row).encode(), HC, "test")
            services.catch_up(services.case_record.recorder.max_notification_id())
        opened = obligations(services)
        assert (p["was_high"], "R1", "obligation") in opened and (p["was_lost"], "R5", "obligation") in opened
        assert len(opened) > 4

    def test_refused_rows_are_reported_with_their_line_and_the_rest_imported(self, district, tmp_path) -> None:
        services = district()
        rows, _ = generated_ledger()
        bad = dict(rows[-1], data={"scheduled_on": "not a date"})
        ledger = tmp_path / "ledger.jsonl"
        ledger.write_text("\n".join([json.dumps(r) for r in rows[:-1]] + [json.dumps(bad)]))
        report = import_ledger(services.case_record, services.registry, ledger, HC)
        assert report.recorded == len(rows) - 1
        assert [(line, code) for line, code, _ in report.refused] == [(len(rows), "invalid-envelope")]

    def test_a_backfilled_high_risk_episode_is_cancelled_when_a_live_visit_finds_the_level_below_3(
        self, district, tmp_path
    ) -> None:
        """The backfill's R1 obligation is keyed by the imported fact that entered level 3+ (found
        by the invariant checker of the simulated year: it was keyed by the import, so the later
        cancellation and completion missed it)."""
        services = district()
        rows, p = generated_ledger()
        ledger = tmp_path / "ledger.jsonl"
        ledger.write_text("\n".join(json.dumps(r) for r in rows))
        import_ledger(services.case_record, services.registry, ledger, HC)
        complete_go_live(services)
        accept(services.case_record, services.registry, json.dumps(visit(p["is_high"], 1, 1)).encode(), HC, "test")
        services.catch_up(services.case_record.recorder.max_notification_id())

        rows_now = services.work_queue.select("1 = 1", [], 0, 1000)
        (police,) = [r for r in rows_now if r.patient_id == p["is_high"] and r.rule == "R1" and r.kind == "obligation"]
        assert police.episode_key.startswith("ledger:")
        assert police.status == "cancelled"
