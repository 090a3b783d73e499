"""Default replies, tools, thinking signatures, output limits, compaction and streaming of every block
type."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from claude_history.testing import Simulator

from .helpers import MODEL, assistant, body, error_of, image_block, post, user
from .test_sdk import as_json

WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1},
            "verbose": {"type": "boolean"},
        },
        "required": ["city", "unit", "days"],
    },
}
CLOCK = {"name": "get_time", "description": "Time", "input_schema": {"type": "object", "properties": {}}}


def test_tool_use_when_the_user_names_a_tool(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    question = user("Please use get_weather for Paris")
    reply = client.messages.create(model=MODEL, max_tokens=300, tools=[CLOCK, WEATHER], messages=[question])
    assert reply.stop_reason == "tool_use"
    (call,) = reply.content
    assert call.type == "tool_use"
    assert call.name == "get_weather"
    assert call.input == {"city": "example", "unit": "celsius", "days": 1}
    assert call.id.startswith("toolu_")

    result = {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 degrees"}
    follow = client.messages.create(
        model=MODEL,
        max_tokens=300,
        tools=[CLOCK, WEATHER],
        messages=[question, reply.to_param(), user([result])],
    )
    assert follow.stop_reason == "end_turn"
    assert follow.content[0].text == f'Tool results received: {call.id}: "Sunny, 21 degrees".'


def test_tool_choice_forces_a_tool_and_none_forbids_it(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    forced = client.messages.create(
        model=MODEL,
        max_tokens=300,
        tools=[CLOCK, WEATHER],
        tool_choice={"type": "tool", "name": "get_time"},
        messages=[user("hello")],
    )
    assert [b.type for b in forced.content] == ["tool_use"]
    assert forced.content[0].name == "get_time"
    assert forced.content[0].input == {}
    anything = client.messages.create(
        model=MODEL,
        max_tokens=300,
        tools=[CLOCK, WEATHER],
        tool_choice={"type": "any"},
        messages=[user("hi")],
    )
    assert anything.content[0].name == "get_time"  # no tool named: the first one
    plain = client.messages.create(
        model=MODEL, max_tokens=300, tools=[CLOCK, WEATHER], messages=[user("hello")]
    )
    assert plain.content[0].type == "text"
    none = client.messages.create(
        model=MODEL,
        max_tokens=300,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        messages=[user("use get_weather")],
    )
    assert none.content[0].type == "text"


def test_rules_for_previous_message_repeat_words_and_images(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    history = [user("alpha"), assistant("ok"), user("What was my previous message?")]
    reply = client.messages.create(model=MODEL, max_tokens=300, messages=history)
    assert reply.content[0].text == 'Your previous message was: "alpha"'
    reply = client.messages.create(model=MODEL, max_tokens=300, messages=[user("Repeat after me: Done.")])
    assert reply.content[0].text == "Done."
    reply = client.messages.create(model=MODEL, max_tokens=300, messages=[user("Write 5 words")])
    assert reply.content[0].text == "word1 word2 word3 word4 word5"
    pictures = user([image_block(300, 200), {"type": "text", "text": "look"}])
    reply = client.messages.create(model=MODEL, max_tokens=300, messages=[pictures])
    assert reply.content[0].text.endswith("I see 1 image: 300x200.")


def test_a_prefill_is_answered_from_the_last_user_message(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    prefill = [user("Repeat after me: hello"), assistant("Sure:")]
    reply = client.messages.create(model="claude-haiku-4-5", max_tokens=100, messages=prefill)
    assert reply.content[0].text == "hello"


def test_max_tokens_cuts_the_reply(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    reply = client.messages.create(model=MODEL, max_tokens=20, messages=[user("Write 100 words")])
    assert reply.stop_reason == "max_tokens"
    assert reply.usage.output_tokens <= 20
    full = client.messages.create(model=MODEL, max_tokens=4000, messages=[user("Write 100 words")])
    assert full.stop_reason == "end_turn"
    assert full.content[0].text.startswith(reply.content[0].text)
    assert len(reply.content[0].text) < len(full.content[0].text)


def test_stop_sequences(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.reply_with("one two STOP three")
    reply = client.messages.create(
        model=MODEL, max_tokens=100, stop_sequences=["STOP"], messages=[user("go")]
    )
    assert (reply.content[0].text, reply.stop_reason, reply.stop_sequence) == (
        "one two ",
        "stop_sequence",
        "STOP",
    )


def test_output_tokens_follow_the_token_rule(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.reply_with("x" * 400)
    reply = client.messages.create(model=MODEL, max_tokens=1000, messages=[user("go")])
    assert reply.usage.output_tokens == 100 + 3  # ceil(400 / 4) + block overhead


THINKING = {"type": "adaptive"}  # accepted by claude-sonnet-4-6 and claude-opus-5-5 (models.MODELS)


def test_thinking_block_comes_first_with_a_signature(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    reply = client.messages.create(model=MODEL, max_tokens=2000, thinking=THINKING, messages=[user("Think")])
    assert [b.type for b in reply.content] == ["thinking", "text"]
    assert reply.content[0].thinking
    assert reply.content[0].signature
    with client.messages.stream(
        model=MODEL, max_tokens=2000, thinking=THINKING, messages=[user("Think")]
    ) as s:
        streamed = s.get_final_message()
    assert as_json(streamed.content) == as_json(reply.content)


def tool_turn(client: anthropic.Anthropic, model: str, question: str) -> list[dict[str, Any]]:
    """A user question and the thinking + tool_use reply, as a history ready for the tool result."""
    first = user(question)
    reply = client.messages.create(
        model=model, max_tokens=2000, thinking=THINKING, tools=[WEATHER], messages=[first]
    )
    assert [b.type for b in reply.content] == ["thinking", "tool_use"]
    turn = reply.to_param()
    turn["content"] = [b.to_dict() for b in reply.content]
    return [first, turn]


def test_thinking_in_a_tool_use_turn_must_come_back_unchanged(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    history = tool_turn(client, MODEL, "use get_weather")
    call_id = history[1]["content"][1]["id"]
    result = user([{"type": "tool_result", "tool_use_id": call_id, "content": "rain"}])
    payload = body(*history, result, max_tokens=2000, thinking=THINKING, tools=[WEATHER])
    assert post(sim.base_url, payload).status_code == 200

    history[1]["content"][0]["thinking"] += " (edited)"
    status, kind, message = error_of(post(sim.base_url, payload))
    assert (status, kind) == (400, "invalid_request_error")
    assert message.startswith("messages.1.content.0: Invalid `signature` in `thinking` block")
    # Outside a tool-use turn this model does not check old thinking blocks.
    later = body(*history, result, assistant("It rains."), user("thanks"), max_tokens=2000, tools=[WEATHER])
    assert post(sim.base_url, later).status_code == 200


def test_models_that_bind_thinking_reject_a_changed_prefix(sim: Simulator) -> None:
    model = "claude-opus-5-5"
    client = sim.client(max_retries=0)
    history: list[dict[str, Any]] = [user("first question")]
    for question in ("second question", "third question"):
        reply = client.messages.create(model=model, max_tokens=2000, thinking=THINKING, messages=history)
        history += [{"role": "assistant", "content": [b.to_dict() for b in reply.content]}, user(question)]
    append_only = body(*history, model=model, max_tokens=2000, thinking=THINKING)
    assert post(sim.base_url, append_only).status_code == 200

    # Trimming or summarising an earlier message breaks the binding of every later thinking block.
    edited = [user("first question, rephrased"), *history[1:]]
    message = error_of(post(sim.base_url, body(*edited, model=model, max_tokens=2000, thinking=THINKING)))[2]
    assert message.startswith(
        "messages.1.content.0: Invalid signature in thinking block. The block is bound to"
    )
    # Changing the system prompt does too.
    message = error_of(post(sim.base_url, {**append_only, "system": "new system"}))[2]
    assert "Invalid signature in thinking block" in message
    # Dropping the thinking blocks of the kept turns is the documented way to cut such a history.
    dropped = [
        {**m, "content": [b for b in m["content"] if b["type"] != "thinking"]}
        if m["role"] == "assistant"
        else m
        for m in edited
    ]
    assert (
        post(sim.base_url, body(*dropped, model=model, max_tokens=2000, thinking=THINKING)).status_code == 200
    )


def test_signatures_verify_in_another_simulator(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    history = tool_turn(client, "claude-opus-5-5", "use get_weather")
    call_id = history[1]["content"][1]["id"]
    result = user([{"type": "tool_result", "tool_use_id": call_id, "content": "rain"}])
    payload = body(
        *history, result, model="claude-opus-5-5", max_tokens=2000, thinking=THINKING, tools=[WEATHER]
    )
    with Simulator() as other:
        assert post(other.base_url, payload).status_code == 200


EVERY_BLOCK: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": "Let me think about it.", "signature": "sig-queued-1"},
    {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
    {"type": "text", "text": "Searching now. "},
    {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {"query": "claude history"},
    },
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://example.com",
                "title": "Example",
                "encrypted_content": "abc",
                "page_age": None,
            }
        ],
    },
    {
        "type": "text",
        "text": "Found it.",
        "citations": [
            {
                "type": "web_search_result_location",
                "url": "https://example.com",
                "title": "Example",
                "encrypted_index": "idx",
                "cited_text": "Example text",
            }
        ],
    },
    {
        "type": "tool_use",
        "id": "toolu_q1",
        "name": "get_weather",
        "input": {"city": "Zürich", "days": [1, 2]},
    },
]


@pytest.mark.parametrize("beta", [False, True])
def test_every_queued_block_streams_back_exactly(sim: Simulator, beta: bool) -> None:
    client = sim.client(max_retries=0)
    messages = client.beta.messages if beta else client.messages
    sim.reply_with(EVERY_BLOCK, stop_reason="tool_use")
    plain = messages.create(model=MODEL, max_tokens=4000, messages=[user("go")])
    sim.reply_with(EVERY_BLOCK, stop_reason="tool_use")
    with messages.stream(model=MODEL, max_tokens=4000, messages=[user("go")]) as stream:
        text = "".join(stream.text_stream)
        streamed = stream.get_final_message()
    assert text == "Searching now. Found it."
    assert as_json(plain.content) == EVERY_BLOCK
    assert as_json(streamed.content) == EVERY_BLOCK
    assert streamed.stop_reason == plain.stop_reason == "tool_use"
    assert streamed.usage == plain.usage


def test_queued_thinking_gets_a_signature_and_tool_use_an_id(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.reply_with(
        [{"type": "thinking", "thinking": "hmm"}, {"type": "tool_use", "name": "get_weather", "input": {}}],
        stop_reason="tool_use",
    )
    reply = client.messages.create(model=MODEL, max_tokens=2000, tools=[WEATHER], messages=[user("go")])
    assert reply.content[0].signature
    assert reply.content[1].id.startswith("toolu_")


def test_reply_with_rejects_bad_content(sim: Simulator) -> None:
    with pytest.raises(TypeError):
        sim.reply_with([{"text": "no type"}])
    with pytest.raises(TypeError):
        sim.reply_with(42)  # type: ignore[arg-type]


COMPACT = {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 50}}]}


def test_server_compaction(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    history = [user("My first message is about cats. " * 10), assistant("Cats are great."), user("Go on")]
    reply = client.beta.messages.create(
        model=MODEL,
        max_tokens=500,
        messages=history,
        context_management=COMPACT,
        betas=["compact-2026-01-12"],
    )
    assert [b.type for b in reply.content] == ["compaction", "text"]
    summary = reply.content[0].content
    assert "My first message is about cats." in summary

    # Everything before the latest compaction block is ignored: the count equals that of the compacted view.
    follow = [
        *history,
        {"role": "assistant", "content": [b.to_dict() for b in reply.content]},
        user("And now?"),
    ]
    beta = ["compact-2026-01-12"]  # a compaction block sent back needs its beta too
    counted = client.beta.messages.count_tokens(model=MODEL, messages=follow, betas=beta).input_tokens
    view = client.beta.messages.count_tokens(model=MODEL, messages=follow[3:], betas=beta).input_tokens
    assert counted == view
    quiet = client.beta.messages.create(model=MODEL, max_tokens=500, messages=follow, betas=beta)
    assert quiet.usage.input_tokens == counted
    assert quiet.content[0].text.endswith("This conversation has 2 messages.")


def test_compaction_can_pause(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    edits = {"edits": [{**COMPACT["edits"][0], "pause_after_compaction": True}]}
    history = [user("Long message. " * 40)]
    reply = client.beta.messages.create(
        model=MODEL, max_tokens=500, messages=history, context_management=edits, betas=["compact-2026-01-12"]
    )
    assert [b.type for b in reply.content] == ["compaction"]
    assert reply.stop_reason == "compaction"
    below = client.beta.messages.create(
        model=MODEL,
        max_tokens=500,
        messages=[user("short")],
        context_management={"edits": [{"type": "compact_20260112"}]},  # default trigger: 150,000 tokens
        betas=["compact-2026-01-12"],
    )
    assert below.content[0].type == "text"
