"""What a turn costs, counted rather than timed (issue 14, item 9): the store calls a turn makes and the
messages the planner estimates. A warm turn (the same Chat, the session unchanged by others) reads nothing
from the store but the version check and estimates only its new messages, however long the session is."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from claude_history import Chat
from claude_history.context import CacheAwareWindow
from claude_history.context import log_index as log_index_module
from claude_history.stores import open_store
from claude_history.stores.base import Entry, Store

from .conftest import MODEL

READS = frozenset(
    {"load", "load_messages", "get_session", "version", "usage_log", "list_sessions", "search", "message_params"}
    | {"export_jsonl"}
)


class CountingStore:
    """A real store behind a front that counts the calls made to it, by method name."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


@pytest.fixture(params=["memory", "sqlite"])
def counting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CountingStore]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'chats.db'}"
    store = open_store(url)
    yield CountingStore(store)
    store.close()


def stored_session(store: Store, session_id: str, length: int, seed: int) -> None:
    """``length`` alternating text messages, the replies with a usage record, appended in one go."""
    rng = random.Random(seed)
    entries = []
    for i in range(length):
        text = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega"]) for _ in range(rng.randint(20, 200)))
        if i % 2:
            usage = {"input_tokens": 1_000 + i, "output_tokens": 200}
            entries.append(Entry({"role": "assistant", "content": text}, model=MODEL, usage=usage))
        else:
            entries.append(Entry({"role": "user", "content": text}))
    store.append(session_id, entries, expected_version=0)


def warm_turn_cost(
    client: anthropic.Anthropic, store: CountingStore, length: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Counter[str], int]:
    """(store calls, message estimates) of the third turn of a Chat on a stored session of ``length``."""
    session_id = f"cost-{length}"
    stored_session(store.inner, session_id, length, seed=length)
    chat = Chat(client, model=MODEL, store=store, session_id=session_id, context=CacheAwareWindow(8_000))
    chat.send("first")
    chat.send("second")
    estimates = [0]
    real = log_index_module.estimate_message

    def counted(*args: Any, **kwargs: Any) -> Any:
        estimates[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(log_index_module, "estimate_message", counted)
    store.calls.clear()
    reply = chat.send("third")
    assert reply.content, "the turn got its reply"
    assert chat.messages[-2]["content"] == "third"
    return Counter(store.calls), estimates[0]


def test_a_warm_turn_reads_only_the_version_and_estimates_only_its_new_messages(
    client: anthropic.Anthropic, counting: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    short_calls, short_estimates = warm_turn_cost(client, counting, 60, monkeypatch)
    long_calls, long_estimates = warm_turn_cost(client, counting, 3_000, monkeypatch)
    for calls in (short_calls, long_calls):
        reads = {name: count for name, count in calls.items() if name in READS}
        assert reads == {"get_session": 1}, f"a warm turn read more than the version: {reads}"
        assert calls["append"] == 1  # the turn committed in one write
    # Two new messages (the user's and the reply), each estimated once per size variant at most.
    assert short_estimates == long_estimates
    assert 1 <= long_estimates <= 2 * 4
