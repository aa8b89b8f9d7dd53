"""A jurisdiction's extent (``Services.units_within``) is kept per registry version: a unit
added to the registry is inside the extent on the next call, in this process and when another
process recorded it (both stores)."""

from __future__ import annotations

from pathlib import Path

from core.registry import load_file

BASE = """
region = "990101"
effective_from = 2025-01-01

[[org_units]]
id = "990101"
kind = "region"
name = "Test District"

[[org_units]]
id = "t1"
kind = "township"
name = "Test Township"
parent = "990101"

[[org_units]]
id = "c1"
kind = "cluster"
name = "Test Cluster One"
parent = "t1"

[[org_units]]
id = "v1"
kind = "village"
name = "Test Village One"
parent = "c1"
population = 1000

[[agencies]]
id = "gov-t1"
kind = "governance_center"
name = "Governance T1"
jurisdiction = ["t1"]
"""
GROWN = (
    BASE
    + """
[[org_units]]
id = "v2"
kind = "village"
name = "Test Village Two"
parent = "c1"
population = 800
"""
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_unit_added_to_the_registry_is_in_the_extent_on_the_next_call(services, open_store, tmp_path) -> None:
    load_file(services.case_record, write(tmp_path, "base.toml", BASE))
    assert services.units_within(["t1"]) == {"t1", "c1", "v1"}
    assert services.units_within(["t1"]) == {"t1", "c1", "v1"}  # kept: the same answer
    services.units_within(["t1"]).add("x")  # a caller's copy: what is kept is not changed
    assert services.units_within(["t1"]) == {"t1", "c1", "v1"}

    load_file(services.case_record, write(tmp_path, "grown.toml", GROWN))
    assert services.units_within(["t1"]) == {"t1", "c1", "v1", "v2"}
    assert services.units_within(["c1", "t1"]) == {"t1", "c1", "v1", "v2"}


def test_a_unit_another_process_added_is_in_the_extent_on_the_next_call(services, open_store, tmp_path) -> None:
    load_file(services.case_record, write(tmp_path, "base.toml", BASE))
    assert services.units_within(["t1"]) == {"t1", "c1", "v1"}
    other = open_store()  # another process's services on the same store
    load_file(other.case_record, write(tmp_path, "grown.toml", GROWN))
    assert services.units_within(["t1"]) == {"t1", "c1", "v1", "v2"}
