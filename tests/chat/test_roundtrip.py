"""Stored replies are byte-exact: what the simulator sent is what SQLite gives back and what is sent again."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from claude_history import Chat
from claude_history.stores import open_store
from claude_history.testing import Simulator

from .conftest import RawReplies, bodies

# Blocks in the API's JSON form, as the API sends them (signatures, encrypted data, citations, server tools).
THINKING = {
    "type": "thinking",
    "thinking": "The user wants the weather. I should call the tool.\nLet me think… ünïcødé ✓",
    "signature": "EqQBCkYIBxgCKkBtW+fake/sig==" + "A" * 120,
}
REDACTED = {
    "type": "redacted_thinking",
    "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP",
}
TOOL_USE = {
    "type": "tool_use",
    "id": "toolu_01A09q90qw90lq917835lq9",
    "name": "get_weather",
    "input": {"city": "Paris", "days": 3, "units": {"temp": "C"}, "tags": ["a", "b"], "exact": 1.25},
}
SERVER_TOOL_USE = {
    "type": "server_tool_use",
    "id": "srvtoolu_014hJH82Qum7Td6UV8gDXThB",
    "name": "web_search",
    "input": {"query": "weather paris"},
}
WEB_SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_014hJH82Qum7Td6UV8gDXThB",
    "content": [
        {
            "type": "web_search_result",
            "url": "https://example.com/paris",
            "title": "Paris weather",
            "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5LTQ1NGUtODgxNC1kNjNjNTk1ZWI3Y",
            "page_age": "April 30, 2025",
        }
    ],
}
CITED_TEXT = {
    "type": "text",
    "text": "It is sunny in Paris.",
    "citations": [
        {
            "type": "web_search_result_location",
            "url": "https://example.com/paris",
            "title": "Paris weather",
            "encrypted_index": "Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm",
            "cited_text": "Sunny, 24°C",
        }
    ],
}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
FIRST = [THINKING, REDACTED, {"type": "text", "text": "Let me check."}, TOOL_USE]
FINAL = [SERVER_TOOL_USE, WEB_SEARCH_RESULT, CITED_TEXT]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _run_turn(sim: Simulator, chat: Chat, stream: bool) -> None:
    sim.reply_with(FIRST, stop_reason="tool_use")
    sim.reply_with(FINAL)
    if stream:
        with chat.stream("Weather in Paris?") as s:
            s.until_done()
        with chat.stream(
            [{"type": "tool_result", "tool_use_id": TOOL_USE["id"], "content": "24°C, sunny"}]
        ) as s:
            s.until_done()
    else:
        reply = chat.send("Weather in Paris?")
        assert reply.stop_reason == "tool_use"
        chat.send_tool_results({TOOL_USE["id"]: "24°C, sunny"})


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_blocks_round_trip_through_sqlite_byte_exact(
    sim: Simulator, raw: tuple[anthropic.Anthropic, RawReplies], sqlite_url: str, stream: bool
) -> None:
    client, replies = raw
    chat = Chat(
        client,
        model="claude-sonnet-4-6",
        store=sqlite_url,
        session_id="exact",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[WEATHER_TOOL],
    )
    _run_turn(sim, chat, stream)

    # What the simulator sent: the raw JSON bodies (non-streaming), or the queued blocks it streamed whole.
    sent_first = replies.bodies[0]["content"] if not stream else FIRST
    sent_final = replies.bodies[1]["content"] if not stream else FINAL
    assert sent_first == FIRST and sent_final == FINAL

    # A fresh connection to the SQLite file: the stored assistant messages are exactly those blocks.
    fresh = open_store(sqlite_url)
    stored = fresh.load("exact").message_params()
    fresh.close()
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert _canonical(stored[1]["content"]) == _canonical(sent_first)
    assert _canonical(stored[3]["content"]) == _canonical(sent_final)
    assert stored[1]["content"] == sent_first and stored[3]["content"] == sent_final

    # And they go back to the API unchanged: the second request carried the first reply as it came.
    assert _canonical(bodies(sim)[1]["messages"][1]["content"]) == _canonical(sent_first)

    # A new chat over the file continues with every block intact (the simulator verifies the signature).
    again = Chat(
        client,
        model="claude-sonnet-4-6",
        store=sqlite_url,
        session_id="exact",
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        tools=[WEATHER_TOOL],
    )
    again.send("Thanks!")
    resent = bodies(sim)[-1]["messages"]
    assert _canonical(resent[1]["content"]) == _canonical(sent_first)
    assert _canonical(resent[3]["content"]) == _canonical(sent_final)


def test_default_thinking_signatures_survive_on_a_binding_model(sim: Simulator, sqlite_url: str) -> None:
    # claude-opus-5-5 binds each thinking block to the prefix before it: any change to the stored blocks or
    # the history before them makes the simulator reject the next request with "Invalid signature".
    client = sim.client(max_retries=0)
    kwargs: dict[str, Any] = {
        "model": "claude-opus-5-5",
        "store": sqlite_url,
        "session_id": "bound",
        "max_tokens": 4096,
        "thinking": {"type": "adaptive"},  # this model takes adaptive thinking only
    }
    Chat(client, **kwargs).send("first")
    Chat(client, **kwargs).send("second")
    chat = Chat(client, **kwargs)
    reply = chat.send("what was my first message?")
    assert reply.content[0].type == "thinking"
    assert [b["type"] for b in chat.messages[1]["content"]] == ["thinking", "text"]
    assert chat.messages[1]["content"][0]["signature"]
