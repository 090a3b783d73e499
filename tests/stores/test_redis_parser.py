"""The Redis stores parse replies with hiredis (the ``redis`` extra installs it): redis-py falls back to its
pure-Python parser without a word, so a dropped dependency or a client option that overrides the parser would
only show as slower loads (bench/redis_parser.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from claude_history.stores import open_async_store, open_store
from claude_history.stores.base import Entry

pytestmark = pytest.mark.services


def _parser_name(client: object) -> str:
    pool = client.connection_pool  # type: ignore[attr-defined]
    return type(pool.make_connection()._parser).__name__


def test_sync_and_async_stores_parse_with_hiredis(redis_url: str) -> None:
    prefix = f"parser{uuid.uuid4().hex[:8]}:"
    store = open_store(f"{redis_url}?prefix={prefix}")
    astore = open_async_store(f"{redis_url}?prefix={prefix}")
    try:
        assert "Hiredis" in _parser_name(store._client)  # type: ignore[attr-defined]
        assert "Hiredis" in _parser_name(astore._client)  # type: ignore[attr-defined]
        # and the replies it parses are the ones the store reads back (a long record, a nested reply)
        text = "é" * 5_000 + " fin"
        store.append("s", [Entry({"role": "user", "content": text})], expected_version=0)

        async def read() -> str:
            try:
                data = await astore.load("s")
                return str(data.message_params()[0]["content"])
            finally:
                await astore.aclose()

        assert asyncio.run(read()) == text
        assert store.get_session("s").message_count == 1
    finally:
        store.delete("s")
        store.close()
