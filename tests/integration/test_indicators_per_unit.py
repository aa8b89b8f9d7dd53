"""The indicators' per-unit path on a generated district (docs/decisions/036), on both stores:
the rows of 120 patients with five years of facts written as the bench writes them
(``ops.bench_indicators.generate``), every figure of every scope and period and every report
computed from the rows the store narrowed and from every row: identical."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core.registry import load_file
from ops.bench_indicators import VILLAGES, generate
from ops.data_files import DEMO_DISTRICT, WORK_PLAN_FILE
from projections.indicators import Narrowing
from projections.periodic_reports import load_work_plan
from tests.support.per_unit import compare_documents, compare_figures
from tests.support.servers import create_database, drop_database
from tests.support.stores import open_services, store_settings

PATIENTS = 120


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    kind = request.param
    admin = request.getfixturevalue("pg_server") if kind == "postgres" else None
    db = create_database(admin) if admin else None
    services = open_services(store_settings(kind, tmp_path_factory.mktemp(f"gen-{kind}"), db.url if db else None))
    try:
        load_file(services.case_record, DEMO_DISTRICT)
        services.registry.refresh()
        generate(services, PATIENTS)
        services.head = services.indicators.position  # type: ignore[attr-defined]
        yield services
    finally:
        services.close()
        if db is not None:
            drop_database(admin, db.dbname)


def test_every_figure_of_every_scope_is_the_same_from_the_scopes_rows_on_a_generated_district(generated) -> None:
    head = generated.head
    periods = ["2023-03", "2026-06", "2026-Q2"]
    for position in (head // 2, head):  # half-way through the log, and all of it
        assert compare_figures(generated, position, periods) > 80


def test_the_reports_are_the_same_from_their_rows_on_a_generated_district(generated) -> None:
    plan = load_work_plan(WORK_PLAN_FILE)
    assert compare_documents(generated, generated.head, ["2026-06"], ["2026-Q2"], plan) > 10


def test_a_village_reads_in_proportion_to_the_village(generated) -> None:
    full = generated.indicators.rows(generated.head)
    village = generated.indicators.rows_within(generated.head, Narrowing(frozenset({VILLAGES[0]})))
    ours = {f.patient_id for f in full.facts if f.kind == "registered" and f.residence == VILLAGES[0]}
    assert {f.patient_id for f in village.facts} == ours
    assert len(village.facts) < len(full.facts) / 8  # one village of 14
