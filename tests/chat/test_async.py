"""AsyncChat does what Chat does, with await / async with / async for, over AsyncAnthropic."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from claude_history import AsyncChat, Chat
from claude_history.errors import ConfigurationError, ConflictError, InvalidHistory
from claude_history.history import validate
from claude_history.stores import open_async_store, open_store
from claude_history.stores.base import Store
from claude_history.testing import Simulator

from .conftest import MODEL, bodies

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def lookup(query: str) -> str:
    """Look something up."""
    return f"found {query}"


async def alookup(query: str) -> str:
    """Look something up."""
    await asyncio.sleep(0)
    return f"found {query}"


alookup.__name__ = "lookup"  # the same tool, as a coroutine function


def _sync_scenario(client: anthropic.Anthropic, store: Store) -> list[dict[str, Any]]:
    chat = Chat(client, model=MODEL, store=store, session_id="p", system="S", tools=[lookup])
    chat.send("hello")
    with chat.stream("repeat after me: one two three four") as s:
        assert "".join(s.text_stream) == "one two three four"
    chat.send("please use lookup")
    chat.send("use get_weather", tools=[WEATHER_TOOL])
    (use,) = chat.pending_tool_uses
    chat.send_tool_results({use["id"]: "sunny"})
    chat.send("drop me")
    chat.undo()
    return chat.messages


async def _async_scenario(client: anthropic.AsyncAnthropic, store: Any, tool: Any) -> list[dict[str, Any]]:
    chat = AsyncChat(client, model=MODEL, store=store, session_id="p", system="S", tools=[tool])
    await chat.load()
    await chat.send("hello")
    async with chat.stream("repeat after me: one two three four") as s:
        assert "".join([t async for t in s.text_stream]) == "one two three four"
    await chat.send("please use lookup")
    await chat.send("use get_weather", tools=[WEATHER_TOOL])
    (use,) = chat.pending_tool_uses
    await chat.send_tool_results({use["id"]: "sunny"})
    await chat.send("drop me")
    await chat.undo()
    return chat.messages


@pytest.mark.parametrize("tool", [lookup, alookup], ids=["sync-tool", "async-tool"])
async def test_sync_and_async_produce_the_same_history_and_requests(tool: Any, tmp_path: Path) -> None:
    def normalise(bodies_: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in b.items() if k != "stream"} for b in bodies_]

    with Simulator() as sim:
        store = open_store(f"sqlite:///{tmp_path / 'sync.db'}")
        await asyncio.to_thread(_sync_scenario, sim.client(max_retries=0), store)
        sync_messages = store.load("p").message_params()
        sync_bodies = bodies(sim)
        store.close()
    with Simulator() as sim:
        astore = open_async_store(f"sqlite:///{tmp_path / 'async.db'}")
        async_messages = await _async_scenario(sim.async_client(max_retries=0), astore, tool)
        assert (await astore.load("p")).message_params() == async_messages
        async_bodies = bodies(sim)
        await astore.aclose()
    assert async_messages == sync_messages
    assert len(sync_messages) == 12
    assert normalise(async_bodies) == normalise(sync_bodies)
    validate(async_messages, for_sending=False)


async def test_properties_need_a_load_for_an_existing_session(aclient: anthropic.AsyncAnthropic) -> None:
    chat = AsyncChat(aclient, model=MODEL, session_id="given")
    with pytest.raises(RuntimeError, match=r"await chat\.load"):
        _ = chat.messages
    async with AsyncChat(aclient, model=MODEL, session_id="given") as loaded:
        assert loaded.messages == [] and loaded.usage.input_tokens == 0 and loaded.cost == 0.0
    fresh = AsyncChat(aclient, model=MODEL)  # a new session: known to be empty, no I/O needed
    assert fresh.messages == [] and fresh.version == 0
    await fresh.send("hi")  # the first send loads lazily too
    assert len(fresh.messages) == 2
    assert fresh.cost > 0 and fresh.cost_complete


async def test_wrong_client_or_tools_are_clear_errors(
    sim: Simulator, aclient: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(ConfigurationError, match="AsyncAnthropic"):
        AsyncChat(sim.client(), model=MODEL)
    with pytest.raises(ConfigurationError, match="AsyncChat"):
        Chat(aclient, model=MODEL)


async def test_async_api_error_and_cut_stream_leave_everything_unchanged(
    sim: Simulator, aclient: anthropic.AsyncAnthropic, tmp_path: Path
) -> None:
    store = open_async_store(f"sqlite:///{tmp_path / 'a.db'}")
    chat = AsyncChat(aclient, model=MODEL, store=store, session_id="a")
    await chat.send("first")
    before = (chat.messages, chat.version, (await store.load("a")).message_params())

    sim.fail_next(529)
    with pytest.raises(anthropic.OverloadedError):
        await chat.send("fails")
    assert (chat.messages, chat.version, (await store.load("a")).message_params()) == before

    sim.cut_next_stream(after_events=4)
    with pytest.raises((anthropic.APIConnectionError, httpx2.HTTPError)):
        async with chat.stream("repeat after me: a b c d e f g h") as s:
            async for _ in s.text_stream:
                pass
    assert (chat.messages, chat.version, (await store.load("a")).message_params()) == before

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with chat.stream("repeat after me: a b c d e f g h") as s:
            async for _ in s:
                raise Boom
    assert (chat.messages, chat.version, (await store.load("a")).message_params()) == before

    await chat.send("next")
    sent = bodies(sim)[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    await store.aclose()


async def test_async_tools_run_concurrently(sim: Simulator, aclient: anthropic.AsyncAnthropic) -> None:
    started: list[str] = []
    both = asyncio.Event()

    async def get_weather(city: str) -> str:
        """Weather for a city."""
        started.append(city)
        if len(started) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)  # only returns if the other call runs at the same time
        return f"{city}: sunny"

    sim.reply_with(
        [
            {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "tool_use",
    )
    chat = AsyncChat(aclient, model=MODEL, tools=[get_weather])
    await chat.send("weather?")
    assert [r["content"] for r in chat.messages[2]["content"]] == ["Paris: sunny", "Rome: sunny"]


async def test_async_racing_chats_get_exactly_one_conflict(
    aclient: anthropic.AsyncAnthropic, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    arrived = 0
    both = asyncio.Event()

    async def lookup(query: str) -> str:
        """Look something up."""
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)
        return "result"

    seed = AsyncChat(aclient, model=MODEL, store=url, session_id="race")
    await seed.send("hello")
    chats = [AsyncChat(aclient, model=MODEL, store=url, session_id="race", tools=[lookup]) for _ in range(2)]
    results = await asyncio.gather(*(c.send("please use lookup") for c in chats), return_exceptions=True)
    conflicts = [r for r in results if isinstance(r, ConflictError)]
    assert len(conflicts) == 1
    assert isinstance(conflicts[0].reply, anthropic.types.Message)
    assert len(conflicts[0].unsaved) == 4
    await seed.reload()
    assert seed.version == 2 and len(seed.messages) == 6
    validate(seed.messages, for_sending=False)


async def test_async_caller_driven_and_commit_pending(
    aclient: anthropic.AsyncAnthropic, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    chat = AsyncChat(
        aclient, model=MODEL, store=url, session_id="cp", tools=[WEATHER_TOOL], commit_pending=True
    )
    reply = await chat.send("use get_weather")
    assert reply.stop_reason == "tool_use"
    later = AsyncChat(aclient, model=MODEL, store=url, session_id="cp", tools=[WEATHER_TOOL])
    await later.load()
    (use,) = later.pending_tool_uses
    with pytest.raises(InvalidHistory):
        await later.send("no results")
    await later.send_tool_results({use["id"]: "sunny"})
    assert later.version == 2 and len(later.messages) == 4


async def test_a_sync_store_is_run_off_the_event_loop(
    aclient: anthropic.AsyncAnthropic, sqlite_url: str
) -> None:
    sync_store = open_store(sqlite_url)
    chat = AsyncChat(aclient, model=MODEL, store=sync_store, session_id="w")
    await chat.send("hi")
    assert sync_store.load("w").version == 1
    assert type(chat.store).__name__ == "ThreadedAsyncStore"
    sync_store.close()


async def test_async_chat_closes_only_the_store_it_opened(
    aclient: anthropic.AsyncAnthropic, sqlite_url: str
) -> None:
    from claude_history.errors import StoreUnavailable

    async with AsyncChat(aclient, model=MODEL, store=sqlite_url, session_id="c") as owned:
        await owned.send("hi")
    with pytest.raises((StoreUnavailable, RuntimeError)):
        await owned.store.load("c")
    mine = open_async_store(sqlite_url)
    async with AsyncChat(aclient, model=MODEL, store=mine, session_id="c") as chat:
        await chat.send("again")
    assert (await mine.load("c")).version == 2
    await mine.aclose()
