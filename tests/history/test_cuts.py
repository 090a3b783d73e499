"""turn_starts (the one cut function), turns, strip_thinking and the small helpers."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from claude_history import InvalidHistory, validate
from claude_history.history import (
    as_blocks,
    content_blocks,
    last_turn_start,
    strip_thinking,
    text_of,
    turn_starts,
    turns,
)

from .strategies import valid_histories
from .test_validate import a, text, tool_result, tool_use, u

THINK = {"type": "thinking", "thinking": "hmm", "signature": "sig"}


def tool_turn() -> list[dict[str, Any]]:
    return [
        u("weather in Paris?"),
        a([THINK, tool_use("t1")]),
        u([tool_result("t1"), text("also check Rome")]),
        a([THINK, tool_use("t2")]),
        u([tool_result("t2")]),
        a([THINK, text("Sunny in both.")]),
    ]


def test_turn_starts_skip_tool_result_messages_even_with_text() -> None:
    history = [u("hi"), a("hello"), *tool_turn(), u("thanks")]
    assert turn_starts(history) == [0, 2, 8]
    assert last_turn_start(history) == 8
    assert turns(history) == [range(0, 2), range(2, 8), range(8, 9)]


def test_no_turn_starts_without_a_user_message() -> None:
    assert turn_starts([a("x")]) == []
    assert last_turn_start([]) is None


@settings(max_examples=200, deadline=None)
@given(valid_histories(end_with_user=True))
def test_every_cut_point_gives_a_sendable_history_and_no_other_user_index_does(
    history: list[dict[str, Any]],
) -> None:
    starts = set(turn_starts(history))
    assert 0 in starts
    for k, message in enumerate(history):
        if message["role"] != "user":
            continue
        if k in starts:
            validate(history[k:])
        else:
            try:
                validate(history[k:])
            except InvalidHistory:
                continue
            raise AssertionError(f"cutting at {k} separates tool results from their call but passed")


def test_strip_thinking_keeps_the_current_turn() -> None:
    history = [u("hi"), a([THINK, text("hello")]), *tool_turn()]
    current = last_turn_start(history)
    assert current == 2
    stripped = strip_thinking(history, keep_from=current)
    assert stripped[1] == a([text("hello")])
    assert stripped[2:] == history[2:]
    assert history[1]["content"][0] is THINK  # input untouched


def test_strip_thinking_drops_assistant_messages_left_empty_and_merges_users() -> None:
    history = [u("hi"), a([THINK]), u("still there?"), a("yes"), u("ok")]
    stripped = strip_thinking(history)
    assert stripped == [u([text("hi"), text("still there?")]), a("yes"), u("ok")]
    validate(stripped)


@settings(max_examples=200, deadline=None)
@given(valid_histories(end_with_user=True), st.data())
def test_strip_thinking_after_any_cut_stays_valid(history: list[dict[str, Any]], data: st.DataObject) -> None:
    cut = data.draw(st.sampled_from(turn_starts(history)))
    window = history[cut:]
    current = last_turn_start(window)
    stripped = strip_thinking(window, keep_from=current)
    validate(stripped)
    assert not any(
        b.get("type") in ("thinking", "redacted_thinking")
        for m in stripped[: last_turn_start(stripped)]
        for b in content_blocks(m)
    )
    assert stripped[last_turn_start(stripped) :] == window[current:]


def test_helpers() -> None:
    message = u("plain")
    assert as_blocks(message) == u([text("plain")])
    assert message == u("plain")
    assert text_of(u([tool_result("t"), text("a"), text("b")])) == "a\nb"
    assert content_blocks(u("x")) == [text("x")]
