"""Races on the encrypted wrapper's record (the key ids, the import epoch, the rewind note), which it keeps in the
session's metadata, over every backend: metadata is last writer wins, so a write built from an older read must
never drop what another writer of the wrapper put there meanwhile (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from claude_history.errors import ConflictError, DecryptionError, SessionNotFound
from claude_history.stores.memory import MemoryStore

from .conftest import TEST_KEY, Backend
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


def test_a_metadata_write_racing_a_rewind_does_not_drop_its_note(store: Any) -> None:
    # update_session(metadata=...) read the record, a rewind cut the last turn and left its note in the record,
    # then the update wrote the record it had read: the note was gone, the session read as tampered with, and
    # the next append chained onto the wrong row, so it stayed so for good.
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    real = store.inner.get_session
    raced: list[int] = []

    def racing(session_id: str) -> Any:
        info = real(session_id)
        if session_id == "s" and not raced:
            store.inner.get_session = real
            raced.append(store.rewind("s"))  # between the update's read and its write
        return info

    store.inner.get_session = racing
    store.update_session("s", metadata={"k": 1})
    store.inner.get_session = real
    assert raced == [3]
    assert "rewind" not in store.inner.get_session("s").metadata["_claude_history_encryption"]  # the race hit
    assert texts(store) == ["question a"]
    assert [m.message["content"] for m in store.load_messages("s", start=0, stop=1)] == ["question a"]
    store.append("s", turn("c"), expected_version=3)
    assert texts(store) == ["question a", "question c"]
    assert store.get_session("s").metadata == {"k": 1}


def test_an_append_onto_turns_dropped_beneath_the_wrapper_is_refused(store: Any) -> None:
    # Chaining onto the log as found would make the truncation look like the store's own.
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    version = store.inner.rewind("s", to=2)
    with pytest.raises(DecryptionError, match="does not end where the encrypted store left it"):
        store.append("s", turn("c"), expected_version=version)
    assert store.inner.get_session("s").message_count == 2  # nothing written


def test_the_kept_rewind_note_is_hidden_and_goes_with_its_session(store: Any) -> None:
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    store.rewind("s")
    assert [info.id for info in store.list_sessions()] == ["s"]
    assert store.search("question") != [] and {h.session_id for h in store.search("question")} == {"s"}
    assert len(store.inner.list_sessions()) == 2
    store.rotate()  # rotation leaves it alone
    assert texts(store) == ["question a"]
    assert store.delete("s")
    assert store.inner.list_sessions() == []


def test_a_caller_cannot_take_the_id_of_the_wrappers_own_records(store: Any) -> None:
    # A tenant that may name its sessions could take the id where alice's rewind note (or rotation backup) is
    # kept: the wrapper would overwrite it, hide it from listings, and delete it with alice.
    from claude_history.errors import ConfigurationError
    from claude_history.stores.encrypted import backup_id
    from claude_history.stores.encrypted._codec import note_id

    store.append("own", turn("a"), expected_version=0)
    for taken in (note_id("alice"), backup_id("alice")):
        with pytest.raises(ConfigurationError, match="reserved"):
            store.append(taken, turn("mine"), expected_version=0)
        with pytest.raises(ConfigurationError, match="reserved"):
            store.update_session(taken, title="mine", create=True)
        with pytest.raises(ConfigurationError, match="reserved"):
            store.import_jsonl(_export("mine"), session_id=taken)
        with pytest.raises(ConfigurationError, match="reserved"):
            store.fork("own", new_id=taken)
    assert [info.id for info in store.inner.list_sessions()] == ["own"]  # nothing was written


def test_a_session_whose_first_copy_of_the_note_was_dropped_rotates(enc_backend: Backend) -> None:
    from claude_history.stores.encrypted import RESERVED_METADATA_KEY, wrap

    store = enc_backend.open()
    try:
        store.append("s", turn("a"), expected_version=0)
        store.append("s", turn("b"), expected_version=1)
        store.rewind("s")
        info = store.inner.get_session("s")
        record = {k: v for k, v in info.metadata[RESERVED_METADATA_KEY].items() if k != "rewind"}
        store.inner.update_session("s", metadata={**info.metadata, RESERVED_METADATA_KEY: record})  # a stale write
        rotated = wrap(store.inner, bytes(range(1, 33)), old_keys=[TEST_KEY])
        assert rotated.rotate("s").rotated == ("s",)
        assert texts(rotated) == ["question a"]
    finally:
        store.close()


def test_a_create_that_read_another_session_never_reuses_its_incarnation(store: Any) -> None:
    # A writer that saw no session appends at version 0 and finds one (incarnation Y) in its own read; that
    # session is deleted before the backend's append. Pinning the append to Y then created a new session under
    # Y, so a third writer still holding the old session's length at the same version landed rows sealed for
    # other positions in it, and every later load or append failed with DecryptionError (seen in a threaded
    # delete/append race on Redis).
    store.append("s", turn("r") + turn("r2"), expected_version=0)
    old = store.inner.get_session("s").incarnation
    real = store.inner.append

    def deleted_first(session_id: str, *args: Any, **kwargs: Any) -> Any:
        store.inner.delete(session_id)
        return real(session_id, *args, **kwargs)

    store.inner.append = deleted_first
    try:
        store.append("s", turn("w"), expected_version=0)
    except ConflictError:
        # Refused before any write: the session it read is not the one it meant to create, and stays as it was.
        assert store.inner.get_session("s").incarnation == old
        assert texts(store) == ["question r", "question r2"]
        return
    finally:
        store.inner.append = real
    assert store.inner.get_session("s").incarnation != old  # created, but as a session of its own
    assert texts(store) == ["question w"]


@pytest.mark.parametrize("loser", ["conditional", "retrying"])
def test_a_rewind_stalled_before_its_note_never_leaves_a_session_unreadable(enc_backend: Backend, loser: str) -> None:
    # Rewind A reads the session, then stalls before writing its note; rewind B runs whole meanwhile (its note
    # in both places, its cut). A then writes its note over B's in the session's record and in the kept one,
    # loses its compare-and-swap, and puts back the note it had read: neither place explained B's cut, and the
    # session read as tampered with (DecryptionError) until rewound to 0.
    first, second = enc_backend.open(), enc_backend.open()
    try:
        first.append("s", turn("a") + turn("b") + turn("c"), expected_version=0)
        first.append("s", turn("d"), expected_version=1)  # version 2, 8 messages
        real = first.inner.update_session
        stalled: list[int] = []

        def stall(session_id: str, **changes: Any) -> Any:
            record = (changes.get("metadata") or {}).get("_claude_history_encryption") or {}
            if session_id == "s" and "rewind" in record and not stalled:
                stalled.append(0)  # memory: both wrappers share the store, and so this hook
                stalled[0] = second.rewind("s", to=6, expected_version=2)  # B, whole, between A's read and write
            return real(session_id, **changes)

        first.inner.update_session = stall
        try:
            if loser == "conditional":
                with pytest.raises(ConflictError):
                    first.rewind("s", to=4, expected_version=2)
            else:  # no expected version: A reads again after losing, and cuts the session B left
                assert first.rewind("s", to=4) == 4
        finally:
            first.inner.update_session = real
        assert stalled == [3]
        kept = ["question a", "question b", "question c"] if loser == "conditional" else ["question a", "question b"]
        for store in (first, second):
            assert texts(store) == kept
            assert [m.seq for m in store.load_messages("s", start=1)] == list(range(1, 2 * len(kept)))
        version = store.get_session("s").version
        first.append("s", turn("e"), expected_version=version)
        assert texts(second) == [*kept, "question e"]
    finally:
        first.close()
        second.close()


def test_a_rewind_racing_an_append_never_leaves_a_session_unreadable(enc_backend: Backend) -> None:
    first, second = enc_backend.open(), enc_backend.open()
    try:
        first.append("s", turn("a") + turn("b"), expected_version=0)  # version 1, 4 messages
        real = first.inner.update_session
        raced: list[int] = []

        def stall(session_id: str, **changes: Any) -> Any:
            record = (changes.get("metadata") or {}).get("_claude_history_encryption") or {}
            if session_id == "s" and "rewind" in record and not raced:
                raced.append(0)
                raced[0] = second.append("s", turn("c"), expected_version=1)
            return real(session_id, **changes)

        first.inner.update_session = stall
        try:
            with pytest.raises(ConflictError):
                first.rewind("s", to=2, expected_version=1)
        finally:
            first.inner.update_session = real
        assert raced == [2]
        for store in (first, second):
            assert texts(store) == ["question a", "question b", "question c"]
        second.append("s", turn("d"), expected_version=2)
        assert texts(first)[-1] == "question d"
    finally:
        first.close()
        second.close()



def test_a_rotation_never_lands_on_a_session_deleted_and_imported_again(enc_backend: Backend) -> None:
    # rotate() read alice and copied her to the backup; alice was deleted and imported again (another session, at
    # the same version) before the rotation marked and cut her: the marker landed on the new session, the rewind
    # to 0 (a compare-and-swap on the version alone) cut it, and the old alice's turns were appended into it.
    from claude_history.stores.encrypted import backup_id, wrap

    store = enc_backend.open()
    try:
        store.import_jsonl(_export("old"), session_id="alice")
        version = store.get_session("alice").version
        rotating = wrap(store.inner, bytes(range(1, 33)), old_keys=[TEST_KEY])
        real = store.inner.import_jsonl
        raced: list[str] = []

        def import_then_race(data: Any, *, session_id: str | None = None) -> Any:
            created = real(data, session_id=session_id)
            if session_id == backup_id("alice") and not raced:
                raced.append("alice")
                store.delete("alice")
                store.import_jsonl(_export("new"), session_id="alice")
                assert store.get_session("alice").version == version  # the race needs the same version
            return created

        store.inner.import_jsonl = import_then_race
        try:
            report = rotating.rotate("alice")
        finally:
            store.inner.import_jsonl = real
        assert raced == ["alice"] and report.rotated == ("alice",)
        assert texts(rotating, "alice") == ["question new"]
        assert rotating.rotate("alice").unchanged == 1  # nothing left half-done
        assert [info.id for info in store.inner.list_sessions()] == ["alice"]  # no backup left behind
    finally:
        store.close()


def test_the_kept_rewind_notes_expire_with_their_session(store: Any) -> None:
    # The note record took the session's expiry at the rewind; moving the session's expiry later left it to
    # expire first (and a session whose first copy of the note a stale write dropped then read as tampered
    # with), moving it earlier left it behind the session.
    from datetime import datetime, timedelta, timezone

    from claude_history.stores.encrypted._codec import note_id

    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    store.update_session("s", expires_at=soon, create=True)
    store.append("s", turn("a"), expected_version=0)
    store.append("s", turn("b"), expected_version=1)
    store.rewind("s")
    assert store.inner.get_session(note_id("s")).expires_at == soon
    later = soon + timedelta(days=1)
    store.update_session("s", expires_at=later)
    assert store.inner.get_session(note_id("s")).expires_at == later
    store.update_session("s", expires_at=None)
    assert store.inner.get_session(note_id("s")).expires_at is None
