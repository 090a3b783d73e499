"""``ThreadedAsyncStore``: the ``AsyncStore`` twin of any sync store (memory, SQLite, files, or an encrypted
wrapper of one), so ``AsyncChat`` never blocks its event loop on disk I/O.

Calls run on small dedicated thread pools (not the loop's default executor, which other code may fill), so
the number of database connections stays bounded: one pool for reads and one for writes. A writer can wait a
long time on its thread (SQLite: for another process's write transaction, up to ``busy_timeout``); with one
pool, a few such writers held every thread and reads, which need no write lock, queued behind them. Semantics
are the wrapped store's, unchanged. A call cannot be interrupted once it runs: if the awaiting task is
cancelled, an ``append`` in flight still completes or fails as a whole in its thread, which keeps the store
consistent (reload to see which). One read runs on the loop: ``get_session`` where the store has a
``get_session_nowait`` (SQLite), which raises instead of waiting for a lock and then goes to a thread."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ._cas import takes_append_tokens
from ._checkpoints import append_checkpointed, supports_checkpoints
from ._leases import supports_leases
from .base import (
    Entry,
    SearchHit,
    SessionCursor,
    SessionData,
    SessionInfo,
    Store,
    StoredMessage,
    Summary,
    UsageRecord,
    WouldBlock,
)

__all__ = ["ThreadedAsyncStore"]

T = TypeVar("T")


def _nowait_reader(store: Store) -> Callable[[str], SessionInfo] | None:
    """``store.get_session_nowait`` if it reads what ``store.get_session`` does: not when a subclass overrides
    ``get_session`` (to check or change what it returns) below the class that gave ``get_session_nowait``."""
    nowait: Callable[[str], SessionInfo] | None = getattr(store, "get_session_nowait", None)
    if nowait is None:
        return None
    mro = type(store).__mro__
    owner = next((c for c in mro if "get_session_nowait" in vars(c)), None)
    overrider = next((c for c in mro if "get_session" in vars(c)), None)
    return nowait if owner is overrider else None


class ThreadedAsyncStore:
    """Runs a sync ``Store`` in worker threads: reads on at most ``max_workers`` at once, writes on at most
    ``max_writers`` others (so, for SQLite, at most their sum of connections)."""

    def __init__(self, store: Store, *, max_workers: int = 4, max_writers: int = 2) -> None:
        for name, value in (("max_workers", max_workers), ("max_writers", max_writers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"ThreadedAsyncStore({name}=...) must be an integer >= 1, got {value!r}")
        self.store = store
        self.leases_supported = supports_leases(store)
        self.checkpoints_supported = supports_checkpoints(store)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="claude-history-store")
        self._writers = ThreadPoolExecutor(max_workers=max_writers, thread_name_prefix="claude-history-store-write")
        self._closing = False
        self._get_session_nowait = _nowait_reader(store)

    async def _run(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args, **kwargs))

    async def _write(self, function: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writers, functools.partial(function, *args, **kwargs))

    async def load(self, session_id: str) -> SessionData:
        return await self._run(self.store.load, session_id)

    async def get_session(self, session_id: str) -> SessionInfo:
        # A turn's one read before its API call (is the kept state current?): made on the loop itself where
        # the store can tell it will not wait (SQLite: ``get_session_nowait``), which spares a round trip
        # through a thread (0.2 ms of the proxy's work before its upstream call, bench/RESULTS.md "Proxy").
        if self._get_session_nowait is not None:
            try:
                return self._get_session_nowait(session_id)
            except WouldBlock:
                pass
        return await self._run(self.store.get_session, session_id)

    async def load_messages(
        self, session_id: str, *, start: int = 0, stop: int | None = None
    ) -> list[StoredMessage]:
        return await self._run(self.store.load_messages, session_id, start=start, stop=stop)

    async def usage_log(self, session_id: str) -> list[UsageRecord]:
        return await self._run(self.store.usage_log, session_id)

    async def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        load = getattr(self.store, "load_checkpoint", None)  # a user's own store may keep none
        return None if load is None else await self._run(load, session_id)

    async def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        save = getattr(self.store, "save_checkpoint", None)
        if save is not None:
            await self._write(save, session_id, version, data)

    async def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        *,
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
        lease: int | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> int:
        # The wrapped store may be a user's own, written before these parameters: it goes on without them.
        tokens: dict[str, Any] = (
            {"incarnation": incarnation, "turn_id": turn_id} if takes_append_tokens(self.store) else {}
        )
        if lease is not None:
            tokens["lease"] = lease
        return await self._write(
            append_checkpointed, self.store, session_id, list(entries), checkpoint, expected_version=expected_version,
            **tokens,
        )

    async def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        token: int | None = await self._write(self.store.acquire_lease, session_id, ttl=ttl)  # type: ignore[attr-defined]
        return token

    async def release_lease(self, session_id: str, token: int) -> None:
        await self._write(self.store.release_lease, session_id, token)  # type: ignore[attr-defined]

    async def update_session(self, session_id: str, **changes: Any) -> SessionInfo:
        return await self._write(self.store.update_session, session_id, **changes)

    async def list_sessions(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: SessionCursor | None = None,
    ) -> list[SessionInfo]:
        return await self._run(
            self.store.list_sessions, owner=owner, tag=tag, limit=limit, offset=offset, after=after
        )

    async def delete(self, session_id: str) -> bool:
        return await self._write(self.store.delete, session_id)

    async def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        return await self._write(self.store.fork, session_id, at=at, new_id=new_id)

    async def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int:
        tokens = {} if incarnation is None else {"incarnation": incarnation}  # a user's store may not take it
        return await self._write(self.store.rewind, session_id, to=to, expected_version=expected_version, **tokens)

    async def save_summary(self, session_id: str, summary: Summary) -> None:
        await self._write(self.store.save_summary, session_id, summary)

    async def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        return await self._run(self.store.search, query, session_id=session_id, owner=owner, limit=limit)

    async def purge_expired(self, now: datetime | None = None) -> int:
        return await self._write(self.store.purge_expired, now)

    async def export_jsonl(self, session_id: str) -> str:
        return await self._run(self.store.export_jsonl, session_id)

    async def import_jsonl(self, data: str | Iterable[str], *, session_id: str | None = None) -> str:
        if not isinstance(data, (str, bytes, bytearray)) and isinstance(data, Iterable):
            data = list(data)  # read an iterator here, not concurrently from a worker thread (the store checks)
        return await self._write(self.store.import_jsonl, data, session_id=session_id)

    def _close(self) -> None:
        # The writes submitted before the close run first: a turn in flight is stored, not cut off.
        self._writers.shutdown(wait=True)
        self.store.close()

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        closed = asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)  # no new calls; the close, already queued, still runs
        # Shielded: an aclose cancelled midway (a shutdown's timeout) still closes the store once the writes end.
        await asyncio.shield(closed)

    async def __aenter__(self) -> ThreadedAsyncStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ThreadedAsyncStore({self.store!r})"
