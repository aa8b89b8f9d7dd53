"""The printable incident-review page as a real browser shows it: Debian's Chromium, headless,
loading the page the service answered (no network: every asset is in the page)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from core.demo_keys import ensure_demo_keys
from ops.workers import serving_app
from tests.integration.test_incident_review import INCIDENT, POLICE, story  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (bash ops/test.sh installs it)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


async def test_the_incident_review_page_renders_in_chromium_with_its_chinese_text(story, tmp_path) -> None:  # noqa: F811
    s, clock, _patient, incident = story
    keys = {k.agency_id: k.key for k in ensure_demo_keys(s.apikeys, s.registry, s.settings.data_dir)}
    auditor = {"Authorization": f"Bearer {keys['auditor-lantern-bay']}"}
    async with AsyncTestClient(serving_app(s)) as client:
        clock.now = INCIDENT + timedelta(days=1)
        page = await client.get(f"/v1/audit/incidents/{incident}/review", params={"format": "html"}, headers=auditor)
    assert page.status_code == 200, page.text
    html = tmp_path / "review.html"
    html.write_text(page.text, encoding="utf-8")

    dom = chromium("--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert "事件回溯审查" in text and POLICE in text  # the title and the late agency, as laid out
    assert "Test Person" not in text  # ids only: no name on the page

    shot = tmp_path / "review.png"
    done = chromium("--window-size=1240,1754", f"--screenshot={shot}", html.as_uri())  # A4 at 150 dpi
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a page with text, not a blank one
