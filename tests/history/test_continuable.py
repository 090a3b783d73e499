"""The command line's continuable copy (`sessions repair`): whatever the history, the chat can go on from it."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings

from claude_history import validate
from claude_history.cli.continuable import continuable_copy, why_not_continuable

from .strategies import messy_histories, valid_histories


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(messy_histories())
def test_the_copy_can_be_continued_and_the_original_is_untouched(history: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(history)
    fixed = continuable_copy(history)
    assert history == before
    assert why_not_continuable(fixed, "s") is None
    if fixed:  # the chat appends the next user message: the request must then be valid
        validate([*fixed, {"role": "user", "content": "next"}])
    assert continuable_copy(fixed) == fixed


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(valid_histories(end_with_user=False))
def test_a_history_the_chat_can_continue_is_left_as_it_is(history: list[dict[str, Any]]) -> None:
    assert why_not_continuable(history, "s") is None
    assert continuable_copy(history) == history


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(messy_histories())
def test_nothing_the_user_said_is_lost_without_being_said(history: list[dict[str, Any]]) -> None:
    """The library's own rule (history.continuable_copy / left_out), used by the CLI and the service: every
    turn the user started is in the copy, or listed in left_out to be sent again."""
    from claude_history.history import continuable_copy as copy_of
    from claude_history.history import continuation_problem, left_out, text_of, turn_starts

    fixed = copy_of(history)
    assert continuation_problem(fixed) is None
    kept = "\n".join(text_of(m) for m in fixed if m["role"] == "user")
    dropped = left_out(history, fixed)
    for i in turn_starts(history):
        said = text_of(history[i])
        assert not said.strip() or said in kept or said in dropped
