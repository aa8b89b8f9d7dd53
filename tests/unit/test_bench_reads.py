"""The reads bench's own arithmetic: wrk's figures and the Python clients' give the same table,
CPU per request from /proc, the access log off in the served processes."""

from __future__ import annotations

import os

from ops import bench_reads
from ops.bench_reads import children_of, cpu_ticks, figures, table

READS = ("GET /v1/patients/{id}", "GET /v1/patients/{id}/timeline", "GET /healthz")


def wrk_round(p99: float) -> dict:
    found = {
        f"{read}@{c}": {
            "p50": 0.002,
            "p99": p99,
            "n": 1000,
            "failed": 1,
            "wall_s": 5.0,
            "service_cpu_s": 2.0,
            "db_cpu_s": 0.5,
        }
        for read in READS
        for c in (1, 32)
    }
    found["log on"] = found["GET /v1/patients/{id}@32"]
    found["log off"] = {**found["log on"], "n": 1251}
    return found


def test_wrk_figures_are_medians_of_the_rounds_with_cpu_per_request() -> None:
    found, throughput = figures({"rounds": [wrk_round(0.010), wrk_round(0.030)], "client": "wrk"})
    file = found[1]  # the file at 32 clients
    assert (file.read, file.clients) == ("GET /v1/patients/{id}", 32)
    assert (file.p50_ms, file.p99_ms, file.healthz_p99_ms) == (2.0, 20.0, 20.0)
    assert (file.requests, file.failed) == (1998, 2)
    assert (round(file.service_cpu_ms, 6), round(file.db_cpu_ms, 6)) == (2.0, 0.5)
    assert throughput == {"on": 999 / 5.0, "off": 1250 / 5.0}
    text = table(found, throughput, 10_000, 12)
    assert "| 2.00 / 0.50 |" in text and "| 0.80 |" in text  # CPU per request; log on / off


def test_the_python_clients_figures_have_no_cpu_column() -> None:
    times = {"times": [0.001 * i for i in range(1, 101)], "failed": [], "wall_s": 1.0}
    one = {f"{read}@{c}": times for read in READS for c in (1, 32)} | {"log on": times, "log off": times}
    found, _ = figures({"rounds": [one]})
    assert round(found[0].p50_ms, 6) == 51.0 and found[0].service_cpu_ms != found[0].service_cpu_ms  # NaN: not measured
    assert "| 100 (0) |  |" in table(found, {"on": 100.0, "off": 100.0}, 10, 1)


def test_cpu_is_read_from_proc_for_a_process_and_its_children() -> None:
    me = os.getpid()
    assert me in children_of(me)
    spent = cpu_ticks([me, 2**22 + 1])  # a pid that does not run is left out
    assert list(spent) == [me] and spent[me] >= 0


def test_the_served_workers_append_nothing_with_the_log_off(monkeypatch) -> None:
    from core.access_log import PostgresAccessLog
    from core.intake import GroupedAccessLog

    served = []
    monkeypatch.setattr("ops.bench_pages._serve_main", served.append)
    monkeypatch.setenv("SMD_BENCH_ACCESS_LOG", "off")
    for cls, name in ((GroupedAccessLog, "append"), (GroupedAccessLog, "submit"), (PostgresAccessLog, "append")):
        monkeypatch.setattr(cls, name, getattr(cls, name))  # restored after the test
    bench_reads._serve_main(2)
    assert served == [2]
    assert GroupedAccessLog.submit(object(), "entry").result() is None  # type: ignore[arg-type]
    assert PostgresAccessLog.append(object(), "entry") is None  # type: ignore[arg-type]
