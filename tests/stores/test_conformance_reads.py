"""Partial reads, the same on every backend and flavour: ``load_messages`` (a range of the log, e.g. the
newest turns for ``claude-history logs``) and ``usage_log`` (every reply's usage without its content, for
``claude-history cost``). Each must answer exactly what ``load`` would, cut to what was asked."""

from __future__ import annotations

from typing import Any

import pytest

from claude_history.errors import ConfigurationError, SessionNotFound

from .samples import canonical, every_block_history, tool_turn, turn

RANGES = [(0, None), (0, 0), (0, 1), (3, 7), (5, None), (9, 10), (9, 11), (10, None), (12, 40), (7, 3), (0, 100)]


def _view(messages: Any) -> list[tuple[Any, ...]]:
    return [(m.seq, canonical(m.message), m.model, m.usage, m.created_at) for m in messages]


def test_load_messages_is_the_slice_of_load(store: Any) -> None:
    version = store.append("s", turn("a"), expected_version=0)
    version = store.append("s", tool_turn("b"), expected_version=version)
    version = store.append("s", turn("c", size=300), expected_version=version)
    store.append("s", turn("d"), expected_version=version)
    whole = store.load("s").messages
    assert len(whole) == 10
    for start, stop in RANGES:
        expected = whole[start:stop] if stop is None or stop >= start else []
        assert _view(store.load_messages("s", start=start, stop=stop)) == _view(expected), (start, stop)
    assert _view(store.load_messages("s")) == _view(whole)


def test_load_messages_keeps_every_block_byte_exact(store: Any) -> None:
    entries = every_block_history()
    store.append("s", entries, expected_version=0)
    whole = store.load("s").messages
    assert _view(store.load_messages("s", start=1, stop=len(entries) - 1)) == _view(whole[1:-1])


def test_load_messages_after_a_rewind_and_on_an_empty_session(store: Any) -> None:
    version = store.append("s", turn("a"), expected_version=0)
    version = store.append("s", turn("b"), expected_version=version)
    store.rewind("s")
    assert [m.message["content"][0]["text"] for m in store.load_messages("s", start=1)] == ["answer a"]
    store.update_session("empty", create=True)
    assert store.load_messages("empty") == [] and store.load_messages("empty", start=2, stop=5) == []
    assert store.usage_log("empty") == []


def test_partial_reads_of_an_unknown_session_or_a_bad_range_are_refused(store: Any) -> None:
    with pytest.raises(SessionNotFound):
        store.load_messages("nobody")
    with pytest.raises(SessionNotFound):
        store.load_messages("nobody", start=3, stop=1)
    with pytest.raises(SessionNotFound):
        store.usage_log("nobody")
    store.append("s", turn("a"), expected_version=0)
    for bad in ({"start": -1}, {"stop": -2}, {"start": "1"}, {"start": True}, {"stop": 1.5}):
        with pytest.raises(ConfigurationError):
            store.load_messages("s", **bad)


def test_usage_log_is_every_reply_of_the_log_without_its_content(store: Any) -> None:
    version = store.append("s", turn("a"), expected_version=0)
    version = store.append("s", tool_turn("b"), expected_version=version)
    store.append("s", turn("c"), expected_version=version)
    whole = store.load("s").messages
    records = store.usage_log("s")
    assert [(r.seq, r.model, r.usage, r.created_at) for r in records] == [
        (m.seq, m.model, m.usage, m.created_at) for m in whole if m.usage is not None
    ]
    assert records and all(not hasattr(r, "message") for r in records)
