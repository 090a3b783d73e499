"""An exact count (``plan.check_count``) that finds the planned view over the budget moves the window then; the
next turns must keep that cut, though nothing records it but the usage of the request that was sent (the
replay reads it back from the billed size). Otherwise the window would flip back to the uncut view, which is
over the budget, and then be cut again: a cache write each time and requests over the budget."""

from __future__ import annotations

import copy
import random
import zlib
from dataclasses import dataclass
from typing import Any

import pytest

from claude_history.context import CacheAwareWindow, Summarize, plan_request
from claude_history.context.plan import RequestPlan
from claude_history.history import content_blocks
from claude_history.stores.base import Summary
from claude_history.tokens import estimate_message, estimate_system

from .conversation import words

MODEL = "claude-sonnet-4-6"
SYSTEM = "Be helpful and precise. " * 30


def strip(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: strip(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(out.get("content"), str) and out.get("role"):
            out["content"] = [{"type": "text", "text": out["content"]}]
        return out
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def counted(plan: RequestPlan) -> int:
    """The API's count of a request: like the estimator's, except that text marked DENSE (code, a language
    the estimator under-counts) weighs three times more. Prefixes count the same, as they do for the API."""
    total = estimate_system(plan.system, MODEL).tokens()
    for message in plan.messages:
        size = estimate_message(strip(message), MODEL).tokens()
        dense = any("DENSE" in str(b.get("text", "")) for b in content_blocks(message))
        total += 3 * size if dense else size
    return total


@dataclass
class Sent:
    plan: RequestPlan
    counted: int | None  # the exact count made before sending, if any
    size: int  # what the request was billed


def converse(policy: Any, *, turns: int, count: bool = True) -> tuple[list[Sent], int]:
    """Turns played as Chat plays them: plan; on ``check_count`` count, and plan again with the count when it
    is over the budget; summarise when asked; send; record the billed size as the reply's usage. One turn is
    dense: the first whose estimate fits the window as it stands while its count does not. Returns the
    requests sent and the dense turn."""
    rng = random.Random(zlib.crc32(repr(policy).encode()))
    log: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    summaries: list[Summary] = []
    sent: list[Sent] = []
    dense_turn = -1

    def plan(pending: list[dict[str, Any]], measured: int | None = None) -> RequestPlan:
        arguments: dict[str, Any] = {
            "model": MODEL,
            "system": SYSTEM,
            "policy": policy,
            "summaries": list(summaries),
            "usage_history": list(usage),
            "measured_input_tokens": measured,
        }
        result = plan_request(log, pending, **arguments)
        if result.summary_request is not None:
            request = result.summary_request
            summaries.append(Summary(request.start, request.end, "notes: " + words(rng, 60)))
            arguments["summaries"] = list(summaries)
            result = plan_request(log, pending, **arguments)
        # The replay is a pure function of the log and its records: from scratch it plans the same.
        assert plan_request(*copy.deepcopy((log, pending)), **copy.deepcopy(arguments)) == result
        return result

    for turn in range(turns):
        pending = [{"role": "user", "content": words(rng, rng.choice([60, 120, 200]))}]
        if dense_turn < 0 and turn >= 10:
            dense = [{"role": "user", "content": "DENSE " + words(rng, 500)}]
            trial = plan(dense)
            assert trial.report is not None
            fits = trial.window_start == sent[-1].plan.window_start and trial.summary_request is None
            if fits and trial.check_count and counted(trial) > trial.report.budget:
                pending, dense_turn = dense, turn
        current = plan(pending)
        exact = None
        if count and current.check_count:
            exact = counted(current)
            assert current.report is not None
            if exact > current.report.budget:
                current = plan(pending, measured=exact)
        sent.append(Sent(current, exact, counted(current)))
        reply = {"role": "assistant", "content": [{"type": "text", "text": words(rng, rng.choice([60, 150]))}]}
        log += [pending[0], reply]
        usage.append({"seq": len(log) - 1, "usage": {"input_tokens": sent[-1].size}})
    assert dense_turn > 0, "no turn where the estimate let a dense message in"
    return sent, dense_turn


@pytest.mark.parametrize(
    "policy",
    [CacheAwareWindow(8_000, low_water=5_000), Summarize(9_000, low_water=5_500, max_summary_tokens=300)],
    ids=["cache-aware", "summarize"],
)
def test_a_window_cut_by_an_exact_count_stays_cut(policy: Any) -> None:
    budget = policy.max_input_tokens
    sent, dense = converse(policy, turns=40)
    assert dense < 35
    before, cut, after = sent[dense - 1], sent[dense], sent[dense + 1]
    # The scenario: the estimate let the dense turn in, the count did not, and the window moved.
    assert cut.counted is not None and cut.counted > budget
    assert cut.plan.window_start > before.plan.window_start
    # The next turn goes on from the window that was sent: what was written to the cache is read.
    assert after.plan.window_start == cut.plan.window_start
    assert strip(after.plan.messages)[: len(cut.plan.messages)] == strip(cut.plan.messages)
    assert strip(after.plan.system) == strip(cut.plan.system)
    windows = [s.plan.window_start for s in sent]
    assert windows == sorted(windows), "the window never moves back"
    assert all(s.size <= budget for s in sent), [(i, s.size) for i, s in enumerate(sent) if s.size > budget]


def test_without_a_count_the_uncut_window_is_what_the_replay_remembers() -> None:
    """A caller that never counts sent the dense turn uncut (over the budget, as billed): the next plan
    knows that request's exact size and cuts at once; it does not take the request for a cut one."""
    policy = CacheAwareWindow(8_000, low_water=5_000)
    sent, dense = converse(policy, turns=40, count=False)
    assert dense < 39
    uncut, after = sent[dense], sent[dense + 1]
    assert uncut.plan.window_start == sent[dense - 1].plan.window_start
    assert uncut.size > policy.max_input_tokens
    assert after.plan.window_start > uncut.plan.window_start
    assert after.plan.summary_request is None and after.plan.report is not None
    assert after.plan.report.exact_prefix_tokens == 0  # a new window: nothing of it was billed yet
