"""The web page in Debian's Chromium driven by Playwright for Python, against the real service (uvicorn in a
thread) in front of the simulator, on a SQLite file. One browser and one service per test module; each test
gets a fresh browser context (its own sessionStorage, so it signs in anew).

Playwright never downloads a browser here: it drives ``/usr/bin/chromium`` (``apt-get install chromium``).
Without Chromium, Playwright or the built page the tests skip with the reason, unless
``CLAUDE_HISTORY_REQUIRE_SERVICES=1`` (CI), where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from claude_history.server import ServerConfig, create_app
from claude_history.server.running import BackgroundServer
from claude_history.server.tenants import create_key
from claude_history.server.web import STATIC_DIR
from claude_history.stores import open_store
from claude_history.testing import Simulator

REQUIRE = os.environ.get("CLAUDE_HISTORY_REQUIRE_SERVICES") == "1"
CHROMIUM = os.environ.get("CLAUDE_HISTORY_CHROMIUM", "/usr/bin/chromium")
WEB = Path(__file__).resolve().parents[2] / "web"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
TIMEOUT_MS = 30_000  # generous: on a loaded CI machine the page and the service lag; a pass is never slower


def unavailable(message: str) -> None:
    if REQUIRE:
        pytest.fail(message + " and CLAUDE_HISTORY_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def built_page() -> Path:
    """The built page; built here with npm (as ``make install`` does) when it is missing."""
    if (STATIC_DIR / "index.html").is_file():
        return STATIC_DIR
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        unavailable("the web page is not built (make install) and node/npm are missing")
    assert npm is not None
    for command in ([npm, "ci", "--no-audit", "--no-fund"], ["node", "build.mjs"]):
        result = subprocess.run(command, cwd=WEB, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            unavailable(f"building the web page failed: {' '.join(command)}: {result.stderr.strip()[-500:]}")
    return STATIC_DIR


@dataclass
class Site:
    base_url: str
    store_url: str
    keys: dict[str, str]
    sim: Simulator

    def api(self, tenant: str = "acme") -> Any:
        import httpx2

        return httpx2.Client(base_url=self.base_url, headers={"x-api-key": self.keys[tenant]}, timeout=30)


def start_site(tmp: Path, **options: Any) -> Iterator[Site]:
    built_page()
    store_url = f"sqlite:///{tmp / 'web.db'}"
    store = open_store(store_url)
    try:
        keys = {t: create_key(store, t)[0] for t in ("acme", "globex")}
    finally:
        store.close()
    with Simulator() as sim:
        config = ServerConfig(store_url=store_url, upstream_url=sim.base_url, upstream_key="test", **options)
        with BackgroundServer(create_app(config)) as server:
            yield Site(server.base_url, store_url, keys, sim)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from start_site(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    yield page
    context.close()


def sign_in(page: Any, site: Site, tenant: str = "acme") -> None:
    page.goto(site.base_url + "/")
    page.get_by_label("API key").fill(site.keys[tenant])
    page.get_by_role("button", name="Sign in").click()
    page.locator("#app").wait_for(state="visible")
