"""validate(): one passing and one failing history per API rule, with the index and a fix in the message."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from claude_history import InvalidHistory, validate
from claude_history.history import last_turn_start, validate_from
from claude_history.history import validate as validate_direct

from .strategies import messy_histories, valid_histories


def u(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def a(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def tool_use(id_: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": id_, "name": "get_weather", "input": {"city": "Paris"}}


def tool_result(id_: str, content: Any = "sunny") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": id_, "content": content}


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def fails(messages: list[Any], index: int | None, *needles: str, **kwargs: Any) -> InvalidHistory:
    with pytest.raises(InvalidHistory) as info:
        validate(messages, **kwargs)
    assert info.value.index == index, str(info.value)
    for needle in needles:
        assert needle in str(info.value)
    return info.value


def test_public_name_is_the_history_function() -> None:
    assert validate is validate_direct


def test_plain_conversation_passes() -> None:
    validate([u("Hi"), a("Hello!"), u([text("How are you?")])])


def test_empty_list() -> None:
    fails([], None, "empty")


def test_first_message_must_be_user() -> None:
    fails([a("Hello"), u("Hi")], 0, "first message must be a user message")


def test_sending_requires_a_final_user_message_but_a_stored_log_may_end_with_a_reply() -> None:
    history = [u("Hi"), a("Hello")]
    fails(history, 1, "must end with a user message", "for_sending=False")
    validate(history, for_sending=False)


def test_roles() -> None:
    fails([u("Hi"), {"role": "system", "content": "be nice"}, u("x")], 1, "system=")
    fails([u("Hi"), {"role": "bot", "content": "yo"}], 1, "'bot'")
    fails([u("Hi"), "hello"], 1, "not a message dict")


def test_extra_keys_are_rejected() -> None:
    fails([{"role": "user", "content": "hi", "id": 3}], 0, "unexpected keys")


@pytest.mark.parametrize("content", ["", "   \n", []])
def test_empty_content(content: Any) -> None:
    fails([u("Hi"), a("Hello"), u(content)], 2, "empty")


def test_empty_and_whitespace_text_blocks() -> None:
    fails([u([text("")])], 0, "must be non-empty")
    fails([u([text("ok"), text("  ")])], 0, "content[1]", "non-whitespace")
    fails([u("x"), a([text("")]), u("y")], 1, "must be non-empty")


def test_empty_text_inside_a_tool_result() -> None:
    history = [u("x"), a([tool_use("t1")]), u([tool_result("t1", [text(" ")])])]
    fails(history, 2, "content[0].content[0]", "non-whitespace")


def test_consecutive_roles_rejected_by_default_accepted_as_the_api_merges_them() -> None:
    history = [u("Hi"), u("Are you there?"), a("Yes")]
    fails(history, 1, "second user message in a row", "repair")
    validate(history, for_sending=False, allow_consecutive=True)


def test_allow_consecutive_checks_the_merged_view() -> None:
    # Merged, the user turn is [text, tool_result]: the tool_result is no longer first.
    history = [u("x"), a([tool_use("t1")]), u("hmm"), u([tool_result("t1")])]
    fails(history, 2, "must come first", allow_consecutive=True)


def test_tool_use_needs_a_result_in_the_next_message() -> None:
    fails(
        [u("x"), a([text("let me look"), tool_use("t1")]), u("well?")],
        1,
        "without `tool_result` blocks immediately after: t1",
    )
    fails([u("x"), a([tool_use("t1"), tool_use("t2")]), u([tool_result("t1")])], 1, "t2")
    validate([u("x"), a([tool_use("t1"), tool_use("t2")]), u([tool_result("t2"), tool_result("t1")])])


def test_trailing_tool_use_is_incomplete_even_in_a_stored_log() -> None:
    fails([u("x"), a([tool_use("t1")])], 1, "t1", for_sending=False)


def test_tool_result_without_tool_use() -> None:
    fails([u([tool_result("t9")])], 0, "unexpected `tool_use_id`", "t9")
    fails(
        [u("x"), a([tool_use("t1")]), u([tool_result("t1")]), a("done"), u([tool_result("t1")])],
        4,
        "unexpected",
    )


def test_tool_results_come_first() -> None:
    fails([u("x"), a([tool_use("t1")]), u([text("here"), tool_result("t1")])], 2, "must come first")
    validate([u("x"), a([tool_use("t1")]), u([tool_result("t1"), text("here")])])


def test_duplicate_ids() -> None:
    fails([u("x"), a([tool_use("t1"), tool_use("t1")]), u([tool_result("t1")])], 1, "same id")
    fails([u("x"), a([tool_use("t1")]), u([tool_result("t1"), tool_result("t1")])], 2, "second tool_result")


def test_block_types_per_role() -> None:
    fails([u([tool_use("t1")])], 0, "'tool_use'", "assistant messages")
    fails([u([{"type": "thinking", "thinking": "hm", "signature": "s"}])], 0, "'thinking'")
    fails([u("x"), a([tool_result("t1")]), u("y")], 1, "'tool_result'", "user message")
    fails([u([{"type": "hologram"}])], 0, "'hologram'")
    fails([u("x"), a([{"type": "hologram"}]), u("y")], 1, "'hologram'")


def test_document_in_assistant_message() -> None:
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}}
    validate([u([doc, text("summarise")])])
    fails([u("x"), a([doc]), u("y")], 1, "Documents are not allowed in assistant messages")


def test_assistant_blocks_round_trip() -> None:
    history = [
        u("search it"),
        a(
            [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {
                    "type": "server_tool_use",
                    "id": "srvtoolu_1",
                    "name": "web_search",
                    "input": {"query": "q"},
                },
                {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                {"type": "some_future_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                {"type": "compaction", "content": "summary so far"},
                {"type": "text", "text": "found", "citations": []},
            ]
        ),
        u("thanks"),
    ]
    validate(history)


def test_thinking_needs_its_signature() -> None:
    fails([u("x"), a([{"type": "thinking", "thinking": "hm"}, text("y")]), u("z")], 1, "'signature'")


def test_more_than_four_cache_markers() -> None:
    marked = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    history = [u([marked]), a([marked]), u([marked]), a([marked]), u([marked])]
    fails(history, None, "at most 4")
    validate([*history[:4], u("ok")])


def test_not_a_list() -> None:
    with pytest.raises(InvalidHistory):
        validate("hello")  # type: ignore[arg-type]


def test_does_not_mutate() -> None:
    history = [u("x"), u("y"), a("z")]
    snapshot = [dict(m) for m in history]
    validate(history, for_sending=False, allow_consecutive=True)
    assert history == snapshot


@settings(max_examples=200, deadline=None)
@given(
    valid_histories(end_with_user=False),
    messy_histories(),
)
def test_validating_from_the_last_turn_start_judges_as_the_whole_log_does(
    known: list[dict[str, Any]], added: list[dict[str, Any]]
) -> None:
    """``validate_from`` (the planner's and the proxy's O(turn) check of a log whose known part was valid)
    accepts exactly what ``validate`` accepts, and its errors name the index in the whole log."""
    log = [*known, *added]
    start = last_turn_start(known) or 0
    try:
        validate(log)
    except InvalidHistory as whole:
        with pytest.raises(InvalidHistory) as part:
            validate_from(log, start)
        assert (part.value.index, str(part.value)) == (whole.index, str(whole))
    else:
        validate_from(log, start)
