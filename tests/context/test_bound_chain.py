"""The chained sum of ``Replay.upper_bound`` (issue 14): a request's bound walks the requests made since its
window's cut. Walked afresh for every decision, a replay of n request points cost O(n^2) (15 s for the first
turn of a 4,000-message session); kept per cut and extended (``Replay.chain``) it costs O(n). The bound must
not change: it decides when ``count_tokens`` is called and that no request is too long. Pinned by counting the
bound's work (not time) at n and 4n messages, and by comparing every bound with the walk it replaces (the
definition, kept below as the oracle) on random conversations, planned from scratch and with a warm planner.
"""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.context import CacheAwareWindow, OldImages, Planner, Summarize, TokenBudget, plan_request
from claude_history.context.log_index import NotLoaded
from claude_history.context.plan import RequestPlan
from claude_history.context.replay import Replay, State, _point
from claude_history.context.window import Window
from claude_history.errors import BudgetExceeded
from claude_history.history import last_turn_start

from .conversation import LOOKUP_TOOL, Driver, random_turn

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a research assistant. Answer with care and cite what you used. " * 20
WORDS = ["the", "of", "cache", "window", "session", "token", "turn", "reply", "plan", "store", "message", "user"]


def oracle_upper_bound(replay: Replay, state: State, window: Window, point: int) -> int:
    """``Replay.upper_bound`` as it was before the chained sum was kept: the whole walk, every time."""
    previous = state.previous
    if previous is not None and previous.window == window and previous.observed is not None and previous.trusted:
        return previous.observed + replay.new_bound(previous.point + 1, point + 1)
    whole = min(replay._whole_bound(window, point), replay._slide_bound(state, window, point))
    t = window.cut
    checkpoints = replay.replays.checkpoints
    if replay.replays.partial and (not checkpoints or t < checkpoints[0].point):
        raise NotLoaded("the requests of this window reach before the part of the log that was read")
    k = bisect.bisect_left(checkpoints, t, key=_point)
    if previous is None or k == len(checkpoints) or checkpoints[k].point != t or t > previous.point:
        return whole
    const = replay.const_bound if state.smallest is None else min(replay.const_bound, state.smallest)
    total = const + replay.summary_bound(t) + replay.log.bound(t, t + 1)
    last = checkpoints[k].state.previous
    for checkpoint in itertools.islice(checkpoints, k + 1, None):
        request = checkpoint.state.previous
        if request is None or last is None:
            return whole
        if replay._exact_gap(last, request, window):
            assert request.observed is not None and last.observed is not None
            total += request.observed - last.observed
        else:
            total += replay.new_bound(last.point + 1, request.point + 1)
        last = request
        if total >= whole:
            return whole
    return min(whole, total + replay.new_bound(previous.point + 1, point + 1))


def imported(length: int, seed: int = 3) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``length`` messages of prose (user, then text replies billed a fixed usage), as an import writes them,
    and their usage records."""
    rng = random.Random(seed)
    log: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    for i in range(length):
        text = " ".join(rng.choices(WORDS, k=rng.randint(40, 120)))
        if i % 2 == 0:
            log.append({"role": "user", "content": text})
        else:
            log.append({"role": "assistant", "content": [{"type": "text", "text": text}]})
            usage.append({"seq": i, "usage": {"input_tokens": 10, "output_tokens": 120}})
    return log, usage


def bound_work(monkeypatch: pytest.MonkeyPatch, length: int) -> int:
    """Messages the bound's gaps walked (``new_bound``) plus gaps compared (``_exact_gap``) while planning the
    first request on a session of ``length`` messages whose window holds about a third of them."""
    work = [0]
    new_bound, exact_gap = Replay.new_bound, Replay._exact_gap

    def counted_new_bound(self: Replay, a: int, b: int) -> int:
        work[0] += max(1, b - a)
        return new_bound(self, a, b)

    def counted_exact_gap(self: Replay, *args: Any) -> bool:
        work[0] += 1
        return exact_gap(self, *args)

    monkeypatch.setattr(Replay, "new_bound", counted_new_bound)
    monkeypatch.setattr(Replay, "_exact_gap", counted_exact_gap)
    exact_in = getattr(Replay, "_exact_in", None)
    if exact_in is not None:

        def counted_exact_in(*args: Any) -> bool:
            work[0] += 1
            return bool(exact_in(*args))

        monkeypatch.setattr(Replay, "_exact_in", staticmethod(counted_exact_in))
    log, usage = imported(length)
    budget = length * 110 // 3  # ~330 tokens a message pair: the window holds about a third of the log
    plan_request(log[:-1], log[-1:], model=MODEL, policy=CacheAwareWindow(budget), usage_history=usage)
    monkeypatch.undo()
    return work[0]


def test_the_bound_of_a_replay_costs_linear_work_in_its_length(monkeypatch: pytest.MonkeyPatch) -> None:
    small = bound_work(monkeypatch, 301)
    large = bound_work(monkeypatch, 1_201)
    assert small > 300  # the bound was asked at every request point
    # 4x the messages: about 4x the work (the walk of every window from its cut made it ~16x)
    assert large <= 5 * small, (small, large)


def check_every_bound(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every ``upper_bound`` also compare itself with the oracle; the count of bounds compared."""
    compared = [0]
    upper_bound = Replay.upper_bound

    def checked(self: Replay, state: State, window: Window, point: int) -> int:
        got = upper_bound(self, state, window, point)
        assert got == oracle_upper_bound(self, state, window, point), (window, point)
        compared[0] += 1
        return got

    monkeypatch.setattr(Replay, "upper_bound", checked)
    return compared


