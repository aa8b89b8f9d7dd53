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
import structlog

# Make ``tests.support`` importable however pytest is started (pytest, python -m pytest, any cwd).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = ["tests.support.servers", "tests.support.nats_world"]


def _never_cache_loggers() -> None:
    """In the test process a logger is never cached on first use (``ops.logging`` caches it in
    production): a logger cached by an earlier test keeps the processor list configured then, a
    later ``configure_logging`` installs a new list, and ``structlog.testing.capture_logs`` (which
    edits the current list) sees nothing of that logger. Which test runs before which depends on
    how the two workers share the files, so the suite may not depend on it."""
    configure = structlog.configure

    def configure_uncached(*args, **kwargs) -> None:
        kwargs["cache_logger_on_first_use"] = False
        configure(*args, **kwargs)

    structlog.configure = configure_uncached
    configure_uncached()


_never_cache_loggers()

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
