"""repair(): examples of each fix, and properties over histories built from random operations."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history import InvalidHistory, repair, validate
from claude_history.history import INTERRUPTED_TOOL_RESULT, content_blocks, text_of

from .strategies import messy_histories, valid_histories
from .test_validate import a, text, tool_result, tool_use, u

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def newest_user_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The text a user typed in the newest user message (tool results aside)."""
    newest = next(m for m in reversed(messages) if m["role"] == "user")
    return [b["text"] for b in content_blocks(newest) if b.get("type") == "text" and b["text"].strip()]


# ------------------------------------------------------------------------------------------------ examples


def test_guides_pattern_after_a_failed_call_is_merged() -> None:
    # The guides append the user message, call, the call fails; the user types again.
    broken = [u("Hi"), a("Hello"), u("What is 2+2?"), u("Hello? What is 2+2?")]
    fixed = repair(broken)
    assert fixed == [u("Hi"), a("Hello"), u([text("What is 2+2?"), text("Hello? What is 2+2?")])]
    validate(fixed)


def test_tool_use_without_result_is_marked_interrupted() -> None:
    fixed = repair([u("weather?"), a([text("checking"), tool_use("t1")]), u("never mind")])
    assert fixed[2] == u(
        [
            {
                "type": "tool_result",
                "tool_use_id": "t1",
                "is_error": True,
                "content": INTERRUPTED_TOOL_RESULT,
            },
            text("never mind"),
        ]
    )
    validate(fixed)


def test_trailing_tool_use_gets_a_result_message() -> None:
    fixed = repair([u("weather?"), a([tool_use("t1")])])
    assert fixed[-1]["role"] == "user"
    assert [b["tool_use_id"] for b in fixed[-1]["content"]] == ["t1"]
    assert fixed[-1]["content"][0]["is_error"] is True
    validate(fixed)


def test_partial_results_are_completed_in_place() -> None:
    fixed = repair([u("x"), a([tool_use("t1"), tool_use("t2")]), u([tool_result("t2")])])
    assert [b["tool_use_id"] for b in fixed[2]["content"]] == ["t2", "t1"]
    assert fixed[2]["content"][0] == tool_result("t2")


def test_orphan_tool_results_are_dropped_with_the_messages_they_leave_empty() -> None:
    fixed = repair(
        [u([tool_result("gone")]), a("ok"), u([tool_result("gone2"), text("and?")]), a("so"), u("last")]
    )
    # The first message was only an orphan: dropped; the assistant reply then leads and is dropped too.
    assert fixed == [u([text("and?")]), a("so"), u("last")]


def test_newest_user_message_made_only_of_orphans_is_kept_as_text() -> None:
    fixed = repair([u("x"), a("y"), u([tool_result("gone", "42 degrees")])])
    assert fixed[-1]["role"] == "user"
    assert "42 degrees" in text_of(fixed[-1])
    validate(fixed)


def test_tool_results_are_moved_first() -> None:
    fixed = repair([u("x"), a([tool_use("t1")]), u([text("here"), tool_result("t1")])])
    assert fixed[2]["content"] == [tool_result("t1"), text("here")]


def test_leading_assistant_messages_are_dropped() -> None:
    # The tool_result answered a dropped call, so it goes too; "Hi" is what is left.
    assert repair([a("I start"), a([tool_use("t1")]), u([tool_result("t1")]), u("Hi")]) == [u([text("Hi")])]


def test_empty_blocks_and_misplaced_blocks_are_dropped() -> None:
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}
    fixed = repair([u([text(" "), text("Hi")]), a([doc, text("")]), a([text("Hello")]), u("  "), u("bye")])
    assert fixed == [u([text("Hi")]), a([text("Hello")]), u("bye")]


def test_stored_log_ending_with_a_reply_keeps_it() -> None:
    history = [u("Hi"), a("Hello")]
    assert repair(history) == history


def test_no_user_message_gives_an_empty_history() -> None:
    assert repair([a("alone")]) == []
    assert repair([]) == []


def test_empty_newest_user_message_is_an_error() -> None:
    with pytest.raises(InvalidHistory) as info:
        repair([u("Hi"), a("Hello"), u("   ")])
    assert info.value.index == 2


def test_shape_errors_are_not_guessed_at() -> None:
    with pytest.raises(InvalidHistory) as info:
        repair([u("Hi"), {"role": "system", "content": "x"}])
    assert info.value.index == 1


