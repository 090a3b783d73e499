"""Content the API cannot take or a store could not give back is refused by ``Chat.send`` with
``InvalidHistory`` before any request, the history untouched (it used to be a traceback from the SDK or a
RecursionError, after the turn had begun)."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from claude_history import Chat
from claude_history.errors import InvalidHistory, SessionNotContinuable
from claude_history.stores._validation import MAX_DEPTH
from claude_history.stores.base import Store
from claude_history.testing import Simulator

from .conftest import MODEL, bodies


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ([{"type": "text", "text": "hi", "x": float("nan")}], "not valid JSON"),
        ([{"type": "text", "text": "hi", "x": float("inf")}], "not valid JSON"),
        ("a lone \ud800 surrogate", "lone surrogate"),
        ([{"type": "text", "text": "a lone \udfff surrogate"}], "lone surrogate"),
        ([{"type": "text", "text": "deep", "k": nested(960)}], "nests more than"),
        ([{"type": "text", "text": "deep", "k": nested(MAX_DEPTH)}], "nests more than"),
    ],
)
def test_hostile_content_is_refused_before_any_request(
    sim: Simulator, client: anthropic.Anthropic, store: Store, content: Any, error: str
) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="s")
    chat.send("hello")
    before = len(bodies(sim))
    with pytest.raises(InvalidHistory, match=error):
        chat.send(content)
    assert len(bodies(sim)) == before
    assert store.load("s").version == 1 and chat.pending == []
    chat.send("still fine")
    assert store.load("s").version == 2


def test_the_deepest_accepted_block_goes_through_a_chat_and_back(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    """A tool input nested near the depth limit (the one place a request takes free-form JSON) is stored, loaded
    and sent back as it came."""
    deep = nested(MAX_DEPTH - 6)
    sim.reply_with(
        [{"type": "tool_use", "id": "toolu_deep", "name": "echo", "input": {"k": deep}}], stop_reason="tool_use"
    )
    echo = {"name": "echo", "description": "Echo k.", "input_schema": {"type": "object", "properties": {"k": {}}}}
    options: dict[str, Any] = {"tools": [echo], "tool_functions": {"echo": lambda k: "ok"}}
    chat = Chat(client, model=MODEL, store=store, session_id="s", **options)
    chat.send("call echo")
    again = Chat(client, model=MODEL, store=store, session_id="s", **options)
    assert again.messages[1]["content"][0]["input"]["k"] == deep
    again.send("and on")
    assert bodies(sim)[-1]["messages"][1]["content"][0]["input"]["k"] == deep


_TEXT = st.text(
    st.sampled_from(["a", " ", "\n", "\x00", "'", "é", "🎉", "\ud800", "\udfff", "\u202e"]), min_size=0, max_size=20
)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_CONTENT = _TEXT | st.lists(
    st.builds(
        lambda text, extra: {"type": "text", "text": text, **extra}, _TEXT, st.dictionaries(st.just("x"), _VALUES)
    ),
    min_size=1,
    max_size=3,
)


@settings(
    max_examples=int(os.environ.get("CLAUDE_HISTORY_FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(content=_CONTENT)
def test_fuzzed_content_is_sent_and_stored_or_refused_cleanly(
    client: anthropic.Anthropic, store: Store, content: Any
) -> None:
    session_id = uuid.uuid4().hex
    chat = Chat(client, model=MODEL, store=store, session_id=session_id)
    try:
        chat.send(content)
    except (InvalidHistory, anthropic.BadRequestError) as exc:  # ours before the request, or the API's 400
        event(type(exc).__name__)
        assert chat.pending == [] and chat.messages == []
        assert store.list_sessions(limit=1000) is not None
        return
    event("sent and stored")
    again = Chat(client, model=MODEL, store=store, session_id=session_id)
    assert again.messages == chat.messages and len(again.messages) == 2


@pytest.mark.parametrize(
    "stored",
    [
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
        [{"role": "user", "content": "a \ud83d b"}, {"role": "assistant", "content": "b"}],
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    ],
    ids=["an unanswered last message", "a lone surrogate", "two user messages"],
)
def test_a_stored_session_no_turn_can_follow_is_named_as_the_cause(
    client: anthropic.Anthropic, sim: Simulator, store: Store, stored: list[dict[str, Any]]
) -> None:
    """Imported as it is: a turn on it fails before any call, saying the stored session is the cause (the new
    message is fine), and the repaired copy takes the turn."""
    from claude_history.history import continuable_copy, continuation_problem
    from claude_history.stores.base import Entry

    store.import_jsonl(json.dumps(stored), session_id="imported")
    chat = Chat(client, model=MODEL, store=store, session_id="imported")
    before = len(bodies(sim))
    with pytest.raises(SessionNotContinuable, match=r"^the stored session cannot take a turn: ") as refused:
        chat.send("A fine new message")
    assert "continuable_copy" in str(refused.value)
    assert refused.value.problem == continuation_problem(stored)
    assert len(bodies(sim)) == before and store.load("imported").message_params() == stored
    fixed = continuable_copy(stored)  # for two unanswered user messages: nothing (they are sent again instead)
    if fixed:
        store.append("fixed", [Entry(m) for m in fixed], expected_version=0)
    Chat(client, model=MODEL, store=store, session_id="fixed").send("A fine new message")
