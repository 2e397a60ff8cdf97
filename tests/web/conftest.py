"""Browser tests of the caregiver page: the real stack in a subprocess, Debian chromium via Playwright.

Chromium is the system one (/usr/bin/chromium, installed by scripts/test); Playwright's
own browser download is never used. Screenshots go to SCREENSHOTS (printed at the end).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots" / "caregiver-page"
CHROMIUM = Path(os.environ.get("CHUMPHAE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DIST_INDEX = REPO / "chumphae" / "web" / "dist" / "index.html"
CARD = "[data-testid=alert-card]"
PHONE = {"width": 360, "height": 760}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium is not installed at {CHROMIUM}: scripts/test installs it "
                    "(apt-get install chromium) when run as root")
    if not DIST_INDEX.exists():
        pytest.fail("the caregiver page is not built (chumphae/web/dist): run scripts/test, "
                    "or cd web && npm ci && npm run build")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    print(f"\ncaregiver page screenshots: {SCREENSHOTS}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """A running backend (and, unless `gateway` is False, the simulated town gateway)."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    info: dict[str, Any]
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[who]}"},
                            timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


TOKEN_LINE = re.compile(r"^\s{2}(\w+)\s+(chu_\S+)\s*$", re.M)


def start_stack(tmp: Path, *, gateway: bool, wander_at: float = 3.0, sos_at: float = 120.0,
                timeout_s: float = 90.0) -> Stack:
    port = free_port()
    log = tmp / "stack.log"
    cmd = [sys.executable, "-m", "tests.web.stack", str(tmp / "data"), str(port),
           "--wander-at", str(wander_at), "--sos-at", str(sos_at)]
    if not gateway:
        cmd.append("--no-gateway")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    stack = Stack(url=f"http://127.0.0.1:{port}", proc=proc, log=log, data_dir=tmp / "data", info={})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the stack exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        text = log.read_text(errors="replace")
        m = re.search(r"^STACK (\{.*\})$", text, re.M)
        tokens = dict(TOKEN_LINE.findall(text))
        if m and "caregiver1" in tokens and "Application startup complete" in text:
            try:
                if httpx.get(f"{stack.url}/healthz", timeout=2).status_code == 200:
                    stack.info, stack.tokens = json.loads(m.group(1)), tokens
                    stack.tokens["caregiver1b"] = stack.info["caregiver1b"]
                    return stack
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    stack.stop()
    raise AssertionError(f"the stack did not start in {timeout_s} s:\n{log.read_text()[-3000:]}")


def shot(page: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def open_page(browser: Any, stack: Stack, who: str, viewport: dict[str, int]) -> Any:
    ctx = browser.new_context(viewport=viewport, locale="th-TH", timezone_id="Asia/Bangkok")
    ctx.grant_permissions(["notifications"], origin=stack.url)
    page = ctx.new_page()
    errors: list[str] = []
    layers: dict[str, int] = {}  # tax-map layer → features drawn, from the page's own requests
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: "/api/v1/map/" in r.url and r.status == 200 and layers.__setitem__(
        r.url.split("/api/v1/map/")[1].split("?")[0], len(r.json()["features"])))
    page.errors, page.layers = errors, layers  # type: ignore[attr-defined]
    page.goto(f"{stack.url}/#token={stack.tokens[who]}")
    page.wait_for_selector("[data-testid=feed-status][data-state=live]", timeout=15_000)
    assert "token=" not in page.url, "the token must not stay in the address bar"
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    return page


def settle_map(page: Any) -> None:
    """Wait until the map has fetched and drawn the tax-map layers for where it now looks."""
    page.wait_for_timeout(400)  # the map asks for layers 250 ms after it stops moving
    page.wait_for_selector("[data-testid=map][data-layers=ready]", timeout=15_000)
    page.wait_for_timeout(300)  # one more frame for the canvas


def cards(page: Any, **attrs: Any) -> Any:
    sel = CARD + "".join(f"[data-{k.replace('_', '-')}='{v}']" for k, v in attrs.items())
    return page.locator(sel)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """The page's backend on its own (no simulated gateway); a test file with a gateway defines its own."""
    s = start_stack(tmp_path, gateway=False)
    try:
        yield s
    finally:
        s.stop()