def test_result_does_not_share_blocks_with_input() -> None:
    history = [u([text("Hi")]), a([text("Hello")]), u([text("again")])]
    fixed = repair(history)
    fixed[0]["content"][0]["text"] = "changed"
    assert history[0]["content"][0]["text"] == "Hi"


# ---------------------------------------------------------------------------------------------- properties


@PROPERTY
@given(messy_histories())
def test_repair_gives_a_valid_history_whenever_a_user_spoke(history: list[dict[str, Any]]) -> None:
    snapshot = copy.deepcopy(history)
    try:
        fixed = repair(history)
    except InvalidHistory:
        # Only an unsendable newest user message is refused.
        newest = next(m for m in reversed(history) if m["role"] == "user")
        assert not newest_user_texts([newest]) and not any(
            b.get("type") in ("tool_result", "image") for b in content_blocks(newest)
        )
        return
    assert history == snapshot, "repair mutated its input"
    if not any(m["role"] == "user" for m in history):
        assert fixed == []
        return
    validate(fixed, for_sending=False)
    if history[-1]["role"] == "user" or fixed[-1]["role"] == "user":
        validate(fixed)  # ready to send
    assert repair(fixed) == fixed, "repair is not idempotent"
    assert repair(history) == fixed, "repair is not deterministic"


@PROPERTY
@given(messy_histories())
def test_newest_user_message_survives(history: list[dict[str, Any]]) -> None:
    users = [m for m in history if m["role"] == "user"]
    if not users or not newest_user_texts(users[-1:]):
        return
    fixed = repair(history)
    # Its words are all in the last user message of the result that holds text (merged with others perhaps,
    # never dropped; only a synthetic message of interrupted tool results may follow it).
    kept = text_of(next(m for m in reversed(fixed) if m["role"] == "user" and text_of(m)))
    for words in newest_user_texts(users[-1:]):
        assert words in kept


@PROPERTY
@given(valid_histories())
def test_valid_history_is_returned_unchanged(history: list[dict[str, Any]]) -> None:
    validate(history, for_sending=False)
    assert repair(history) == history


@PROPERTY
@given(valid_histories(end_with_user=True), st.integers(0, 100))
def test_repair_of_a_truncated_valid_history_keeps_its_sendable_part(
    history: list[dict[str, Any]], cut: int
) -> None:
    # The guides' `messages[-n:]` may start anywhere: repair always makes it sendable again.
    window = history[cut % len(history) :]
    fixed = repair(window)
    if any(m["role"] == "user" for m in window):
        validate(fixed)
        assert fixed[-1] == window[-1] or text_of(window[-1]) in text_of(fixed[-1])


def test_a_lone_surrogate_is_refused_and_repaired_to_a_replacement_character() -> None:
    """The API refuses a request holding one as invalid JSON ("no low surrogate in string"), and every later
    request that resends the message fails the same way: validate says so, repair makes it U+FFFD."""
    history = [
        u("a \ud83d b"),  # half of an emoji, as a string cut between its two UTF-16 units leaves it
        a([{**tool_use("t1"), "input": {"k\udc00": ["v\ud800"]}}]),
        u([tool_result("t1")]),
        a("ok \U0001f600"),  # a whole emoji is fine
    ]
    with pytest.raises(InvalidHistory, match=r"messages\[0\]: holds a lone surrogate") as first:
        validate(history, for_sending=False)
    assert first.value.index == 0
    with pytest.raises(InvalidHistory, match=r"messages\[1\]: holds a lone surrogate"):
        validate([u("x"), *history[1:]], for_sending=False)
    fixed = repair(history)
    validate(fixed, for_sending=False)
    assert fixed[0]["content"] == "a \ufffd b"
    assert fixed[1]["content"][0]["input"] == {"k\ufffd": ["v\ufffd"]}
    assert fixed[3] == history[3]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), min_size=1), min_size=1,
                max_size=4))  # fmt: skip
def test_repair_leaves_no_lone_surrogate(texts: list[str]) -> None:
    history: list[dict[str, Any]] = []
    for i, t in enumerate(texts):
        history += [u(f"q{i} {t}"), a(f"r{i} {t}")]
    fixed = repair(history)
    validate(fixed, for_sending=False)
    assert [m["role"] for m in fixed] == [m["role"] for m in history]
