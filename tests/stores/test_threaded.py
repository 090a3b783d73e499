"""ThreadedAsyncStore: the async twin of a sync store never runs the store on the event loop's thread."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from claude_history.errors import ConflictError, SessionNotFound
from claude_history.stores.base import AsyncStore, Entry
from claude_history.stores.memory import MemoryStore
from claude_history.stores.threaded import ThreadedAsyncStore

from .samples import turn


class RecordingStore(MemoryStore):
    """A memory store that notes the thread of every call, and can be made to wait inside ``append``."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.gate: threading.Event | None = None
        self.closed = False

    def load(self, session_id: str) -> Any:
        self.threads.append(threading.get_ident())
        return super().load(session_id)

    def append(self, session_id: str, entries: Any, *, expected_version: int) -> int:
        self.threads.append(threading.get_ident())
        if self.gate is not None:
            assert self.gate.wait(timeout=30), "the event loop was blocked while the store worked"
        return super().append(session_id, entries, expected_version=expected_version)

    def close(self) -> None:
        self.closed = True


async def test_calls_run_off_the_loop_thread() -> None:
    inner = RecordingStore()
    store = ThreadedAsyncStore(inner)
    assert isinstance(store, AsyncStore)
    await store.append("s", turn("1"), expected_version=0)
    await store.load("s")
    assert inner.threads and threading.get_ident() not in inner.threads
    await store.aclose()


async def test_the_loop_keeps_running_while_a_call_waits() -> None:
    """The append blocks until a coroutine on the loop releases it: that only finishes if the loop is free."""
    inner = RecordingStore()
    inner.gate = threading.Event()
    store = ThreadedAsyncStore(inner)

    async def release() -> None:
        await asyncio.sleep(0)
        inner.gate.set()  # type: ignore[union-attr]

    version, _ = await asyncio.wait_for(
        asyncio.gather(store.append("s", turn("1"), expected_version=0), release()), timeout=30
    )
    assert version == 1
    await store.aclose()


async def test_errors_keep_their_types() -> None:
    async with ThreadedAsyncStore(MemoryStore()) as store:
        with pytest.raises(SessionNotFound):
            await store.load("ghost")
        await store.append("s", turn("1"), expected_version=0)
        with pytest.raises(ConflictError) as raised:
            await store.append("s", turn("2"), expected_version=0)
        assert [e.message for e in raised.value.unsaved] == [e.message for e in turn("2")]


async def test_every_method_is_forwarded() -> None:
    inner = RecordingStore()
    async with ThreadedAsyncStore(inner) as store:
        await store.append("s", turn("hello") + turn("again"), expected_version=0)
        assert (await store.get_session("s")).message_count == 4
        assert (await store.update_session("s", title="T", tags=["x"])).title == "T"
        assert [s.id for s in await store.list_sessions(tag="x")] == ["s"]
        assert sorted(h.seq for h in await store.search("hello")) == [0, 1]
        forked = await store.fork("s", at=2, new_id="f")
        assert (await store.load(forked)).version == 1
        assert await store.rewind("s") == 2
        exported = await store.export_jsonl("s")
        assert await store.import_jsonl(iter(exported.split("\n")), session_id="copy") == "copy"
        assert await store.delete("copy") is True
        assert await store.purge_expired() == 0
        from claude_history.stores.base import Summary

        await store.save_summary("s", Summary(0, 2, "hi"))
        assert [s.text for s in (await store.load("s")).summaries] == ["hi"]
    assert inner.closed


async def test_many_concurrent_calls_share_bounded_pools() -> None:
    """Writes run on at most ``max_writers`` threads, reads on at most ``max_workers`` others."""
    inner = RecordingStore()
    store = ThreadedAsyncStore(inner, max_workers=2, max_writers=1)
    await asyncio.gather(
        *(store.append(f"s{i}", [Entry({"role": "user", "content": "x"})], expected_version=0) for i in range(20))
    )
    writers = set(inner.threads)
    assert len(writers) == 1
    inner.threads.clear()
    await asyncio.gather(*(store.load(f"s{i}") for i in range(20)))
    readers = set(inner.threads)
    assert 1 <= len(readers) <= 2 and not readers & writers
    assert len(await store.list_sessions(limit=100)) == 20
    await store.aclose()


@pytest.mark.parametrize("bad", [{"max_workers": 0}, {"max_writers": 0}, {"max_writers": True}, {"max_workers": 2.5}])
def test_pool_sizes_are_checked(bad: dict[str, Any]) -> None:
    from claude_history.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=next(iter(bad))):
        ThreadedAsyncStore(MemoryStore(), **bad)


async def test_reads_do_not_wait_behind_writers_that_wait(tmp_path: Any) -> None:
    """Another connection (another process, say a second service worker) holds the SQLite file's write lock:
    this process's appends wait for it on their threads. Reads need no write lock (WAL), so they must not
    queue behind those writers for a thread; they did when one pool ran both."""
    import sqlite3

    from claude_history.stores.sqlite import SQLiteStore

    path = tmp_path / "shared.db"
    inner = SQLiteStore(path, busy_timeout=30)
    inner.append("read-me", turn("1"), expected_version=0)
    store = ThreadedAsyncStore(inner)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        writes = [asyncio.ensure_future(store.append(f"w{i}", turn("x"), expected_version=0)) for i in range(8)]
        await asyncio.sleep(0.3)
        assert not any(write.done() for write in writes), "the writers should be waiting for the other connection"
        info = await asyncio.wait_for(store.get_session("read-me"), timeout=5)
        data = await asyncio.wait_for(store.load("read-me"), timeout=5)
        assert (info.version, len(data.messages)) == (1, 2)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await asyncio.wait_for(asyncio.gather(*writes), timeout=30) == [1] * 8
    await store.aclose()


