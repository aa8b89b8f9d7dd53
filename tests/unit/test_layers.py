"""The layers hold: ops → api | integrations | projections → core → domain, checked by
import-linter from the import graph with the contracts in pyproject.toml ([tool.importlinter]).

A second set of stories plants one forbidden import in a copy of the code and shows that the
same contracts catch it, so a green run means the contracts were checked, not skipped.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typing_extensions import get_protocol_members

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "core", "projections", "api", "integrations", "ops")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on a project folder with its own pyproject.toml (no cache)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(project / "pyproject.toml"), "--no-cache"],
        cwd=project,  # lint-imports puts the working folder first on the path: the copy is analysed
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_code(to: Path) -> Path:
    """The packages' Python files and pyproject.toml, copied to ``to``."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, to / package, ignore=shutil.ignore_patterns("__pycache__", "*.toml"))
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")
    return to


class TestTheCodeKeepsItsLayers:
    def test_every_import_contract_is_kept(self) -> None:
        result = lint_imports(ROOT)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 broken" in result.stdout


#: (the module the import is planted in, the module it imports)
PLANTED = {
    "domain imports core": ("domain._planted", "core.case_record"),
    "core imports ops": ("core._planted", "ops.settings"),
    "core imports projections": ("core._planted", "projections.work_queue"),
    "api imports integrations": ("api._planted", "integrations.streams"),
    "integrations imports api": ("integrations._planted", "api.problems"),
    "the checker imports domain": ("ops.simulation.log", "domain.values"),
    "the checker imports core": ("ops.simulation.invariants", "core.contract"),
}


class TestABrokenContractIsCaught:
    @pytest.mark.parametrize("story", PLANTED, ids=list(PLANTED))
    def test_a_planted_import_breaks_the_contracts(self, story: str, tmp_path: Path) -> None:
        importer, imported = PLANTED[story]
        project = copy_of_the_code(tmp_path)
        module = project / (importer.replace(".", "/") + ".py")
        module.write_text((module.read_text() if module.exists() else "") + f"\nimport {imported}  # planted\n")
        result = lint_imports(project)
        assert result.returncode != 0, result.stdout
        assert f"{importer} -> {imported}" in result.stdout, result.stdout


class TestTheCompositionRootImplementsEveryPort:
    """The ports are structural: these stories catch a member renamed on one side only."""

    @staticmethod
    def missing(port: type, implementation: type) -> set[str]:
        has = set(dir(implementation))
        if dataclasses.is_dataclass(implementation):
            has |= {f.name for f in dataclasses.fields(implementation)}
        return set(get_protocol_members(port)) - has

    def test_the_wired_services_have_everything_the_api_asks_for(self) -> None:
        from api.app import AppMetrics, AppServices
        from ops.bootstrap import Services
        from ops.metrics import Metrics

        assert self.missing(AppServices, Services) == set()
        assert self.missing(AppMetrics, Metrics) == set()

    def test_the_work_queue_lists_what_the_scheduler_and_the_api_read(self) -> None:
        from api.ports import QueueRowView, WorkQueueReader
        from core.ports import DueObligations, DueRow
        from projections.work_queue import QueueRow, WorkQueueProjection

        assert self.missing(DueObligations, WorkQueueProjection) == set()
        assert self.missing(WorkQueueReader, WorkQueueProjection) == set()
        assert self.missing(DueRow, QueueRow) == set()
        assert self.missing(QueueRowView, QueueRow) == set()
