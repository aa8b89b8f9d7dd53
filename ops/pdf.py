"""Printable pages to PDF (and PNG, to look at one) with headless Chromium (Debian's ``chromium``).

ops/test.sh installs ``chromium`` and ``fonts-wqy-zenhei`` (a CJK font) when missing; the
contact card's stylesheet names the CJK fonts first, so the Chinese text is embedded in the PDF
as text (extractable, searchable), not as images.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

#: How long one rendering may take before it is given up (a cold Chromium start is ~1-2 s).
TIMEOUT_SECONDS = 60


class RendererMissing(RuntimeError):
    """No headless Chromium on this machine."""


def chromium() -> str:
    """The Chromium binary, or RendererMissing."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise RendererMissing("no chromium on PATH: install Debian's chromium (ops/test.sh does as root)")


def _render(html: str, flag: str, suffix: str, extra: tuple[str, ...] = ()) -> bytes:
    with tempfile.TemporaryDirectory(prefix="smd-print-") as tmp:
        page, out = Path(tmp) / "page.html", Path(tmp) / f"out{suffix}"
        page.write_text(html, encoding="utf-8")
        args = [
            chromium(),
            "--headless",
            "--no-sandbox",  # root in CI and containers
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"{flag}={out}",
            *extra,
            page.as_uri(),
        ]
        subprocess.run(args, check=True, capture_output=True, timeout=TIMEOUT_SECONDS)  # noqa: S603
        return out.read_bytes()


def html_to_pdf(html: str) -> bytes:
    """The page as PDF (its own @page size)."""
    return _render(html, "--print-to-pdf", ".pdf")


def html_to_png(html: str, width: int = 420, height: int = 600) -> bytes:
    """The page as a PNG screenshot (to look at it)."""
    return _render(html, "--screenshot", ".png", (f"--window-size={width},{height}",))
