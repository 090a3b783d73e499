"""The official Python SDK, unmodified, against the stateful proxy: it sends only new messages."""

from __future__ import annotations

import json
import socket
from typing import Any

import anthropic
import httpx2
import pytest

from claude_history.errors import SessionNotFound
from claude_history.server.usage_records import USAGE_TAG
from claude_history.stores import open_store
from claude_history.testing import Simulator
from waiting import wait_until

from .conftest import MODEL, Service


def test_a_client_sending_only_new_messages_gets_a_multi_turn_conversation(service: Service, sim: Simulator) -> None:
    client = service.client(session="trip")
    first = client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    second = client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "More"}])
    assert first.content and second.content
    sent = sim.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    store = open_store(service.store_url)
    data = store.load("acme/trip")
    assert data.info.owner == "acme"
    assert [m.role for m in data.messages] == ["user", "assistant", "user", "assistant"]
    assert data.messages[3].message["content"] == second.model_dump(mode="json", exclude_unset=True)["content"]


def test_a_streamed_reply_reaches_the_client_event_for_event_and_is_stored(service: Service, sim: Simulator) -> None:
    client = service.client(session="s")
    with client.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    direct = sim.client()
    with direct.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]) as d:
        expected = [e.type for e in d]
    with client.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
        got = [e.type for e in s]
    assert got == expected
    stored = open_store(service.store_url).load("acme/s")
    assert [m.role for m in stored.messages] == ["user", "assistant", "user", "assistant"]
    assert stored.messages[1].message["content"][0]["text"] == text


async def test_the_async_client_keeps_the_conversation(service: Service) -> None:
    client = service.async_client(session="a")
    for text in ("one", "two", "three"):
        await client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": text}])
    await client.close()
    assert open_store(service.store_url).get_session("acme/a").message_count == 6


def test_a_tool_round_trip_stores_the_tool_use_and_its_result(service: Service, sim: Simulator) -> None:
    tools = [{"name": "weather", "description": "Weather in a city", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    client = service.client(session="tools")
    sim.reply_with([{"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris"}}],
                   stop_reason="tool_use")
    first = client.messages.create(model=MODEL, max_tokens=100, tools=tools,  # type: ignore[arg-type]
                                   messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    result = {"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"}
    final = client.messages.create(model=MODEL, max_tokens=100, tools=tools,  # type: ignore[arg-type]
                                   messages=[{"role": "user", "content": [result]}])
    assert final.stop_reason == "end_turn"
    sent = sim.requests[-1]["body"]["messages"]
    assert sent[1]["content"][0]["type"] == "tool_use" and sent[2]["content"][0]["type"] == "tool_result"
    stored = open_store(service.store_url).load("acme/tools")
    assert [m.role for m in stored.messages] == ["user", "assistant", "user", "assistant"]


def test_a_client_resending_its_whole_history_has_only_the_new_part_stored(service: Service) -> None:
    client = service.client(session="full")
    history: list[dict[str, object]] = [{"role": "user", "content": "Hi"}]
    reply = client.messages.create(model=MODEL, max_tokens=50, messages=history)  # type: ignore[arg-type]
    history += [{"role": "assistant", "content": reply.content}, {"role": "user", "content": "Again"}]
    client.messages.create(model=MODEL, max_tokens=50, messages=history)  # type: ignore[arg-type]
    stored = open_store(service.store_url).load("acme/full")
    assert [m.message["content"] for m in stored.messages][::2] == ["Hi", "Again"]
    assert len(stored.messages) == 4


def test_a_history_from_elsewhere_starts_a_session_in_one_commit(service: Service, sim: Simulator) -> None:
    client = service.client(session="moved")
    history = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
               {"role": "user", "content": "c"}]
    client.messages.create(model=MODEL, max_tokens=50, messages=history)  # type: ignore[arg-type]
    stored = open_store(service.store_url).load("acme/moved")
    assert stored.version == 1 and len(stored.messages) == 4


def test_a_stale_version_or_a_diverged_history_is_a_409_in_the_api_shape(service: Service) -> None:
    client = service.client(session="race")
    client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.ConflictError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}],
                               extra_headers={"x-session-version": "0"})
    assert caught.value.body["error"]["type"] == "conflict_error"  # type: ignore[index]
    stale = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "not what was said"},
             {"role": "user", "content": "next"}]
    with pytest.raises(anthropic.ConflictError, match=r"messages\.1 differs"):
        client.messages.create(model=MODEL, max_tokens=50, messages=stale)  # type: ignore[arg-type]
    assert open_store(service.store_url).get_session("acme/race").message_count == 2


