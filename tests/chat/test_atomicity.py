"""A turn is atomic: a failed call, a cut stream or an exception in user code leaves everything as it was."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from claude_history import Chat
from claude_history.errors import InvalidHistory
from claude_history.history import validate
from claude_history.stores.base import Store
from claude_history.testing import Simulator

from .conftest import MODEL, bodies


def _snapshot(chat: Chat, store: Store) -> tuple[Any, ...]:
    data = store.load(chat.session_id)
    return (chat.messages, chat.version, data.version, data.message_params(), chat.usage, chat.pending)


def _started(client: anthropic.Anthropic, store: Store) -> Chat:
    chat = Chat(client, model=MODEL, store=store, session_id="atomic", system="S")
    chat.send("first question")
    return chat


def _assert_next_send_is_clean(sim: Simulator, chat: Chat, before: list[dict[str, Any]]) -> None:
    """The next turn sends exactly the old history plus the new message: nothing dangling."""
    chat.send("next question")
    sent = bodies(sim)[-1]["messages"]
    assert sent == [*before, {"role": "user", "content": "next question"}]
    validate(sent)
    validate(chat.messages, for_sending=False)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
        (429, anthropic.RateLimitError),
        (400, anthropic.BadRequestError),
    ],
)
def test_api_error_leaves_history_and_store_unchanged(
    sim: Simulator, client: anthropic.Anthropic, store: Store, status: int, error: type[Exception]
) -> None:
    chat = _started(client, store)
    before = _snapshot(chat, store)
    sim.fail_next(status)
    with pytest.raises(error) as caught:
        chat.send("this call fails")
    assert caught.value.status_code == status  # type: ignore[attr-defined]  # the SDK's exception, unchanged
    assert _snapshot(chat, store) == before
    _assert_next_send_is_clean(sim, chat, before[0])


def test_api_error_while_opening_a_stream(sim: Simulator, client: anthropic.Anthropic, store: Store) -> None:
    chat = _started(client, store)
    before = _snapshot(chat, store)
    sim.fail_next(529)
    with pytest.raises(anthropic.OverloadedError), chat.stream("fails"):
        pass
    assert _snapshot(chat, store) == before
    _assert_next_send_is_clean(sim, chat, before[0])


@pytest.mark.parametrize("after_events", [0, 1, 3, 5, 9])
def test_cut_stream_leaves_history_and_store_unchanged(
    sim: Simulator, client: anthropic.Anthropic, store: Store, after_events: int
) -> None:
    chat = _started(client, store)
    before = _snapshot(chat, store)
    sim.cut_next_stream(after_events=after_events)
    # Even when every text delta arrived (9 events), without message_stop the reply is not known to be whole.
    text = "repeat after me: one two three four five six seven eight nine ten"
    with pytest.raises((anthropic.APIConnectionError, httpx2.HTTPError)), chat.stream(text) as s:
        for _ in s.text_stream:
            pass
    assert _snapshot(chat, store) == before
    _assert_next_send_is_clean(sim, chat, before[0])


def test_exception_in_user_code_while_streaming(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    chat = _started(client, store)
    before = _snapshot(chat, store)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), chat.stream("repeat after me: a b c d e f g h i j k l") as s:
        for _ in s.text_stream:
            raise Boom
    assert _snapshot(chat, store) == before
    _assert_next_send_is_clean(sim, chat, before[0])


def test_breaking_out_of_a_stream_discards_the_turn(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    chat = _started(client, store)
    before = _snapshot(chat, store)
    with chat.stream("repeat after me: a b c d e f g h i j k l") as s:
        for _ in s.text_stream:
            break
    with pytest.raises(RuntimeError, match="nothing was saved"):
        s.get_final_message()
    assert _snapshot(chat, store) == before
    # Leaving the block without reading at all discards the turn too.
    with chat.stream("never read"):
        pass
    assert _snapshot(chat, store) == before
    _assert_next_send_is_clean(sim, chat, before[0])


def test_tool_exception_with_tool_errors_raise(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    calls: list[str] = []

    def lookup(query: str) -> str:
        """Look something up."""
        calls.append(query)
        raise LookupError("backend down")

    chat = Chat(client, model=MODEL, store=store, session_id="atomic", tools=[lookup], tool_errors="raise")
    chat.send("first question")
    before = _snapshot(chat, store)
    with pytest.raises(LookupError, match="backend down"):
        chat.send("please use lookup")
    assert calls  # the model did ask for the tool
    assert _snapshot(chat, store) == before
    _assert_next_send_is_clean(sim, chat, before[0])


def test_keyboard_interrupt_in_a_tool_always_propagates(client: anthropic.Anthropic, store: Store) -> None:
    def lookup(query: str) -> str:
        """Look something up."""
        raise KeyboardInterrupt

    chat = Chat(client, model=MODEL, store=store, session_id="atomic", tools=[lookup])  # tool_errors="report"
    chat.send("first question")
    before = _snapshot(chat, store)
    with pytest.raises(KeyboardInterrupt):
        chat.send("please use lookup")
    assert _snapshot(chat, store) == before


def test_exception_in_a_tool_during_a_streamed_turn(client: anthropic.Anthropic, store: Store) -> None:
    def lookup(query: str) -> str:
        """Look something up."""
        raise RuntimeError("no")

    chat = Chat(client, model=MODEL, store=store, session_id="atomic", tools=[lookup], tool_errors="raise")
    chat.send("first question")
    before = _snapshot(chat, store)
    with pytest.raises(RuntimeError, match="no"), chat.stream("please use lookup") as s:
        s.until_done()
    assert _snapshot(chat, store) == before


def test_failure_in_the_second_call_of_a_tool_loop(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    def lookup(query: str) -> str:
        """Look something up."""
        sim.fail_next(500)  # the call that sends the result back fails
        return "found"

    chat = Chat(client, model=MODEL, store=store, session_id="atomic", tools=[lookup])
    chat.send("first question")
    before = _snapshot(chat, store)
    with pytest.raises(anthropic.InternalServerError):
        chat.send("please use lookup")
    assert _snapshot(chat, store) == before
    assert chat.pending == []


def test_the_guides_pattern_breaks_where_chat_does_not(sim: Simulator, client: anthropic.Anthropic) -> None:
    # The guides: keep a list, append the user message, then call. A failed call leaves it behind.
    messages: list[dict[str, Any]] = []

    def guide_send(text: str) -> str:
        messages.append({"role": "user", "content": text})
        reply = client.messages.create(
            model=MODEL,
            max_tokens=256,
            messages=messages,  # type: ignore[arg-type]
        )
        messages.append({"role": "assistant", "content": reply.content[0].text})  # type: ignore[union-attr]
        return reply.content[0].text  # type: ignore[union-attr]

    guide_send("hello")
    sim.fail_next(500)
    with pytest.raises(anthropic.InternalServerError):
        guide_send("this one fails")
    messages.append({"role": "user", "content": "retrying with a new question"})
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "user"]
    with pytest.raises(InvalidHistory):
        validate(messages)  # two user messages in a row: the stored history is broken

    chat = Chat(client, model=MODEL)
    chat.send("hello")
    sim.fail_next(500)
    with pytest.raises(anthropic.InternalServerError):
        chat.send("this one fails")
    chat.send("retrying with a new question")
    assert [m["role"] for m in chat.messages] == ["user", "assistant", "user", "assistant"]
    validate(chat.messages, for_sending=False)
    assert "this one fails" not in str(chat.messages)


def test_store_failure_at_commit_keeps_the_reply(client: anthropic.Anthropic, store: Store) -> None:
    from claude_history.errors import StoreUnavailable

    chat = Chat(client, model=MODEL, store=store, session_id="atomic")
    chat.send("first question")
    before = _snapshot(chat, store)
    original = store.append

    def broken(*args: Any, **kwargs: Any) -> int:
        raise StoreUnavailable("database is gone")

    store.append = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(StoreUnavailable) as caught:
            chat.send("second question")
    finally:
        store.append = original  # type: ignore[method-assign]
    assert isinstance(caught.value.reply, anthropic.types.Message)  # type: ignore[attr-defined]
    unsaved = caught.value.unsaved  # type: ignore[attr-defined]
    assert [e.message["role"] for e in unsaved] == ["user", "assistant"]
    assert _snapshot(chat, store) == before
