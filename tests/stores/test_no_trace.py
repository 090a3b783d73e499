"""Delete without trace, over every backend: after ``delete``, or once a session has expired and
``purge_expired`` ran, no record of it remains anywhere in the backend (every SQLite table, every table of the
PostgreSQL schema, every Redis key of the prefix, every file), including the encrypted wrapper's own records
for it (a kept rewind note, a rotation backup) (issue 13)."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .conftest import TEST_KEY, Backend
from .samples import turn

SID = "zq-trace-7731"


# Lease records are the one thing kept on purpose: a fencing token grows with every lease ever taken on the id,
# across its deletion (stores/_leases.py), so a turn that held a lease on a deleted session cannot commit into a
# new one under a reused token. They hold the id, a number and a time, never content.
_LEASES = ("leases:", ".lease", ":fence:")


def _traces(backend: Backend, store: Any) -> list[str]:
    """Every piece of the backend's data that names ``SID`` (or the hash the wrapper keys its records by),
    except lease records."""
    marks = (SID, hashlib.sha256(SID.encode()).hexdigest())
    found = [text for text in _everything(backend, store) if any(mark in text for mark in marks)]
    return [text[:300] for text in found if not any(lease in text for lease in _LEASES)]


def _everything(backend: Backend, store: Any) -> Iterator[str]:
    inner = getattr(store, "inner", store)
    if backend.base == "memory":
        yield from (f"{name}: {value!r}" for name, value in vars(inner).items() if name != "_leases")
    elif backend.base == "sqlite":
        assert backend.root is not None
        raw = sqlite3.connect(backend.root / "history.db")
        try:
            tables = [row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in raw.execute(f'SELECT * FROM "{table}"'):
                    yield f"{table}: {row!r}"
        finally:
            raw.close()
    elif backend.base == "file":
        assert backend.root is not None
        for path in backend.root.rglob("*"):
            yield str(path.relative_to(backend.root))
            if path.is_file() and not path.name.endswith(".lease"):
                yield path.read_bytes().decode("utf-8", "replace")
    elif backend.base == "postgres":
        import psycopg

        schema = backend.options["schema"]
        with psycopg.connect(backend.url, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall()
            for (table,) in tables:
                for row in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):
                    yield f"{table}: {row[0]}"
    elif backend.base == "redis":
        import redis

        client = redis.Redis.from_url(backend.url)
        try:
            for key in client.scan_iter(match=backend.options["prefix"] + "*", count=1000):
                yield key.decode("utf-8", "replace")
                kind = client.type(key).decode()
                if kind == "string":
                    value: Any = client.get(key)
                elif kind == "hash":
                    value = client.hgetall(key)
                elif kind == "list":
                    value = client.lrange(key, 0, -1)
                elif kind == "set":
                    value = client.smembers(key)
                elif kind == "zset":
                    value = client.zrange(key, 0, -1)
                else:  # pragma: no cover
                    value = kind
                yield repr(value)
        finally:
            client.close()
    else:  # pragma: no cover
        raise ValueError(backend.name)


def _fill(backend: Backend, store: Any) -> None:
    """A session with all a store keeps for one: turns, a rewind (with the wrapper: its kept note), a summary,
    a lease, and with the wrapper an interrupted rotation's backup."""
    from claude_history.stores.base import Summary

    store.append(SID, turn("a") + turn("b"), expected_version=0)
    store.append(SID, turn("c"), expected_version=1)
    store.update_session(SID, title="t", owner="o", tags=["x"], metadata={"k": 1})
    store.rewind(SID)
    store.save_summary(SID, Summary(start=0, end=2, text="summary"))
    if getattr(store, "leases_supported", True):
        token = store.acquire_lease(SID, ttl=60)
        if token is not None:
            store.release_lease(SID, token)
    store.append("other", turn("kept"), expected_version=0)
    if backend.encrypted:
        from claude_history.stores.encrypted import wrap

        rotating = wrap(store.inner, bytes(range(1, 33)), old_keys=[TEST_KEY])

        def crash(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("crashed mid-rotation")

        real = store.inner.rewind
        store.inner.rewind = crash
        try:
            with pytest.raises(RuntimeError):
                rotating.rotate(SID)
        finally:
            store.inner.rewind = real
    assert _traces(backend, store)  # the scan sees the session


def _open(backend: Backend) -> Any:
    return backend.open()


def test_a_deleted_session_leaves_no_trace(backend: Backend) -> None:
    store = _open(backend)
    try:
        _fill(backend, store)
        assert store.delete(SID)
        assert _traces(backend, store) == []
        assert [info.id for info in store.list_sessions()] == ["other"]
    finally:
        store.close()


def test_an_expired_session_leaves_no_trace_once_purged(backend: Backend) -> None:
    store = _open(backend)
    try:
        _fill(backend, store)
        past = datetime.now(timezone.utc) - timedelta(seconds=1)
        getattr(store, "inner", store).update_session(SID, expires_at=past)  # beneath a rotation in progress
        store.purge_expired()
        assert _traces(backend, store) == []
        assert [info.id for info in store.list_sessions()] == ["other"]
    finally:
        store.close()
