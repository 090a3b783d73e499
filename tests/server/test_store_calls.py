"""What a proxied turn asks of the store, counted: the session is read once (``load``, or only its metadata
row when the service kept the last turn's state: server/warm.py) and the turn is written once (``append``);
the version check a library ``Chat`` makes before a turn is skipped because the request read the session a
moment before, and a writer in between is still caught by the append's compare-and-swap (a 409, nothing
lost). Two servers on one store never serve each other stale."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import anthropic
import httpx2
import pytest

from claude_history.server import ServerConfig, create_app
from claude_history.server.running import BackgroundServer
from claude_history.stores import open_async_store, open_store
from claude_history.stores.base import Entry
from claude_history.testing import Simulator

from .conftest import MODEL, Service, make_keys


class CountingAsyncStore:
    """A real async store behind a front that counts the calls made to it, by method name; ``after_load``
    (once) runs right after a ``load`` or ``get_session`` (a warm session's read), as another writer would
    between a request's read and its commit."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.after_load: Callable[[], None] | None = None
        self.warm = True  # whether the service keeps warm sessions (the ``counted`` fixture says)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = await attribute(*args, **kwargs)
            if name in ("load", "get_session") and self.after_load is not None:
                hook, self.after_load = self.after_load, None
                hook()
            return result

        return counted


@pytest.fixture(params=[True, False], ids=["warm", "cold"])
def counted(request: Any, sim: Simulator, store_url: str) -> Iterator[tuple[Service, CountingAsyncStore]]:
    keys = make_keys(store_url, "acme", "globex")
    store = CountingAsyncStore(open_async_store(store_url))
    config = ServerConfig(store_url=store_url, upstream_url=sim.base_url, upstream_key="test")
    if not request.param:  # no warm sessions: every request loads the session
        config = replace(config, warm_sessions=0)
    store.warm = request.param
    with BackgroundServer(create_app(config, store=store)) as server:  # type: ignore[arg-type]
        yield Service(server.base_url, store_url, keys), store


def _turn(service: Service, session: str, text: str, stream: bool = False) -> Any:
    client = service.client(session=session)
    messages = [{"role": "user", "content": text}]
    if not stream:
        return client.messages.create(model=MODEL, max_tokens=50, messages=messages)  # type: ignore[arg-type]
    with client.messages.stream(model=MODEL, max_tokens=50, messages=messages) as s:  # type: ignore[arg-type]
        return s.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_turn_reads_the_session_once_and_writes_once(counted: tuple[Service, CountingAsyncStore],
                                                        stream: bool) -> None:  # fmt: skip
    service, store = counted
    _turn(service, "calls", "Hello")  # the first turn also sets the new session's owner
    for i in range(3):
        store.calls.clear()
        _turn(service, "calls", f"turn {i}", stream)
        read = "get_session" if store.warm else "load"  # a warm session: its metadata row, not its messages
        assert store.calls == Counter({read: 1, "append": 1})
    assert open_store(service.store_url).load("acme/calls").version == 4


def test_a_writer_between_the_read_and_the_commit_is_a_409_and_loses_nothing(
    counted: tuple[Service, CountingAsyncStore],
) -> None:
    service, store = counted
    _turn(service, "race", "Hello")
    other = open_store(service.store_url)

    def another_server_commits() -> None:
        other.append("acme/race", [Entry({"role": "user", "content": "from elsewhere"}),
                                   Entry({"role": "assistant", "content": "kept"}, model=MODEL)],
                     expected_version=1)  # fmt: skip

    store.after_load = another_server_commits
    with pytest.raises(anthropic.ConflictError):
        _turn(service, "race", "mine")
    stored = other.load("acme/race")
    assert stored.version == 2 and [m.message["content"] for m in stored.messages][2:] == ["from elsewhere", "kept"]
    # The client sends again and its turn goes on after the other writer's.
    _turn(service, "race", "mine")
    assert [m.message["content"] for m in other.load("acme/race").messages][4] == "mine"


def test_two_servers_on_one_store_each_see_the_others_turns(
    start_service: Callable[..., Service], sim: Simulator
) -> None:
    first, second = start_service(), start_service()
    for i in range(4):
        _turn(first if i % 2 == 0 else second, "shared", f"turn {i}")
        sent = sim.requests[-1]["body"]["messages"]
        assert [m["content"] if isinstance(m["content"], str) else None for m in sent][::2] == [
            f"turn {k}" for k in range(i + 1)
        ]
    assert open_store(first.store_url).load("acme/shared").version == 4


def test_a_reply_of_one_call_reaches_the_client_byte_for_byte(service: Service, sim: Simulator) -> None:
    """The service sends on the upstream's bytes, not a re-encoding of a parsed reply: the body is exactly the
    simulator's serialisation of the reply, which is what the session stored."""
    response = httpx2.post(service.base_url + "/v1/messages", headers={
        "x-api-key": service.keys["acme"], "anthropic-version": "2023-06-01", "x-session-id": "bytes",
    }, json={"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
    assert response.status_code == 200
    reply = response.json()
    assert response.content == json.dumps(reply).encode()  # the simulator's separators, not a re-encoding
    stored = open_store(service.store_url).load("acme/bytes")
    assert stored.messages[1].message["content"] == reply["content"]
    assert response.headers["request-id"].startswith("req_sim")
