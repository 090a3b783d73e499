"""`logs` and `cost` on a store of many long sessions read a bounded part of it: `logs -n 10` the ends of the
few newest sessions, `cost` the replies' usage only, never a whole conversation. Counted at the store's API."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Invoke

import claude_history.stores as stores
from claude_history import open_store
from claude_history.history import turns
from claude_history.stores.base import Entry

SESSIONS, TURNS = 20, 30  # 1,200 messages


class CountingStore:
    """The real store, with a count of the calls and of the messages each read returned."""

    def __init__(self, store: Any, calls: Counter[str]) -> None:
        self._store, self.calls = store, calls

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = attribute(*args, **kwargs)
            if name == "load":
                self.calls["messages read"] += len(result.messages)
            elif name in ("load_messages", "usage_log"):
                self.calls["messages read" if name == "load_messages" else "usage records read"] += len(result)
            return result

        return call


@pytest.fixture
def long_store(tmp_path: Path) -> str:
    """Sessions filled a turn at a time, round robin, as people chat: the newest turns are in many sessions."""
    url = f"sqlite:///{tmp_path / 'long.db'}"
    store = open_store(url)
    try:
        versions = dict.fromkeys(range(SESSIONS), 0)
        for t in range(TURNS):
            for s in range(SESSIONS):
                entries = [
                    Entry({"role": "user", "content": f"question {t} of session {s} " + "words " * 50}),
                    Entry(
                        {"role": "assistant", "content": [{"type": "text", "text": f"answer {t} of session {s}"}]},
                        model="claude-sonnet-4-6",
                        usage={"input_tokens": 100 + t, "output_tokens": 20},
                    ),
                ]
                versions[s] = store.append(f"s{s:02d}", entries, expected_version=versions[s])
    finally:
        store.close()
    return url


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    counted: Counter[str] = Counter()
    real = stores.open_store
    monkeypatch.setattr(stores, "open_store", lambda *a, **kw: CountingStore(real(*a, **kw), counted))
    return counted


def _naive_newest(url: str, count: int) -> list[str]:
    """What `logs` must answer, computed by reading everything."""
    store = open_store(url)
    try:
        found = []
        for info in store.list_sessions(limit=1000):
            data = store.load(info.id)
            for span in turns(data.message_params()):
                first = data.messages[span.start]
                found.append((first.created_at, first.message["content"]))
    finally:
        store.close()
    return [text for _, text in sorted(found, reverse=True)[:count]]


def test_logs_reads_the_ends_of_the_newest_sessions_only(
    invoke: Invoke, long_store: str, calls: Counter[str]
) -> None:
    expected = _naive_newest(long_store, 10)
    calls.clear()
    result = invoke(["logs", "-n", "10", "--json", "--store", long_store])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["prompt"] for line in result.stdout.splitlines()] == expected
    assert calls["load"] == 0
    # 1,200 messages are stored; the answer needs 20 of them (10 turns in 10 sessions).
    assert calls["messages read"] <= 16 * 12, calls
    assert calls["load_messages"] <= 12, calls


def test_logs_of_one_session_reads_its_end(invoke: Invoke, long_store: str, calls: Counter[str]) -> None:
    result = invoke(["logs", "-n", "3", "--json", "--session", "s05", "--store", long_store])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3
    assert calls["load"] == 0 and calls["messages read"] <= 16, calls


def test_cost_reads_usage_not_conversations(invoke: Invoke, long_store: str, calls: Counter[str]) -> None:
    result = invoke(["cost", "--by", "model", "--json", "--store", long_store])
    assert result.exit_code == 0, result.output
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["model"] == "claude-sonnet-4-6" and row["replies"] == SESSIONS * TURNS
    assert calls["load"] == 0 and calls["load_messages"] == 0, calls
    assert calls["usage records read"] == SESSIONS * TURNS
    # $3 / $15 per million input / output tokens (data/prices.json)
    expected = sum((100 + t) * 3 + 20 * 15 for t in range(TURNS)) * SESSIONS / 1_000_000
    assert row["cost"] == pytest.approx(expected, abs=1e-6)
