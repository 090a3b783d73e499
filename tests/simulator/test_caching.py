"""Prompt caching: expected usage derived from count_tokens for each documented scenario."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from claude_history.testing import Simulator

from .helpers import MODEL, assistant, image_block, user

BIG = "You are a careful assistant who answers in full sentences. " * 200  # about 3,000 tokens
AUTO = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A simulator on a frozen clock: only advance() moves time."""
    with Simulator(clock=lambda: 1_000.0) as simulator:
        yield simulator


@pytest.fixture
def client(sim: Simulator) -> anthropic.Anthropic:
    return sim.client(max_retries=0)


def strip_markers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [strip_markers(v) for v in value]
    return value


def count(client: anthropic.Anthropic, request: dict[str, Any]) -> int:
    """The request's input tokens from count_tokens (markers removed: they do not change the count)."""
    plain = strip_markers({k: v for k, v in request.items() if k != "max_tokens"})
    return client.messages.count_tokens(**plain).input_tokens


def send(client: anthropic.Anthropic, request: dict[str, Any]) -> anthropic.types.Usage:
    usage = client.messages.create(max_tokens=200, **request).usage
    assert usage.cache_creation is not None
    assert usage.cache_creation_input_tokens == (
        usage.cache_creation.ephemeral_5m_input_tokens + usage.cache_creation.ephemeral_1h_input_tokens
    )
    total = (
        usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    )
    assert total == count(client, request), "usage and count_tokens must agree"
    return usage


def split(usage: anthropic.types.Usage) -> tuple[int, int, int]:
    """(input, cache write, cache read)."""
    return usage.input_tokens, usage.cache_creation_input_tokens or 0, usage.cache_read_input_tokens or 0


def conversation(*texts: str, **fields: Any) -> dict[str, Any]:
    messages = [user(t) if k % 2 == 0 else assistant(t) for k, t in enumerate(texts)]
    return {"model": MODEL, "system": BIG, "messages": messages, **fields}


def test_turn_one_writes_turn_two_reads_it_and_writes_only_the_new_part(client: anthropic.Anthropic) -> None:
    turn1 = conversation("Hello", cache_control=AUTO)
    turn2 = conversation("Hello", "Hi there.", "How are you?", cache_control=AUTO)
    n1, n2 = count(client, turn1), count(client, turn2)
    assert split(send(client, turn1)) == (0, n1, 0)
    assert split(send(client, turn2)) == (0, n2 - n1, n1)
    assert split(send(client, turn2)) == (0, 0, n2)  # the same request again: all read


