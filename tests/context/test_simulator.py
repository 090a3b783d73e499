"""Policies against the simulator over long random conversations: every request accepted, budgets kept,
and the cache behaving as designed (prefix stable between cuts, hits again from the turn after a cut)."""

from __future__ import annotations

import random
import zlib
from typing import Any

import anthropic
import pytest

from claude_history.context import (
    CacheAwareWindow,
    KeepAll,
    LastTurns,
    OldImages,
    ServerCompaction,
    Summarize,
    TokenBudget,
)
from claude_history.history import content_blocks

from .conversation import LOOKUP_TOOL, Driver, random_turn

SYSTEM = "You are a research assistant. Answer with care and cite what you used. " * 40


def billed(response: Any) -> int:
    u = response.usage
    return u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)


def client_for(sim: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)


POLICIES = {
    "keep-all": KeepAll(),
    "last-turns": LastTurns(4) & OldImages(after_turns=3),
    "token-budget": TokenBudget(9_000),
    "cache-aware": CacheAwareWindow(12_000, low_water=7_000),
    "summarize": Summarize(12_000, low_water=7_000, max_summary_tokens=600),
}


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-opus-5-5"])
@pytest.mark.parametrize("name", list(POLICIES))
def test_long_random_conversation_is_always_accepted(sim: Any, name: str, model: str) -> None:
    policy = POLICIES[name]
    thinking = model == "claude-opus-5-5"  # binds thinking to its prefix: the strict case
    rng = random.Random(zlib.crc32(f"{name}/{model}".encode()))
    driver = Driver(
        sim,
        client_for(sim),
        model=model,
        policy=policy,
        system=SYSTEM,
        tools=[LOOKUP_TOOL],
        thinking=thinking,
    )
    counter = [0]
    for _ in range(45):
        driver.turn(random_turn(rng, counter, thinking=thinking, images=True))  # a 400 would raise here
    budget = getattr(policy, "max_input_tokens", None)
    for plan, response, request in zip(driver.plans, driver.responses, _message_requests(sim), strict=True):
        body = request["body"]
        # The newest user message is the last one sent, and the first one sent is a real user message.
        assert body["messages"][-1]["role"] == "user"
        assert not any(b.get("type") == "tool_result" for b in content_blocks(body["messages"][0]))
        starts_turn = not any(b.get("type") == "tool_result" for b in content_blocks(body["messages"][-1]))
        if budget is not None and (starts_turn or not thinking):
            assert billed(response) <= budget, (plan.report, billed(response))
    if isinstance(policy, Summarize):
        assert driver.summary_calls >= 1 and driver.summaries


def _message_requests(sim: Any) -> list[dict[str, Any]]:
    """The conversation's own requests (summary calls use another model and are left out)."""
    return [
        r
        for r in sim.requests
        if r["path"].split("?")[0] == "/v1/messages" and r["body"]["model"] != "claude-haiku-4-5"
    ]


def test_cache_aware_window_reads_the_whole_prefix_between_cuts_and_again_after_a_cut(sim: Any) -> None:
    rng = random.Random(11)
    policy = CacheAwareWindow(10_000, low_water=5_000)
    driver = Driver(sim, client_for(sim), model="claude-sonnet-4-6", policy=policy, system=SYSTEM)
    counter = [0]
    for _ in range(40):
        driver.turn(random_turn(rng, counter, thinking=False, images=False))
    cuts = 0
    for k in range(1, len(driver.plans)):
        previous, plan = driver.plans[k - 1], driver.plans[k]
        response = driver.responses[k]
        if billed(driver.responses[k - 1]) < 1_024:
            continue  # under claude-sonnet-4-6's minimum cacheable prefix: nothing was cached yet
        if plan.window_start == previous.window_start:
            # Append-only since the previous request: everything it sent is read back from the cache.
            assert response.usage.cache_read_input_tokens == billed(driver.responses[k - 1])
        else:
            cuts += 1
            # The cut itself re-writes the window (the system prompt is still read)...
            assert response.usage.cache_read_input_tokens < billed(driver.responses[k - 1])
            # ...and the next request reads everything the cut request wrote.
            if k + 1 < len(driver.plans):
                assert driver.responses[k + 1].usage.cache_read_input_tokens == billed(response)
    assert 2 <= cuts <= 10
    reads = sum(r.usage.cache_read_input_tokens or 0 for r in driver.responses)
    total = sum(billed(r) for r in driver.responses)
    share = reads / total
    print(
        f"\nCacheAwareWindow: {cuts} cuts over {len(driver.responses)} requests, cache-read share {share:.0%}"
    )
    assert share > 0.75


