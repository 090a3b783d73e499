"""The automatic cache TTL against the simulator's billing (issue 5, item 3): with a few long gaps among short
ones, a session pays the 1-hour write premium only now and then, a long gap costs at most what was written since
the newest 1-hour entry, and the result is cheaper than either fixed TTL."""

from __future__ import annotations

import random
from typing import Any

import httpx2
import pytest

from claude_history import Chat
from claude_history.history import content_blocks
from claude_history.pricing import cost_of
from claude_history.testing import Simulator

from .test_context_sim import SYSTEM, Clock, Exchanges, lookup, read, words

MODEL = "claude-sonnet-4-6"
# One gap in five outlives a 5-minute entry (the cost bench's workload has about that share).
GAPS = [20.0, 45.0, 15.0, 30.0, 15 * 60.0]


def _writes(reply: dict[str, Any]) -> tuple[int, int]:
    split = reply["usage"].get("cache_creation") or {}
    return int(split.get("ephemeral_5m_input_tokens", 0)), int(split.get("ephemeral_1h_input_tokens", 0))


def _run(cache: bool | str, *, turns: int = 30, seed: int = 7) -> list[tuple[float, dict[str, Any], dict[str, Any]]]:
    """A KeepAll conversation on the simulator's clock: ``(gap before the request, request, reply)`` each."""
    clock = Clock()
    rng = random.Random(seed)
    with Simulator(clock=clock.sim_time) as sim:
        exchanges = Exchanges(sim)
        http = httpx2.Client(event_hooks={"request": [exchanges.on_request], "response": [exchanges.on_response]})
        chat = Chat(
            sim.client(max_retries=0, http_client=http),
            model=MODEL,
            system=SYSTEM,
            tools=[lookup],
            cache=cache,
            clock=clock,
        )
        gaps: list[float] = []
        for turn in range(turns):
            exchanges.script.append(([{"type": "text", "text": words(rng, 150)}], "end_turn"))
            gap = GAPS[turn % len(GAPS)] if turn else 0.0
            clock.seconds += gap
            chat.send(f"turn {turn}: " + words(rng, 250))
            gaps.append(gap)
        http.close()
    return [(g, q, r) for g, (q, r) in zip(gaps, exchanges.pairs, strict=True)]


def _cost(run: list[tuple[float, dict[str, Any], dict[str, Any]]]) -> float:
    total = 0.0
    for _, _, reply in run:
        cost = cost_of(reply["usage"], MODEL)
        assert cost is not None
        total += cost
    return total


def test_the_1h_premium_is_paid_now_and_then_and_a_long_gap_loses_only_the_newest_turns() -> None:
    run = _run(True)
    late = run[6:]  # once a few gaps are seen
    one_hour = [r for _, _, r in late if _writes(r)[1] > 0]
    five_minutes = [r for _, _, r in late if _writes(r)[0] > 0 and _writes(r)[1] == 0]
    assert one_hour and five_minutes
    assert len(one_hour) < len(five_minutes)  # the premium on fewer than half of the writes
    # The newest 1-hour entry (cache read + 1-hour write of the last request that wrote one) is still read
    # after every long gap: what is written again is at most what was written since.
    anchor = 0
    long_gaps = 0
    for (gap, _, reply), (_, _, before) in zip(run[1:], run, strict=False):
        if _writes(before)[1] > 0:
            anchor = read(before) + _writes(before)[1]
        if gap > 300 and anchor:
            long_gaps += 1
            assert read(reply) >= anchor
    assert long_gaps >= 4


def test_automatic_ttl_is_cheaper_than_either_fixed_ttl_on_mixed_gaps() -> None:
    auto, hour, five = (_cost(_run(cache)) for cache in (True, "1h", "5m"))
    assert auto < hour < five, (auto, hour, five)


@pytest.mark.parametrize("cache", ["5m", "1h"])
def test_a_fixed_ttl_is_used_as_given(cache: str) -> None:
    for _, request, _ in _run(cache, turns=8):
        controls = [b["cache_control"] for m in request["messages"] for b in content_blocks(m) if "cache_control" in b]
        assert controls and all(c.get("ttl", "5m") == cache for c in controls)
