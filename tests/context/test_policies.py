"""Every policy's view, for random histories with tool loops, thinking and images: valid, within budget,
starting with a real user message and ending with the newest one; and the window rules of each policy."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history import BudgetExceeded, ConfigurationError, InvalidHistory, validate
from claude_history.context import (
    CacheAwareWindow,
    KeepAll,
    LastTurns,
    OldImages,
    ServerCompaction,
    Summarize,
    TokenBudget,
    plan_request,
)
from claude_history.history import content_blocks, is_turn_start, last_turn_start, turn_starts

from .conversation import build_history

MODEL = "claude-sonnet-4-6"  # thinking is not bound to the prefix: every limit is enforced mid-turn too
BINDING_MODEL = "claude-opus-5-5"
SYSTEM = "You are a helpful assistant. " * 20

POLICIES: list[Any] = [
    KeepAll(),
    LastTurns(1),
    LastTurns(3),
    TokenBudget(6_000),
    CacheAwareWindow(6_000),
    CacheAwareWindow(9_000, low_water=3_000),
    Summarize(8_000, max_summary_tokens=500),
    LastTurns(6) & TokenBudget(7_000) & OldImages(after_turns=2),
    ServerCompaction(trigger_tokens=50_000),
]


def budget_of(policy: Any) -> int | None:
    parts = getattr(policy, "parts", (policy,))
    budgets = [p.max_input_tokens for p in parts if hasattr(p, "max_input_tokens")]
    return min(budgets) if budgets else None


def strip_markers(value: Any) -> Any:
    """A request as the API identifies it: no cache_control, string content as one text block."""
    if isinstance(value, dict):
        out = {k: strip_markers(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(out.get("content"), str) and out.get("role"):
            out["content"] = [{"type": "text", "text": out["content"]}]
        return out
    if isinstance(value, list):
        return [strip_markers(v) for v in value]
    return value


def markers(plan: Any) -> int:
    blocks: list[dict[str, Any]] = []
    for message in plan.messages:
        blocks += content_blocks(message)
    if isinstance(plan.system, list):
        blocks += plan.system
    blocks += plan.tools or []
    return sum(1 for b in blocks if b.get("cache_control"))


histories = st.builds(
    build_history,
    seed=st.integers(0, 10_000),
    turns=st.integers(0, 24),
    thinking=st.booleans(),
    images=st.booleans(),
    open_tool_loop=st.booleans(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories, st.sampled_from(range(len(POLICIES))))
def test_every_view_is_valid_fits_and_keeps_the_newest_user_message(
    history: list[dict[str, Any]], which: int
) -> None:
    policy = POLICIES[which]
    split = last_turn_start(history)
    assert split is not None
    log, pending = history[:split], history[split:]
    snapshot = copy.deepcopy(history)
    try:
        plan = plan_request(log, pending, model=MODEL, system=SYSTEM, policy=policy)
    except BudgetExceeded as error:
        # Only when the newest turn alone cannot fit.
        alone = plan_request([], pending, model=MODEL, system=SYSTEM, policy=KeepAll()).estimated_input_tokens
        assert alone > error.budget
        return
    assert history == snapshot, "planning changed the log"
    validate(plan.messages)
    assert is_turn_start(plan.messages[0]), "the view must start with a real user message"
    assert strip_markers(plan.messages[-1]) == strip_markers(history[-1]), "the newest message must be last"
    assert markers(plan) <= 4
    budget = budget_of(policy)
    if budget is not None and plan.summary_request is None:
        assert plan.estimated_input_tokens <= budget
    # The kept part is the log from a turn start on (thinking and old images aside).
    assert plan.window_start in turn_starts(history)
    assert len(plan.messages) <= len(history) - plan.window_start


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from(range(len(POLICIES) - 1)))
def test_growing_conversation_keeps_a_stable_prefix_between_cuts(seed: int, which: int) -> None:
    """Planned request after request: while the window does not move (and no old image is replaced), the
    previous request is a prefix of the next one, byte-identical apart from cache markers, so the cache is
    read; the window never moves backwards; a CacheAwareWindow cut goes down to its low-water mark."""
    policy = POLICIES[which]
    history = build_history(seed, 30, thinking=seed % 2 == 0, images=seed % 3 == 0)
    points = [i for i, m in enumerate(history) if m["role"] == "user"]
    previous = None
    images_policy = any(isinstance(p, OldImages) for p in getattr(policy, "parts", (policy,)))
    for p in points:
        plan = plan_request(history[:p], history[p : p + 1], model=MODEL, system=SYSTEM, policy=policy)
        if previous is not None:
            assert plan.window_start >= previous.window_start
            if plan.window_start == previous.window_start and not images_policy:
                before = strip_markers(previous.messages)
                assert strip_markers(plan.messages)[: len(before)] == before
                assert strip_markers(plan.system) == strip_markers(previous.system)
            elif plan.window_start != previous.window_start and type(policy) is CacheAwareWindow:
                starts_here = last_turn_start(plan.messages) == 0
                assert plan.estimated_input_tokens <= policy.target or starts_here
        previous = plan


def test_last_turns_keeps_exactly_n_turns() -> None:
    history = build_history(7, 12, thinking=True)
    split = last_turn_start(history)
    for n in (1, 2, 5, 50):
        plan = plan_request(history[:split], history[split:], model=MODEL, policy=LastTurns(n))
        assert sum(1 for m in plan.messages if is_turn_start(m)) == min(n, 13)
        assert plan.report is not None and plan.report.kept_turns == min(n, 13)


def test_keep_all_sends_the_log_unchanged() -> None:
    history = build_history(3, 8, thinking=True, images=True)
    split = last_turn_start(history)
    plan = plan_request(history[:split], history[split:], model=MODEL, system=SYSTEM, policy=KeepAll())
    assert strip_markers(plan.messages) == strip_markers(history)


def test_thinking_is_dropped_before_the_cut_but_kept_in_the_current_turn() -> None:
    history = build_history(11, 20, thinking=True, images=False, open_tool_loop=True)
    split = last_turn_start(history)
    # LastTurns moves the window every turn: every kept turn but the current one was made under another
    # prefix.
    plan = plan_request(history[:split], history[split:], model=MODEL, policy=LastTurns(4))
    assert plan.window_start > 0
    current = last_turn_start(plan.messages)
    before = [b for m in plan.messages[:current] for b in content_blocks(m)]
    assert not any(b["type"] in ("thinking", "redacted_thinking") for b in before)
    assert strip_markers(plan.messages[current:]) == strip_markers(history[split:])


def test_turns_made_after_a_cut_keep_their_thinking() -> None:
    """Thinking blocks are bound to the prefix they were made under: a turn made since the window last moved
    has an unchanged prefix and keeps them; turns from before the move lose them."""
    history = build_history(11, 24, thinking=True, images=False)
    points = [i for i, m in enumerate(history) if m["role"] == "user"]
    policy = CacheAwareWindow(8_000, low_water=4_000)
    plans = [
        plan_request(history[:p], history[p : p + 1], model=BINDING_MODEL, policy=policy) for p in points
    ]
    moved = [k for k in range(1, len(plans)) if plans[k].window_start != plans[k - 1].window_start]
    assert moved
    k = moved[0]
    last_same = max(j for j in range(k, len(plans)) if plans[j].window_start == plans[k].window_start)
    assert last_same > k
    cut_turn = points[k]
    later = plans[last_same]
    origin = later.window_start
    for offset, message in enumerate(later.messages):
        has_thinking = any(b["type"] == "thinking" for b in content_blocks(message))
        if message["role"] == "assistant":
            assert has_thinking == (origin + offset > cut_turn)


def test_binding_model_keeps_the_window_still_inside_a_thinking_tool_loop() -> None:
    # Moving the window mid-turn would break the turn's thinking signatures on models that bind them.
    history = build_history(5, 6, thinking=True, images=False)
    split = last_turn_start(history)
    assert split is not None
    base = plan_request(history[:split], history[split:], model=BINDING_MODEL, policy=KeepAll())
    budget = int(base.estimated_input_tokens * 1.3)
    loop = [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "data " * 2000}],
        },
    ]
    pending = [*history[split:], *loop]
    still = plan_request(history[:split], pending, model=BINDING_MODEL, policy=TokenBudget(budget))
    assert still.window_start == 0
    moved = plan_request(history[:split], pending, model=MODEL, policy=TokenBudget(budget))
    assert moved.window_start > 0


def test_budget_exceeded_when_the_newest_turn_alone_cannot_fit() -> None:
    history = [{"role": "user", "content": "hello " * 5_000}]
    with pytest.raises(BudgetExceeded) as info:
        plan_request([], history, model=MODEL, policy=TokenBudget(2_000))
    assert info.value.budget == 2_000
    assert info.value.needed > 2_000
    assert "newest turn" in str(info.value)


def test_every_policy_stays_inside_the_context_window() -> None:
    # claude-haiku-4-5 has a 200k window; 60 turns of ~9k tokens do not fit, KeepAll or not.
    big = [{"role": "user", "content": "word " * 30_000}, {"role": "assistant", "content": "ok"}] * 30
    plan = plan_request(
        big, [{"role": "user", "content": "and now?"}], model="claude-haiku-4-5", policy=KeepAll()
    )
    assert plan.window_start > 0
    assert plan.estimated_input_tokens <= 0.95 * 200_000


def test_old_images_are_replaced_in_batches() -> None:
    history = build_history(2, 0, images=False)
    from .conversation import image_block

    log: list[dict[str, Any]] = []
    for t in range(9):
        log.append(
            {"role": "user", "content": [image_block(300, 300), {"type": "text", "text": f"turn {t}"}]}
        )
        log.append({"role": "assistant", "content": f"seen {t}"})
    plan = plan_request(log, history, model=MODEL, policy=OldImages(after_turns=3))
    kept = [i for i, m in enumerate(plan.messages) if any(b["type"] == "image" for b in content_blocks(m))]
    replaced = [i for i, m in enumerate(plan.messages) if "image omitted" in str(m["content"])]
    # Newest turn is 9: images of turns < 6 are replaced (a batch every 3 turns), turns 6-8 keep theirs.
    assert [plan.messages[i]["content"][-1]["text"] for i in kept] == ["turn 6", "turn 7", "turn 8"]
    assert len(replaced) == 6
    validate(plan.messages)


def test_server_compaction_sends_the_edit_and_the_whole_log() -> None:
    history = build_history(4, 5, thinking=True)
    split = last_turn_start(history)
    policy = ServerCompaction(trigger_tokens=100_000, instructions="Keep names.")
    plan = plan_request(history[:split], history[split:], model=MODEL, policy=policy)
    assert plan.betas == ["compact-2026-01-12"]
    edit = plan.extra["context_management"]["edits"][0]
    assert edit == {
        "type": "compact_20260112",
        "trigger": {"type": "input_tokens", "value": 100_000},
        "instructions": "Keep names.",
    }
    assert strip_markers(plan.messages) == strip_markers(history)
    assert plan.request_kwargs()["context_management"] == plan.extra["context_management"]


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        LastTurns(0)
    with pytest.raises(ConfigurationError):
        CacheAwareWindow(1_000, low_water=2_000)
    with pytest.raises(ConfigurationError):
        Summarize(10_000) & ServerCompaction()
    with pytest.raises(ConfigurationError):
        plan_request(
            [],
            [{"role": "user", "content": "x"}],
            model=MODEL,
            policy=TokenBudget(9_000) & ServerCompaction(),
        )
    with pytest.raises(ConfigurationError):
        plan_request([], [{"role": "user", "content": "x"}], model=MODEL, policy="last 20")


def test_a_broken_log_is_reported_with_its_index() -> None:
    log = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
    ]
    with pytest.raises(InvalidHistory) as info:
        plan_request(log, [{"role": "user", "content": "next"}], model=MODEL)
    assert info.value.index == 1


def test_composition_takes_the_latest_cut() -> None:
    history = build_history(9, 15)
    split = last_turn_start(history)
    a = plan_request(history[:split], history[split:], model=MODEL, policy=LastTurns(4))
    b = plan_request(history[:split], history[split:], model=MODEL, policy=TokenBudget(5_000))
    both = plan_request(
        history[:split], history[split:], model=MODEL, policy=LastTurns(4) & TokenBudget(5_000)
    )
    assert both.window_start == max(a.window_start, b.window_start)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from(range(len(POLICIES) - 1)))
def test_the_incremental_index_gives_the_same_plan_as_a_fresh_one(seed: int, which: int) -> None:
    """The planner caches its index of a session's messages between calls: planning the same log from fresh
    copies (a reload from the store, another process) gives exactly the same request."""
    policy = POLICIES[which]
    history = build_history(seed, 20, thinking=True, images=True)
    usage = [
        {"seq": i, "usage": {"input_tokens": 500 + 40 * i}}
        for i, m in enumerate(history)
        if m["role"] == "assistant"
    ]
    for p in [i for i, m in enumerate(history) if m["role"] == "user"][::3]:
        cached = plan_request(
            history[:p], history[p : p + 1], model=MODEL, system=SYSTEM, policy=policy, usage_history=usage
        )
        fresh = plan_request(
            copy.deepcopy(history[:p]),
            copy.deepcopy(history[p : p + 1]),
            model=MODEL,
            system=SYSTEM,
            policy=policy,
            usage_history=usage,
        )
        assert cached.messages == fresh.messages
        assert (cached.window_start, cached.estimated_input_tokens) == (
            fresh.window_start,
            fresh.estimated_input_tokens,
        )


def test_a_message_edited_in_place_is_measured_again() -> None:
    log = [
        {"role": "user", "content": "short"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
    ]
    pending = [{"role": "user", "content": "next"}]
    before = plan_request(log, pending, model=MODEL).estimated_input_tokens
    log[1]["content"].append({"type": "text", "text": "much longer now " * 200})
    after = plan_request(log, pending, model=MODEL).estimated_input_tokens
    assert after > before + 500