def test_another_tenants_session_is_not_found(service: Service) -> None:
    service.client(session="mine").messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "secret"}]
    )
    other = service.client("globex")
    with pytest.raises(anthropic.NotFoundError):
        other.get("/v1/sessions/mine", cast_to=object)
    with pytest.raises(anthropic.NotFoundError):
        other.get("/v1/sessions/mine/messages", cast_to=object)
    # The same id in the other tenant's proxy is its own, new conversation.
    service.client("globex", session="mine").messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hello"}]
    )
    assert open_store(service.store_url).get_session("globex/mine").message_count == 2
    assert open_store(service.store_url).get_session("acme/mine").message_count == 2


def test_a_missing_or_revoked_key_is_a_401(service: Service) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(api_key="chk_nope", base_url=service.base_url, max_retries=0).messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


def test_without_a_session_header_the_request_passes_through(service: Service, sim: Simulator) -> None:
    client = service.client()
    reply = client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert reply.content
    assert sim.requests[-1]["headers"].get("x-api-key") == "test"  # the server's key, never the tenant's
    with client.messages.stream(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}]) as s:
        assert "".join(s.text_stream)
        streamed = s.get_final_message()
    metrics = httpx2.get(service.base_url + "/metrics").text
    assert 'claude_history_turns_total{mode="passthrough"' in metrics
    assert service.keys["acme"] not in metrics
    # Its usage and cost are the tenant's, kept in the store (in the background: wait for it) ...
    totals = wait_until(lambda: _totals_once(client, 2), "the pass-through usage in the tenant's totals", 30)
    expected = reply.usage.output_tokens + streamed.usage.output_tokens
    assert totals["passthrough"]["usage"]["output_tokens"] == expected
    assert totals["usage"]["output_tokens"] == expected and totals["cost_usd"] > 0
    assert totals["sessions"] == 0
    # ... never in any session listing, search or another tenant's totals, and no content is kept.
    assert client.get("/v1/sessions", cast_to=object)["data"] == []  # type: ignore[index]
    assert client.get("/v1/search", options={"params": {"q": "pass-through"}}, cast_to=object)["data"] == []  # type: ignore[index]
    other = service.client("globex").get("/v1/usage", cast_to=object)
    assert other["passthrough"]["requests"] == 0 and other["usage"]["output_tokens"] == 0  # type: ignore[index]
    store = open_store(service.store_url)
    (record,) = store.list_sessions(owner="acme")
    texts = json.dumps(store.load(record.id).message_params())
    assert "Hi" not in texts and reply.content[0].text not in texts  # type: ignore[union-attr]


def _totals_once(client: anthropic.Anthropic, requests: int) -> dict[str, Any] | None:
    totals: dict[str, Any] = client.get("/v1/usage", cast_to=object)  # type: ignore[assignment]
    return totals if totals["passthrough"]["requests"] == requests else None


def test_pass_through_usage_is_kept_in_the_store_and_adds_up_over_servers(start_service: Any) -> None:
    first, second = start_service(), start_service()
    for service in (first, second):
        service.client().messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    totals = wait_until(lambda: _totals_once(first.client(), 2), "both servers' pass-through usage", 30)
    assert totals["passthrough"]["cost_usd"] > 0
    assert len(open_store(first.store_url).list_sessions(owner="acme")) == 2  # one record per server process


def test_an_upstream_error_keeps_its_status_and_body_and_stores_nothing(service: Service, sim: Simulator) -> None:
    client = service.client(session="err")
    sim.fail_next(529)
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 529
    with pytest.raises(SessionNotFound):
        open_store(service.store_url).get_session("acme/err")


def test_count_tokens_counts_the_stored_history_with_the_new_message(service: Service) -> None:
    client = service.client(session="count")
    empty = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Hello there"}])
    client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hello there"}])
    after = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Hello there"}])
    assert after.input_tokens > empty.input_tokens


@pytest.mark.parametrize("messages", [[1], [{"role": "user", "content": "Hi"}, "text"], [], None])
def test_count_tokens_on_a_session_refuses_messages_that_are_not_objects(service: Service, messages: object) -> None:
    service.client(session="count-bad").messages.create(model=MODEL, max_tokens=50,
                                                         messages=[{"role": "user", "content": "Hello"}])  # fmt: skip
    headers = {"x-api-key": service.keys["acme"], "x-session-id": "count-bad", "anthropic-version": "2023-06-01"}
    answer = httpx2.post(service.base_url + "/v1/messages/count_tokens", headers=headers,
                         json={"model": MODEL, "messages": messages})  # fmt: skip
    assert answer.status_code == 400  # was a 500 (and a dropped connection) for a list holding a non-object
    assert answer.json()["error"] == {
        "type": "invalid_request_error", "message": "messages: a non-empty list of message objects is required"
    }


