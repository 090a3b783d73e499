"""The real anthropic SDK (sync, async, streaming, beta) against the simulator."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from claude_history.testing import Simulator

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello, simulator"}]


def as_json(blocks: list[Any]) -> list[dict[str, Any]]:
    """Blocks as the API's JSON (what was set), without the SDK's parse helper field."""
    return [{k: v for k, v in b.to_dict().items() if k != "parsed_output"} for b in blocks]


def test_create_returns_a_message_with_usage(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    reply = client.messages.create(model=MODEL, max_tokens=200, messages=HELLO)
    assert isinstance(reply, anthropic.types.Message)
    assert reply.role == "assistant"
    assert reply.model == MODEL
    assert reply.stop_reason == "end_turn"
    assert reply.content[0].type == "text"
    assert "Hello, simulator" in reply.content[0].text
    count = client.messages.count_tokens(model=MODEL, messages=HELLO).input_tokens
    assert reply.usage.input_tokens == count
    assert reply.usage.output_tokens > 0


def test_requests_are_recorded_in_order(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    client.messages.count_tokens(model=MODEL, messages=HELLO)
    first, second = sim.requests
    assert (first["method"], first["path"]) == ("POST", "/v1/messages")
    assert second["path"] == "/v1/messages/count_tokens"
    assert first["body"]["messages"] == HELLO
    headers = first["headers"]
    assert headers.get("x-api-key") == "test" or headers.get("authorization") == "Bearer test"
    assert first["headers"]["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION


def test_default_replies_show_the_context_received(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you."},
        {"role": "user", "content": "What was my first message?"},
    ]
    reply = client.messages.create(model=MODEL, max_tokens=200, messages=history)
    assert reply.content[0].text == 'Your first message was: "My name is Ada."'
    history[2] = {"role": "user", "content": "How many messages do you see?"}
    reply = client.messages.create(model=MODEL, max_tokens=200, messages=history)
    assert reply.content[0].text == "This conversation has 3 messages: 2 from you and 1 from me."
    reply = client.messages.create(
        model=MODEL,
        max_tokens=200,
        system="Be brief.",
        messages=[{"role": "user", "content": "system prompt?"}],
    )
    assert reply.content[0].text == 'The system prompt is: "Be brief."'


def test_default_replies_are_deterministic(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    one = client.messages.create(model=MODEL, max_tokens=200, messages=HELLO)
    two = client.messages.create(model=MODEL, max_tokens=200, messages=HELLO)
    assert one.content == two.content
    with Simulator() as other:
        three = other.client(max_retries=0).messages.create(model=MODEL, max_tokens=200, messages=HELLO)
    assert three.content == one.content


def test_queued_replies_come_back_in_order(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.reply_with("first")
    sim.reply_with([{"type": "text", "text": "second"}], stop_reason="pause_turn")
    a = client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    b = client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    c = client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    assert a.content[0].text == "first"
    assert (b.content[0].text, b.stop_reason) == ("second", "pause_turn")
    assert c.content[0].text.startswith("You said")


def test_stream_text_and_final_message(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.reply_with("The quick brown fox jumps over the lazy dog, twice over.")
    with client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == "The quick brown fox jumps over the lazy dog, twice over."
    assert final.content[0].text == "".join(pieces)
    assert final.stop_reason == "end_turn"
    count = client.messages.count_tokens(model=MODEL, messages=HELLO).input_tokens
    assert final.usage.input_tokens == count


def test_raw_stream_event_sequence(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.reply_with("Hello there")
    events = list(client.messages.create(model=MODEL, max_tokens=50, messages=HELLO, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert "content_block_delta" in kinds and "content_block_stop" in kinds
    assert events[-2].delta.stop_reason == "end_turn"


def test_create_and_stream_give_the_same_message(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    plain = client.messages.create(model=MODEL, max_tokens=300, messages=HELLO)
    with client.messages.stream(model=MODEL, max_tokens=300, messages=HELLO) as stream:
        streamed = stream.get_final_message()
    assert as_json(streamed.content) == as_json(plain.content)
    assert streamed.usage == plain.usage
    assert streamed.stop_reason == plain.stop_reason


async def test_async_client_create_stream_and_count(sim: Simulator) -> None:
    client = sim.async_client(max_retries=0)
    reply = await client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert reply.content[0].text.startswith("You said")
    sim.reply_with("async streaming works fine")
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "async streaming works fine"
    assert final.content[0].text == text
    count = await client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert count.input_tokens == reply.usage.input_tokens
    await client.close()


def test_beta_endpoints_and_header(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    reply = client.beta.messages.create(
        model=MODEL, max_tokens=100, messages=HELLO, betas=["context-management-2025-06-27"]
    )
    assert reply.content[0].type == "text"
    count = client.beta.messages.count_tokens(model=MODEL, messages=HELLO)
    assert count.input_tokens == reply.usage.input_tokens
    with client.beta.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        assert as_json(stream.get_final_message().content) == as_json(reply.content)
    first = sim.requests[0]
    assert first["path"].split("?")[0] == "/v1/messages"
    assert first["headers"]["anthropic-beta"] == "context-management-2025-06-27"


def test_beta_query_parameter_is_accepted(sim: Simulator) -> None:
    response = httpx2.post(
        sim.base_url + "/v1/messages?beta=true",
        headers={"x-api-key": "k", "anthropic-version": "2026-10-21", "anthropic-beta": "compact-2026-01-12"},
        json={"model": MODEL, "max_tokens": 100, "messages": HELLO},
    )
    assert response.status_code == 200
    assert response.json()["type"] == "message"
    assert sim.requests[0]["path"] == "/v1/messages?beta=true"


def test_models_endpoint(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nonexistent")


def test_keep_requests_bounds_the_log() -> None:
    with Simulator(keep_requests=2) as sim:
        client = sim.client(max_retries=0)
        for text in ("one", "two", "three"):
            client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": text}])
        assert [r["body"]["messages"][0]["content"] for r in sim.requests] == ["two", "three"]
        assert repr(sim) == f"<Simulator {sim.base_url}>"
    assert repr(sim) == "<Simulator stopped>"


def test_base_url_needs_a_running_simulator() -> None:
    sim = Simulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.base_url
    sim.start()
    try:
        assert sim.base_url.startswith("http://127.0.0.1:")
    finally:
        sim.stop()
    sim.stop()  # idempotent
