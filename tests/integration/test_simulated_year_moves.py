"""The simulated year with moves (issue 25, decision 050): region A's township and a linked
region B, each with its own store, on one simulated clock, linked in-process.

Movers of every kind (inside A, to B, to a region without the system; accepted, rejected,
unanswered, cancelled crossing an acceptance) go through the real intake, rules, scheduler and
handovers; the link is down now and then. Then the independent checker reads both logs: every
region's own invariants, and those of the pair (every move ends with exactly one responsible
region; at every instant at least one; nothing opened in A by a fact B fed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from ops.simulation.generator import Township, generate
from ops.simulation.invariants import Findings, check, check_regions
from ops.simulation.log import read_log
from ops.simulation.moves import KINDS, REGION_B
from ops.simulation.simulate import SimClock
from ops.simulation.two_regions import LinkReport, Region, pair, run_two_regions
from tests.support.servers import create_database, drop_database
from tests.support.stores import open_services, store_settings

pytestmark = [pytest.mark.timeout(1800), pytest.mark.slow]

SEED, MOVERS = 2026, 20


@dataclass
class YearWithMoves:
    township: Township
    link: LinkReport
    a: Region
    b: Region
    findings: dict[str, Findings]


@pytest.fixture(
    scope="module",
    params=[("sqlite", 50), pytest.param(("postgres", 200), marks=pytest.mark.integration)],
    ids=["sqlite-50", "postgres-200"],
)
def year(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[YearWithMoves]:
    kind, patients = request.param
    admin = request.getfixturevalue("pg_server") if kind == "postgres" else None
    databases: list[str] = []

    def url() -> str | None:
        if admin is None:
            return None
        db = create_database(admin)
        databases.append(db.dbname)
        return db.url

    folder = tmp_path_factory.mktemp(f"moves-{kind}")
    township = generate(SEED, patients, movers=MOVERS)
    clock = SimClock(township.deliveries[0].at)
    opened: list[Any] = []
    try:
        opened.append(open_services(store_settings(kind, folder / "a", url()), clock=clock))
        opened.append(open_services(store_settings(kind, folder / "b", url(), SMD_REGION=REGION_B), clock=clock))
        a, b = pair(opened[0], opened[1], clock)
        link = run_two_regions(a, b, township, clock, folder / "files")
        logs = [list(read_log(s.case_record)) for s in opened]
        findings = {
            "A": check(logs[0], scheduler_runs=a.report.scheduler_runs),
            "B": check(logs[1], scheduler_runs=b.report.scheduler_runs),
            "A+B": check_regions(logs[0], logs[1], regions=(a.handovers.region, REGION_B), end=township.end),
        }
        yield YearWithMoves(township, link, a, b, findings)
    finally:
        for services in opened:
            services.close()
        for name in databases:
            drop_database(admin, name)


class TestAYearWithMoves:
    def test_every_message_and_handover_command_went_through(self, year) -> None:
        for region in (year.a, year.b):
            assert region.report.refused_valid == [] and region.report.accepted_invalid == []
            assert region.report.still_waiting == 0 and region.report.acts_refused == []
        assert year.link.commands_refused == []
        assert year.link.outcomes.keys() == {"applied"}  # nothing forged, replayed or out of order

    def test_the_checker_passes_on_both_logs_and_across_them(self, year) -> None:
        for where, found in year.findings.items():
            assert found.ok, (where, found.violations[:10])

    def test_every_kind_of_move_ended_as_planned(self, year) -> None:
        ends = year.findings["A+B"].counts
        per_kind = MOVERS // len(KINDS)
        assert ends["end inside accepted"] == ends["end inside rejected"] == ends["end inside unanswered"] == per_kind
        assert ends["end linked accepted"] == ends["end linked rejected"] == ends["end linked unanswered"] == per_kind
        assert ends["end linked cancelled crossing an acceptance"] == per_kind
        assert (
            ends["end unlinked accepted"] == ends["end unlinked rejected"] == ends["end unlinked no answer"] == per_kind
        )

    def test_unanswered_handovers_escalated_on_both_sides_and_the_link_carried_both_ways(self, year) -> None:
        per_kind = MOVERS // len(KINDS)
        assert year.link.deadline_escalations == {"A": per_kind, "B": per_kind}
        assert year.link.carried["A→B"] >= 4 * per_kind and year.link.carried["B→A"] >= 3 * per_kind

    def test_b_fed_a_what_it_recorded_about_the_patients_it_took_over(self, year) -> None:
        counts = year.findings["A+B"].counts
        assert counts[f"facts fed to {year.a.handovers.region}"] >= 1  # and opened nothing there (checked)
        assert counts[f"facts fed to {REGION_B}"] == 0

    def test_the_year_took_its_time_on_the_simulated_clock(self, year) -> None:
        assert year.a.report.scheduler_runs[-1] - year.a.report.scheduler_runs[0] > timedelta(days=360)
