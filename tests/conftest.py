"""Suite-wide pytest set-up.

Fixtures for the real servers (pg_server, pg_database, fresh_pg_database, nats_url,
subject_root, current_nats_server) come from tests/support/servers.py; see its docstring.
Mark tests that need a server with ``@pytest.mark.integration``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Make ``tests.support`` importable however pytest is started (pytest, python -m pytest, any cwd).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["tests.support.servers", "tests.support.nats_world"]

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """In CI (CI=true) an integration test may not skip: a skip there becomes a failure."""
    report = yield
    if IN_CI and report.skipped and item.get_closest_marker("integration") is not None:
        if not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.longrepr = f"integration test skipped with CI=true (a failure): {reason}"
    return report