async def test_close_waits_for_the_writes_already_submitted() -> None:
    """A turn whose append is running (or queued) when the store is closed is stored, not cut off: the close
    runs after the writes submitted before it."""
    inner = RecordingStore()
    inner.gate = threading.Event()
    store = ThreadedAsyncStore(inner, max_writers=1)
    writes = [asyncio.ensure_future(store.append(f"s{i}", turn("1"), expected_version=0)) for i in range(3)]
    await asyncio.sleep(0.05)  # the first append is running, held at the gate; the others are queued
    closing = asyncio.ensure_future(store.aclose())
    await asyncio.sleep(0.2)
    assert not inner.closed, "the store was closed while an append ran"
    inner.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*writes), timeout=30) == [1, 1, 1]
    await asyncio.wait_for(closing, timeout=30)
    assert inner.closed and sorted(s.id for s in inner.list_sessions()) == ["s0", "s1", "s2"]


async def test_closing_twice_is_harmless() -> None:
    inner = RecordingStore()
    store = ThreadedAsyncStore(inner)
    await store.append("s", turn("1"), expected_version=0)
    await store.aclose()
    await store.aclose()
    assert inner.closed


async def test_a_cancelled_close_still_closes_the_store_after_the_writes() -> None:
    inner = RecordingStore()
    inner.gate = threading.Event()
    store = ThreadedAsyncStore(inner)
    write = asyncio.ensure_future(store.append("s", turn("1"), expected_version=0))
    await asyncio.sleep(0.05)
    closing = asyncio.ensure_future(store.aclose())
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert not inner.closed
    inner.gate.set()
    assert await asyncio.wait_for(write, timeout=30) == 1
    for _ in range(3000):
        if inner.closed:
            break
        await asyncio.sleep(0.01)
    assert inner.closed


async def test_get_session_is_read_on_the_loop_when_sqlite_says_it_will_not_wait(tmp_path: Any) -> None:
    """A turn's version check reads one row: SQLite in WAL mode makes it on the loop itself (no thread and
    back), and the answer is the thread's answer, for a live, a missing and an expired session."""
    from claude_history.stores.sqlite import SQLiteStore

    inner = SQLiteStore(tmp_path / "loop.db")
    inner.append("s", turn("1"), expected_version=0)
    inner.update_session("old", create=True, expires_at=datetime(2001, 1, 1, tzinfo=timezone.utc))
    store = ThreadedAsyncStore(inner)

    async def no_thread(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("get_session went to a thread")

    store._run = no_thread  # type: ignore[method-assign]
    info = await store.get_session("s")
    assert (info.id, info.version) == ("s", inner.get_session("s").version)
    for missing in ("never", "old"):
        with pytest.raises(SessionNotFound):
            await store.get_session(missing)
    await store.aclose()


async def test_get_session_goes_to_a_thread_when_the_read_would_wait_and_the_loop_runs_on(tmp_path: Any) -> None:
    """Another process holds the file in exclusive locking mode (then even a WAL read waits): the check on the
    loop is refused at once (``WouldBlock``), the read waits on a thread, and the loop keeps running."""
    import sqlite3

    from claude_history.stores.base import WouldBlock
    from claude_history.stores.sqlite import SQLiteStore

    path = tmp_path / "exclusive.db"
    inner = SQLiteStore(path, busy_timeout=30)
    inner.append("s", turn("1"), expected_version=0)
    # The lock is taken as another process would take it before this one opened the file: the connection
    # the store opened to migrate it is closed first (an exclusive lock needs every other connection gone).
    for conn in inner._connections:
        conn.close()
    inner._connections.clear()
    inner._local = threading.local()
    store = ThreadedAsyncStore(inner)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE sessions SET title = 'held' WHERE id = 's'")
    other.execute("COMMIT")  # in exclusive mode the lock stays held after the commit
    try:
        with pytest.raises(WouldBlock):
            inner.get_session_nowait("s")
        read = asyncio.ensure_future(store.get_session("s"))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not read.done(), "the read should wait on its thread, not on the loop"
    finally:
        other.execute("PRAGMA locking_mode=NORMAL")
        other.execute("SELECT 1 FROM sessions").fetchall()  # a read under NORMAL gives the lock up
        other.close()
    info = await asyncio.wait_for(read, timeout=30)
    assert (info.id, info.title) == ("s", "held")
    await store.aclose()


async def test_a_subclass_that_changes_get_session_is_read_on_a_thread(tmp_path: Any) -> None:
    """A store that overrides ``get_session`` (to check or change what it answers) keeps its override: the
    loop's own read, which would bypass it, is not used."""
    from claude_history.stores.sqlite import SQLiteStore

    class Titled(SQLiteStore):
        def get_session(self, session_id: str) -> Any:
            return replace(super().get_session(session_id), title="from the override")

    inner = Titled(tmp_path / "sub.db")
    inner.append("s", turn("1"), expected_version=0)
    async with ThreadedAsyncStore(inner) as store:
        assert (await store.get_session("s")).title == "from the override"
