"""The service on a real uvicorn (in a thread of the test process) in front of the simulator, on a SQLite file;
tenants' keys are made the way the CLI makes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import anthropic
import pytest

from claude_history.server import ServerConfig, create_app
from claude_history.server.running import BackgroundServer
from claude_history.server.tenants import create_key
from claude_history.stores import open_store
from claude_history.testing import Simulator

MODEL = "claude-sonnet-4-6"


@dataclass
class Service:
    base_url: str
    store_url: str
    keys: dict[str, str]  # tenant -> key

    def client(self, tenant: str = "acme", session: str | None = None, **kwargs: object) -> anthropic.Anthropic:
        headers = {"x-session-id": session} if session else {}
        return anthropic.Anthropic(api_key=self.keys[tenant], base_url=self.base_url, max_retries=0,
                                   default_headers=headers, **kwargs)  # type: ignore[arg-type]  # fmt: skip

    def async_client(self, tenant: str = "acme", session: str | None = None) -> anthropic.AsyncAnthropic:
        headers = {"x-session-id": session} if session else {}
        return anthropic.AsyncAnthropic(api_key=self.keys[tenant], base_url=self.base_url, max_retries=0,
                                        default_headers=headers)  # fmt: skip


def make_keys(store_url: str, *tenants: str) -> dict[str, str]:
    store = open_store(store_url)
    try:
        return {t: create_key(store, t)[0] for t in tenants}
    finally:
        store.close()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.fixture
def start_service(sim: Simulator, store_url: str) -> Iterator[Callable[..., Service]]:
    running: list[BackgroundServer] = []

    def start(**options: object) -> Service:
        keys = make_keys(store_url, "acme", "globex")
        config = replace(ServerConfig(store_url=store_url, upstream_url=sim.base_url, upstream_key="test"), **options)
        server = BackgroundServer(create_app(config)).start()
        running.append(server)
        return Service(server.base_url, store_url, keys)

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def service(start_service: Callable[..., Service]) -> Service:
    return start_service()