def test_explicit_breakpoints_and_tokens_after_the_last_one(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": BIG, "cache_control": AUTO}]
    request = {"model": MODEL, "system": system, "messages": [user("question")]}
    n = count(client, request)
    system_only = count(client, {"model": MODEL, "system": BIG, "messages": [user("x")]}) - count(
        client, {"model": MODEL, "messages": [user("x")]}
    )
    # input_tokens counts only what follows the last breakpoint.
    assert split(send(client, request)) == (n - system_only, system_only, 0)
    assert split(send(client, request)) == (n - system_only, 0, system_only)


def test_a_changed_system_prompt_misses(client: anthropic.Anthropic) -> None:
    send(client, conversation("Hello", cache_control=AUTO))
    changed = {**conversation("Hello", cache_control=AUTO), "system": BIG + " Be brief."}
    assert split(send(client, changed)) == (0, count(client, changed), 0)


def test_changed_tools_invalidate_everything(client: anthropic.Anthropic) -> None:
    tool = {
        "name": "lookup",
        "description": "Look things up",
        "input_schema": {"type": "object", "properties": {}},
    }
    system = [{"type": "text", "text": BIG, "cache_control": AUTO}]
    first = {
        "model": MODEL,
        "tools": [tool],
        "system": system,
        "messages": [user("q")],
        "cache_control": AUTO,
    }
    send(client, first)
    other = {**first, "tools": [{**tool, "description": "Look things up, carefully"}]}
    assert split(send(client, other))[2] == 0


def test_tool_choice_and_images_invalidate_only_the_messages_part(client: anthropic.Anthropic) -> None:
    tool = {"name": "lookup", "description": "Look up", "input_schema": {"type": "object", "properties": {}}}
    system = [{"type": "text", "text": BIG, "cache_control": AUTO}]
    base = {"model": MODEL, "tools": [tool], "system": system, "messages": [user("q")], "cache_control": AUTO}
    prefix = count(client, {**base, "messages": [user("x")]}) - count(
        client, {"model": MODEL, "messages": [user("x")]}
    )
    send(client, base)
    assert split(send(client, {**base, "tool_choice": {"type": "auto"}}))[2] == prefix
    longer = {
        **base,
        "messages": [user("q"), assistant("a"), user([image_block(56, 56), {"type": "text", "text": "?"}])],
    }
    assert split(send(client, longer))[2] == prefix


def test_a_breakpoint_more_than_20_blocks_after_the_cached_one_misses(client: anthropic.Anthropic) -> None:
    turn1 = conversation("Hello", cache_control=AUTO)
    n1 = count(client, turn1)
    send(client, turn1)

    def with_blocks(n: int) -> dict[str, Any]:
        blocks = [{"type": "text", "text": f"part {k}"} for k in range(n)]
        return {**turn1, "messages": [user("Hello"), assistant("ok"), user(blocks)]}

    far = with_blocks(25)  # the cached block is 27 positions back: outside the lookback
    assert split(send(client, far)) == (0, count(client, far), 0)
    just_out = with_blocks(19)  # 21 positions back
    assert split(send(client, just_out)) == (0, count(client, just_out), 0)
    near = with_blocks(18)  # 20 positions back (the breakpoint included): inside the lookback
    assert split(send(client, near)) == (0, count(client, near) - n1, n1)


def test_a_second_breakpoint_extends_the_lookback(client: anthropic.Anthropic) -> None:
    turn1 = conversation("Hello", cache_control=AUTO)
    n1 = count(client, turn1)
    send(client, turn1)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": f"part {k}"} for k in range(25)]
    blocks[10]["cache_control"] = AUTO
    request = {**turn1, "messages": [user("Hello"), assistant("ok"), user(blocks)]}
    assert split(send(client, request)) == (0, count(client, request) - n1, n1)


def test_a_prefix_under_the_minimum_is_not_cached(client: anthropic.Anthropic) -> None:
    short = {"model": MODEL, "messages": [user("A short question?")], "cache_control": AUTO}
    n = count(client, short)
    assert n < 1024  # claude-sonnet-4-6's minimum cacheable prefix
    assert split(send(client, short)) == (n, 0, 0)
    assert split(send(client, short)) == (n, 0, 0)
    # The same text on a model with a 512-token minimum is still too short; a long one is cached there.
    assert split(send(client, {**short, "model": "claude-opus-5"}))[1] == 0


def test_the_cache_is_per_model(client: anthropic.Anthropic) -> None:
    request = conversation("Hello", cache_control=AUTO)
    send(client, request)
    other = {**request, "model": "claude-opus-4-8"}
    assert split(send(client, other)) == (0, count(client, other), 0)


def test_5m_entry_expires_after_advance_301(sim: Simulator, client: anthropic.Anthropic) -> None:
    request = conversation("Hello", cache_control=AUTO)
    n = count(client, request)
    send(client, request)
    sim.advance(299)
    assert split(send(client, request)) == (0, 0, n)
    sim.advance(301)
    assert split(send(client, request)) == (0, n, 0)


def test_a_hit_refreshes_the_5m_entry(sim: Simulator, client: anthropic.Anthropic) -> None:
    request = conversation("Hello", cache_control=AUTO)
    n = count(client, request)
    send(client, request)
    for _ in range(3):  # 600 s after the write, but never 300 s after the last hit
        sim.advance(200)
        assert split(send(client, request)) == (0, 0, n)


def test_1h_entry_survives_advance_301(sim: Simulator, client: anthropic.Anthropic) -> None:
    request = conversation("Hello", cache_control=HOUR)
    n = count(client, request)
    usage = send(client, request)
    assert usage.cache_creation is not None
    assert (
        usage.cache_creation.ephemeral_1h_input_tokens,
        usage.cache_creation.ephemeral_5m_input_tokens,
    ) == (n, 0)
    sim.advance(301)
    assert split(send(client, request)) == (0, 0, n)
    sim.advance(3599)
    assert split(send(client, request)) == (0, 0, n)
    sim.advance(3601)
    assert split(send(client, request)) == (0, n, 0)


def test_writes_split_by_ttl(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": BIG, "cache_control": HOUR}]
    request = {"model": MODEL, "system": system, "messages": [user("q " * 3000)], "cache_control": AUTO}
    n = count(client, request)
    usage = send(client, request)
    assert usage.cache_creation is not None
    one_hour = usage.cache_creation.ephemeral_1h_input_tokens
    assert 0 < one_hour < n
    assert usage.cache_creation.ephemeral_5m_input_tokens == n - one_hour
    # Another question reads exactly the 1h system prefix.
    other = {**request, "messages": [user("another question " * 300)]}
    assert split(send(client, other))[2] == one_hour


def test_count_tokens_ignores_markers_and_the_cache(client: anthropic.Anthropic) -> None:
    request = conversation("Hello", "Hi", "Again", cache_control=AUTO)
    plain = conversation("Hello", "Hi", "Again")
    before = client.messages.count_tokens(**request).input_tokens
    send(client, request)
    assert client.messages.count_tokens(**request).input_tokens == before == count(client, plain)


def test_reset_forgets_the_cache(sim: Simulator, client: anthropic.Anthropic) -> None:
    request = conversation("Hello", cache_control=AUTO)
    n = count(client, request)
    send(client, request)
    sim.reset()
    assert sim.requests == []
    assert split(send(client, request)) == (0, n, 0)
