"""Reading, finding and measuring in a real browser: Markdown, code, thinking and tool calls; sanitised
content; search, tags, rename and delete; another tenant; the context panel and the cost chart against the
API's figures; export; a phone-width window; keyboard use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import Site, sign_in

# One worker runs this module (pytest-xdist, --dist loadgroup): its browser and service start once.
pytestmark = pytest.mark.xdist_group("web-views")

LONG_SYSTEM = "You answer questions about the history of the Atlantic trade routes. " * 200  # cacheable

READING = [
    {"role": "user", "content": "Show me a Python function and check the weather in Lisbon"},
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "The user wants code first, then a tool call.", "signature": "c2ln"},
        {"type": "text", "text": "## A function\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nA *table*:\n\n"
                                 "| city | temp |\n| --- | --- |\n| Lisbon | 21 |"},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Lisbon"}},
    ]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "21 C, sunny"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "It is **21 C** and sunny in Lisbon."}]},
]  # fmt: skip

XSS = ('<script>window.__xss = "script"</script>\n\n<img src="x" onerror="window.__xss = \'img\'">\n\n'
       '[link](javascript:window.__xss=1) <a href="#" onclick="window.__xss=2">click</a> plain text stays')  # fmt: skip


def _import(site: Site, session_id: str, messages: list[dict[str, Any]], tenant: str = "acme", **header: Any) -> None:
    lines = [json.dumps({"type": "session", "id": session_id, **header})]
    lines += [json.dumps({"type": "message", "message": m}) for m in messages]
    with site.api(tenant) as api:
        api.post("/v1/sessions/import", content="\n".join(lines) + "\n").raise_for_status()


def _open(page: Any, site: Site, session_id: str) -> None:
    page.goto(f"{site.base_url}/#session={session_id}")
    page.locator("#session").wait_for(state="visible")
    page.locator(".message").first.wait_for()


def _get(site: Site, path: str, tenant: str = "acme", **params: Any) -> Any:
    with site.api(tenant) as api:
        response = api.get(path, params=params)
        response.raise_for_status()
        return response.json()


def test_markdown_code_thinking_and_tool_calls_are_rendered(page: Any, site: Site) -> None:
    _import(site, "reading", READING, title="Reading")
    sign_in(page, site)
    _open(page, site, "reading")
    reply = page.locator(".message.assistant").first
    assert reply.locator("h2").inner_text() == "A function"
    code = reply.locator("pre code.hljs.language-python")
    assert "def add(a, b):" in code.inner_text()
    assert code.locator("span.hljs-keyword").first.inner_text() == "def"  # highlighted
    assert reply.locator("table td").first.inner_text() == "Lisbon"
    thinking = reply.locator("details.thinking")
    assert not thinking.evaluate("(d) => d.open")  # folded
    assert not thinking.get_by_text("The user wants code first").is_visible()
    thinking.locator("summary").click()
    assert thinking.get_by_text("The user wants code first").is_visible()
    tool = reply.locator("details.tool-use")
    assert tool.locator("summary").inner_text() == "Tool call: get_weather"
    tool.locator("summary").click()
    assert json.loads(tool.locator("pre").inner_text()) == {"city": "Lisbon"}
    result = page.get_by_role("article", name="Tool results, message 3")
    assert result.locator("details.tool-result summary").inner_text() == "Tool result"
    assert page.locator(".message.assistant").nth(1).locator("strong").inner_text() == "21 C"
    # "Fork here" only where a turn ends: not before the tool results (the service refuses that cut, a 400)
    assert page.get_by_role("button", name="Fork after message 2").count() == 0
    assert page.get_by_role("button", name="Fork after message 4").count() == 1


def test_script_and_event_handlers_in_messages_never_run(page: Any, site: Site) -> None:
    site.sim.reply_with(XSS)
    sign_in(page, site)
    page.get_by_role("button", name="New session").click()
    page.locator("#input").fill(XSS)
    page.keyboard.press("Enter")
    page.locator(".message.assistant .usage").wait_for()
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    for message in (page.locator(".message.user"), page.locator(".message.assistant")):
        html = message.locator(".markdown").inner_html()
        assert "<script" not in html and "onerror" not in html and "onclick" not in html
        assert "javascript:" not in html
        assert "plain text stays" in message.inner_text()
    # The title (set from the first message) is text, never markup.
    page.reload()
    page.locator(".message.assistant").wait_for()
    assert page.evaluate("window.__xss") is None
    assert page.locator("#session-title").inner_text().startswith("<script>")


def test_search_tags_rename_and_delete(page: Any, site: Site) -> None:
    _import(site, "tagged", [{"role": "user", "content": "Where do flamingos sleep?"},
                             {"role": "assistant", "content": [{"type": "text", "text": "Standing on one leg."}]}],
            title="Birds")  # fmt: skip
    sign_in(page, site)
    page.get_by_label("Search messages").fill("flamingos")
    hit = page.locator(".search-hit").filter(has_text="Birds")
    hit.wait_for()
    hit.click()
    page.locator(".message.found").wait_for()
    page.get_by_role("button", name="Tags").click()
    page.get_by_role("dialog").get_by_label("Tags").fill("nature, #zoo")
    page.get_by_role("button", name="Save").click()
    page.locator("#session-meta").get_by_text("#nature #zoo").wait_for()
    assert _get(site, "/v1/sessions/tagged")["tags"] == ["nature", "zoo"]
    page.get_by_label("Filter by tag").select_option("zoo")
    page.wait_for_function("() => document.querySelectorAll('.session-item').length === 1")
    assert page.locator(".session-item .title").inner_text() == "Birds"
    page.get_by_role("button", name="Rename").click()
    page.get_by_role("dialog").get_by_label("Title").fill("Flamingos")
    page.get_by_role("button", name="Rename").last.click()
    page.locator(".session-item .title").get_by_text("Flamingos").wait_for()
    assert _get(site, "/v1/sessions/tagged")["title"] == "Flamingos"
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_text("cannot be undone").wait_for()
    page.get_by_role("button", name="Cancel").click()
    assert _get(site, "/v1/sessions/tagged")["title"] == "Flamingos"  # still there
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_text("Choose a session or start a new one.").wait_for()
    with site.api() as api:
        assert api.get("/v1/sessions/tagged").status_code == 404


def test_another_tenant_sees_none_of_the_first_tenants_sessions(page: Any, site: Site) -> None:
    _import(site, "secret", [{"role": "user", "content": "The password is swordfish"},
                             {"role": "assistant", "content": [{"type": "text", "text": "Noted."}]}],
            title="Acme secret")  # fmt: skip
    _import(site, "mine", [{"role": "user", "content": "Globex plans"},
                           {"role": "assistant", "content": [{"type": "text", "text": "Fine."}]}],
            tenant="globex", title="Globex plans")  # fmt: skip
    sign_in(page, site, "globex")
    page.locator(".session-item").first.wait_for()
    titles = page.locator(".session-item .title").all_inner_texts()
    assert titles == ["Globex plans"]
    page.get_by_label("Search messages").fill("swordfish")
    page.get_by_text("Nothing found for “swordfish”.").wait_for()
    # Followed from the address bar in the open page (a hash change), then opened afresh in a new load:
    # the page clears the hash once it has answered, so each way is checked on its own.
    page.goto(f"{site.base_url}/#session=secret")
    page.get_by_text("Session secret does not exist (or is not yours).").wait_for()
    page.goto("about:blank")
    page.goto(f"{site.base_url}/#session=secret")
    page.get_by_text("Session secret does not exist (or is not yours).").wait_for()
    assert "swordfish" not in page.content()


def test_context_panel_and_cost_chart_match_the_api(page: Any, site: Site) -> None:
    with site.api() as api:
        api.post("/v1/sessions", json={"id": "costly", "title": "Costly", "system": LONG_SYSTEM}).raise_for_status()
        for i in range(3):
            api.post("/v1/sessions/costly/messages", json={"content": f"Question {i}"}).raise_for_status()
    sign_in(page, site)
    _open(page, site, "costly")
    report = _get(site, "/v1/sessions/costly/context", detail="true")
    table = page.locator("#context-table")
    for name in ("system_tokens", "messages_tokens", "cached_tokens", "uncached_tokens", "breakpoints"):
        shown = table.locator(f"[data-figure={name}] td").inner_text()
        assert int(shown.replace(",", "")) == report[name], name
    assert page.locator("#context-total").inner_text().replace(",", "") == str(report["total_tokens"])
    assert page.locator("#context-meter").get_attribute("value") == str(report["total_tokens"])
    assert page.locator("#breakpoints li").count() == len(report["layout"]["breakpoints"]) >= 1
    marks = [b for b in report["layout"]["breakpoints"] if b["place"] == "messages"]
    assert page.locator(".breakpoint").count() == len(marks)
    page.get_by_role("tab", name="Cost").click()
    costs = _get(site, "/v1/sessions/costly/costs")
    series = json.loads(page.locator("#cost-chart").get_attribute("data-series"))
    assert series == {
        "input": [t["usage"]["input_tokens"] for t in costs["turns"]],
        "cache_write": [t["usage"]["cache_creation_input_tokens"] for t in costs["turns"]],
        "cache_read": [t["usage"]["cache_read_input_tokens"] for t in costs["turns"]],
        "output": [t["usage"]["output_tokens"] for t in costs["turns"]],
    }
    assert sum(series["cache_read"]) > 0
    assert page.locator("#cost-total").inner_text() == f"${costs['totals']['cost_usd']:.4f}" or \
        page.locator("#cost-total").inner_text() == f"${costs['totals']['cost_usd']:.6f}"  # fmt: skip
    assert page.locator("#cache-share").inner_text() == f"{100 * costs['cache_read_share']:.1f}%"
    assert page.locator("#cost-table tbody tr").count() == 3
    pixels = page.locator("#cost-chart").evaluate(
        "(c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"
    )
    assert pixels > 1000  # the chart is drawn


def test_export_downloads_jsonl_and_markdown(page: Any, site: Site) -> None:
    _import(site, "exported", READING, title="Exported")
    sign_in(page, site)
    _open(page, site, "exported")
    page.get_by_role("tab", name="Cost").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export Markdown").click()
    markdown = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename == "exported.md"
    with site.api() as api:
        assert markdown == api.get("/v1/sessions/exported/export", params={"format": "markdown"}).text
    with page.expect_download() as download:
        page.get_by_role("button", name="Export JSONL").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["id"] == "exported" and len(lines) == 1 + len(READING)


def test_a_phone_width_window(browser: Any, site: Site) -> None:
    _import(site, "phone", READING, title="On a phone")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        sign_in(page, site)
        assert page.locator("#sidebar").is_hidden()
        menu = page.get_by_role("button", name="Show sessions")
        menu.click()
        assert menu.get_attribute("aria-expanded") == "true"
        page.locator(".session-item").filter(has_text="On a phone").click()
        page.locator(".message").first.wait_for()
        assert page.locator("#sidebar").is_hidden()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways: {width}px"
        box = page.locator("#input").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    finally:
        context.close()


def test_keyboard_enter_sends_shift_enter_adds_a_line_and_controls_are_labelled(page: Any, site: Site) -> None:
    sign_in(page, site)
    page.get_by_role("button", name="New session").click()
    page.wait_for_function("() => location.hash.startsWith('#session=')")
    box = page.get_by_label("Message (Enter sends, Shift+Enter adds a line)")
    box.focus()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert box.input_value() == "line one\nline two"
    assert page.locator(".message").count() == 0
    page.keyboard.press("Enter")
    page.locator(".message.assistant .usage").wait_for()
    assert page.locator(".message.user").inner_text().count("line two") == 1
    # Tab moves the focus, and the focused control shows it.
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert page.evaluate("document.activeElement.tagName") in ("BUTTON", "INPUT", "LABEL", "A")
    assert outline == "solid"
    # Every control has a name a screen reader reads.
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button, input, select, textarea')]
        .filter((e) => e.offsetParent !== null && e.type !== 'file')
        .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || (e.id &&
            document.querySelector(`label[for="${e.id}"]`))))
        .map((e) => e.outerHTML)""")
    assert unnamed == []