@pytest.mark.parametrize("change", ["rewind", "usage", "edit"])
def test_a_kept_chain_is_dropped_with_the_requests_it_summed(monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """A warm planner on an imported session (its usage not trusted: every decision walks its window), then
    an earlier part of the log or of its usage changes: the sums kept past that point no longer hold."""
    compared = check_every_bound(monkeypatch)
    log, usage = imported(601)
    planner = Planner()
    policy = CacheAwareWindow(12_000)

    def plan(log: list[dict[str, Any]], usage: list[dict[str, Any]]) -> None:
        plan_request(log[:-1], log[-1:], model=MODEL, policy=policy, usage_history=usage, planner=planner)

    plan(log, usage)
    at = 560  # inside the window
    if change == "rewind":
        log = log[:at] + imported(41, seed=9)[0]
    elif change == "usage":
        usage = [dict(u, usage={"input_tokens": 10, "output_tokens": 3}) if u["seq"] >= at else u for u in usage]
    else:
        log = [*log[:at], {"role": "user", "content": "edited " * 200}, *log[at + 1 :]]
    before = compared[0]
    plan(log, usage)
    assert compared[0] > before


POLICIES = {
    "token-budget": lambda budget: TokenBudget(budget),
    "token-budget-images": lambda budget: TokenBudget(budget) & OldImages(after_turns=2),
    "cache-aware": lambda budget: CacheAwareWindow(budget),
    "cache-aware-low": lambda budget: CacheAwareWindow(budget, low_water=budget // 2),
    "summarize": lambda budget: Summarize(budget + 2_000, max_summary_tokens=300),
}


class WarmDriver(Driver):
    """The driver planning with one ``Planner`` for the whole conversation, as a Chat does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.planner = Planner()

    def plan(self, pending: list[dict[str, Any]]) -> RequestPlan:
        return plan_request(
            self.log, pending, model=self.model, system=self.system, tools=self.tools, policy=self.policy,
            summaries=self.summaries, usage_history=self.usage, cache=self.cache, planner=self.planner,
        )  # fmt: skip


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    model=st.sampled_from(["claude-sonnet-4-6", "claude-opus-5-5"]),
    name=st.sampled_from(sorted(POLICIES)),
    budget=st.sampled_from([5_000, 8_000, 12_000]),
    turns=st.integers(10, 35),
    warm=st.booleans(),
)
def test_the_kept_chain_gives_the_bound_the_whole_walk_gives(
    sim: Any, monkeypatch: pytest.MonkeyPatch, seed: int, model: str, name: str, budget: int, turns: int, warm: bool
) -> None:
    compared = check_every_bound(monkeypatch)
    thinking = model == "claude-opus-5-5"
    rng = random.Random(seed)
    client = anthropic.Anthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    driver = (WarmDriver if warm else Driver)(
        sim, client, model=model, policy=POLICIES[name](budget), system=SYSTEM, tools=[LOOKUP_TOOL], thinking=thinking
    )
    counter = [0]
    for _ in range(turns):
        if rng.random() < 0.15 and len(driver.log) > 4:  # a rewind: the planner drops what depended on it
            cut = last_turn_start(driver.log) or 0
            driver.log = driver.log[:cut]
            driver.usage = [u for u in driver.usage if u["seq"] < cut]
            driver.summaries = [s for s in driver.summaries if s.end <= cut]
        try:
            driver.turn(random_turn(rng, counter, thinking=thinking, images=True))
        except BudgetExceeded:  # a turn larger than a small budget: refused before any call
            break
        if rng.random() < 0.3:  # usage far from the estimate (an imported session): not trusted, walked
            record = driver.usage[-1]
            usage = dict(record["usage"], input_tokens=int(record["usage"]["input_tokens"] * rng.choice([0.3, 3])))
            driver.usage[-1] = {**record, "usage": usage}
    assert compared[0] > 0
