"""Concurrent turns on one session, by choice (``Chat(on_concurrent=...)``): "reject" fails before the API
call while another turn runs, "enqueue" waits for the session's lease and runs on the fresh history (no API
call wasted), a lease taken over is never committed, and a dead holder's lease expires."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest

from claude_history import AsyncChat, Chat
from claude_history.errors import ConfigurationError, LeaseLost, TurnInProgress
from claude_history.history import validate
from claude_history.stores import open_store
from claude_history.stores.base import Store
from claude_history.stores.memory import MemoryStore
from claude_history.testing import Simulator

from .conftest import MODEL, bodies


def _users(store: Store, session_id: str) -> list[str]:
    return [m["content"] for m in store.load(session_id).message_params() if m["role"] == "user"]


def test_reject_fails_before_the_api_call_while_another_turn_runs(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    other = Chat(client, model=MODEL, store=store, session_id="s", on_concurrent="reject")
    seen: list[BaseException] = []

    def lookup(query: str) -> str:
        """Look something up."""
        calls = len(bodies(sim))
        with pytest.raises(TurnInProgress) as caught:
            other.send("me too")  # the first turn is in flight: refused at once, nothing sent
        assert len(bodies(sim)) == calls
        seen.append(caught.value)
        return "result"

    chat = Chat(client, model=MODEL, store=store, session_id="s", tools=[lookup], on_concurrent="reject")
    chat.send("please use lookup")
    assert len(seen) == 1 and seen[0].session_id == "s" and "another turn is running" in str(seen[0])
    assert _users(store, "s")[0] == "please use lookup"
    other.send("now me")  # the lease was released with the commit
    assert _users(store, "s")[-1] == "now me"


def test_enqueue_with_real_threads_stores_every_turn_once_and_wastes_no_call(
    sim: Simulator, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'chats.db'}"
    writers, turns = 6, 3
    start = threading.Barrier(writers, timeout=30)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        store = open_store(url)  # each its own connection, as separate app servers have
        try:
            chat = Chat(
                sim.client(max_retries=0), model=MODEL, store=store, session_id="busy", on_concurrent="enqueue"
            )
            start.wait()
            for k in range(turns):
                chat.send(f"writer {number} turn {k}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = open_store(url)
    try:
        stored = store.load("busy")
        validate(stored.message_params(), for_sending=False)
        expected = {f"writer {n} turn {k}" for n in range(writers) for k in range(turns)}
        users = _users(store, "busy")
        assert sorted(users) == sorted(expected)  # every turn stored, each once
        assert stored.version == writers * turns
        assert len(bodies(sim)) == writers * turns  # one API call per stored turn: none wasted
        # Each writer's turns in its own order: a turn always ran on the history the previous one left.
        for n in range(writers):
            mine = [u for u in users if u.startswith(f"writer {n} ")]
            assert mine == [f"writer {n} turn {k}" for k in range(turns)]
    finally:
        store.close()


def test_a_turn_whose_lease_was_taken_over_is_not_committed(
    client: anthropic.Anthropic, store: Store
) -> None:
    rival = Chat(client, model=MODEL, store=store, session_id="s", on_concurrent="enqueue")

    def lookup(query: str) -> str:
        """Look something up."""
        time.sleep(0.35)  # longer than lease_ttl: the lease expires while the turn runs
        rival.send("I took the session")
        return "result"

    chat = Chat(
        client, model=MODEL, store=store, session_id="s", tools=[lookup], on_concurrent="enqueue", lease_ttl=0.2
    )
    with pytest.raises(LeaseLost) as caught:
        chat.send("please use lookup")
    error = caught.value
    assert isinstance(error.reply, anthropic.types.Message)
    assert [e.message["role"] for e in error.unsaved] == ["user", "assistant", "user", "assistant"]
    assert _users(store, "s") == ["I took the session"]
    assert chat.messages == store.load("s").message_params() and chat.pending == []


def test_a_dead_holders_lease_expires(client: anthropic.Anthropic, store: Store) -> None:
    held = store.acquire_lease("s", ttl=0.4)  # type: ignore[attr-defined]  # taken by a process that died
    assert held is not None
    with pytest.raises(TurnInProgress):
        Chat(client, model=MODEL, store=store, session_id="s", on_concurrent="reject").send("hi")
    waiting = Chat(client, model=MODEL, store=store, session_id="s", on_concurrent="enqueue", lease_timeout=0.05)
    with pytest.raises(TurnInProgress, match="waited") as caught:
        waiting.send("hi")
    assert caught.value.waited >= 0.05
    patient = Chat(client, model=MODEL, store=store, session_id="s", on_concurrent="enqueue", lease_timeout=10)
    patient.send("hi")
    assert _users(store, "s") == ["hi"]


def test_a_stream_left_early_releases_the_lease(client: anthropic.Anthropic, store: Store) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="s", on_concurrent="reject")
    with chat.stream("tell me a long story") as stream:
        next(iter(stream))
    # Nothing was stored, and the session is free at once (not after lease_ttl).
    other = Chat(client, model=MODEL, store=store, session_id="s", on_concurrent="reject")
    other.send("hello")
    assert _users(store, "s") == ["hello"]


def test_async_enqueue_runs_concurrent_sends_one_after_another(sim: Simulator, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chats.db'}"

    async def main() -> None:
        store = open_store(url)
        try:
            client = sim.async_client(max_retries=0)
            chats = [
                AsyncChat(client, model=MODEL, store=store, session_id="s", on_concurrent="enqueue")
                for _ in range(5)
            ]
            await asyncio.gather(*(chat.send(f"message {n}") for n, chat in enumerate(chats)))
        finally:
            store.close()

    asyncio.run(main())
    store = open_store(url)
    try:
        assert sorted(_users(store, "s")) == [f"message {n}" for n in range(5)]
        assert len(bodies(sim)) == 5
    finally:
        store.close()


class _NoLeases(MemoryStore):
    """A user's own store without turn leases."""

    acquire_lease = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"on_concurrent": "queue"}, "on_concurrent must be"),
        ({"on_concurrent": "enqueue", "lease_ttl": 0}, "ttl"),
        ({"on_concurrent": "enqueue", "lease_timeout": -1}, "lease_timeout"),
        ({"on_concurrent": "reject", "store": _NoLeases()}, "needs a store with turn leases"),
    ],
)
def test_bad_concurrency_settings_are_clear_errors(client: anthropic.Anthropic, options: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Chat(client, model=MODEL, **options)


def test_an_encrypted_wrapper_over_a_store_without_leases_is_refused_too(client: anthropic.Anthropic) -> None:
    from claude_history.stores.encrypted import wrap

    store = wrap(_NoLeases(), "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
    with pytest.raises(ConfigurationError, match="needs a store with turn leases"):
        Chat(client, model=MODEL, store=store, on_concurrent="enqueue")
    Chat(client, model=MODEL, store=wrap(MemoryStore(), "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
         on_concurrent="enqueue").send("hi")  # fmt: skip
