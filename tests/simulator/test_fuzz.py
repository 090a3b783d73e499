"""Hypothesis-generated bodies never crash the server: always the API's JSON error or a reply."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.testing import Simulator

from .helpers import HEADERS

ANSWERS = {200, 400, 401, 404, 413}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 70_000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
cache_controls = st.sampled_from(
    [None, {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}, {"type": "ephemeral", "ttl": "9m"}, "x"]
)
ids = st.sampled_from(["toolu_1", "toolu_2", "srvtoolu_1", ""])
texts = st.sampled_from(["", " ", "hello", "What was my first message?", "use lookup", "Repeat after me: ok"])
block_types = st.sampled_from(
    [
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "compaction",
        "search_result",
        "unknown",
    ]
)
blocks = st.fixed_dictionaries(
    {"type": block_types},
    optional={
        "text": texts | json_values,
        "id": ids,
        "name": st.sampled_from(["lookup", "web_search"]),
        "input": st.dictionaries(st.text(max_size=5), scalars, max_size=2) | json_values,
        "tool_use_id": ids,
        "content": texts
        | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=2),
        "thinking": texts,
        "signature": st.sampled_from(["", "sig", "U0lNMQ=="]),
        "data": st.sampled_from(["aGVsbG8=", "!!", ""]),
        "source": json_values
        | st.fixed_dictionaries(
            {
                "type": st.sampled_from(["base64", "url", "text", "file"]),
                "media_type": st.sampled_from(["image/png", "text/plain", "application/pdf"]),
                "data": st.sampled_from(["aGVsbG8=", "iVBORw0KGgo=", ""]),
            }
        ),
        "cache_control": cache_controls,
        "is_error": st.booleans() | scalars,
    },
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "system", 3]),
        "content": texts | st.lists(blocks | json_values, max_size=4),
    },
)
tools = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["lookup", "bad name", "web_search"])},
        optional={
            "input_schema": st.just({"type": "object", "properties": {"q": {"type": "string"}}})
            | json_values,
            "type": st.sampled_from(["custom", "web_search_20250305"]),
            "cache_control": cache_controls,
        },
    ),
    max_size=3,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["claude-sonnet-4-6", "claude-opus-5-5", "claude-sonnet-4-5", "nope"])
        | scalars,
        "max_tokens": st.integers(-2, 70_000) | scalars,
        "messages": st.lists(messages, max_size=6) | json_values,
        "system": texts
        | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=2),
        "tools": tools | json_values,
        "tool_choice": st.sampled_from(
            [{"type": "auto"}, {"type": "any"}, {"type": "tool", "name": "lookup"}]
        )
        | json_values,
        "thinking": st.sampled_from([{"type": "enabled", "budget_tokens": 1024}, {"type": "adaptive"}])
        | json_values,
        "stream": st.booleans() | scalars,
        "cache_control": cache_controls,
        "stop_sequences": st.lists(st.text(max_size=3), max_size=2) | scalars,
        "context_management": st.just(
            {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 5}}]}
        )
        | json_values,
    },
)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Simulator, httpx2.Client]]:
    with (
        Simulator() as simulator,
        httpx2.Client(base_url=simulator.base_url, headers=HEADERS, timeout=30) as http,
    ):
        yield simulator, http


def check(response: httpx2.Response) -> None:
    assert response.status_code in ANSWERS, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        assert response.status_code == 200
        assert response.text.rstrip().endswith('data: {"type": "message_stop"}')
        return
    payload = response.json()
    if response.status_code == 200:
        assert payload.get("type") == "message" or set(payload) == {"input_tokens"}, payload
    else:
        assert payload["type"] == "error"
        assert isinstance(payload["error"]["message"], str) and payload["error"]["type"]


SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(body=bodies, count=st.booleans())
def test_generated_bodies_get_a_reply_or_an_api_error(
    server: tuple[Simulator, httpx2.Client], body: dict[str, Any], count: bool
) -> None:
    _sim, http = server
    check(http.post("/v1/messages/count_tokens" if count else "/v1/messages", json=body))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.binary(max_size=64)
    | st.text(max_size=64).map(str.encode)
    | json_values.map(lambda v: json.dumps(v).encode())
)
def test_arbitrary_bytes_get_an_api_error(server: tuple[Simulator, httpx2.Client], raw: bytes) -> None:
    _sim, http = server
    response = http.post("/v1/messages", content=raw)
    check(response)
    assert response.status_code != 200


def test_valid_generated_requests_also_stream(server: tuple[Simulator, httpx2.Client]) -> None:
    _sim, http = server
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    check(http.post("/v1/messages", json=body))


words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")
markers = st.sampled_from([None, None, None, {"type": "ephemeral"}])


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    """Valid requests: alternating turns, text blocks with random markers, tool_use / tool_result pairs."""
    messages: list[dict[str, Any]] = []
    budget = 3  # explicit markers; the automatic one may take the fourth slot
    for turn in range(draw(st.integers(0, 6))):
        text = {"type": "text", "text": draw(words)}
        marker = draw(markers)
        if marker is not None and budget > 0:
            text["cache_control"] = marker
            budget -= 1
        messages.append({"role": "user", "content": [text]})
        if draw(st.booleans()):
            call = {"type": "tool_use", "id": f"toolu_{turn}", "name": "lookup", "input": {"q": draw(words)}}
            messages.append({"role": "assistant", "content": [call]})
            result = {"type": "tool_result", "tool_use_id": f"toolu_{turn}", "content": draw(words)}
            messages.append({"role": "user", "content": [result]})
        messages.append({"role": "assistant", "content": draw(words)})
    messages.append({"role": "user", "content": draw(words)})
    request: dict[str, Any] = {
        "model": draw(st.sampled_from(["claude-sonnet-4-6", "claude-opus-5-5", "claude-haiku-4-5"])),
        "messages": messages,
        "tools": [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}],
    }
    if draw(st.booleans()):
        request["system"] = draw(words)
    if draw(st.booleans()):
        request["cache_control"] = {"type": "ephemeral"}
    return request


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=conversations())
def test_usage_always_adds_up_to_count_tokens(
    server: tuple[Simulator, httpx2.Client], request: dict[str, Any]
) -> None:
    _sim, http = server
    counted = http.post("/v1/messages/count_tokens", json=request)
    assert counted.status_code == 200, counted.text
    reply = http.post("/v1/messages", json={**request, "max_tokens": 300})
    assert reply.status_code == 200, reply.text
    usage = reply.json()["usage"]
    total = usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]
    assert total == counted.json()["input_tokens"]
    assert usage["cache_creation_input_tokens"] == sum(usage["cache_creation"].values())
    assert 1 <= usage["output_tokens"] <= 300
