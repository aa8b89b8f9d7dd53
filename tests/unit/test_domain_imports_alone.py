"""Every domain module imports first, on its own, in a fresh interpreter: no import cycle that
only an entry point's import order hides (``domain.focus`` once failed when imported before
``domain.rules``, e.g. by ``ops.bench_lists`` through ``domain.lists``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> list[str]:
    out = []
    for path in sorted((ROOT / "domain").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_every_domain_module_imports_first_in_a_fresh_interpreter() -> None:
    # one interpreter per module, started side by side: the first import is what is tested
    procs = {
        m: subprocess.Popen([sys.executable, "-c", f"import {m}"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        for m in _modules()
    }
    failed = {m: p.communicate(timeout=120)[1].strip().splitlines()[-1:] for m, p in procs.items()}
    assert {m: err for m, err in failed.items() if procs[m].returncode != 0} == {}
    assert len(procs) > 50  # the whole package was found
