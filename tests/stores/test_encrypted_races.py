"""Races on the encrypted wrapper's record (the key ids, the import epoch, the rewind note), which it keeps in the
session's metadata, over every backend: metadata is last writer wins, so a write built from an older read must
never drop what another writer of the wrapper put there meanwhile (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from claude_history.errors import SessionNotFound
from claude_history.stores.memory import MemoryStore

from .conftest import Backend
from .samples import turn


@pytest.fixture
def store(enc_backend: Backend) -> Iterator[Any]:
    opened = enc_backend.open()
    try:
        yield opened
    finally:
        opened.close()


def _export(text: str) -> str:
    plain = MemoryStore()
    plain.append("s", turn(text), expected_version=0)
    return plain.export_jsonl("s")


def texts(store: Any, session_id: str = "s") -> list[str]:
    return [m.message["content"] for m in store.load(session_id).messages if m.message["role"] == "user"]


def test_a_session_created_while_an_import_creates_it_keeps_the_imported_rows(store: Any) -> None:
    # update_session(create=True) read "no such session", an import created it (its rows bound to the epoch in
    # its record), then the update wrote a fresh record over it: the epoch was gone and every load failed
    # ("imported with an epoch the session's encryption record does not hold"), the imported turn lost.
    real = store.inner.get_session
    raced: list[str] = []

    def racing(session_id: str) -> Any:
        try:
            return real(session_id)
        except SessionNotFound:
            if not raced:
                raced.append(store.import_jsonl(_export("imported"), session_id="s"))
            raise

    store.inner.get_session = racing
    info = store.update_session("s", title="mine", metadata={"k": 1}, create=True)
    store.inner.get_session = real
    assert raced == ["s"]
    assert (info.title, info.metadata) == ("mine", {"k": 1})
    assert texts(store) == ["question imported"]
    store.append("s", turn("after"), expected_version=store.get_session("s").version)
    assert texts(store) == ["question imported", "question after"]


def test_creating_a_session_with_update_session_still_creates_it(store: Any) -> None:
    info = store.update_session("new", title="t", owner="o", tags=["x"], system="be brief", create=True)
    assert (info.version, info.message_count, info.title, info.owner, info.tags) == (0, 0, "t", "o", ("x",))
    assert store.get_session("new").system == "be brief"
    assert [s.id for s in store.list_sessions()] == ["new"]
    store.append("new", turn("a"), expected_version=0)
    assert texts(store, "new") == ["question a"]
    with pytest.raises(SessionNotFound):
        store.update_session("missing", title="t")
