"""The proven bound of a request (``Replay.upper_bound``) when the window moves: the previous request's billed
size, less a lower bound of what the move drops (``Replay.lower_span``: billed differences of requests, each
reply's billed output), plus the bound of what is new. By property, over random conversations played against
the simulator (tool loops, thinking on the model that binds it, images replaced by OldImages, summaries), the
bound of every request is never below what the simulator billed for it. No count is made, so requests over
the budget are sent too, and the bound must hold after them as well."""

from __future__ import annotations

import random
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import claude_history.context.request as request_module
from claude_history.context import CacheAwareWindow, OldImages, Summarize, TokenBudget
from claude_history.errors import BudgetExceeded

from .conversation import LOOKUP_TOOL, Driver, random_turn

SYSTEM = "You are a research assistant. Answer with care and cite what you used. " * 20

POLICIES = {
    "token-budget": lambda budget: TokenBudget(budget),
    "token-budget-images": lambda budget: TokenBudget(budget) & OldImages(after_turns=2),
    "cache-aware": lambda budget: CacheAwareWindow(budget),
    "summarize": lambda budget: Summarize(budget + 2_000, max_summary_tokens=300),
}


def billed(response: Any) -> int:
    u = response.usage
    return u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    model=st.sampled_from(["claude-sonnet-4-6", "claude-opus-5-5"]),
    name=st.sampled_from(sorted(POLICIES)),
    budget=st.sampled_from([6_000, 9_000, 12_000]),
    turns=st.integers(8, 30),
)
def test_the_bound_of_every_request_is_never_below_what_it_was_billed(
    sim: Any, monkeypatch: pytest.MonkeyPatch, seed: int, model: str, name: str, budget: int, turns: int
) -> None:
    uppers: list[int] = []
    real = request_module.worth_counting

    def spy(upper: int, *args: Any) -> bool:
        uppers.append(upper)
        return real(upper, *args)

    monkeypatch.setattr(request_module, "worth_counting", spy)
    thinking = model == "claude-opus-5-5"
    rng = random.Random(seed)
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    driver = Driver(
        sim, client, model=model, policy=POLICIES[name](budget), system=SYSTEM, tools=[LOOKUP_TOOL], thinking=thinking
    )
    bounds: list[int] = []

    class Sent(list):  # type: ignore[type-arg]
        def append(self, plan: Any) -> None:  # the plan about to be sent: the newest one planned
            bounds.append(uppers[-1])
            super().append(plan)

    driver.plans = Sent()
    counter = [0]
    for _ in range(turns):
        try:
            driver.turn(random_turn(rng, counter, thinking=thinking, images=True))
        except BudgetExceeded:  # a turn larger than a small budget: refused before any call
            break
    for k, (bound, response) in enumerate(zip(bounds, driver.responses, strict=True)):
        assert billed(response) <= bound, (k, billed(response), bound)
    pairs = list(zip(bounds, driver.responses, strict=True))
    assert not pairs or any(bound < billed(response) * 2 for bound, response in pairs)
