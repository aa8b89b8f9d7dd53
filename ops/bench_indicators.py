"""Indicator figures for `smd bench --indicators`: a generated region of N patients (10,000 by
default) with 5 years of facts, written straight into the indicators view's rows (the rows the
follower would write: recording 10,000 patients' five years through the rules would take hours
here). Measured, each as a ratio to a bare SQL aggregate over the same rows in the same run:

- a region-level quarter (every figure of the region and its townships),
- a village-level month (every figure of one village),
- the monthly report's production (a township, with every agency's tasks).

Each is measured on the per-unit path the endpoints take (``IndicatorsProjection.rows_within``:
the store reads the scope's patients' facts and the period's obligations, by index; then
``domain.indicators`` computes) and on the full read (every row up to the position, as before
docs/decisions/036's per-unit path), and the two are checked identical. The bare aggregate counts
the same rows per kind in one SQL statement. Median of a few runs each.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from domain.indicators import parse_period

NS = uuid5(NAMESPACE_URL, "smd-bench-indicators")
VILLAGES = tuple(f"990101-001-v{n:02d}" for n in range(1, 12)) + tuple(f"990101-002-v{n:02d}" for n in range(1, 4))
START = datetime(2022, 1, 1, 2, 0, tzinfo=UTC)
YEARS = 5


def generate(services: Any, patients: int, seed: int = 7) -> int:
    """Write the rows of ``patients`` patients with 5 years of facts; returns the rows written."""
    from projections.base import Insert

    rnd = random.Random(seed)  # noqa: S311 - generated data, not secrets
    proj = services.indicators.projection
    store = services.views
    gen = store.live(proj)
    position = (services.case_record.recorder.max_notification_id() or 0) + 1
    ops: list[Any] = []
    written = 0

    def add(table: str, row: dict[str, Any]) -> None:
        nonlocal written
        ops.append(Insert(table, row))
        written += 1
        if len(ops) >= 5000:
            store.write(proj, gen, list(ops), gen.tracking_name, position)
            ops.clear()

    def fact(pid: Any, kind: str, at: datetime, **kw: Any) -> None:
        nonlocal position
        row = {"position": position, "patient_id": pid, "kind": kind, "occurred_at": at}
        add("facts", {"residence": None, "flag": None, "value": None, "level": None, **row, **kw})
        position += 1

    end = START + timedelta(days=365 * YEARS)
    for n in range(patients):
        pid = uuid5(NS, str(n))
        day = START + timedelta(days=rnd.randrange(365))
        fact(pid, "registered", day, residence=VILLAGES[n % len(VILLAGES)])
        while (day := day + timedelta(days=rnd.randrange(45, 120))) < end:
            level = rnd.choice((0, 0, 0, 1, 2, 3))
            klass = "stable" if level == 0 else "basically_stable" if level < 3 else "unstable"
            if rnd.random() < 0.1:
                fact(pid, "missed", day, value=day.date().isoformat())
                continue
            fact(pid, "visit", day, flag=rnd.random() < 0.8, value=klass, level=level)
            if rnd.random() < 0.3:
                fact(pid, "adherence", day, value=rnd.choice(("regular", "intermittent", "none")))
            if rnd.random() < 0.01:
                fact(pid, "incident", day + timedelta(days=3), value="minor_trouble", level=1)
        if rnd.random() < 0.3:  # an obligation, some done late, some open
            due = START + timedelta(days=rnd.randrange(365 * YEARS))
            done = due + timedelta(days=rnd.randrange(-10, 20)) if rnd.random() < 0.8 else None
            add(
                "obligations",
                {
                    "obligation_id": uuid5(NS, f"o{n}"),
                    "position": position,
                    "kind": "obligation",
                    "rule": "R4",
                    "assignee": "hc-north" if n % 2 else "hc-south",
                    "residence": VILLAGES[n % len(VILLAGES)],
                    "due_at": due,
                    "done_at": done,
                    "done_position": position + 1 if done else None,
                    "cancelled_position": None,
                },
            )
            position += 2
    if ops:
        store.write(proj, gen, ops, gen.tracking_name, position)
    return written


def stored_rows(services: Any) -> Any:
    """The rows as the endpoint reads them (every stored row, then cut at the last position)."""
    from projections.indicators import _rows

    proj = services.indicators
    facts, obligations = list(proj._all("facts", "1=1", [])), list(proj._all("obligations", "1=1", []))
    head = max([f["position"] for f in facts] + [o["done_position"] or o["position"] for o in obligations])
    return _rows(facts, obligations).cut(head), head


def bare_sql(services: Any, period_label: str, village: str | None) -> list[Any]:
    """One SQL statement over the same rows: facts per kind and distinct patients up to the
    period's end (of one village's patients when ``village``)."""
    period = parse_period(period_label)
    store, proj = services.views, services.indicators.projection
    table = store.physical(store.live(proj), "facts")
    m = store.mark
    where = f"occurred_at < {m}"
    params: list[Any] = [store._param(period.ends_at.astimezone(UTC))]
    if village is not None:
        where += f" AND patient_id IN (SELECT patient_id FROM {table} WHERE kind = 'registered' AND residence = {m})"  # noqa: S608
        params.append(village)
    sql = f"SELECT kind, count(*), count(DISTINCT patient_id) FROM {table} WHERE {where} GROUP BY kind"  # noqa: S608 - our own table names
    with store._read() as c:
        return list(c.execute(sql, params).fetchall())


def _median(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from ops.bootstrap import bootstrap
    from ops.data_files import DEMO_DISTRICT, WORK_PLAN_FILE
    from ops.settings import load_settings
    from projections.indicators import compute, narrowing_of, scope_of, whole_region
    from projections.periodic_reports import document_narrowing, load_work_plan, monthly_report

    ap = argparse.ArgumentParser(prog="smd bench --indicators")
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--database-url", default="", help="PostgreSQL (default: SQLite in a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SMD_DATA_DIR": tmp, **({"SMD_DATABASE_URL": a.database_url} if a.database_url else {})}
        services = bootstrap(load_settings(env))
        try:
            from core.registry import load_file

            load_file(services.case_record, DEMO_DISTRICT)
            services.registry.refresh()
            t = time.perf_counter()
            rows_written = generate(services, a.patients)
            generated = time.perf_counter() - t
            state = services.registry.state()
            plan = load_work_plan(WORK_PLAN_FILE)
            quarter, month = parse_period("2026-Q2"), parse_period("2026-06")
            village = VILLAGES[0]

            township = "990101-001"
            last = stored_rows(services)[1]  # the rows' last position: the figures carry it

            def full(scope_id: str, period: Any) -> Any:
                rows, head = stored_rows(services)
                return compute(rows, scope_of(state, "org_unit", scope_id, period.last), period, head)

            def per_unit(scope_id: str, period: Any) -> Any:
                head = last
                scope = scope_of(state, "org_unit", scope_id, period.last)
                rows = services.indicators.rows_within(
                    head, narrowing_of([scope], [period], whole_region(state, scope, period.last))
                )
                return compute(rows, scope, period, head)

            def monthly_full() -> Any:
                rows, head = stored_rows(services)
                return monthly_report(rows, [], {}, state, township, "2026-06", head, plan)

            def monthly_per_unit() -> Any:
                head = last
                narrowing = document_narrowing("monthly", state, township, "2026-06")
                rows = services.indicators.rows_within(head, narrowing)
                return monthly_report(rows, [], {}, state, township, "2026-06", head, plan)

            figures: dict[str, Any] = {"patients": a.patients, "rows": rows_written, "generated_s": round(generated, 2)}
            for name, scope_id, period, bare in (
                ("region_quarter", "990101", quarter, lambda: bare_sql(services, "2026-Q2", None)),
                ("village_month", village, month, lambda: bare_sql(services, "2026-06", village)),
            ):
                if per_unit(scope_id, period) != full(scope_id, period):
                    raise AssertionError(f"{name}: the per-unit path differs from the full read")
                ours = _median(lambda s=scope_id, p=period: per_unit(s, p), a.runs)
                everything = _median(lambda s=scope_id, p=period: full(s, p), a.runs)
                sql = _median(bare, a.runs)
                figures[name] = {
                    "seconds": round(ours, 4),
                    "full_read_seconds": round(everything, 4),
                    "bare_sql_seconds": round(sql, 4),
                    "ratio": round(ours / sql, 1),
                    "full_read_ratio": round(everything / sql, 1),
                }
            if monthly_per_unit() != monthly_full():
                raise AssertionError("the monthly report: the per-unit path differs from the full read")
            figures["monthly_report_seconds"] = round(_median(monthly_per_unit, a.runs), 4)
            figures["monthly_report_full_read_seconds"] = round(_median(monthly_full, a.runs), 4)
        finally:
            services.close()
    text = json.dumps(figures, indent=2)
    print(text)
    if a.json:
        a.json.write_text(text + "\n", encoding="utf-8")
    return 0
