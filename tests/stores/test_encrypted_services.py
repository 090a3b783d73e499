"""Encryption over the shared and file backends: nothing the backend keeps (rows, search vectors, Redis
values, files) holds plaintext, and the async wrapper works over the native async clients."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_history.stores import open_async_store, open_store
from claude_history.stores.base import Entry, Summary
from claude_history.stores.encrypted import wrap_async

KEY = bytes(range(32))
NEW_KEY = bytes(range(1, 33))
SECRET = "quokkafrost"

TURN = [
    Entry({"role": "user", "content": f"remember the word {SECRET}"}),
    Entry(
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": f"the word is {SECRET}", "signature": "c2ln"},
                {"type": "text", "text": f"I will remember {SECRET}."},
            ],
        },
        model="claude-sonnet-4-6",
        usage={"input_tokens": 10, "output_tokens": 5},
    ),
]


def _write_everything(store: Any) -> None:
    store.append("s1", TURN, expected_version=0)
    store.update_session("s1", system=f"the secret is {SECRET}", title="Plans", owner="ann", tags=["t"])
    store.save_summary("s1", Summary(0, 2, f"they talked about {SECRET}"))
    store.fork("s1", at=1, new_id="s2")
    hits = store.search(SECRET)
    assert sorted((h.session_id, h.seq) for h in hits) == [("s1", 0), ("s1", 1), ("s2", 0)]
    assert store.load("s1").message_params() == [e.message for e in TURN]


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[tuple[str, str]]:
    pytest.importorskip("claude_history.stores.postgres")
    import psycopg

    schema = "t_enc_" + uuid.uuid4().hex[:12]
    yield postgres_url, schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[tuple[str, str]]:
    pytest.importorskip("claude_history.stores.redis")
    import redis

    prefix = "test:enc:" + uuid.uuid4().hex[:12] + ":"
    yield redis_url, prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=10_000))
    if keys:
        client.delete(*keys)
    client.close()


def test_postgres_rows_and_search_vectors_hold_no_plaintext(postgres: tuple[str, str]) -> None:
    import psycopg

    url, schema = postgres
    with open_store(url, schema=schema, encryption_key=KEY) as store:
        _write_everything(store)
    dumped = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        assert tables
        for (table,) in tables:
            rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
            dumped.extend(row[0] for row in rows)
    everything = "\n".join(dumped)
    assert "Plans" in everything  # sanity: we are looking at the right data
    assert SECRET not in everything
    with open_store(url, schema=schema) as plain:
        assert plain.search(SECRET) == []


def _redis_values(client: Any, prefix: str) -> list[str]:
    values: list[str] = []
    for key in client.scan_iter(match=prefix + "*", count=10_000):
        kind = client.type(key)
        if kind == "string":
            values.append(client.get(key))
        elif kind == "list":
            values.extend(client.lrange(key, 0, -1))
        elif kind == "hash":
            values.extend(f"{k}={v}" for k, v in client.hgetall(key).items())
        elif kind == "zset":
            values.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == "set":
            values.extend(client.smembers(key))
        elif kind == "stream":
            values.extend(json.dumps(entry) for entry in client.xrange(key))
        else:  # pragma: no cover - a new structure must be checked here too
            raise AssertionError(f"unexpected Redis type {kind} for {key}")
        values.append(key)
    return values


def test_redis_values_hold_no_plaintext(redis_prefix: tuple[str, str]) -> None:
    import redis

    url, prefix = redis_prefix
    with open_store(url, prefix=prefix, encryption_key=KEY) as store:
        _write_everything(store)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        everything = "\n".join(_redis_values(client, prefix))
    finally:
        client.close()
    assert "Plans" in everything
    assert SECRET not in everything


def test_file_store_holds_no_plaintext(tmp_path: Path) -> None:
    pytest.importorskip("claude_history.stores.jsonfile")
    root = tmp_path / "sessions"
    with open_store(f"file://{root}", encryption_key=KEY) as store:
        _write_everything(store)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("which", ["postgres", "redis"])
async def test_async_encryption_over_native_async_clients(which: str, request: pytest.FixtureRequest) -> None:
    if which == "postgres":
        url, schema = request.getfixturevalue("postgres")
        options: dict[str, Any] = {"schema": schema}
    else:
        url, prefix = request.getfixturevalue("redis_prefix")
        options = {"prefix": prefix}
    store = open_async_store(url, encryption_key=KEY, **options)
    try:
        version = await store.append("a", TURN, expected_version=0)
        await store.update_session("a", system="sys")
        assert (await store.load("a")).message_params() == [e.message for e in TURN]
        assert [h.seq for h in await store.search(SECRET)] == [0, 1]
        assert SECRET not in json.dumps((await store.inner.load("a")).message_params())
    finally:
        await store.aclose()
    rotating = wrap_async(open_async_store(url, **options), NEW_KEY, old_keys=[KEY])
    try:
        report = await rotating.rotate()
        assert report.rotated == ("a",)
        assert (await rotating.get_session("a")).version == version + 2
    finally:
        await rotating.aclose()
    with open_store(url, encryption_key=NEW_KEY, **options) as only_new:
        assert only_new.load("a").message_params() == [e.message for e in TURN]
        assert only_new.get_session("a").system == "sys"
