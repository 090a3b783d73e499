"""Cache breakpoints: at most 4 with the caller's own, newest message first, per-model minimum, 20-block
lookback, TTL order and the TTL choice from gaps between turns."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from claude_history.context import KeepAll, plan_request
from claude_history.context.cache import Candidate, apply_breakpoints, choose_ttl
from claude_history.history import content_blocks

MODEL = "claude-sonnet-4-6"  # 1,024-token minimum
LONG_SYSTEM = "You answer questions about the solar system. " * 200


def marked(plan: Any) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for tool in plan.tools or []:
        if tool.get("cache_control"):
            out.append(("tool", tool["cache_control"]))
    if isinstance(plan.system, list):
        out += [("system", b["cache_control"]) for b in plan.system if b.get("cache_control")]
    for i, message in enumerate(plan.messages):
        out += [
            (f"message {i}", b["cache_control"]) for b in content_blocks(message) if b.get("cache_control")
        ]
    return out


def conversation(turns: int, size: int = 200) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = []
    for t in range(turns):
        log.append({"role": "user", "content": f"question {t} " + "word " * size})
        log.append({"role": "assistant", "content": f"answer {t} " + "word " * size})
    return log


def test_system_and_newest_message_are_marked() -> None:
    log = conversation(3)
    plan = plan_request(log, [{"role": "user", "content": "next"}], model=MODEL, system=LONG_SYSTEM)
    places = [where for where, _ in marked(plan)]
    assert places == ["system", f"message {len(log)}"]
    assert plan.messages[-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}


def test_nothing_is_marked_under_the_minimum_cacheable_length() -> None:
    plan = plan_request([], [{"role": "user", "content": "hi"}], model=MODEL, system="Be brief.")
    assert marked(plan) == []
    assert plan.messages == [{"role": "user", "content": "hi"}]
    assert plan.system == "Be brief."  # untouched when unmarked


def test_log_is_never_modified_by_markers() -> None:
    log = conversation(4)
    pending = [{"role": "user", "content": [{"type": "text", "text": "next " * 300}]}]
    plan_request(log, pending, model=MODEL, system=LONG_SYSTEM)
    assert "cache_control" not in pending[0]["content"][0]
    assert all(isinstance(m["content"], str) for m in log)


def test_callers_markers_are_kept_and_the_total_stays_at_four() -> None:
    log = conversation(4)
    for message in log[::2]:  # the caller marks every user message of theirs (4 markers in the log)
        message["content"] = [
            {"type": "text", "text": message["content"], "cache_control": {"type": "ephemeral"}}
        ]
    system = [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    plan = plan_request(log, [{"role": "user", "content": "next"}], model=MODEL, system=system)
    found = marked(plan)
    assert len(found) == 4
    assert found[0] == ("system", {"type": "ephemeral", "ttl": "1h"})
    # The newest of the caller's message markers are kept, the oldest dropped.
    assert [w for w, _ in found[1:]] == ["message 2", "message 4", "message 6"]


def test_a_long_turn_gets_a_breakpoint_where_the_previous_request_ended() -> None:
    log = conversation(6)
    # A turn adding 30 blocks: the newest breakpoint's 20-block lookback cannot reach the previous one.
    usage = [
        {
            "seq": i,
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        for i in range(1, len(log), 2)
    ]
    first = plan_request(
        log, [{"role": "user", "content": "next " * 50}], model=MODEL, system=LONG_SYSTEM, usage_history=usage
    )
    reply = {"role": "assistant", "content": "ok " * 50}
    big = {"role": "user", "content": [{"type": "text", "text": f"part {k} " + "w " * 40} for k in range(30)]}
    previous = [*log, {"role": "user", "content": "next " * 50}]
    usage.append({"seq": len(previous), "usage": {"input_tokens": first.estimated_input_tokens}})
    plan = plan_request([*previous, reply], [big], model=MODEL, system=LONG_SYSTEM, usage_history=usage)
    places = [w for w, _ in marked(plan)]
    assert f"message {len(previous) - 1}" in places, places
    assert places[-1] == f"message {len(previous) + 1}"


def test_ttl_follows_the_gaps_between_turns() -> None:
    # Turns every 20 minutes: a 5-minute entry always expires, a 1-hour one is read.
    assert choose_ttl([1200] * 10, prefix_tokens=50_000, new_tokens=500) == "1h"
    assert choose_ttl([30] * 10, prefix_tokens=50_000, new_tokens=500) == "5m"
    assert choose_ttl([1200, 1200], prefix_tokens=50_000, new_tokens=500) == "5m"  # too few to judge
    assert choose_ttl([7200] * 10, prefix_tokens=50_000, new_tokens=500) == "5m"  # nothing survives anyway


def test_a_live_1h_entry_lets_the_newest_writes_use_5m() -> None:
    gaps = [30] * 8 + [1200] * 2  # one gap in five outlives a 5-minute entry
    # Nothing held by a 1-hour entry: a long gap would lose the whole prefix, worth the premium.
    assert choose_ttl(gaps, prefix_tokens=50_000, new_tokens=500) == "1h"
    # A 1-hour entry holds all but the newest turn: only that is at risk, not worth the premium.
    assert choose_ttl(gaps, prefix_tokens=50_000, new_tokens=500, anchored=49_000) == "5m"
    # ... until enough has piled up past it.
    assert choose_ttl(gaps, prefix_tokens=50_000, new_tokens=500, anchored=45_000) == "1h"
    # Everything written again (an image added, a cut): the premium on all of it costs more than the risk...
    assert choose_ttl(gaps, prefix_tokens=50_000, new_tokens=50_000) == "5m"
    # ... unless long gaps are the rule.
    assert choose_ttl([1200] * 10, prefix_tokens=50_000, new_tokens=50_000) == "1h"


def _usage(read: int, five: int = 0, hour: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": 0,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": five + hour,
        "cache_creation": {"ephemeral_5m_input_tokens": five, "ephemeral_1h_input_tokens": hour},
        "output_tokens": 10,
    }


def _history(log: list[dict[str, Any]], anchor_at: int, start: datetime) -> list[dict[str, Any]]:
    """Usage of each reply in ``log``: every request wrote its new part at 5m, except the one made at
    ``anchor_at`` (a user message index), which wrote at 1h; 30 seconds between requests."""
    usage = []
    sent = 0
    for seq in range(1, len(log), 2):
        prompt = 2_000 + 300 * seq
        new = prompt - sent
        split = {"hour": new} if seq - 1 == anchor_at else {"five": new}
        usage.append({"seq": seq, "created_at": start + timedelta(seconds=30 * seq), "usage": _usage(sent, **split)})
        sent = prompt
    return usage


def test_a_1h_entry_beyond_the_lookback_gets_a_marker_after_a_long_gap() -> None:
    """The newest 1-hour entry is 30 blocks behind the newest message: a lookup walks back 20 blocks from a
    breakpoint, so the request marks it, and the writes it expects (TTL choice) start there."""
    log = conversation(20)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    usage = _history(log, anchor_at=8, start=start)
    pending = [{"role": "user", "content": "next " + "word " * 200}]
    later = start + timedelta(seconds=30 * len(log) + 20 * 60)  # the 5-minute entries are gone
    plan = plan_request(log, pending, model=MODEL, system=LONG_SYSTEM, usage_history=usage, now=later)
    places = [w for w, _ in marked(plan)]
    assert "message 8" in places, places
    assert len(places) <= 4
    # Within 5 minutes the previous request's entry is read: no marker is spent on the old one.
    soon = start + timedelta(seconds=30 * len(log) + 60)
    warm = plan_request(log, pending, model=MODEL, system=LONG_SYSTEM, usage_history=usage, now=soon)
    assert "message 8" in [w for w, _ in marked(warm)]  # still marked: a hit refreshes it
    # Without a 1-hour entry (every request wrote at 5m) there is nothing to mark.
    plain = _history(log, anchor_at=-1, start=start)
    none = plan_request(log, pending, model=MODEL, system=LONG_SYSTEM, usage_history=plain, now=later)
    assert "message 8" not in [w for w, _ in marked(none)]


def test_plan_uses_1h_for_a_slow_session() -> None:
    log = conversation(8)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    usage = [
        {"seq": i, "created_at": start + timedelta(minutes=20 * i), "usage": {"input_tokens": 5000}}
        for i in range(1, len(log), 2)
    ]
    plan = plan_request(
        log,
        [{"role": "user", "content": "next"}],
        model=MODEL,
        system=LONG_SYSTEM,
        usage_history=usage,
        policy=KeepAll(),
    )
    assert plan.cache_ttl == "1h"
    assert all(control.get("ttl") == "1h" for _, control in marked(plan))
    fixed = plan_request(
        log,
        [{"role": "user", "content": "next"}],
        model=MODEL,
        system=LONG_SYSTEM,
        usage_history=usage,
        cache="5m",
    )
    assert fixed.cache_ttl == "5m"
    off = plan_request(
        log, [{"role": "user", "content": "next"}], model=MODEL, system=LONG_SYSTEM, cache=False
    )
    assert marked(off) == []


def test_ttl_is_chosen_from_the_newest_20_gaps_skipping_clock_skew() -> None:
    """Ten slow turns (20 minutes apart), then quick ones (30 s) each followed by a record stamped a minute
    in the past (another server's clock): the negative gaps are skipped, so the newest 20 gaps are the 15 quick
    ones and 5 slow ones, and a 1-hour entry pays; with 20 quick gaps after the slow ones it does not."""

    def ttl(gaps: list[float]) -> str | None:
        log = conversation(len(gaps) + 1, size=20)
        now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        usage = [{"seq": 1, "created_at": now, "usage": {"input_tokens": 5000}}]
        for i, gap in enumerate(gaps):
            now += timedelta(seconds=gap)
            usage.append({"seq": 2 * i + 3, "created_at": now, "usage": {"input_tokens": 5000}})
        plan = plan_request(
            log, [{"role": "user", "content": "next"}], model=MODEL, system=LONG_SYSTEM * 10, usage_history=usage
        )
        return plan.cache_ttl

    assert ttl([1200.0] * 10 + [30.0, -60.0] * 15) == "1h"
    assert ttl([1200.0] * 10 + [30.0] * 20) == "5m"
    assert ttl([1200.0] * 10 + [30.0] * 19) == "1h"


def test_ttl_order_respects_a_callers_earlier_5m_marker() -> None:
    blocks = [
        {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "b"},
    ]
    chosen = apply_breakpoints(blocks, [Candidate(1, 5000, 0, "newest")], min_tokens=1024, ttl="1h")
    assert len(chosen) == 1
    assert blocks[1]["cache_control"] == {"type": "ephemeral"}  # 1h may not follow 5m


def test_thinking_blocks_are_never_marked() -> None:
    blocks = [{"type": "thinking", "thinking": "x", "signature": "s"}]
    assert apply_breakpoints(blocks, [Candidate(0, 5000, 0, "x")], min_tokens=0, ttl="5m") == []
    assert "cache_control" not in blocks[0]
