"""The sessions API: a tenant's sessions over HTTP, through the SDK's generic get/post (its key, its errors)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest

from .conftest import MODEL, Service


def _api(service: Service, tenant: str = "acme") -> anthropic.Anthropic:
    return service.client(tenant)


def _post(client: anthropic.Anthropic, path: str, body: Any = None) -> Any:
    return client.post(path, body=body or {}, cast_to=object)


def test_create_send_read_update_and_delete_a_session(service: Service) -> None:
    client = _api(service)
    made = _post(client, "/v1/sessions", {"id": "s1", "title": "Trip", "tags": ["travel"],
                                          "metadata": {"plan": "pro"}, "system": "Be brief."})  # fmt: skip
    assert made["id"] == "s1" and made["version"] == 0 and "owner" not in made
    reply = _post(client, "/v1/sessions/s1/messages", {"content": "Hello"})
    assert reply["type"] == "message" and reply["role"] == "assistant"
    _post(client, "/v1/sessions/s1/messages", {"content": "Again"})
    got = client.get("/v1/sessions/s1", cast_to=object)
    assert got["version"] == 2 and got["message_count"] == 4  # type: ignore[index]
    page = client.get("/v1/sessions/s1/messages", options={"params": {"limit": 3}}, cast_to=object)
    assert [m["seq"] for m in page["data"]] == [0, 1, 2] and page["has_more"]  # type: ignore[index]
    rest = client.get("/v1/sessions/s1/messages", options={"params": {"cursor": page["next_cursor"]}},  # type: ignore[index]
                      cast_to=object)  # fmt: skip
    assert [m["seq"] for m in rest["data"]] == [3] and not rest["has_more"]  # type: ignore[index]
    patched = client.patch("/v1/sessions/s1", body={"title": "Lisbon"}, cast_to=object)
    assert patched["title"] == "Lisbon" and patched["tags"] == ["travel"]  # type: ignore[index]
    with pytest.raises(anthropic.ConflictError):
        _post(client, "/v1/sessions", {"id": "s1"})
    client.delete("/v1/sessions/s1", cast_to=object)
    with pytest.raises(anthropic.NotFoundError):
        client.get("/v1/sessions/s1", cast_to=object)


def test_listing_filters_and_pages_with_a_cursor(service: Service) -> None:
    client = _api(service)
    for i in range(5):
        _post(client, "/v1/sessions", {"id": f"l{i}", "tags": ["even" if i % 2 == 0 else "odd"],
                                       "metadata": {"n": str(i)}})  # fmt: skip
    _post(_api(service, "globex"), "/v1/sessions", {"id": "theirs", "tags": ["even"]})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/sessions", options={"params": params}, cast_to=object)
        seen += [s["id"] for s in page["data"]]  # type: ignore[index]
        cursor = page["next_cursor"]  # type: ignore[index]
        if not page["has_more"]:  # type: ignore[index]
            break
    assert sorted(seen) == [f"l{i}" for i in range(5)]
    even = client.get("/v1/sessions", options={"params": {"tag": "even"}}, cast_to=object)
    assert sorted(s["id"] for s in even["data"]) == ["l0", "l2", "l4"]  # type: ignore[index]
    meta = client.get("/v1/sessions", options={"params": {"metadata": "n=3"}}, cast_to=object)
    assert [s["id"] for s in meta["data"]] == ["l3"]  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        client.get("/v1/sessions", options={"params": {"cursor": "garbage!"}}, cast_to=object)
    with pytest.raises(anthropic.BadRequestError):
        client.get("/v1/sessions/l0/messages", options={"params": {"cursor": "garbage!"}}, cast_to=object)


def test_a_session_updated_while_a_client_pages_is_not_listed_twice(service: Service) -> None:
    client = _api(service)
    for i in range(4):
        _post(client, "/v1/sessions", {"id": f"p{i}"})
    first = client.get("/v1/sessions", options={"params": {"limit": 2}}, cast_to=object)
    assert [s["id"] for s in first["data"]] == ["p3", "p2"]  # type: ignore[index]
    client.patch("/v1/sessions/p3", body={"title": "seen already, now the newest"}, cast_to=object)
    _post(client, "/v1/sessions", {"id": "late"})  # created meanwhile: the next pages do not show it
    rest = client.get("/v1/sessions", options={"params": {"limit": 5, "cursor": first["next_cursor"]}},  # type: ignore[index]
                      cast_to=object)  # fmt: skip
    assert [s["id"] for s in rest["data"]] == ["p1", "p0"] and rest["next_cursor"] is None  # type: ignore[index]


def test_undo_fork_context_usage_and_search(service: Service) -> None:
    client = _api(service)
    _post(client, "/v1/sessions", {"id": "u"})
    for text in ("apples are red", "bananas are yellow"):
        _post(client, "/v1/sessions/u/messages", {"content": text})
    forked = _post(client, "/v1/sessions/u/fork", {"at": 2, "id": "u2"})
    assert forked["id"] == "u2" and forked["message_count"] == 2
    undone = _post(client, "/v1/sessions/u/undo")
    assert [m["role"] for m in undone["removed"]] == ["user", "assistant"]
    assert client.get("/v1/sessions/u", cast_to=object)["message_count"] == 2  # type: ignore[index]
    report = client.get("/v1/sessions/u/context", cast_to=object)
    assert report["model"] == MODEL and report["kept_messages"] >= 2  # type: ignore[index]
    usage = client.get("/v1/sessions/u/usage", cast_to=object)
    assert usage["usage"]["output_tokens"] > 0 and usage["cost_usd"] > 0  # type: ignore[index]
    totals = client.get("/v1/usage", cast_to=object)
    assert totals["sessions"] == 2  # type: ignore[index]
    hits = client.get("/v1/search", options={"params": {"q": "apples"}}, cast_to=object)
    assert {h["session_id"] for h in hits["data"]} == {"u", "u2"}  # type: ignore[index]
    assert _api(service, "globex").get("/v1/search", options={"params": {"q": "apples"}},
                                       cast_to=object)["data"] == []  # type: ignore[index]  # fmt: skip


@pytest.mark.parametrize("route, field", [("rewind", "to"), ("fork", "at")])
def test_rewind_and_fork_refuse_a_cut_inside_a_turn(service: Service, route: str, field: str) -> None:
    client = _api(service)
    _post(client, "/v1/sessions", {"id": "cut"})
    for text in ("one", "two"):
        _post(client, "/v1/sessions/cut/messages", {"content": text})
    headers = {"x-api-key": service.keys["acme"]}
    for inside in (1, 3):  # an assistant reply: kept alone, the user message before it would never be answered
        answer = httpx2.post(f"{service.base_url}/v1/sessions/cut/{route}", json={field: inside}, headers=headers)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["message"].startswith(f"{field}: {inside} would cut a turn in two")
    session = client.get("/v1/sessions/cut", cast_to=object)
    assert session["message_count"] == 4 and session["version"] == 2  # type: ignore[index]  # nothing changed
    made = _post(client, f"/v1/sessions/cut/{route}", {field: 2, **({"id": "cut2"} if route == "fork" else {})})
    kept = "cut2" if route == "fork" else "cut"
    assert client.get(f"/v1/sessions/{kept}", cast_to=object)["message_count"] == 2  # type: ignore[index]
    assert made["version"] >= 1
    # a session that starts with a reply (an import) can still be cut to nothing
    imported = json.dumps([{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Hi"}])
    httpx2.post(f"{service.base_url}/v1/sessions/import", params={"id": "odd"}, content=imported,
                headers=headers).raise_for_status()  # fmt: skip
    emptied = httpx2.post(f"{service.base_url}/v1/sessions/odd/{route}", headers=headers,
                          json={field: 0, **({"id": "odd2"} if route == "fork" else {})})  # fmt: skip
    assert emptied.status_code in (200, 201), emptied.text
    # and the session cut at a turn start goes on
    _post(client, f"/v1/sessions/{kept}/messages", {"content": "three"})
    assert client.get(f"/v1/sessions/{kept}", cast_to=object)["message_count"] == 4  # type: ignore[index]


def test_a_plain_message_while_tool_results_are_owed_says_how_to_send_them(service: Service) -> None:
    client = _api(service)
    _post(client, "/v1/sessions", {"id": "owed"})
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {}}}]
    reply = _post(client, "/v1/sessions/owed/messages", {"content": "use get_weather", "tools": tools})
    assert reply["stop_reason"] == "tool_use"
    use_id = reply["content"][-1]["id"]
    answer = httpx2.post(f"{service.base_url}/v1/sessions/owed/messages", json={"content": "never mind"},
                         headers={"x-api-key": service.keys["acme"]})  # fmt: skip
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    assert use_id in message and "tool_result" in message and "chat." not in message  # no Python calls
    results = [{"type": "tool_result", "tool_use_id": use_id, "content": "sunny"}]
    assert _post(client, "/v1/sessions/owed/messages", {"content": results, "tools": tools})["role"] == "assistant"


def test_export_then_import_gives_the_same_messages(service: Service) -> None:
    client = _api(service)
    _post(client, "/v1/sessions", {"id": "e"})
    _post(client, "/v1/sessions/e/messages", {"content": "keep me"})
    headers = {"x-api-key": service.keys["acme"]}
    exported = httpx2.get(service.base_url + "/v1/sessions/e/export", headers=headers).text
    header = json.loads(exported.splitlines()[0])
    assert header["id"] == "e" and "acme" not in exported.splitlines()[0]
    made = httpx2.post(service.base_url + "/v1/sessions/import", params={"id": "e-copy"}, content=exported,
                       headers=headers).json()  # fmt: skip
    assert made["id"] == "e-copy" and made["message_count"] == 2
    original = client.get("/v1/sessions/e/messages", cast_to=object)["data"]  # type: ignore[index]
    copied = client.get("/v1/sessions/e-copy/messages", cast_to=object)["data"]  # type: ignore[index]
    assert [m["content"] for m in copied] == [m["content"] for m in original]
    other = httpx2.get(service.base_url + "/v1/sessions/e/export", headers={"x-api-key": service.keys["globex"]})
    assert other.status_code == 404 and other.json()["error"]["type"] == "not_found_error"


def test_an_import_that_is_not_utf8_is_a_400(service: Service) -> None:
    headers = {"x-api-key": service.keys["acme"]}
    answer = httpx2.post(service.base_url + "/v1/sessions/import", params={"id": "latin"}, headers=headers,
                         content='[{"role": "user", "content": "café"}]'.encode("latin-1"))  # fmt: skip
    assert answer.status_code == 400  # was a 500
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "not UTF-8" in answer.json()["error"]["message"]
    assert _api(service).get("/v1/sessions", cast_to=object)["data"] == []  # type: ignore[index]  # nothing made


def test_a_streamed_turn_through_the_sessions_api(service: Service) -> None:
    _post(_api(service), "/v1/sessions", {"id": "st"})
    headers = {"x-api-key": service.keys["acme"]}
    with httpx2.stream("POST", service.base_url + "/v1/sessions/st/messages", json={"content": "Hi", "stream": True},
                       headers=headers) as response:  # fmt: skip
        events = [line[7:] for line in response.iter_lines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert _api(service).get("/v1/sessions/st", cast_to=object)["message_count"] == 2  # type: ignore[index]


def test_every_session_route_is_a_404_for_another_tenant(service: Service) -> None:
    _post(_api(service), "/v1/sessions", {"id": "private"})
    other = _api(service, "globex")
    for method, path in [("get", ""), ("get", "/messages"), ("get", "/context"), ("get", "/usage"),
                         ("post", "/undo"), ("post", "/fork"), ("post", "/messages"), ("delete", "")]:  # fmt: skip
        with pytest.raises(anthropic.NotFoundError):
            if method == "get":
                other.get(f"/v1/sessions/private{path}", cast_to=object)
            elif method == "delete":
                other.delete(f"/v1/sessions/private{path}", cast_to=object)
            else:
                _post(other, f"/v1/sessions/private{path}", {"content": "x"} if path == "/messages" else {})
    assert _api(service).get("/v1/sessions/private", cast_to=object)["id"] == "private"  # type: ignore[index]


def test_health_readiness_and_openapi(service: Service) -> None:
    assert httpx2.get(service.base_url + "/healthz").json() == {"status": "ok"}
    assert httpx2.get(service.base_url + "/readyz").json() == {"status": "ready"}
    spec = httpx2.get(service.base_url + "/openapi.json").json()
    assert "/v1/messages" in spec["paths"] and "/v1/sessions/{session_id}/fork" in spec["paths"]


def test_the_openapi_page_shows_examples_for_the_main_endpoints(service: Service) -> None:
    assert "swagger" in httpx2.get(service.base_url + "/docs").text.lower()
    paths = httpx2.get(service.base_url + "/openapi.json").json()["paths"]

    def example(path: str, method: str, status: str = "200") -> Any:
        return paths[path][method]["responses"][status]["content"]["application/json"]["example"]

    proxy = paths["/v1/messages"]["post"]
    assert {p["name"] for p in proxy["parameters"]} >= {"x-session-id", "x-session-version"}
    bodies = proxy["requestBody"]["content"]["application/json"]["examples"]
    assert all(len(b["value"]["messages"]) == 1 for b in bodies.values())  # only the new message is sent
    assert example("/v1/messages", "post")["type"] == "message"
    assert example("/v1/messages", "post", "409")["error"]["type"] == "conflict_error"
    assert example("/v1/sessions", "get")["next_cursor"]
    assert example("/v1/sessions", "post", "201")["id"]
    assert paths["/v1/sessions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert example("/v1/sessions/{session_id}/messages", "get")["next_cursor"]
    assert example("/v1/sessions/{session_id}/messages", "post")["role"] == "assistant"
    assert example("/v1/sessions/{session_id}", "get", "404")["error"]["type"] == "not_found_error"
    assert "passthrough" in example("/v1/usage", "get")
    assert example("/v1/search", "get")["data"][0]["snippet"]
