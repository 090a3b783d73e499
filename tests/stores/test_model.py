"""Property tests: random sequences of store operations against a plain-list model of what they mean.

Every backend that transforms a stored history (append, rewind to any point, summaries, fork, export/import)
must end exactly where the model does, message for message and byte for byte.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.errors import ConfigurationError, ConflictError
from claude_history.history import last_turn_start
from claude_history.stores.base import Entry, Summary
from claude_history.stores.jsonfile import JsonFileStore
from claude_history.stores.memory import MemoryStore
from claude_history.stores.sqlite import SQLiteStore

from .samples import canonical

text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    json_scalar,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=6,
)
block = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, text),
    st.builds(lambda extra: {"type": "text", "text": "with extra keys", "extra": extra}, json_value),
    st.builds(lambda sig, t: {"type": "thinking", "thinking": t, "signature": sig}, text, text),
    st.builds(
        lambda i, data: {"type": "tool_use", "id": f"toolu_{i}", "name": "f", "input": data},
        st.integers(0, 99),
        st.dictionaries(text, json_value, max_size=3),
    ),
)
message = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["user", "assistant"]),
    st.one_of(text, st.lists(block, min_size=1, max_size=3)),
)
entry = st.builds(
    Entry,
    message,
    model=st.one_of(st.none(), st.sampled_from(["claude-sonnet-4-6", "claude-opus-5-5"])),
    usage=st.one_of(
        st.none(), st.dictionaries(st.sampled_from(["input_tokens", "output_tokens"]), st.integers(0, 10**6))
    ),
)
operation = st.one_of(
    st.tuples(st.just("append"), st.lists(entry, min_size=1, max_size=4), st.booleans()),
    st.tuples(st.just("rewind"), st.one_of(st.none(), st.floats(0, 1))),
    st.tuples(st.just("summary"), st.floats(0, 1), st.floats(0, 1), text),
    st.tuples(st.just("fork"), st.floats(0, 1)),
)


@pytest.fixture(scope="module", params=["memory", "sqlite", "file"])
def store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One store per backend for all examples (each example uses fresh session ids): opening a database per
    example would cost more than the example."""
    with tempfile.TemporaryDirectory() as tmp:
        if request.param == "memory":
            opened: Any = MemoryStore()
        elif request.param == "sqlite":
            opened = SQLiteStore(Path(tmp) / "h.db", synchronous="OFF")
        else:
            opened = JsonFileStore(Path(tmp) / "files", fsync=False)
        try:
            yield opened
        finally:
            opened.close()


def check(
    store: Any,
    session_id: str,
    messages: list[dict[str, Any]],
    summaries: list[tuple[int, int, str]],
    version: int,
) -> None:
    data = store.load(session_id)
    assert [canonical(m.message) for m in data.messages] == [canonical(m) for m in messages]
    assert [m.seq for m in data.messages] == list(range(len(messages)))
    assert [(s.start, s.end, s.text) for s in data.summaries] == summaries
    assert data.version == version
    assert store.get_session(session_id).message_count == len(messages)


def index(fraction: float, count: int) -> int:
    return min(count, int(fraction * (count + 1)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(operation, max_size=12))
def test_random_operations_match_the_model(store: Any, operations: list[tuple[Any, ...]]) -> None:
    run = uuid.uuid4().hex
    sid = f"s-{run}"
    messages: list[dict[str, Any]] = []
    summaries: list[tuple[int, int, str]] = []
    version = 0
    forks = 0
    for op in operations:
        if op[0] == "append":
            _, entries, stale = op
            if stale and version:
                with pytest.raises(ConflictError):
                    store.append(sid, entries, expected_version=version - 1)
            else:
                assert store.append(sid, entries, expected_version=version) == version + 1
                messages += [dict(e.message) for e in entries]
                version += 1
        elif op[0] == "rewind":
            if not version:
                continue
            target = None if op[1] is None else index(op[1], len(messages))
            expected = last_turn_start(messages) if target is None else target
            if expected is None:
                with pytest.raises(ConfigurationError):
                    store.rewind(sid, to=target)
                continue
            assert store.rewind(sid, to=target, expected_version=version) == version + 1
            version += 1
            del messages[expected:]
            summaries = [s for s in summaries if s[1] <= expected]
        elif op[0] == "summary":
            if not version:
                continue
            start, end = sorted((index(op[1], len(messages)), index(op[2], len(messages))))
            if start == end:  # a summary of no messages is refused, and nothing is stored
                with pytest.raises(ConfigurationError, match="empty"):
                    store.save_summary(sid, Summary(start, end, op[3]))
                continue
            store.save_summary(sid, Summary(start, end, op[3]))
            summaries.append((start, end, op[3]))
        else:
            if not version:
                continue
            at = index(op[1], len(messages))
            forks += 1
            child = store.fork(sid, at=at, new_id=f"fork{forks}-{run}")
            check(store, child, messages[:at], [s for s in summaries if s[1] <= at], 1 if at else 0)
        if version:
            check(store, sid, messages, summaries, version)
    if version:
        exported = store.export_jsonl(sid)
        store.import_jsonl(exported, session_id=f"imported-{run}")
        check(store, f"imported-{run}", messages, summaries, 1 if messages else 0)
        assert store.export_jsonl(f"imported-{run}").split("\n")[1:] == exported.split("\n")[1:]
