"""The two shipped fictional demo districts from the command line, on SQLite and PostgreSQL:
`smd registry load` without a file loads the district of SMD_REGION (990101: Lantern Bay,
990202: Thornfield County, the second region of "Two regions"); `smd serve` in development loads
it and prints that region's demo keys; a region with no shipped district gets none."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.cli_registry import development_banner
from ops.data_files import DEMO_DISTRICT, DEMO_DISTRICT_B
from tests.support.crossregion import smd
from tests.support.stores import open_services, store_settings


@pytest.fixture
def region_env(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Settings of one region's empty store of the parametrised kind, by region code."""

    def make(region: str) -> dict[str, str]:
        env = {"SMD_DATA_DIR": str(tmp_path / region), "SMD_REGION": region}
        if store_kind == "postgres":
            env["SMD_DATABASE_URL"] = request.getfixturevalue("fresh_pg_database")().url
        return env

    return make


@pytest.mark.parametrize(
    ("region", "path", "own", "other"),
    [("990101", DEMO_DISTRICT, "hc-north", "hc-ferngate"), ("990202", DEMO_DISTRICT_B, "hc-ferngate", "hc-north")],
)
def test_registry_load_without_a_file_loads_the_district_of_the_region(region_env, region, path, own, other) -> None:
    env = region_env(region)
    assert f"change(s) recorded from {path}" in smd(env, "registry", "load")
    assert smd(env, "registry", "load", str(path)).startswith("no changes")
    shown = smd(env, "registry", "show")
    assert f"  {own}  health_center" in shown and other not in shown


def test_serve_in_development_loads_the_second_region_and_prints_its_demo_keys(store_kind, tmp_path, request) -> None:
    pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
    services = open_services(store_settings(store_kind, tmp_path / "b", pg_url, SMD_REGION="990202"))
    try:
        banner = development_banner(services)
        assert banner.startswith("Demo API keys")
        assert " hc-ferngate " in banner and " gov-ferngate " in banner and "hc-north" not in banner
        assert services.registry.agency("hc-ferngate") is not None
    finally:
        services.close()


def test_a_region_without_a_shipped_district_gets_no_demo_district(store_kind, tmp_path, request) -> None:
    pg_url = request.getfixturevalue("fresh_pg_database")().url if store_kind == "postgres" else None
    services = open_services(store_settings(store_kind, tmp_path / "c", pg_url, SMD_REGION="990303"))
    try:
        banner = development_banner(services)
        assert banner == "Demo district not loaded: the shipped ones are regions 990101, 990202, SMD_REGION is 990303"
        assert services.registry.agency("hc-north") is None
    finally:
        services.close()
