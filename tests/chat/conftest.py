"""Fixtures for the chat tests: real stores (memory and SQLite) and a client that records raw replies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from claude_history.stores import open_store
from claude_history.stores.base import Store
from claude_history.testing import Simulator

MODEL = "claude-sonnet-4-6"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'chats.db'}"
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chats.db'}"


@pytest.fixture
def client(sim: Simulator) -> anthropic.Anthropic:
    return sim.client(max_retries=0)


@pytest.fixture
def aclient(sim: Simulator) -> anthropic.AsyncAnthropic:
    return sim.async_client(max_retries=0)


class RawReplies:
    """The JSON bodies the simulator answered /v1/messages with (non-streaming), in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def hook(self, response: httpx2.Response) -> None:
        if response.request.url.path.endswith("/v1/messages") and "json" in response.headers.get(
            "content-type", ""
        ):
            response.read()
            self.bodies.append(json.loads(response.content))


@pytest.fixture
def raw(sim: Simulator) -> Iterator[tuple[anthropic.Anthropic, RawReplies]]:
    """A client whose every JSON reply body is kept as the simulator sent it."""
    replies = RawReplies()
    http = httpx2.Client(event_hooks={"response": [replies.hook]})
    yield sim.client(max_retries=0, http_client=http), replies
    http.close()


def bodies(sim: Simulator, model: str | None = None) -> list[dict[str, Any]]:
    """Bodies of the /v1/messages requests the simulator received (not count_tokens), optionally of one
    model."""
    found = [r["body"] for r in sim.requests if r["path"].split("?")[0] in ("/v1/messages", "/v1/messages/")]
    return [b for b in found if model is None or b.get("model") == model]


def normalized(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with string content as one text block and no cache breakpoints: the planner may add
    breakpoints to a request (turning a string into a block), which never reach the stored log."""
    result = []
    for message in messages:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        result.append(
            {**message, "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in blocks]}
        )
    return result
