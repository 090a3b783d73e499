"""Server compaction is billed as the API bills it: ``usage.iterations`` itemises the compaction pass (the
context the request sent, read through the prompt cache, and the summary as output) and the message pass (the
reply, written from the compacted context); the top-level figures are the message pass's. Expected figures come
from count_tokens and the documented token rule, not from the simulator's own accounting."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from claude_history.testing import Simulator
from claude_history.usage import TokenUsage

from .helpers import MODEL, assistant, body, post, user

SYSTEM = "You are a careful assistant who answers in full sentences. " * 100  # about 1,500 tokens
TRIGGER = 1_800
COMPACT = {"edits": [{"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": TRIGGER}}]}
BETA = {"anthropic-beta": "compact-2026-01-12"}
FIGURES = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(clock=lambda: 1_000.0) as simulator:
        yield simulator


def history() -> list[dict[str, Any]]:
    return [
        user("My first message is about cats. " * 60),
        assistant("Cats are independent animals."),
        user("Tell me more about their sleep."),
    ]


def request(**fields: Any) -> dict[str, Any]:
    system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    return body(*history(), **{"system": system, "context_management": COMPACT, "max_tokens": 500, **fields})


def count(sim: Simulator, system: Any, messages: list[dict[str, Any]]) -> int:
    client = sim.client(max_retries=0)
    kwargs: dict[str, Any] = {"model": MODEL, "messages": messages}
    if system is not None:
        kwargs["system"] = system
    return client.messages.count_tokens(**kwargs).input_tokens


def text_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 4)  # docs/simulator.md, factor 1.0 on Sonnet 4.6


def prompt(usage: dict[str, Any]) -> int:
    return int(usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"])


def test_a_request_without_compaction_has_no_iterations(sim: Simulator) -> None:
    # The compaction edit with its default trigger (150,000 tokens), not reached.
    plain = body(*history(), context_management={"edits": [{"type": "compact_20260112"}]})
    for stream in (False, True):
        reply = post(sim.base_url, {**plain, "stream": stream}, headers=BETA)
        assert reply.status_code == 200
        if stream:
            events = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
            usages = [e["message"]["usage"] for e in events if e["type"] == "message_start"]
            usages += [e["usage"] for e in events if e["type"] == "message_delta"]
        else:
            usages = [reply.json()["usage"]]
        assert usages and all("iterations" not in u for u in usages)
    billing = sim.billing()
    assert billing is not None and [p.kind for p in billing.passes] == ["message"]
    assert billing.passes[0].total == count(sim, None, history())


def test_a_compacting_request_itemises_the_compaction_pass(sim: Simulator) -> None:
    req = request()
    sent = count(sim, req["system"], history())
    assert sent > TRIGGER
    system_tokens = sent - count(sim, None, history())

    reply = post(sim.base_url, req, headers=BETA).json()
    compaction = reply["content"][0]
    assert compaction["type"] == "compaction"
    usage = reply["usage"]
    first, second = usage["iterations"]
    assert first["type"] == "compaction" and second["type"] == "message"

    # The compaction pass read everything the request sent; on a cold cache it wrote the marked system prompt
    # and paid the rest as input. Its output is the summary by the token rule (block overhead 3).
    assert prompt(first) == sent
    assert first["cache_read_input_tokens"] == 0
    assert first["cache_creation_input_tokens"] == system_tokens
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": system_tokens, "ephemeral_1h_input_tokens": 0}
    assert first["output_tokens"] == 3 + text_tokens(compaction["content"])

    # The reply was written from the compacted context: the system prompt (just cached by the compaction pass)
    # and the summary. Counted as a user message holding the summary's text, it is the same size.
    compacted = count(sim, req["system"], [user(compaction["content"])])
    assert prompt(second) == compacted < sent
    assert second["cache_read_input_tokens"] == system_tokens
    assert second["cache_creation_input_tokens"] == 0
    reply_blocks = reply["content"][1:]
    assert second["output_tokens"] == sum(3 + text_tokens(b["text"]) for b in reply_blocks)

    # The top-level figures are the message pass's: the compaction pass is not in them.
    assert {k: usage[k] for k in FIGURES} == {k: second[k] for k in FIGURES}
    assert usage["cache_creation"] == second["cache_creation"]

    # The next compacting request reads the cached system prompt in both passes.
    again = post(sim.base_url, req, headers=BETA).json()["usage"]["iterations"]
    assert [i["cache_read_input_tokens"] for i in again] == [system_tokens, system_tokens]
    assert [i["cache_creation_input_tokens"] for i in again] == [0, 0]


def test_the_sdk_streams_the_same_billing(sim: Simulator) -> None:
    req = request()
    with Simulator(clock=lambda: 1_000.0) as other:  # the same request on the same (cold) cache
        plain = other.client(max_retries=0).beta.messages.create(**_sdk(req))
    client = sim.client(max_retries=0)
    with client.beta.messages.stream(**_sdk(req)) as stream:
        streamed = stream.get_final_message()
    assert streamed.usage.iterations is not None
    assert [i.type for i in streamed.usage.iterations] == ["compaction", "message"]
    assert streamed.usage.model_dump(exclude_none=True) == plain.usage.model_dump(exclude_none=True)
    assert [b.model_dump(exclude_none=True) for b in streamed.content] == [
        b.model_dump(exclude_none=True) for b in plain.content
    ]

    # message_start carries the top-level figures; the itemised passes come with message_delta.
    raw = post(sim.base_url, {**req, "stream": True}, headers=BETA).text
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]
    start = next(e for e in events if e["type"] == "message_start")["message"]["usage"]
    delta = next(e for e in events if e["type"] == "message_delta")["usage"]
    assert "iterations" not in start
    assert [i["type"] for i in delta["iterations"]] == ["compaction", "message"]


def _sdk(req: dict[str, Any]) -> dict[str, Any]:
    return {**req, "betas": ["compact-2026-01-12"]}


def test_usage_with_iterations_counts_the_compaction_pass(sim: Simulator) -> None:
    reply = sim.client(max_retries=0).beta.messages.create(**_sdk(request()))
    assert reply.usage.iterations is not None
    compaction, message = (i.model_dump() for i in reply.usage.iterations)
    total = TokenUsage.from_api(reply.usage)
    assert total.input_tokens == compaction["input_tokens"] + message["input_tokens"]
    assert total.output_tokens == compaction["output_tokens"] + message["output_tokens"]
    assert total.prompt_tokens == prompt(compaction) + prompt(message)


def test_pause_after_compaction_bills_the_compaction_pass_alone(sim: Simulator) -> None:
    req = request()
    req["context_management"] = {"edits": [{**COMPACT["edits"][0], "pause_after_compaction": True}]}
    sent = count(sim, req["system"], history())
    reply = post(sim.base_url, req, headers=BETA).json()
    assert reply["stop_reason"] == "compaction"
    (compaction,) = reply["content"]
    usage = reply["usage"]
    (only,) = usage["iterations"]
    assert only["type"] == "compaction"
    assert prompt(only) == sent
    assert only["output_tokens"] == 3 + text_tokens(compaction["content"])
    assert {k: usage[k] for k in FIGURES} == dict.fromkeys(FIGURES, 0)  # no reply was written
    billing = sim.billing()
    assert billing is not None and [p.kind for p in billing.passes] == ["compaction"]


def test_max_tokens_bounds_the_reply_not_the_compaction_pass(sim: Simulator) -> None:
    reply = post(sim.base_url, request(max_tokens=8), headers=BETA).json()
    compaction, text = reply["content"]
    assert reply["stop_reason"] == "max_tokens"
    assert "My first message is about cats." in compaction["content"]  # the summary is whole
    first, second = reply["usage"]["iterations"]
    assert first["output_tokens"] == 3 + text_tokens(compaction["content"]) > 8
    assert second["output_tokens"] == 3 + text_tokens(text["text"]) <= 8


def test_billing_describes_each_pass_by_request_id(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    req = request()
    first = client.beta.messages.create(**_sdk(req))
    plain = client.messages.create(model=MODEL, max_tokens=100, messages=[user("hello")])
    assert first._request_id is not None and plain._request_id is not None
    billing = sim.billing(first._request_id)
    assert billing is not None and billing.request_id == first._request_id and billing.model == MODEL
    compaction, message = billing.passes
    assert first.usage.iterations is not None
    assert [compaction.kind, message.kind] == ["compaction", "message"]
    assert compaction.total == count(sim, req["system"], history())
    assert [compaction.usage, message.usage] == [i.model_dump(exclude_none=True) for i in first.usage.iterations]
    # Both passes start with the same system prompt: the same prefix identity up to it.
    assert compaction.prefix_ids[0] == message.prefix_ids[0]
    assert compaction.ends[0] == message.ends[0]
    assert len(compaction.prefix_ids) == len(compaction.ends)
    assert list(compaction.ends) == sorted(compaction.ends)

    newest = sim.billing()
    assert newest is not None and newest.request_id == plain._request_id
    assert sim.billing("req_unknown") is None
    sim.reset()
    assert sim.billing() is None and sim.billing(first._request_id) is None


def test_billing_keeps_the_newest_requests_only() -> None:
    with Simulator(keep_requests=2) as small:
        client = small.client(max_retries=0)
        ids = [
            client.messages.create(model=MODEL, max_tokens=50, messages=[user(f"n {k}")])._request_id
            for k in range(3)
        ]
        assert small.billing(ids[0]) is None
        assert all(small.billing(i) is not None for i in ids[1:])


def test_a_failed_request_is_not_billed(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=50, messages=[assistant("no user message")])
    assert sim.billing() is None
