"""What the doc tests share: the pages, the environment a reader has, and real stores behind the docs' URLs."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from claude_history.testing import Simulator

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def reader_env(sim: Simulator, home: Path) -> dict[str, str]:
    """A reader's shell: the SDK finds the simulator through its own variables; nothing of ours is preset."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_HISTORY_"))}
    env.update(
        ANTHROPIC_API_KEY="test",
        ANTHROPIC_BASE_URL=sim.base_url,
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    )
    return env


@pytest.fixture
def service_urls(postgres_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """The docs' example URLs (made-up hosts) mapped to the real test servers, isolated by a unique schema and
    key prefix that are dropped afterwards."""
    tag = "doc" + uuid.uuid4().hex[:10]
    pg = f"{postgres_url}?schema={tag}"
    urls = {
        "postgresql://app:secret@db.internal:5432/app?schema=chat": pg,
        "postgresql://app@db/chats": pg,
        "postgresql://...": pg,
        "redis://cache.internal:6379/0?prefix=chat:": f"{redis_url}?prefix={tag}:",
    }
    yield urls
    import psycopg
    import redis

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{tag}" CASCADE')
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{tag}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
