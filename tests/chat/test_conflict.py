"""Two writers on one session: compare-and-swap lets exactly one turn in; the other loses nothing."""

from __future__ import annotations

import threading
from typing import Any

import anthropic
import pytest

from claude_history import Chat
from claude_history.errors import ConflictError
from claude_history.history import validate
from claude_history.stores import open_store
from claude_history.stores.base import Store
from claude_history.testing import Simulator

from .conftest import MODEL


def test_interleaved_turn_gets_one_conflict_and_loses_nothing(
    client: anthropic.Anthropic, store: Store
) -> None:
    other = Chat(client, model=MODEL, store=store, session_id="race")

    def lookup(query: str) -> str:
        """Look something up."""
        other.send("I got in first")  # another writer commits while this turn is in flight
        return "result"

    chat = Chat(client, model=MODEL, store=store, session_id="race", tools=[lookup])
    chat.send("hello")
    with pytest.raises(ConflictError) as caught:
        chat.send("please use lookup")
    error = caught.value
    assert isinstance(error.reply, anthropic.types.Message) and error.reply.stop_reason == "end_turn"
    assert error.expected_version == 1 and error.actual_version == 2
    # Nothing is lost: the whole turn is in the error, ready to be appended again.
    assert [e.message["role"] for e in error.unsaved] == ["user", "assistant", "user", "assistant"]
    assert error.unsaved[0].message == {"role": "user", "content": "please use lookup"}
    assert error.unsaved[3].usage is not None and error.unsaved[3].model == MODEL

    stored = store.load("race")
    assert stored.version == 2
    validate(stored.message_params(), for_sending=False)
    assert [m["content"] for m in stored.message_params() if m["role"] == "user"] == [
        "hello",
        "I got in first",
    ]
    # The chat now shows the stored history and goes on from it.
    assert chat.messages == stored.message_params()
    assert chat.pending == []
    chat.send("again")
    assert store.load("race").version == 3


def test_threads_racing_on_one_session(sim: Simulator, sqlite_url: str) -> None:
    # Two chats on two connections to one SQLite file; both turns are in flight at the same time (a barrier
    # inside their tool), so both start from version 1 and exactly one commit can win.
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, Any] = {}

    def lookup(query: str) -> str:
        """Look something up."""
        barrier.wait()
        return "result"

    def run(name: str) -> None:
        store = open_store(sqlite_url)
        chat = Chat(sim.client(max_retries=0), model=MODEL, store=store, session_id="race", tools=[lookup])
        try:
            chat.send(f"{name}: please use lookup")
            outcomes[name] = "committed"
        except ConflictError as exc:
            outcomes[name] = exc
        finally:
            store.close()

    seed = open_store(sqlite_url)
    Chat(sim.client(max_retries=0), model=MODEL, store=seed, session_id="race").send("hello")
    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    conflicts = [o for o in outcomes.values() if isinstance(o, ConflictError)]
    assert sorted(o if isinstance(o, str) else "conflict" for o in outcomes.values()) == [
        "committed",
        "conflict",
    ]
    (error,) = conflicts
    stored = seed.load("race")
    seed.close()
    assert stored.version == 2 and len(stored.messages) == 6
    validate(stored.message_params(), for_sending=False)
    # The loser's turn is whole in the error: re-appending it on the new version keeps everything.
    loser = error.unsaved[0].message["content"]
    assert loser.endswith("please use lookup") and loser not in str(stored.message_params())
    again = open_store(sqlite_url)
    again.append("race", error.unsaved, expected_version=error.actual_version)
    assert len(again.load("race").messages) == 10
    validate(again.load("race").message_params(), for_sending=False)
    again.close()


def test_undo_is_compare_and_swap(client: anthropic.Anthropic, store: Store) -> None:
    a = Chat(client, model=MODEL, store=store, session_id="undo")
    b = Chat(client, model=MODEL, store=store, session_id="undo")
    a.send("one")
    b.send("two")  # a has not seen this turn
    with pytest.raises(ConflictError):
        a.undo()  # it would remove b's turn, which a never saw
    assert len(store.load("undo").messages) == 4
    assert len(a.messages) == 4  # reloaded
    assert a.undo()[0]["content"] == "two"
