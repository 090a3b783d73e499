"""A chat holds one incarnation of its session (stores/base.py): when the session is deleted and another is
started under the same id, the stale chat gets a clear error before it sends anything, never writes into the
new session; and a commit whose connection failed says whether the turn may have been stored."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from claude_history import AsyncChat, Chat
from claude_history.errors import ConflictError, StoreUnavailable
from claude_history.stores.base import Store
from claude_history.stores.threaded import ThreadedAsyncStore
from claude_history.testing import Simulator

from .conftest import MODEL


def test_a_stale_chat_never_writes_into_a_session_created_again(client: anthropic.Anthropic, store: Store) -> None:
    stale = Chat(client, model=MODEL, store=store, session_id="user-42")
    stale.send("my first life")
    assert store.delete("user-42")
    Chat(client, model=MODEL, store=store, session_id="user-42").send("a new life")  # version 1 again
    with pytest.raises(ConflictError, match="deleted and created again") as caught:
        stale.send("still there?")
    assert caught.value.reply is None  # refused before any request: the deleted conversation was not sent
    stored = store.load("user-42")
    assert stored.version == 1
    assert [m["content"] for m in stored.message_params() if m["role"] == "user"] == ["a new life"]
    assert stale.messages == stored.message_params()  # the chat now shows the new session
    stale.send("continuing in the new one")
    assert store.load("user-42").version == 2


def test_a_turn_racing_a_re_creation_is_a_conflict_not_an_append(client: anthropic.Anthropic, store: Store) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="user-42")
    chat.send("hello")
    other = Chat(client, model=MODEL, store=store, session_id="user-42")

    def lookup(query: str) -> str:
        """Look something up."""
        store.delete("user-42")
        other.send("started over")  # a new session at version 1, while this turn is in flight
        return "result"

    tooled = Chat(client, model=MODEL, store=store, session_id="user-42", tools=[lookup])
    tooled.reload()
    with pytest.raises(ConflictError, match="deleted and created again") as caught:
        tooled.send("please use lookup")
    assert caught.value.reply is not None and len(caught.value.unsaved) == 4  # nothing lost
    assert [m["content"] for m in store.load("user-42").message_params() if m["role"] == "user"] == ["started over"]


class LostAcknowledgement:
    """A store whose first append commits and then loses the connection, as a dropped server reply does."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append(self, session_id: str, entries: Any, **kwargs: Any) -> int:
        version = self.inner.append(session_id, entries, **kwargs)
        if not self.failed:
            self.failed = True
            raise StoreUnavailable("connection lost after the commit")
        return version


def test_a_lost_acknowledgement_says_the_turn_may_be_stored_and_a_retry_stores_it_once(
    client: anthropic.Anthropic, store: Store
) -> None:
    flaky = LostAcknowledgement(store)
    chat = Chat(client, model=MODEL, store=flaky, session_id="s")  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable) as caught:
        chat.send("hello")
    error = caught.value
    assert error.may_be_stored is True and error.turn_id
    assert store.load("s").version == 1  # it was stored
    retried = store.append("s", error.unsaved, expected_version=0, turn_id=error.turn_id)  # type: ignore[attr-defined]
    assert retried == 1 and len(store.load("s").messages) == 2  # recognised: not stored twice


def test_a_failure_before_the_append_says_nothing_was_stored(client: anthropic.Anthropic, store: Store) -> None:
    class Down(LostAcknowledgement):
        def update_session(self, *args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("down")

    chat = Chat(client, model=MODEL, store=Down(store), session_id="s", system="Be brief.")  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailable) as caught:
        chat.send("hello")
    assert caught.value.may_be_stored is False and caught.value.turn_id is None


async def test_async_stale_chat_gets_the_same_clear_error(sim: Simulator, store: Store) -> None:
    client = anthropic.AsyncAnthropic(api_key="test", base_url=sim.base_url)
    shared = ThreadedAsyncStore(store)
    stale = AsyncChat(client, model=MODEL, store=shared, session_id="user-42")
    await stale.send("first")
    store.delete("user-42")
    await AsyncChat(client, model=MODEL, store=shared, session_id="user-42").send("second")
    with pytest.raises(ConflictError, match="deleted and created again"):
        await stale.send("third")


class OldStyleStore:
    """A user's own store, written before ``incarnation`` and ``turn_id`` existed."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append(self, session_id: str, entries: Any, *, expected_version: int) -> int:
        return self.inner.append(session_id, entries, expected_version=expected_version)


async def test_a_store_without_the_new_parameters_keeps_working_sync_and_async(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    Chat(client, model=MODEL, store=OldStyleStore(store), session_id="a").send("hello")  # type: ignore[arg-type]
    aclient = anthropic.AsyncAnthropic(api_key="test", base_url=sim.base_url)
    threaded = ThreadedAsyncStore(OldStyleStore(store))  # type: ignore[arg-type]
    await AsyncChat(aclient, model=MODEL, store=threaded, session_id="b").send("hello")
    assert store.load("a").version == 1 and store.load("b").version == 1
