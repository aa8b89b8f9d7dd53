"""Store fixtures: every behaviour here runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ops.bootstrap import Services
from ops.settings import Settings
from tests.support.stores import open_services, store_settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings of an empty store of the parametrised kind."""
    pg_url = None
    if store_kind == "postgres":
        pg_url = request.getfixturevalue("fresh_pg_database")().url
    return store_settings(store_kind, tmp_path / "data", pg_url)


@pytest.fixture
def open_store(settings: Settings) -> Iterator[Callable[..., Services]]:
    """Opens services on the test's store (again and again, as restarts do); closes them all."""
    opened: list[Services] = []

    def make(**kw) -> Services:
        services = open_services(settings, **kw)
        opened.append(services)
        return services

    yield make
    for services in reversed(opened):
        services.close()


@pytest.fixture
def services(open_store: Callable[..., Services]) -> Services:
    return open_store()
