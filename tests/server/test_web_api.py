"""What the web page reads beside the conversation, as public API: per-reply costs, the listing with costs,
the context report's layout (cut messages, cache breakpoints), the Markdown export, and the page itself
(served by the service under a strict Content-Security-Policy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from claude_history.context import LastTurns
from claude_history.pricing import cost_of
from claude_history.server.running import BackgroundServer
from claude_history.server.web import CONTENT_SECURITY_POLICY, STATIC_DIR, mount_web
from claude_history.testing import Simulator

from .conftest import MODEL, Service

LONG_SYSTEM = "You answer questions about the history of the Atlantic trade routes. " * 200  # over 1,024 tokens


def _post(client: anthropic.Anthropic, path: str, body: Any = None) -> Any:
    return client.post(path, body=body or {}, cast_to=object)


def _get(client: anthropic.Anthropic, path: str, **params: Any) -> Any:
    return client.get(path, options={"params": params}, cast_to=object)


def _session(client: anthropic.Anthropic, session_id: str, turns: int, **create: Any) -> None:
    _post(client, "/v1/sessions", {"id": session_id, **create})
    for i in range(turns):
        _post(client, f"/v1/sessions/{session_id}/messages", {"content": f"Question number {i} about ports"})


def test_costs_list_each_reply_and_add_up_to_the_usage_endpoint(service: Service) -> None:
    client = service.client()
    _session(client, "c1", 3, system=LONG_SYSTEM)
    costs = _get(client, "/v1/sessions/c1/costs")
    messages = _get(client, "/v1/sessions/c1/messages")["data"]
    replies = [m for m in messages if m["role"] == "assistant"]
    assert [t["seq"] for t in costs["turns"]] == [m["seq"] for m in replies]
    for turn, message in zip(costs["turns"], replies, strict=True):
        assert turn["model"] == MODEL
        assert turn["usage"]["input_tokens"] == message["usage"]["input_tokens"]
        assert turn["usage"]["cache_read_input_tokens"] == message["usage"].get("cache_read_input_tokens", 0)
        assert turn["cost_usd"] == pytest.approx(cost_of(message["usage"], MODEL))
    usage = _get(client, "/v1/sessions/c1/usage")
    assert costs["totals"]["usage"] == usage["usage"]
    assert costs["totals"]["cost_usd"] == pytest.approx(usage["cost_usd"])
    assert costs["totals"]["cost_complete"] is True
    total = costs["totals"]["usage"]
    prompt = total["input_tokens"] + total["cache_creation_input_tokens"] + total["cache_read_input_tokens"]
    assert total["cache_read_input_tokens"] > 0  # the long system prompt is read from the cache after turn 1
    assert costs["cache_read_share"] == pytest.approx(total["cache_read_input_tokens"] / prompt)


def test_costs_of_an_empty_session_and_of_another_tenants_session(service: Service) -> None:
    _post(service.client(), "/v1/sessions", {"id": "empty"})
    costs = _get(service.client(), "/v1/sessions/empty/costs")
    assert costs == {"turns": [], "totals": {"usage": costs["totals"]["usage"], "cost_usd": 0.0,
                                             "cost_complete": True}, "cache_read_share": 0.0}  # fmt: skip
    assert set(costs["totals"]["usage"].values()) == {0}
    with pytest.raises(anthropic.NotFoundError):
        _get(service.client("globex"), "/v1/sessions/empty/costs")


def test_listing_with_cost_gives_turns_and_cost_of_each_session(service: Service) -> None:
    client = service.client()
    _session(client, "two", 2)
    _session(client, "none", 0)
    listed = {s["id"]: s for s in _get(client, "/v1/sessions", with_cost="true")["data"]}
    assert listed["two"]["turns"] == 2 and listed["none"]["turns"] == 0
    assert listed["two"]["cost_usd"] == pytest.approx(_get(client, "/v1/sessions/two/usage")["cost_usd"])
    assert listed["none"]["cost_usd"] == 0.0
    plain = _get(client, "/v1/sessions")["data"]
    assert all("cost_usd" not in s for s in plain)  # only when asked: it reads every listed session's usage


def test_context_detail_places_the_breakpoints_on_the_request_sent(service: Service, sim: Simulator) -> None:
    client = service.client()
    _session(client, "ctx", 2, system=LONG_SYSTEM)
    report = _get(client, "/v1/sessions/ctx/context", detail="true")
    plain = _get(client, "/v1/sessions/ctx/context")
    assert "layout" not in plain and {k: v for k, v in report.items() if k != "layout"} == plain
    layout = report["layout"]
    assert [m["state"] for m in layout["messages"]] == ["sent"] * 4
    assert len(layout["breakpoints"]) == report["breakpoints"] >= 1
    for b in layout["breakpoints"]:
        assert b["ttl"] in ("5m", "1h")
        assert b["place"] in ("tools", "system", "messages", "new message")
        if b["place"] == "messages":
            assert 0 <= b["index"] < 4 and b["role"] in ("user", "assistant")
    # The request the next turn sends carries its markers exactly where the layout said.
    _post(client, "/v1/sessions/ctx/messages", {"content": "…"})
    sent = _markers(sim.requests[-1]["body"])
    assert sent == [(b["place"], b.get("index")) for b in layout["breakpoints"]]


def _markers(body: dict[str, Any]) -> list[tuple[str, int | None]]:
    """Where a request carried cache_control markers."""
    found: list[tuple[str, int | None]] = []
    if any("cache_control" in t for t in body.get("tools") or []):
        found.append(("tools", None))
    system = body.get("system")
    if isinstance(system, list) and any("cache_control" in b for b in system):
        found.append(("system", None))
    messages = body["messages"]
    for i, message in enumerate(messages):
        content = message["content"]
        if isinstance(content, list) and any("cache_control" in b for b in content):
            found.append(("new message", None) if i == len(messages) - 1 else ("messages", i))
    return found


def test_context_detail_shows_what_the_policy_cuts(start_service: Callable[..., Service]) -> None:
    service = start_service(context=LastTurns(1))
    client = service.client()
    _session(client, "cut", 3)
    layout = _get(client, "/v1/sessions/cut/context", detail="true")["layout"]
    # The next request keeps the newest turn only: the placeholder message is the newest turn, so every
    # stored message is cut.
    assert [m["state"] for m in layout["messages"]] == ["cut"] * 6


def test_markdown_export(service: Service) -> None:
    client = service.client()
    _session(client, "md", 1, title="Ports")
    response = httpx2.get(f"{service.base_url}/v1/sessions/md/export", params={"format": "markdown"},
                          headers={"x-api-key": service.keys["acme"]})  # fmt: skip
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/markdown")
    text = response.text
    assert text.startswith("# Ports\n") and "session `md`" in text and "acme/" not in text
    assert "## You\n\nQuestion number 0 about ports" in text and "## Claude" in text
    jsonl = httpx2.get(f"{service.base_url}/v1/sessions/md/export", headers={"x-api-key": service.keys["acme"]})
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    bad = httpx2.get(f"{service.base_url}/v1/sessions/md/export", params={"format": "pdf"},
                     headers={"x-api-key": service.keys["acme"]})  # fmt: skip
    assert bad.status_code == 400 and "format" in bad.json()["error"]["message"]
    other = httpx2.get(f"{service.base_url}/v1/sessions/md/export", params={"format": "markdown"},
                       headers={"x-api-key": service.keys["globex"]})  # fmt: skip
    assert other.status_code == 404


def test_the_page_is_served_with_a_strict_content_security_policy(service: Service) -> None:
    if not (STATIC_DIR / "index.html").is_file():
        pytest.skip("the web page is not built (make install)")
    page = httpx2.get(service.base_url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    script = httpx2.get(service.base_url + "/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert 'src="/static/app.js?v=' in page.text and "http" not in page.text.split("<body>")[0]  # no CDN
    assert httpx2.get(service.base_url + "/static/nothing.js").status_code == 404


def test_an_unbuilt_page_says_how_to_build_it(tmp_path: Path) -> None:
    from fastapi import FastAPI

    app = FastAPI()
    mount_web(app, tmp_path / "static")
    with BackgroundServer(app) as server:
        page = httpx2.get(server.base_url + "/")
    assert page.status_code == 503 and "make install" in page.text and "npm" in page.text


def test_the_page_needs_no_key_but_the_api_does(service: Service) -> None:
    assert httpx2.get(service.base_url + "/v1/sessions").status_code == 401
    assert httpx2.get(service.base_url + "/", follow_redirects=False).status_code in (200, 503)

