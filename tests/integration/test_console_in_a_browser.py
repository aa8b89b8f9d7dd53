"""The governance console in a real browser: Debian's Chromium, headless, driven over the DevTools
protocol (on a pipe: no port, no extra package) against the app served by uvicorn, on both stores.
The district is test_indicators' hand-built one (30 patients, a year of facts)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from api.console import LIST_ENDPOINT
from core.demo_keys import ensure_demo_keys
from ops.workers import serving_app
from tests.integration.test_indicators import TOWNSHIP, District, district  # noqa: F401 - the fixture
from tests.integration.test_pages_in_a_browser import CHROMIUM

pytestmark = pytest.mark.integration

GOV = "gov-willowbrook"
PERIOD = "2026-06"


class Chromium:
    """Headless Chromium with the DevTools protocol on fds 3 and 4 (--remote-debugging-pipe)."""

    def __init__(self) -> None:
        if not os.path.exists(CHROMIUM):
            pytest.fail("Debian's chromium is not installed (bash ops/test.sh installs it)")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def fds() -> None:  # in the child: its fd 3 reads our commands, fd 4 writes its answers
            a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 100)
            b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 100)
            os.dup2(a, 3)
            os.dup2(b, 4)

        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
        self.proc = subprocess.Popen(
            [CHROMIUM, *flags, "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next = 0
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._next:
                    assert "error" not in answer, answer
                    return answer["result"]
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                raise AssertionError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raise AssertionError(f"no answer to {method}")

    def js(self, expression: str) -> Any:
        found = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session)
        return found["result"].get("value")

    def settle(self, path: str) -> None:
        """Wait until the page at ``path`` has loaded."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = self.js("document.readyState + ' ' + location.pathname")
            if state == f"complete {path}":
                return
            time.sleep(0.05)
        raise AssertionError(f"the page did not reach {path}: {self.js('location.href')}")

    def goto(self, url: str, path: str) -> None:
        self.call("Page.navigate", {"url": url}, self.session)
        self.settle(path)

    def submit(self, fields: dict[str, str], path: str) -> None:
        """Fill the page's first form and submit it as a person would (no script on the page)."""
        fill = "".join(
            f"document.forms[0].elements[{json.dumps(k)}].value = {json.dumps(v)};" for k, v in fields.items()
        )
        self.js(f"{fill} document.forms[0].submit(); 1")
        time.sleep(0.2)
        self.settle(path)

    def cookies(self) -> list[dict[str, Any]]:
        return self.call("Storage.getCookies")["cookies"]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(district: District) -> Iterator[tuple[District, str]]:  # noqa: F811
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(serving_app(district.services), host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield district, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def browser() -> Iterator[Chromium]:
    b = Chromium()
    try:
        yield b
    finally:
        b.close()


def _shown(f: dict[str, Any]) -> str:
    """A tile's value as the indicator's JSON gives it (written out here, not by the console's code)."""
    if f["value"] is None:
        return "—"
    return str(f["value"]) if f["unit"] == "patients" else f"{f['value']}{f['unit']}"


def sign_in(b: Chromium, base: str, credential: str, purpose: str = "assigned-duty") -> None:
    b.goto(f"{base}/console/sign-in", "/console/sign-in")
    b.submit({"credential": credential}, "/console/purpose")
    b.js(f"document.querySelector('input[value={json.dumps(purpose)}]').checked = true; 1")
    b.submit({}, "/console")


def test_the_console_tiles_show_what_the_indicators_api_gives(served, browser) -> None:
    d, base = served
    s = d.services
    credential = s.console.issue(GOV, "staff-gov-01").credential
    sign_in(browser, base, credential)
    browser.goto(f"{base}/console?unit={TOWNSHIP}&period={PERIOD}", "/console")
    tiles = dict(
        json.loads(
            browser.js(
                "JSON.stringify([...document.querySelectorAll('.tile')]"
                ".map(t => [t.dataset.indicator, t.querySelector('.value').textContent]))"
            )
        )
    )
    key = {k.agency_id: k.key for k in ensure_demo_keys(s.apikeys, s.registry, s.settings.data_dir)}[GOV]
    api = httpx.get(
        f"{base}/v1/indicators",
        params={"unit": TOWNSHIP, "period": PERIOD},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ).json()
    assert tiles == {f["name"]: _shown(f) for f in api["figures"]}
    assert browser.js("document.querySelectorAll('svg.trend').length") == sum(
        1 for f in api["figures"] if f["unit"] == "%"
    )
    assert browser.js("document.querySelectorAll('script').length") == 0  # no script on the page
    cookie = next(c for c in browser.cookies() if c["name"] == "smd_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert not cookie["secure"]  # development; Secure outside it (test below)


def test_a_wrong_credential_and_an_api_key_are_refused_at_sign_in(served, browser) -> None:
    d, base = served
    s = d.services
    api_key = {k.agency_id: k.key for k in ensure_demo_keys(s.apikeys, s.registry, s.settings.data_dir)}[GOV]
    revoked = s.console.issue(GOV, "staff-gov-02")
    s.console.revoke(revoked.credential_id)
    for wrong in ("smdc_000000000000_" + "A" * 43, api_key, revoked.credential):
        browser.goto(f"{base}/console/sign-in", "/console/sign-in")
        browser.submit({"credential": wrong}, "/console/sign-in")
        assert "凭证无效" in browser.js("document.body.innerText")
        assert not any(c["name"] == "smd_console" for c in browser.cookies())
    browser.goto(f"{base}/console?period={PERIOD}", "/console/sign-in")  # no session: the sign-in


def test_the_console_session_expires(served, browser) -> None:
    d, base = served
    s = d.services
    sign_in(browser, base, s.console.issue(GOV, "staff-gov-03").credential)
    browser.goto(f"{base}/console?period={PERIOD}", "/console")
    before = d.clock.now
    try:
        d.clock.now = before + timedelta(minutes=s.settings.console_session_minutes, seconds=1)
        browser.goto(f"{base}/console?period={PERIOD}", "/console/sign-in")
    finally:
        d.clock.now = before


def test_the_console_list_reads_are_in_the_access_log(served, browser) -> None:
    d, base = served
    s = d.services
    issued = s.console.issue(GOV, "staff-gov-04")
    sign_in(browser, base, issued.credential, purpose="care")
    browser.goto(f"{base}/console/lists/focus?unit={TOWNSHIP}", "/console/lists/focus")
    shown = browser.js("JSON.stringify([...document.querySelectorAll('tr[data-patient]')].map(r => r.dataset.patient))")
    shown = json.loads(shown)
    assert shown, "the district has patients in focus categories"
    entries = [
        e
        for e in s.access_log.entries(agency=GOV, limit=1000)
        if e.endpoint == LIST_ENDPOINT and e.staff_id == "staff-gov-04"
    ]
    assert len(entries) == 1
    e = entries[0]
    assert [str(p) for p in e.patient_ids] == shown
    assert e.purpose == "care" and e.status == 200 and e.key_id == f"console-{issued.credential_id}"


def test_the_console_forms_refuse_a_missing_or_wrong_csrf_token(served) -> None:
    d, base = served
    credential = d.services.console.issue(GOV, "staff-gov-05").credential
    with httpx.Client(base_url=base, timeout=30) as client:
        form = {"credential": credential, "csrf": "not-the-cookie"}
        client.get("/console/sign-in")  # sets the double-submit cookie
        assert client.post("/console/sign-in", data=form).status_code == 403
        token = client.cookies.get("smd_console_csrf")
        signed_in = client.post("/console/sign-in", data={"credential": credential, "csrf": token})
        assert signed_in.status_code == 303 and signed_in.headers["location"].endswith("/console/purpose")
        wrong = client.post("/console/purpose", data={"purpose": "care", "csrf": token})
        assert wrong.status_code == 403
        assert client.get("/console").headers["location"].endswith("/console/purpose")  # still no purpose


def test_the_console_cookie_is_secure_outside_development() -> None:
    from types import SimpleNamespace

    from api.console import _cookie

    production = SimpleNamespace(settings=SimpleNamespace(mode="production"))
    cookie = _cookie(production, "smd_console", "v", 60)
    assert cookie.secure and cookie.httponly and cookie.samesite == "strict"
