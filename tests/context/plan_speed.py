"""How long ``plan_request`` takes as a conversation grows (not a test: speed belongs outside the suite).

Run: ``.venv/bin/python -m tests.context.plan_speed [--turns 300]``. Plays a seeded synthetic conversation
(text, tool loops, images) the way Chat calls the planner (one ``Planner``, one lineage): fresh copies of the
pending messages and a new usage list on every call, each reply billed a steady 10% under the raw estimate of
what was sent. Prints the median time of
the first plan of turns 10, 100 and 300 (the same call repeated), and the total over every request.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from claude_history.context import CacheAwareWindow, KeepAll, Planner, plan_request
from claude_history.context.plan import RequestPlan
from claude_history.tokens import estimate_request

from .conversation import LOOKUP_TOOL, random_turn, signed

MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a research assistant. Answer with care and cite what you used. " * 40


def play(policy: Any, turns: int, marks: set[int], repeats: int, seed: int = 5) -> tuple[dict[int, float], float, int]:
    rng = random.Random(seed)
    counter = [0]
    log: list[dict[str, Any]] = []
    usage: list[dict[str, Any]] = []
    clock = datetime(2026, 1, 1, tzinfo=timezone.utc)
    at: dict[int, float] = {}
    total = 0.0
    calls = 0
    planner, lineage = Planner(), object()  # as a Chat keeps them: the log only grows

    def plan(pending: list[dict[str, Any]]) -> tuple[RequestPlan, float]:
        started = time.perf_counter()
        result = plan_request(
            log,
            [dict(m) for m in pending],
            model=MODEL,
            system=SYSTEM,
            tools=[LOOKUP_TOOL],
            policy=policy,
            usage_history=list(usage),
            planner=planner,
            lineage=lineage,
        )
        return result, time.perf_counter() - started

    for t in range(1, turns + 1):
        turn = random_turn(rng, counter, thinking=False, images=True)
        pending: list[dict[str, Any]] = [{"role": "user", "content": turn.user}]
        clock += timedelta(seconds=rng.choice([20, 60, 240, 900]))
        for k, reply in enumerate(turn.replies):
            result, spent = plan(pending)
            total += spent
            calls += 1
            if k == 0 and t in marks:
                at[t] = statistics.median(plan(pending)[1] for _ in range(repeats))
            # The "real" tokenizer: a steady 10% under the raw estimate of what was sent, with some noise.
            sent = estimate_request(result.messages, model=MODEL, system=result.system, tools=result.tools)
            prompt = int(sent * rng.uniform(0.88, 0.92))
            cached = min(prompt, result.report.cached_tokens if result.report else 0)
            pending.append({"role": "assistant", "content": signed(reply)})
            usage.append(
                {
                    "seq": len(log) + len(pending) - 1,
                    "usage": {
                        "input_tokens": prompt - cached,
                        "cache_read_input_tokens": cached,
                        "cache_creation_input_tokens": 0,
                        "output_tokens": 80,
                    },
                    "created_at": clock,
                    "model": MODEL,
                }
            )
            clock += timedelta(seconds=3)
            if k < len(turn.tool_results):
                pending.append({"role": "user", "content": turn.tool_results[k]})
        log.extend(pending)
    return at, total, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    marks = {t for t in (10, 100, 300) if t <= args.turns}
    for policy in (KeepAll(), CacheAwareWindow(20_000)):
        at, total, calls = play(policy, args.turns, marks, args.repeats)
        figures = ", ".join(f"turn {t}: {at[t] * 1000:.2f} ms" for t in sorted(at))
        print(f"{policy!r:32} {figures}; {calls} plans in {total:.2f} s ({total / calls * 1000:.2f} ms mean)")


if __name__ == "__main__":
    main()
