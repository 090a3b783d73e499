"""Incarnations and idempotent commits, over every backend (stores/base.py): a session deleted and created
again under the same id is another session to every writer, and a commit retried after its acknowledgement
was lost is recognised, never stored twice."""

from __future__ import annotations

from typing import Any

import pytest

from claude_history.errors import ConfigurationError, ConflictError, SessionNotFound
from claude_history.stores._cas import creating

from .samples import turn


def count(store: Any, session_id: str) -> int:
    return len(store.load(session_id).messages)


def test_a_session_created_again_is_another_incarnation(store: Any) -> None:
    store.append("user-42", turn("old"), expected_version=0)
    old = store.get_session("user-42").incarnation
    assert old and store.load("user-42").info.incarnation == old
    assert store.delete("user-42")
    store.append("user-42", turn("new") + turn("newer"), expected_version=0)
    new = store.get_session("user-42").incarnation
    assert new and new != old
    # A writer still holding the deleted session, at the very version the new one has: refused, not appended.
    with pytest.raises(ConflictError, match="deleted and created again") as caught:
        store.append("user-42", turn("stale"), expected_version=1, incarnation=old)
    assert caught.value.actual_version == 1 and len(caught.value.unsaved) == 2
    assert count(store, "user-42") == 4
    assert store.append("user-42", turn("fresh"), expected_version=1, incarnation=new) == 2
    assert [info.incarnation for info in store.list_sessions()] == [new]


def test_a_creating_append_takes_the_callers_incarnation_and_copies_get_their_own(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0, incarnation=creating("chosen-by-the-writer"))
    assert store.get_session("s").incarnation == "chosen-by-the-writer"
    forked = store.fork("s")
    imported = store.import_jsonl(store.export_jsonl("s"), session_id="copy")
    incarnations = {store.get_session(sid).incarnation for sid in ("s", forked, imported)}
    assert len(incarnations) == 3 and None not in incarnations
    store.update_session("empty", create=True)
    assert store.get_session("empty").incarnation not in (None, *incarnations)


def test_a_retried_commit_is_stored_once(store: Any) -> None:
    assert store.append("s", turn("a"), expected_version=0, turn_id="turn-1") == 1
    # The acknowledgement was lost; the writer retries the very same append.
    assert store.append("s", turn("a"), expected_version=0, turn_id="turn-1") == 1
    assert store.append("s", turn("b"), expected_version=1, turn_id="turn-2") == 2
    assert store.append("s", turn("b"), expected_version=1, turn_id="turn-2") == 2
    assert count(store, "s") == 4 and store.get_session("s").version == 2
    with pytest.raises(ConflictError):  # another turn at that version is a conflict as ever
        store.append("s", turn("c"), expected_version=1, turn_id="turn-3")
    with pytest.raises(ConflictError):  # only the last append is remembered
        store.append("s", turn("a"), expected_version=0, turn_id="turn-1")
    store.rewind("s")
    with pytest.raises(ConflictError):  # a rewind forgets it: the turn is gone, a retry must not report it stored
        store.append("s", turn("b"), expected_version=1, turn_id="turn-2")
    assert store.append("s", turn("c"), expected_version=3) == 4
    with pytest.raises(ConflictError):
        store.append("s", turn("c"), expected_version=3, turn_id="turn-2")
    assert count(store, "s") == 4


def test_a_retried_commit_is_not_recognised_in_another_incarnation(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0, turn_id="t", incarnation=creating("first"))
    store.delete("s")
    store.append("s", turn("a"), expected_version=0, turn_id="t", incarnation=creating("second"))
    with pytest.raises(ConflictError):
        store.append("s", turn("a"), expected_version=0, turn_id="t", incarnation=creating("first"))
    assert count(store, "s") == 2
    # The create retried after a lost acknowledgement, in its own incarnation, is recognised.
    assert store.append("s", turn("a"), expected_version=0, turn_id="t", incarnation=creating("second")) == 1
    assert count(store, "s") == 2


def test_an_append_never_creates_a_session_under_an_incarnation_read_from_an_earlier_one(store: Any) -> None:
    # A writer read the empty session "s" (incarnation Y); it is deleted before the writer's first turn. Creating
    # "s" under Y then made a new session that a writer still holding the deleted one (at the version the new
    # one reaches) took for its own: its turn landed in the new conversation (with encryption, sealed for
    # other positions, so every later load failed). A bare token names a session read: it never creates.
    store.update_session("s", title="t", create=True)
    read = store.get_session("s").incarnation
    assert read and store.delete("s")
    with pytest.raises(ConflictError, match="deleted since it was read") as caught:
        store.append("s", turn("stale"), expected_version=0, incarnation=read)
    assert len(caught.value.unsaved) == 2
    with pytest.raises(SessionNotFound):
        store.get_session("s")
    # Same when the session had turns: nothing created under the token of the deleted one.
    store.append("t", turn("a"), expected_version=0)
    held = store.get_session("t").incarnation
    store.delete("t")
    with pytest.raises(ConflictError):
        store.append("t", turn("stale"), expected_version=0, incarnation=held)
    assert [info.id for info in store.list_sessions()] == []
    # A create names its new incarnation explicitly; an empty session read is still appended to as read.
    store.append("s", turn("a"), expected_version=0, incarnation=creating())
    assert store.get_session("s").incarnation not in (None, read, held)
    store.update_session("u", create=True)
    assert store.append("u", turn("a"), expected_version=0, incarnation=store.get_session("u").incarnation) == 1


@pytest.mark.parametrize("bad", ["", 5, "x" * 201, "a\x00b", "\ud800", "new:"])
def test_bad_tokens_are_refused(store: Any, bad: Any) -> None:
    for name in ("incarnation", "turn_id"):
        with pytest.raises(ConfigurationError, match=name):
            store.append("s", turn("a"), expected_version=0, **{name: bad})
    assert store.list_sessions() == []


def test_a_rewind_given_an_incarnation_never_cuts_a_session_created_again(store: Any) -> None:
    store.append("s", turn("old") + turn("old2"), expected_version=0)
    old = store.get_session("s").incarnation
    store.delete("s")
    store.append("s", turn("new") + turn("new2"), expected_version=0)  # the same version, another session
    for to in (0, None):
        with pytest.raises(ConflictError, match="deleted and created again"):
            store.rewind("s", to=to, expected_version=1, incarnation=old)
    assert count(store, "s") == 4
    new = store.get_session("s").incarnation
    assert store.rewind("s", to=2, expected_version=1, incarnation=new) == 2
    assert count(store, "s") == 2


def test_a_metadata_write_given_an_incarnation_never_lands_on_a_session_created_again(store: Any) -> None:
    store.append("s", turn("old"), expected_version=0)
    old = store.get_session("s").incarnation
    store.delete("s")
    store.append("s", turn("new"), expected_version=0)
    with pytest.raises(ConflictError, match="deleted and created again"):
        store.update_session("s", title="stale", metadata={"k": 1}, incarnation=old)
    info = store.get_session("s")
    assert (info.title, info.metadata) == (None, {})
    store.delete("s")
    with pytest.raises(SessionNotFound):  # nor created again by a write built from the deleted one
        store.update_session("s", title="stale", create=True, incarnation=old)
    assert store.list_sessions() == []
    store.append("s", turn("newer"), expected_version=0)
    assert store.update_session("s", title="t", incarnation=store.get_session("s").incarnation).title == "t"