def test_summarize_keeps_the_system_prefix_cached_and_summarises_incrementally(sim: Any) -> None:
    rng = random.Random(5)
    policy = Summarize(9_000, low_water=5_000, max_summary_tokens=400)
    system = SYSTEM * 2  # over claude-sonnet-4-6's 1,024-token minimum on its own: cached across cuts
    driver = Driver(sim, client_for(sim), model="claude-sonnet-4-6", policy=policy, system=system)
    counter = [0]
    for _ in range(40):
        driver.turn(random_turn(rng, counter, thinking=False, images=False))
    assert len(driver.summaries) >= 2
    summary_requests = [r for r in sim.requests if r["body"]["model"] == "claude-haiku-4-5"]
    # Incremental: the second summary request carries the first summary, not the whole history again.
    second = summary_requests[1]["body"]["messages"][0]["content"]
    assert driver.summaries[0].text.strip()[:40] in second
    assert driver.summaries[1].start == 0 and driver.summaries[1].end > driver.summaries[0].end
    # The summary is a second system block after the static prompt; the static prompt keeps its breakpoint.
    sent = [
        r
        for r in _message_requests(sim)
        if isinstance(r["body"].get("system"), list) and len(r["body"]["system"]) == 2
    ]
    assert sent
    assert sent[-1]["body"]["system"][0]["text"] == system
    assert sent[-1]["body"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "Summary of the earlier part" in sent[-1]["body"]["system"][1]["text"]
    # Every request after a cut reads at least the static system prompt from the cache.
    for k in range(1, len(driver.plans)):
        if driver.plans[k].window_start != driver.plans[k - 1].window_start:
            assert (driver.responses[k].usage.cache_read_input_tokens or 0) > 0
    # The newest user message is never summarised: each summary ends at or before the turn that caused it.
    for summary in driver.summaries:
        assert summary.end <= len(driver.log)
        assert driver.log[summary.end]["role"] == "user"


def test_a_failed_summary_call_falls_back_to_trimming(sim: Any) -> None:
    rng = random.Random(8)
    driver = Driver(
        sim,
        client_for(sim),
        model="claude-sonnet-4-6",
        policy=Summarize(6_000, max_summary_tokens=300),
        system=SYSTEM,
    )
    counter = [0]
    for _ in range(25):
        driver.turn(random_turn(rng, counter, thinking=False, images=False), fail_summary=True)
    assert driver.summary_failures >= 1
    assert not driver.summaries
    assert max(billed(r) for r in driver.responses) <= 6_000


def test_server_compaction_round_trips_the_compaction_block(sim: Any) -> None:
    rng = random.Random(2)
    driver = Driver(
        sim,
        client_for(sim),
        model="claude-opus-5-5",
        policy=ServerCompaction(trigger_tokens=6_000),
        system=SYSTEM,
    )
    counter = [0]
    for _ in range(20):
        driver.turn(random_turn(rng, counter, thinking=False, images=False))
    compacted = [
        i
        for i, m in enumerate(driver.log)
        if m["role"] == "assistant" and any(b["type"] == "compaction" for b in content_blocks(m))
    ]
    assert compacted, "the simulator should have compacted past 6,000 tokens"
    last = _message_requests(sim)[-1]
    assert "compact-2026-01-12" in last["headers"].get("anthropic-beta", "")
    sent = [b for m in last["body"]["messages"] if isinstance(m["content"], list) for b in m["content"]]
    stored = [b for b in content_blocks(driver.log[compacted[-1]]) if b["type"] == "compaction"]
    # Sent back exactly as the API returned it (cache markers aside).
    assert [
        {k: v for k, v in b.items() if k != "cache_control"} for b in sent if b.get("type") == "compaction"
    ][-1] == stored[-1]
    assert len(_message_requests(sim)) > compacted[0]  # the conversation went on after compaction
