"""Screenshots of the web page for docs/web.md (``make screenshots``), made with the browser tests' own setup:
the real service in front of the simulator, Debian's Chromium driven by Playwright. Run from the repository
root: ``python tests/web/screenshots.py`` writes docs/images/web-*.png."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from web.conftest import ARGS, CHROMIUM, sign_in, start_site  # noqa: E402
from web.test_views import LONG_SYSTEM, READING  # noqa: E402

OUT = ROOT / "docs" / "images"


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sites = start_site(Path(tmp))
        site = next(sites)
        lines = [json.dumps({"type": "session", "id": "lisbon", "title": "Weather in Lisbon", "tags": ["travel"],
                             "system": LONG_SYSTEM})]  # fmt: skip
        lines += [json.dumps({"type": "message", "message": m}) for m in READING]
        with site.api() as api:
            api.post("/v1/sessions/import", content="\n".join(lines) + "\n").raise_for_status()
            for question in ("And tomorrow?", "Which ports did the trade routes use?", "Thanks!"):
                api.post("/v1/sessions/lisbon/messages", json={"content": question}).raise_for_status()
            api.post("/v1/sessions", json={"id": "ports", "title": "Atlantic ports", "tags": ["history"]})
            api.post("/v1/sessions/ports/messages", json={"content": "Name three Atlantic ports"})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(site.base_url + "/")
            page.get_by_label("API key").wait_for()
            page.screenshot(path=str(OUT / "web-signin.png"))
            sign_in(page, site)
            page.goto(f"{site.base_url}/#session=lisbon")
            page.locator(".message .usage").first.wait_for()
            page.locator("#messages").evaluate("(m) => { m.scrollTop = 0; }")
            page.locator("details.thinking summary").first.click()
            page.locator("details.tool-use summary").first.click()
            page.screenshot(path=str(OUT / "web-chat.png"))
            page.locator("#messages").evaluate("(m) => { m.scrollTop = m.scrollHeight; }")
            page.locator("#panel").screenshot(path=str(OUT / "web-context.png"))
            page.get_by_role("tab", name="Cost").click()
            page.locator("#cost-chart").wait_for()
            page.locator("#panel").screenshot(path=str(OUT / "web-cost.png"))
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            sign_in(phone, site)
            phone.goto(f"{site.base_url}/#session=lisbon")
            phone.locator(".message .usage").first.wait_for()
            phone.screenshot(path=str(OUT / "web-phone.png"))
            browser.close()
        sites.close()
    for path in sorted(OUT.glob("web-*.png")):
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
