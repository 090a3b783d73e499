"""Tool use inside one turn: Python functions, caller-driven results, pause_turn."""

from __future__ import annotations

from typing import Any, Literal

import anthropic
import pytest

from claude_history import Chat
from claude_history.errors import ConfigurationError, InvalidHistory, ToolResultsMissing
from claude_history.history import validate
from claude_history.stores.base import Store
from claude_history.testing import Simulator

from .conftest import MODEL, bodies

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather for a city.

    Args:
        city: The city, e.g. Paris.
        unit: Temperature unit.
    """
    return f"{city}: 24 {unit}, sunny"


def test_function_tool_loop_is_one_committed_turn(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    calls: list[dict[str, Any]] = []

    def recorded(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
        """Current weather for a city.

        Args:
            city: The city, e.g. Paris.
            unit: Temperature unit.
        """
        calls.append({"city": city, "unit": unit})
        return get_weather(city, unit)

    recorded.__name__ = "get_weather"
    chat = Chat(client, model=MODEL, store=store, session_id="tools", tools=[recorded])
    reply = chat.send("Please call get_weather for me.")

    assert reply.stop_reason == "end_turn"
    assert "Tool results received" in reply.content[0].text  # type: ignore[union-attr]
    assert len(calls) == 1
    # One turn, one store version, four messages: user, tool_use, tool_result, final answer.
    assert store.load("tools").version == 1
    roles = [m["role"] for m in chat.messages]
    assert roles == ["user", "assistant", "user", "assistant"]
    tool_use = chat.messages[1]["content"][0]
    assert tool_use["type"] == "tool_use" and tool_use["name"] == "get_weather"
    assert calls == [tool_use["input"] | {"unit": calls[0]["unit"]}]
    assert chat.messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": get_weather(**calls[0])}
    ]
    validate(chat.messages, for_sending=False)

    # The schema sent was derived from the type hints and the docstring.
    tool = bodies(sim)[0]["tools"][0]
    assert tool["name"] == "get_weather"
    assert tool["description"] == "Current weather for a city."
    assert tool["input_schema"]["required"] == ["city"]
    assert tool["input_schema"]["properties"]["city"]["description"] == "The city, e.g. Paris."
    assert tool["input_schema"]["properties"]["unit"]["enum"] == ["celsius", "fahrenheit"]
    # Both calls of the loop carried the tools; usage of both replies is stored with them.
    assert len(bodies(sim)) == 2 and all("tools" in b for b in bodies(sim))
    stored = store.load("tools").messages
    assert stored[1].usage is not None and stored[3].usage is not None
    assert stored[1].model == stored[3].model == MODEL


def test_tool_exceptions_become_error_results(sim: Simulator, client: anthropic.Anthropic) -> None:
    def get_weather(city: str) -> str:
        """Weather."""
        raise ValueError("station offline")

    chat = Chat(client, model=MODEL, tools=[get_weather])
    reply = chat.send("call get_weather")
    result = chat.messages[2]["content"][0]
    assert result["is_error"] is True
    assert result["content"] == "ValueError: station offline"
    assert "(error)" in reply.content[0].text  # type: ignore[union-attr]  # the model was told
    assert chat.version == 1


def test_invalid_tool_input_is_reported_to_the_model(sim: Simulator, client: anthropic.Anthropic) -> None:
    def get_weather(city: str, days: int) -> str:
        """Weather."""
        return "never"

    sim.reply_with(
        [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "X"}}], "tool_use"
    )
    chat = Chat(client, model=MODEL, tools=[get_weather])
    chat.send("weather?")
    result = chat.messages[2]["content"][0]
    assert result["is_error"] is True
    assert "Invalid arguments" in result["content"] and "days" in result["content"]


def test_parallel_tool_uses_are_answered_in_one_message(sim: Simulator, client: anthropic.Anthropic) -> None:
    sim.reply_with(
        [
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "tool_use",
    )
    chat = Chat(client, model=MODEL, tools=[get_weather])
    chat.send("weather in Paris and Rome?")
    results = chat.messages[2]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_a", "toolu_b"]
    assert [r["content"] for r in results] == ["Paris: 24 celsius, sunny", "Rome: 24 celsius, sunny"]


def test_explicit_tool_dicts_with_tool_functions(sim: Simulator, client: anthropic.Anthropic) -> None:
    seen: list[dict[str, Any]] = []

    def weather(**kwargs: Any) -> dict[str, Any]:
        seen.append(kwargs)
        return {"temp": 24, "sky": "sunny"}

    chat = Chat(client, model=MODEL, tools=[WEATHER_TOOL], tool_functions={"get_weather": weather})
    chat.send("use get_weather")
    assert seen == [chat.messages[1]["content"][0]["input"]]
    assert chat.messages[2]["content"][0]["content"] == '{"temp": 24, "sky": "sunny"}'
    assert bodies(sim)[0]["tools"] == [WEATHER_TOOL]
    with pytest.raises(ConfigurationError, match="no tool definition"):
        Chat(client, model=MODEL, tool_functions={"missing": weather})


def test_caller_driven_tool_use_commits_when_the_turn_ends(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="caller", tools=[WEATHER_TOOL])
    chat.send("hello")
    reply = chat.send("What's the weather? use get_weather")
    assert reply.stop_reason == "tool_use"
    # Pending in memory, not committed.
    assert len(chat.messages) == 2 and store.load("caller").version == 1
    assert [m["role"] for m in chat.pending] == ["user", "assistant"]
    (use,) = chat.pending_tool_uses
    assert use["name"] == "get_weather"

    # A plain message while results are owed is refused, and the pending turn stays as it was.
    with pytest.raises(ToolResultsMissing, match="waiting for tool results") as refused:
        chat.send("never mind")
    assert refused.value.tool_use_ids == [use["id"]] and isinstance(refused.value, InvalidHistory)
    assert len(chat.pending) == 2

    # A failed continuation keeps the pending turn too.
    sim.fail_next(500)
    with pytest.raises(anthropic.InternalServerError):
        chat.send_tool_results({use["id"]: "24°C"})
    assert len(chat.pending) == 2 and store.load("caller").version == 1

    final = chat.send_tool_results({use["id"]: "24°C"})
    assert final.stop_reason == "end_turn"
    assert chat.pending == [] and chat.pending_tool_uses == []
    assert store.load("caller").version == 2  # the whole tool turn in one append
    assert [m["role"] for m in chat.messages] == ["user", "assistant"] * 3
    assert chat.messages[4]["content"] == [
        {"type": "tool_result", "tool_use_id": use["id"], "content": "24°C"}
    ]
    validate(chat.messages, for_sending=False)


def test_caller_driven_results_as_blocks_with_errors(client: anthropic.Anthropic) -> None:
    chat = Chat(client, model=MODEL, tools=[WEATHER_TOOL])
    chat.send("use get_weather")
    (use,) = chat.pending_tool_uses
    with pytest.raises(InvalidHistory, match="do not match"):
        chat.send_tool_results({"toolu_wrong": "x", use["id"]: "y"})
    reply = chat.send(
        [{"type": "tool_result", "tool_use_id": use["id"], "content": "no data", "is_error": True}, "sorry"]
    )
    assert "(error)" in reply.content[0].text  # type: ignore[union-attr]
    assert chat.messages[2]["content"][1] == {"type": "text", "text": "sorry"}
    chat.send("use get_weather")
    (use,) = chat.pending_tool_uses
    chat.send_tool_results({use["id"]: TimeoutError("took too long")})
    assert chat.messages[6]["content"][0]["is_error"] is True
    assert chat.messages[6]["content"][0]["content"] == "TimeoutError: took too long"


def test_a_dead_process_loses_only_the_pending_turn(client: anthropic.Anthropic, store: Store) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="dies", tools=[WEATHER_TOOL])
    chat.send("hello")
    chat.send("use get_weather")
    del chat  # the process dies while the caller runs the tool
    after = Chat(client, model=MODEL, store=store, session_id="dies", tools=[WEATHER_TOOL])
    assert len(after.messages) == 2 and after.pending_tool_uses == []
    validate(after.messages, for_sending=False)
    after.send("hello again")


def test_commit_pending_keeps_the_tool_use_across_processes(
    client: anthropic.Anthropic, store: Store
) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="cp", tools=[WEATHER_TOOL], commit_pending=True)
    chat.send("use get_weather")
    assert store.load("cp").version == 1  # user + tool_use stored at once
    (use,) = chat.pending_tool_uses
    del chat
    later = Chat(client, model=MODEL, store=store, session_id="cp", tools=[WEATHER_TOOL], commit_pending=True)
    assert later.pending_tool_uses == [use]
    with pytest.raises(InvalidHistory, match="waiting for tool results"):
        later.send("something else")
    later.send_tool_results({use["id"]: "24°C"})
    assert store.load("cp").version == 2
    assert [m["role"] for m in later.messages] == ["user", "assistant", "user", "assistant"]
    # undo removes the whole turn, tool exchange included.
    later.undo()
    assert later.messages == []


def test_max_tool_rounds_hands_the_turn_back(sim: Simulator, client: anthropic.Anthropic) -> None:
    for k in range(3):
        sim.reply_with(
            [{"type": "tool_use", "id": f"toolu_{k}", "name": "get_weather", "input": {"city": "P"}}],
            "tool_use",
        )
    chat = Chat(client, model=MODEL, tools=[get_weather], max_tool_rounds=2)
    reply = chat.send("weather, again and again")
    assert reply.stop_reason == "tool_use"
    assert len(bodies(sim)) == 3  # the first call and two automatic rounds
    assert chat.messages == [] and [u["id"] for u in chat.pending_tool_uses] == ["toolu_2"]
    final = chat.resume()  # runs the open tool and goes on
    assert final.stop_reason == "end_turn"
    assert len(chat.messages) == 8 and chat.version == 1
    assert chat.messages[6]["content"][0]["content"] == "P: 24 celsius, sunny"


def test_caller_results_after_the_round_limit(sim: Simulator, client: anthropic.Anthropic) -> None:
    sim.reply_with(
        [{"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {"city": "P"}}], "tool_use"
    )
    chat = Chat(client, model=MODEL, tools=[get_weather], max_tool_rounds=0)
    chat.send("weather?")
    assert [u["id"] for u in chat.pending_tool_uses] == ["toolu_0"]
    chat.send_tool_results({"toolu_0": "my own answer"})
    assert chat.messages[2]["content"][0]["content"] == "my own answer" and chat.version == 1


def test_per_call_tools(sim: Simulator, client: anthropic.Anthropic) -> None:
    chat = Chat(client, model=MODEL)
    chat.send("use get_weather", tools=[get_weather])
    assert bodies(sim)[0]["tools"][0]["name"] == "get_weather"
    assert chat.messages[2]["content"][0]["content"].endswith(": 24 celsius, sunny")
    chat.send("plain")
    assert "tools" not in bodies(sim)[-1]


def test_async_tool_functions_need_async_chat(client: anthropic.Anthropic) -> None:
    async def lookup(q: str) -> str:
        """Look up."""
        return q

    with pytest.raises(ConfigurationError, match="AsyncChat"):
        Chat(client, model=MODEL, tools=[lookup])


PAUSE_MODEL = "claude-sonnet-4-6"  # no prefill: the request may still end with a paused turn
SEARCH = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "paris"}}
SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": "srvtoolu_1",
    "content": [
        {"type": "web_search_result", "url": "https://e.x", "title": "E", "encrypted_content": "Zm9v"}
    ],
}


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
def test_pause_turn_is_continued_within_the_turn(
    sim: Simulator, client: anthropic.Anthropic, store: Store, stream: bool
) -> None:
    sim.reply_with([SEARCH, SEARCH_RESULT], stop_reason="pause_turn")
    sim.reply_with("Paris is sunny.")
    chat = Chat(client, model=PAUSE_MODEL, store=store, session_id="pause")
    if stream:
        with chat.stream("search the weather in paris") as s:
            text = "".join(s.text_stream)
            reply = s.get_final_message()
        assert text == "Paris is sunny."
    else:
        reply = chat.send("search the weather in paris")
    assert reply.stop_reason == "end_turn"
    sent = bodies(sim)
    assert len(sent) == 2
    # The paused response went back exactly as it came, as the last message of the second request.
    assert sent[1]["messages"] == [
        {"role": "user", "content": "search the weather in paris"},
        {"role": "assistant", "content": [SEARCH, SEARCH_RESULT]},
    ]
    # Stored as one turn with one assistant message (strict alternation), usage of both calls kept.
    assert store.load("pause").version == 1
    assert chat.messages[1] == {
        "role": "assistant",
        "content": [SEARCH, SEARCH_RESULT, {"type": "text", "text": "Paris is sunny."}],
    }
    usage = store.load("pause").messages[1].usage
    assert usage is not None and len(usage["requests"]) == 2
    assert usage["output_tokens"] == sum(r["output_tokens"] for r in usage["requests"])
    assert chat.usage.output_tokens == usage["output_tokens"]
    validate(chat.messages, for_sending=False)


def test_pause_beyond_the_round_limit_can_be_resumed(sim: Simulator, client: anthropic.Anthropic) -> None:
    sim.reply_with([SEARCH, SEARCH_RESULT], stop_reason="pause_turn")
    sim.reply_with("done")
    chat = Chat(client, model=PAUSE_MODEL, max_tool_rounds=0)
    reply = chat.send("search")
    assert reply.stop_reason == "pause_turn"
    assert chat.messages == [] and len(chat.pending) == 2
    final = chat.resume()
    assert final.stop_reason == "end_turn"
    assert len(chat.messages) == 2 and chat.version == 1


def test_with_commit_pending_a_pause_beyond_the_round_limit_is_stored_as_it_stands(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    sim.reply_with([SEARCH, SEARCH_RESULT], stop_reason="pause_turn")
    sim.reply_with("Paris is sunny.")
    chat = Chat(client, model=PAUSE_MODEL, store=store, session_id="kept", max_tool_rounds=0, commit_pending=True)
    reply = chat.send("search the weather in paris")
    assert reply.stop_reason == "pause_turn" and chat.pending == []
    # A process that cannot keep the turn pending (a server between requests) loses nothing of it.
    stored = store.load("kept")
    assert stored.version == 1 and stored.message_params() == [
        {"role": "user", "content": "search the weather in paris"},
        {"role": "assistant", "content": [SEARCH, SEARCH_RESULT]},
    ]
    Chat(client, model=PAUSE_MODEL, store=store, session_id="kept").send("And now?")
    assert [m.role for m in store.load("kept").messages] == ["user", "assistant"] * 2


def test_an_empty_reply_waits_for_more_content(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    sim.reply_with([])  # the API can answer with no content at all
    chat = Chat(client, model=MODEL, store=store, session_id="empty")
    reply = chat.send("hello")
    assert reply.content == []
    assert chat.messages == [] and chat.pending == [{"role": "user", "content": "hello"}]
    chat.send("are you there?")
    # Both user messages became one (alternation kept); the empty call's usage is kept with the reply.
    assert chat.messages[0] == {
        "role": "user",
        "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "are you there?"}],
    }
    assert len(store.load("empty").messages[1].usage["requests"]) == 2  # type: ignore[index]
    validate(chat.messages, for_sending=False)


def test_cancel_the_other_async_tools_when_one_raises(sim: Simulator) -> None:
    import asyncio

    cancelled: list[str] = []

    async def slow(city: str) -> str:
        """Slow."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(city)
            raise
        return "never"

    async def fast(city: str) -> str:
        """Fast."""
        raise RuntimeError("fast failed")

    async def main() -> None:
        from claude_history import AsyncChat

        sim.reply_with(
            [
                {"type": "tool_use", "id": "toolu_s", "name": "slow", "input": {"city": "A"}},
                {"type": "tool_use", "id": "toolu_f", "name": "fast", "input": {"city": "B"}},
            ],
            "tool_use",
        )
        chat = AsyncChat(
            sim.async_client(max_retries=0), model=MODEL, tools=[slow, fast], tool_errors="raise"
        )
        with pytest.raises(RuntimeError, match="fast failed"):
            await chat.send("go")
        assert chat.messages == [] and chat.pending == []

    asyncio.run(main())
    assert cancelled == ["A"]
