"""The backends the conformance suite runs over, and the sync/async flavours of each.

A ``Backend`` knows how to open its store (again, as another app server or process would) by URL and options,
so the same spec drives in-process tests, subprocess workers and the async flavour. Backends that need a
server (PostgreSQL, Redis) are isolated per test with a unique schema / key prefix and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from claude_history.stores import open_async_store, open_store
from claude_history.stores.memory import MemoryStore
from claude_history.stores.threaded import ThreadedAsyncStore

# A fixed test key (base64 of 32 bytes), so subprocess workers can open encrypted variants too.
TEST_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

HAS_ENCRYPTION = importlib.util.find_spec("claude_history.stores.encrypted") is not None
HAS_POSTGRES = importlib.util.find_spec("claude_history.stores.postgres") is not None
HAS_REDIS = importlib.util.find_spec("claude_history.stores.redis") is not None

LOCAL = ["memory", "sqlite", "file"]
SHARED = ["postgres", "redis"]
ENCRYPTED = [f"{name}+enc" for name in ("memory", "sqlite", "file", "postgres", "redis")]
ALL_BACKENDS = LOCAL + SHARED + ENCRYPTED
# Backends whose data several processes share (the multi-process and crash tests run over these); one
# encrypted variant shows the wrapper keeps the backend's guarantees.
MULTIPROCESS = ["sqlite", "file", "postgres", "redis"]


@dataclass
class Backend:
    """How to open one isolated store, in this process or another."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    encryption_key: str | None = None
    root: Path | None = None  # the directory holding the data, for backends on local disk
    _memory: MemoryStore | None = None  # memory:// is per object: every "open" shares this one

    @property
    def base(self) -> str:
        return self.name.split("+")[0]

    @property
    def encrypted(self) -> bool:
        return self.encryption_key is not None

    def open(self) -> Any:
        if self._memory is not None:
            return _wrap(self._memory, self.encryption_key)
        return open_store(self.url, encryption_key=self.encryption_key, **self.options)

    def open_async(self) -> Any:
        if self._memory is not None:
            return ThreadedAsyncStore(_wrap(self._memory, self.encryption_key))
        return open_async_store(self.url, encryption_key=self.encryption_key, **self.options)

    def spec(self) -> dict[str, Any]:
        """What a subprocess needs to open the same store."""
        return {"url": self.url, "options": self.options, "encryption_key": self.encryption_key}


def _wrap(store: Any, key: str | None) -> Any:
    if key is None:
        return store
    from claude_history.stores.encrypted import wrap

    return wrap(store, key)


def _postgres(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    if not HAS_POSTGRES:
        pytest.skip("claude_history.stores.postgres is not available")
    url = request.getfixturevalue("postgres_url")
    schema = "t_" + uuid.uuid4().hex[:16]
    yield url, {"schema": schema}
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _redis(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    if not HAS_REDIS:
        pytest.skip("claude_history.stores.redis is not available")
    url = request.getfixturevalue("redis_url")
    prefix = "test:" + uuid.uuid4().hex[:16] + ":"
    yield url, {"prefix": prefix}
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix.replace("[", "\\[") + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def make_backend(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    base, _, variant = name.partition("+")
    key = None
    if variant == "enc":
        if not HAS_ENCRYPTION:
            pytest.skip("claude_history.stores.encrypted is not available")
        key = TEST_KEY
    if base == "memory":
        yield Backend(name, "memory://", encryption_key=key, _memory=MemoryStore())
    elif base == "sqlite":
        yield Backend(name, f"sqlite:///{tmp_path / 'history.db'}", encryption_key=key, root=tmp_path)
    elif base == "file":
        root = tmp_path / "sessions"
        yield Backend(name, f"file://{root}", encryption_key=key, root=root)
    elif base == "postgres":
        for url, options in _postgres(request):
            yield Backend(name, url, options, encryption_key=key)
    elif base == "redis":
        for url, options in _redis(request):
            yield Backend(name, url, options, encryption_key=key)
    else:  # pragma: no cover
        raise ValueError(name)


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """open_store encrypts when CLAUDE_HISTORY_ENCRYPTION_KEY is set: the plain variants must stay plain on a
    machine where it is (tests that want it set it themselves)."""
    monkeypatch.delenv("CLAUDE_HISTORY_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("CLAUDE_HISTORY_ENCRYPTION_OLD_KEYS", raising=False)


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from make_backend(request.param, request, tmp_path)


@pytest.fixture(params=ENCRYPTED)
def enc_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The encrypted variant of every backend."""
    yield from make_backend(request.param, request, tmp_path)


@pytest.fixture(params=[*MULTIPROCESS, "sqlite+enc"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Backends whose data is shared between processes."""
    yield from make_backend(request.param, request, tmp_path)


@pytest.fixture(params=MULTIPROCESS)
def plain_shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The same without the encrypted variant, for the heaviest multi-process runs."""
    yield from make_backend(request.param, request, tmp_path)


class SyncFacade:
    """Drives an ``AsyncStore`` from synchronous test code on its own event loop, so every conformance case
    runs unchanged against the async implementation too (the real one: real loop, real async clients)."""

    def __init__(self, async_store: Any) -> None:
        self._store = async_store
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(method(*args, **kwargs))

        return call

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._store.aclose())
        finally:
            self._loop.close()


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: Backend, flavour: str) -> Iterator[Any]:
    """The store under test, sync or async (through ``SyncFacade``), over every backend."""
    opened = backend.open() if flavour == "sync" else SyncFacade(backend.open_async())
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sync_store(backend: Backend) -> Iterator[Any]:
    """The sync store only: for heavy cases, where the async flavour too would add time, not coverage."""
    opened = backend.open()
    try:
        yield opened
    finally:
        opened.close()
