"""A commit whose acknowledgement is lost (issue 13, item 9): the store committed the turn, then the caller saw
the connection fail. ``Chat`` says the turn may be stored and gives its ``turn_id``; retrying the append with
it returns the version the first attempt produced and never stores the turn twice, on every backend (and
beneath the encrypted wrapper). On PostgreSQL and Redis the acknowledgement is lost in the driver itself,
after the server committed, as a dropped connection loses it; the PostgreSQL store then runs the append again
itself and finds the turn committed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from claude_history import Chat
from claude_history.errors import StoreUnavailable
from claude_history.testing import Simulator

from .conftest import Backend

MODEL = "claude-sonnet-4-6"


class LostAcknowledgement:
    """The store seen through a connection that drops right after the next append commits."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def append(self, session_id: str, entries: Any, **kwargs: Any) -> int:
        version: int = self.inner.append(session_id, entries, **kwargs)
        if self.armed:
            self.armed = False
            raise StoreUnavailable("the connection dropped before the store acknowledged the commit")
        return version


def said(store: Any) -> list[str]:
    return [m.message["content"] for m in store.load("s").messages if m.message["role"] == "user"]


def lose_and_retry(store: Any, chat: Chat, arm: Callable[[], None], text: str, version: int) -> None:
    arm()
    with pytest.raises(StoreUnavailable) as caught:
        chat.send(text)
    error: Any = caught.value
    assert error.may_be_stored is True and error.turn_id
    assert store.get_session("s").version == version + 1  # it was committed
    assert store.append("s", error.unsaved, expected_version=version, turn_id=error.turn_id) == version + 1
    assert store.append("s", error.unsaved, expected_version=version, turn_id=error.turn_id) == version + 1


def test_a_turn_whose_acknowledgement_was_lost_is_stored_once(backend: Backend) -> None:
    store = backend.open()
    flaky = LostAcknowledgement(store)
    try:
        with Simulator() as sim:
            chat = Chat(sim.client(max_retries=0), model=MODEL, store=flaky, session_id="s")  # type: ignore[arg-type]
            chat.send("first")
            lose_and_retry(store, chat, lambda: setattr(flaky, "armed", True), "second", 1)
            assert said(store) == ["first", "second"]
            again = Chat(sim.client(max_retries=0), model=MODEL, store=store, session_id="s")
            again.send("third")  # the session goes on as one history
        assert said(store) == ["first", "second", "third"]
        assert len(store.load("s").messages) == 6
    finally:
        store.close()


@contextmanager
def _dropped_after_commit(backend: Backend, store: Any) -> Iterator[Callable[[], None]]:
    """Arms a loss of the next append's acknowledgement in the driver: the server has run the write."""
    armed: list[bool] = []
    if backend.base == "redis":
        import redis

        scripts = store._scripts
        real = scripts["append"]

        def append_script(*args: Any, **kwargs: Any) -> Any:
            reply = real(*args, **kwargs)
            if armed:
                armed.clear()
                raise redis.exceptions.ConnectionError("Connection closed by server.")
            return reply

        scripts["append"] = append_script
        try:
            yield lambda: armed.append(True)
        finally:
            scripts["append"] = real
    else:
        import psycopg

        real_exit, real_run = psycopg.Pipeline.__exit__, store._run
        running: list[str] = []

        def run(operation: Any, *args: Any) -> Any:
            running.append(operation.__name__)
            try:
                return real_run(operation, *args)
            finally:
                running.pop()

        def exit_then_drop(self: Any, *exc: Any) -> Any:
            result = real_exit(self, *exc)  # the pipeline, COMMIT last, ran on the server
            if armed and running == ["append"] and exc[0] is None:
                armed.clear()
                raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")
            return result

        store._run = run
        psycopg.Pipeline.__exit__ = exit_then_drop  # type: ignore[method-assign]
        try:
            yield lambda: armed.append(True)
        finally:
            psycopg.Pipeline.__exit__ = real_exit  # type: ignore[method-assign]
            del store._run


@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_a_commit_whose_reply_the_driver_lost_is_recognised_on_retry(
    name: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    from .conftest import make_backend

    for backend in make_backend(name, request, tmp_path):
        store = backend.open()
        try:
            with Simulator() as sim, _dropped_after_commit(backend, store) as arm:
                chat = Chat(sim.client(max_retries=0), model=MODEL, store=store, session_id="s")
                chat.send("first")
                if name == "postgres":
                    # The store runs the append again on a fresh connection (its turn id makes that safe): the
                    # second run finds this very turn committed, and the turn succeeds with nothing to retry.
                    arm()
                    chat.send("second")
                    assert store.get_session("s").version == 2
                else:
                    lose_and_retry(store, chat, arm, "second", 1)
            assert said(store) == ["first", "second"]
            assert len(store.load("s").messages) == 4
        finally:
            store.close()


class AsyncLostAcknowledgement:
    """The async store seen through a connection that drops right after the next append commits."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append(self, session_id: str, entries: Any, **kwargs: Any) -> int:
        version: int = await self.inner.append(session_id, entries, **kwargs)
        if self.armed:
            self.armed = False
            raise StoreUnavailable("the connection dropped before the store acknowledged the commit")
        return version


def test_an_async_turn_whose_acknowledgement_was_lost_is_stored_once(backend: Backend) -> None:
    """The same guarantee through ``AsyncChat`` over the async store of every backend."""
    from claude_history import AsyncChat

    async def scenario() -> None:
        store = backend.open_async()
        flaky = AsyncLostAcknowledgement(store)
        try:
            with Simulator() as sim:
                chat = AsyncChat(sim.async_client(max_retries=0), model=MODEL, store=flaky, session_id="s")
                await chat.load()
                await chat.send("first")
                flaky.armed = True
                with pytest.raises(StoreUnavailable) as caught:
                    await chat.send("second")
                error: Any = caught.value
                assert error.may_be_stored is True and error.turn_id
                assert (await store.get_session("s")).version == 2  # it was committed
                for _ in range(2):
                    assert await store.append("s", error.unsaved, expected_version=1, turn_id=error.turn_id) == 2
                again = AsyncChat(sim.async_client(max_retries=0), model=MODEL, store=store, session_id="s")
                await again.load()
                await again.send("third")
            loaded = (await store.load("s")).messages
            assert [m.message["content"] for m in loaded if m.message["role"] == "user"] == ["first", "second", "third"]
            assert len(loaded) == 6
        finally:
            await store.aclose()

    asyncio.run(scenario())
