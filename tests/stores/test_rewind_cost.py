"""rewind() costs one turn, not one session, on the backends that read their own log (SQLite, memory; the
PostgreSQL and Redis backends have their own tail reads): it never loads the session and decodes only the tail
it needs. The results themselves are checked on every backend by the conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_history.errors import ConfigurationError, ConflictError
from claude_history.stores import _json, _rewind_fork, memory, sqlite
from claude_history.stores.base import Entry

from .samples import turn

TURNS = 300


@pytest.fixture(params=["sqlite", "memory"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, list[Any]]]:
    """A long session in a store whose ``load`` fails the test, and the list of messages its rewind decodes."""
    module: Any = sqlite if request.param == "sqlite" else memory
    store = sqlite.SQLiteStore(tmp_path / "h.db") if request.param == "sqlite" else memory.MemoryStore()
    entries: list[Entry] = []
    for i in range(TURNS):
        entries += turn(str(i))
    store.append("s", entries, expected_version=0)

    def no_load(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("rewind loaded the whole session")

    monkeypatch.setattr(type(store), "load", no_load)
    decoded: list[Any] = []

    def counting_decode(text: Any) -> Any:
        if isinstance(text, str) and text.startswith('{"role"'):  # a message (not session metadata)
            decoded.append(text)
        return _json.decode_json(text)

    monkeypatch.setattr(module, "decode_json", counting_decode)
    yield store, decoded
    store.close()


def test_rewind_of_the_last_turn_decodes_only_the_tail(setup: tuple[Any, list[Any]]) -> None:
    store, decoded = setup
    assert store.rewind("s") == 2
    assert len(decoded) <= _rewind_fork.TAIL_CHUNK
    assert store.rewind("s", expected_version=2) == 3
    assert len(decoded) <= 2 * _rewind_fork.TAIL_CHUNK
    assert store.get_session("s").message_count == 2 * TURNS - 4


def test_rewind_to_an_index_decodes_nothing(setup: tuple[Any, list[Any]]) -> None:
    store, decoded = setup
    assert store.rewind("s", to=100) == 2
    assert store.rewind("s", to=50, expected_version=2) == 3
    with pytest.raises(ConflictError):
        store.rewind("s", to=10, expected_version=2)
    with pytest.raises(ConfigurationError):
        store.rewind("s", to=51, expected_version=3)
    assert decoded == []
    assert store.get_session("s").message_count == 50
