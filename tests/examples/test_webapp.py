"""examples/webapp.py, the FastAPI recipe of docs/webapp.md: a fresh AsyncChat per request over one shared store,
the library's errors as HTTP statuses. Driven in process through its ASGI interface, against the simulator."""

from __future__ import annotations

import gc
import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _module() -> Any:
    spec = importlib.util.spec_from_file_location("webapp_example", EXAMPLES / "webapp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # FastAPI resolves the handlers' annotations from the module
    spec.loader.exec_module(module)
    return module


webapp = _module()


@pytest.fixture(autouse=True)
def _heap_unfrozen_afterwards() -> Iterator[None]:
    """The example freezes the heap for the rest of its process, as a server should; the tests that run after
    these in the same pytest process (another order under pytest-xdist) start from an unfrozen one, as
    tests/server/test_event_loop.py needs."""
    frozen_before = gc.get_freeze_count()
    yield
    if not frozen_before:
        gc.unfreeze()


async def _serve(app: Any) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx2.AsyncClient(transport=transport, base_url="http://chat") as http,
    ):
        yield http


@pytest.fixture
async def api(sim: Any) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key="test", base_url=sim.base_url, max_retries=0)
    yield client
    await client.close()


async def test_turns_are_kept_between_requests(sim: Any, api: anthropic.AsyncAnthropic, tmp_path: Path) -> None:
    app = webapp.create_app(f"sqlite:///{tmp_path / 'chats.db'}", api)
    async for http in _serve(app):
        first = await http.post("/chat/alice", json={"message": "My name is Alice."})
        assert first.status_code == 200 and first.json()["version"] == 1
        second = await http.post("/chat/alice", json={"message": "What was my first message?"})
        assert second.status_code == 200
        assert "My name is Alice." in second.json()["reply"]  # the simulator answers from the history it got
        history = (await http.get("/chat/alice")).json()
        assert [m["role"] for m in history["messages"]] == ["user", "assistant", "user", "assistant"]
        assert history["version"] == 2
        other = await http.post("/chat/bob", json={"message": "Hello"})
        assert other.json()["version"] == 1  # another session, its own history
    bodies = [r["body"] for r in sim.requests if r["path"].endswith("/v1/messages")]
    assert [len(b["messages"]) for b in bodies] == [1, 3, 1]


async def test_a_conflict_is_a_409_and_stores_nothing_of_the_losing_request(sim: Any, tmp_path: Path) -> None:
    """Two requests for one session at once: the one that commits second gets a 409 (not a 500 that drops the
    connection), and the store holds the winner's turn once."""
    app: Any = None
    http: httpx2.AsyncClient | None = None
    raced: list[httpx2.Response] = []

    async def other_request_first(request: Any) -> None:
        # While the first request waits for the API, a second one for the same session runs to its end.
        if not raced and b"first request" in request.content:
            assert http is not None
            raced.append(await http.post("/chat/alice", json={"message": "second request"}))

    hooked = anthropic.DefaultAsyncHttpxClient(event_hooks={"request": [other_request_first]})  # httpx or httpx2
    api = anthropic.AsyncAnthropic(api_key="test", base_url=sim.base_url, max_retries=0, http_client=hooked)
    app = webapp.create_app(f"sqlite:///{tmp_path / 'chats.db'}", api)
    async for client in _serve(app):
        http = client
        lost = await http.post("/chat/alice", json={"message": "first request"})
        assert raced[0].status_code == 200
        assert lost.status_code == 409
        assert "nothing of this one was stored" in lost.json()["error"]
        history = (await http.get("/chat/alice")).json()["messages"]
        assert [m["content"] for m in history if m["role"] == "user"] == ["second request"]
        again = await http.post("/chat/alice", json={"message": "first request, sent again"})
        assert again.status_code == 200 and again.json()["version"] == 2
    await api.close()


async def test_errors_are_statuses_and_leave_the_history_alone(
    sim: Any, api: anthropic.AsyncAnthropic, tmp_path: Path
) -> None:
    app = webapp.create_app(f"sqlite:///{tmp_path / 'chats.db'}", api)
    async for http in _serve(app):
        missing = await http.get("/chat/nobody")
        assert missing.status_code == 404 and "nobody" in missing.json()["error"]
        assert (await http.post("/chat/alice", json={"message": ""})).status_code == 422  # FastAPI's validation
        assert (await http.post("/chat/alice", json={"message": "Hi"})).status_code == 200
        sim.fail_next(529)
        overloaded = await http.post("/chat/alice", json={"message": "lost to an overloaded API"})
        assert overloaded.status_code == 502 and "nothing was stored" in overloaded.json()["error"]
        sim.fail_next(429, retry_after=7)
        limited = await http.post("/chat/alice", json={"message": "rate limited"})
        assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
        history = (await http.get("/chat/alice")).json()
        assert history["version"] == 1 and len(history["messages"]) == 2
        assert "lost to" not in json.dumps(history)


async def test_the_startup_heap_is_frozen_once_and_a_frozen_one_left_alone(
    api: anthropic.AsyncAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full collection on the event loop stalls every request in flight; with the start-up heap frozen it
    scans only what requests made (docs/webapp.md). A heap something else froze is not frozen again."""
    freezes: list[int] = []
    real_freeze = gc.freeze

    def freeze() -> None:
        freezes.append(1)
        real_freeze()

    monkeypatch.setattr(gc, "freeze", freeze)
    gc.unfreeze()
    try:
        async for _ in _serve(webapp.create_app(f"sqlite:///{tmp_path / 'a.db'}", api)):
            assert gc.get_freeze_count() > 10_000  # the modules, FastAPI's routes, the SDK's types
        async for _ in _serve(webapp.create_app(f"sqlite:///{tmp_path / 'b.db'}", api)):
            pass
        assert len(freezes) == 1  # the second app found the heap frozen and left it alone
    finally:
        gc.unfreeze()
