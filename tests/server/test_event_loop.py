"""What keeps the service's one event loop free while turns are in flight: no store call that can wait runs on
it (only ``get_session_nowait``, which refuses rather than waits, stores/threaded.py), and a
full garbage collection does not scan the heap the process built at startup (one took 130 ms on the loop
and stalled every turn in flight: the proxy's p99, bench/RESULTS.md "Proxy")."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

from claude_history.server import ServerConfig, create_app
from claude_history.server.running import BackgroundServer
from claude_history.stores import open_store
from claude_history.stores.threaded import ThreadedAsyncStore
from claude_history.testing import Simulator

from .conftest import MODEL, Service, make_keys


def test_the_startup_heap_is_frozen_while_the_service_runs(start_service: Callable[..., Service]) -> None:
    before = gc.get_freeze_count()
    service = start_service()
    assert gc.get_freeze_count() > before
    reply = service.client(session="gc").messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.content


def test_the_heap_is_unfrozen_when_the_service_stops(sim: Simulator, store_url: str) -> None:
    before = gc.get_freeze_count()
    config = ServerConfig(store_url=store_url, upstream_url=sim.base_url, upstream_key="test", auth=False)
    with BackgroundServer(create_app(config)):
        assert gc.get_freeze_count() > before
    assert gc.get_freeze_count() == before


class _Recording:
    """A sync store that notes the thread each call runs in, as (thread name, method)."""

    def __init__(self, inner: Any, threads: set[tuple[str, str]]) -> None:
        self._inner = inner
        self._threads = threads

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._threads.add((threading.current_thread().name, name))
            return attribute(*args, **kwargs)

        return recorded


def test_no_store_call_runs_on_the_event_loop(sim: Simulator, store_url: str) -> None:
    keys = make_keys(store_url, "acme")
    threads: set[tuple[str, str]] = set()
    store = ThreadedAsyncStore(_Recording(open_store(store_url), threads))  # type: ignore[arg-type]
    config = ServerConfig(store_url=store_url, upstream_url=sim.base_url, upstream_key="test")
    with BackgroundServer(create_app(config, store=store)) as server:  # type: ignore[arg-type]
        service = Service(server.base_url, store_url, keys)
        for stream in (False, True, False):
            client = service.client(session="loop")
            messages = [{"role": "user", "content": "Hello"}]
            if stream:
                with client.messages.stream(model=MODEL, max_tokens=50, messages=messages) as s:  # type: ignore[arg-type]
                    s.get_final_message()
            else:
                client.messages.create(model=MODEL, max_tokens=50, messages=messages)  # type: ignore[arg-type]
        client = service.client()  # no session: the usage is recorded in the background
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    on_loop = {method for thread, method in threads if not thread.startswith("claude-history-store")}
    assert threads and on_loop <= {"get_session_nowait"}, threads
    if store_url.startswith("sqlite"):  # the version check of a turn on a kept state: made on the loop
        assert on_loop == {"get_session_nowait"}, threads