def test_a_client_that_disconnects_mid_stream_finds_the_whole_turn_stored(service: Service, sim: Simulator) -> None:
    sim.reply_with("word " * 2000)
    body = {"model": MODEL, "max_tokens": 4000, "stream": True, "messages": [{"role": "user", "content": "Long"}]}
    headers = {"x-api-key": service.keys["acme"], "x-session-id": "cut", "anthropic-version": "2023-06-01"}
    with httpx2.Client() as http, http.stream("POST", service.base_url + "/v1/messages", json=body,
                                              headers=headers) as response:  # fmt: skip
        assert response.status_code == 200
        next(response.iter_raw())  # the first bytes, then the client goes away
    store = open_store(service.store_url)
    data = wait_until(lambda: _loaded(store, "acme/cut"), "the turn of a disconnected client to be committed")
    assert data.messages[1].message["content"][0]["text"] == "word " * 2000


def _loaded(store: Any, session_id: str) -> Any:
    try:
        data = store.load(session_id)
    except SessionNotFound:
        return None
    return data if len(data.messages) == 2 else None


def test_metrics_count_turns_tokens_cost_and_conflicts(service: Service) -> None:
    client = service.client(session="m")
    client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.ConflictError):
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}],
                               extra_headers={"x-session-version": "7"})  # fmt: skip
    text = httpx2.get(service.base_url + "/metrics").text
    assert 'claude_history_turns_total{mode="session",model="claude-sonnet-4-6",tenant="acme"} 1.0' in text
    assert 'claude_history_tokens_total{kind="output_tokens"' in text
    assert 'claude_history_cost_usd_total{model="claude-sonnet-4-6",tenant="acme"}' in text
    assert 'claude_history_conflicts_total{tenant="acme"} 1.0' in text
    assert "claude_history_http_request_seconds_bucket" in text


def test_a_tenant_over_its_rate_limit_gets_429_with_retry_after(start_service: Any) -> None:
    service = start_service(rate_limit=0.001, rate_burst=2)
    client = service.client(session="r")
    for _ in range(2):
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert int(caught.value.response.headers["retry-after"]) >= 1
    service.client("globex").messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_a_body_over_the_limit_is_a_413(start_service: Any) -> None:
    service = start_service(max_body_bytes=2000)
    with pytest.raises(anthropic.APIStatusError) as caught:
        service.client(session="big").messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert caught.value.status_code == 413


def test_without_tenants_the_usage_record_is_hidden_too(start_service: Any) -> None:
    service = start_service(auth=False)
    client = anthropic.Anthropic(api_key="unused", base_url=service.base_url, max_retries=0)
    client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    wait_until(lambda: _totals_once(client, 1), "the pass-through usage in the totals", 30)
    assert client.get("/v1/sessions", cast_to=object)["data"] == []  # type: ignore[index]
    (record,) = open_store(service.store_url).list_sessions(tag=USAGE_TAG)
    with pytest.raises(anthropic.NotFoundError):
        client.get(f"/v1/sessions/{record.id}", cast_to=object)


def test_an_invalid_new_message_is_a_400_naming_its_place_in_the_whole_session(
    service: Service, sim: Simulator
) -> None:
    """The service checks only the stored history's last turn and what is new (the rest was valid when it was
    committed), and the error still names the message by its index in the whole session."""
    client = service.client(session="orphan")
    for text in ("one", "two", "three"):
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": text}])
    calls = len(sim.requests)
    orphan = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "x"}]}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=50, messages=[orphan])  # type: ignore[list-item]
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "messages[6]" in caught.value.message
    assert len(sim.requests) == calls  # refused before the upstream call
    assert len(open_store(service.store_url).load("acme/orphan").messages) == 6  # nothing stored


def test_an_unreachable_upstream_is_a_502_in_the_api_shape_and_stores_nothing(start_service: Any) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = start_service(upstream_url=f"http://127.0.0.1:{port}")
    with pytest.raises(anthropic.APIStatusError) as caught:
        service.client(session="down").messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "error"  # type: ignore[index]
    assert "could not be reached" in caught.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(SessionNotFound):
        open_store(service.store_url).get_session("acme/down")


def test_an_upstream_slower_than_the_timeout_is_a_502_and_the_next_turn_works(
    start_service: Any, sim: Simulator
) -> None:
    service = start_service(upstream_timeout=0.5)
    client = service.client(session="slow")
    sim.reply_delay = 2.0
    try:
        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Hi"}])
    finally:
        sim.reply_delay = 0.0
    assert caught.value.status_code == 502
    reply = client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Hi again"}])
    assert reply.content
    stored = open_store(service.store_url).load("acme/slow").message_params()
    assert [m["role"] for m in stored] == ["user", "assistant"]  # only the turn that was answered


def test_beta_turns_reach_the_upstream_with_the_beta_query_and_header(service: Service, sim: Simulator) -> None:
    client = service.client(session="beta")
    client.beta.messages.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Hi"}], betas=["context-1m-2025-08-07"]
    )
    request = [r for r in sim.requests if r["method"] == "POST"][-1]
    assert request["headers"].get("anthropic-beta") == "context-1m-2025-08-07"
    assert "beta=true" in request["path"]
