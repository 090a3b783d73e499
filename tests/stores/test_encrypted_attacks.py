"""Attacks on the encrypted wrapper by someone who can write the backend but has no key, over every backend
(found by an attack on the released version: each of these leaked or destroyed another session's data)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_history.errors import ConflictError, DecryptionError, SessionNotFound
from claude_history.stores.base import Entry
from claude_history.stores.encrypted import RESERVED_METADATA_KEY, backup_id

from .conftest import ENCRYPTED, Backend, make_backend
from .samples import turn


@pytest.fixture(params=ENCRYPTED)
def enc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    backend: Backend
    for backend in make_backend(request.param, request, tmp_path):
        store = backend.open()
        try:
            yield store
        finally:
            store.close()


@pytest.mark.parametrize("backup", ["bob", "own"])
def test_a_forged_rotation_marker_neither_shows_nor_moves_another_session(enc: Any, backup: str) -> None:
    enc.append("alice", turn("alice"), expected_version=0)
    enc.append("bob", turn("bob secret"), expected_version=0)
    inner = enc.inner
    info = inner.get_session("alice")
    record = dict(info.metadata[RESERVED_METADATA_KEY])
    record["rotation"] = {
        "backup": "bob" if backup == "bob" else backup_id("alice"),
        "version": info.version,
        "count": 2,
        "started_at": "2026-01-01T00:00:00+00:00",
        "token": "forged",
    }
    inner.update_session("alice", metadata={**info.metadata, RESERVED_METADATA_KEY: record})
    inner.rewind("alice", to=0)  # what a real rotation does after writing its backup
    with pytest.raises(DecryptionError, match="rotation marker"):
        enc.load("alice")
    with pytest.raises(DecryptionError, match="rotation marker"):
        enc.rotate("alice")
    bob = enc.load("bob")
    assert bob.version == 1
    assert bob.messages[0].message["content"] == "question bob secret"


def test_a_genuine_marker_copied_to_another_session_is_refused(enc: Any) -> None:
    enc.append("alice", turn("alice"), expected_version=0)
    enc.append("bob", turn("bob"), expected_version=0)
    genuine = enc._ops.codec.seal_rotation(
        "bob",
        {"backup": backup_id("bob"), "version": 1, "count": 2, "started_at": "2026-01-01T00:00:00+00:00", "token": "t"},
    )
    info = enc.inner.get_session("alice")
    record = {**info.metadata[RESERVED_METADATA_KEY], "rotation": {**genuine, "backup": backup_id("alice")}}
    enc.inner.update_session("alice", metadata={**info.metadata, RESERVED_METADATA_KEY: record})
    with pytest.raises(DecryptionError, match="rotation marker"):
        enc.load("alice")


def test_a_delete_and_re_create_racing_an_append_is_a_conflict_not_a_misplaced_ciphertext(
    enc_backend: Backend,
) -> None:
    # The wrapper seals rows for the positions it read; the session is deleted and created again at the same
    # version, with more messages, before its append lands. That append must fail, not land at other positions.
    writer, other = enc_backend.open(), enc_backend.open()
    try:
        writer.append("s", turn("a"), expected_version=0)
        inner_append = writer.inner.append

        fired: list[bool] = []

        def racing(*args: Any, **kwargs: Any) -> Any:
            if not fired:  # (memory:// shares one store between both wrappers)
                fired.append(True)
                other.delete("s")
                other.append("s", turn("b") + turn("c"), expected_version=0)
            return inner_append(*args, **kwargs)

        writer.inner.append = racing
        with pytest.raises(ConflictError, match="deleted and created again") as caught:
            writer.append("s", turn("late"), expected_version=1)
        assert caught.value.unsaved[0].message["content"] == "question late"  # plaintext, ready to retry
        writer.inner.append = inner_append
        for store in (writer, other):
            data = store.load("s")
            assert [m.message["content"] for m in data.messages][::2] == ["question b", "question c"]
    finally:
        writer.close()
        other.close()


def test_an_append_that_found_the_session_deleted_cannot_land_in_its_re_creation(enc_backend: Backend) -> None:
    # The race behind a CI failure (redis+enc): the caller read version 1; when the wrapper looks, the session
    # is gone (so it seals the rows for positions 0, 1); before its append lands, the session is created again
    # at version 1 with four messages. That append must fail, not put rows sealed for 0, 1 at 4, 5.
    writer, other = enc_backend.open(), enc_backend.open()
    try:
        writer.append("s", turn("a"), expected_version=0)
        other.delete("s")
        inner_get = writer.inner.get_session
        fired: list[bool] = []

        def racing(*args: Any, **kwargs: Any) -> Any:
            try:
                return inner_get(*args, **kwargs)
            finally:
                if not fired:  # after the wrapper's look, before its append
                    fired.append(True)
                    other.append("s", turn("b") + turn("c"), expected_version=0)

        writer.inner.get_session = racing
        with pytest.raises(ConflictError) as caught:
            writer.append("s", turn("late"), expected_version=1)
        assert fired and caught.value.unsaved[0].message["content"] == "question late"
        writer.inner.get_session = inner_get
        for store in (writer, other):
            data = store.load("s")
            assert [m.message["content"] for m in data.messages][::2] == ["question b", "question c"]
    finally:
        writer.close()
        other.close()


def test_an_append_that_found_a_newer_version_cannot_land_in_a_re_creation(enc_backend: Backend) -> None:
    # The same race one step later: the wrapper finds version 2 (not the caller's 1) and seals for no position
    # it can trust; the session is then created again at version 1. The append must fail there too.
    writer, other = enc_backend.open(), enc_backend.open()
    try:
        writer.append("s", turn("a"), expected_version=0)
        writer.append("s", turn("a2"), expected_version=1)
        inner_append = writer.inner.append
        fired: list[bool] = []

        def racing(*args: Any, **kwargs: Any) -> Any:
            if not fired:
                fired.append(True)
                other.delete("s")
                other.append("s", turn("b") + turn("c"), expected_version=0)
            return inner_append(*args, **kwargs)

        writer.inner.append = racing
        with pytest.raises(ConflictError):
            writer.append("s", turn("late"), expected_version=1)
        writer.inner.append = inner_append
        for store in (writer, other):
            data = store.load("s")
            assert [m.message["content"] for m in data.messages][::2] == ["question b", "question c"]
    finally:
        writer.close()
        other.close()


def _race(stores: list[Any], rounds: int) -> list[BaseException]:
    """Two writers append from what they read while a third deletes and re-creates the session."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(store: Any) -> None:
        while not stop.is_set():
            try:
                try:
                    version = store.get_session("s").version
                except SessionNotFound:
                    version = 0
                store.append("s", turn("w"), expected_version=version)
            except (ConflictError, SessionNotFound):
                pass
            except BaseException as exc:  # pragma: no cover - reported by the test
                errors.append(exc)
                return

    def recreator(store: Any) -> None:
        try:
            for _ in range(rounds):
                store.delete("s")
                with contextlib.suppress(ConflictError):
                    store.append("s", turn("r") + turn("r2"), expected_version=0)
        finally:
            stop.set()

    threads = [threading.Thread(target=writer, args=(s,)) for s in stores[:2]]
    threads.append(threading.Thread(target=recreator, args=(stores[2],)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.parametrize("name", ["sqlite+enc", "redis+enc"])
def test_a_threaded_delete_and_append_race_never_breaks_a_session(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # The race that hit every backend within 15 s, bounded to a few seconds; every load after it decrypts
    # (every row is at the position it was sealed for).
    for backend in make_backend(name, request, tmp_path):
        stores = [backend.open() for _ in range(3)]
        try:
            assert _race(stores, rounds=60) == []
            with contextlib.suppress(SessionNotFound):
                stores[0].load("s")
        finally:
            for store in stores:
                store.close()


def test_search_goes_on_past_a_session_it_cannot_decrypt(enc: Any, caplog: pytest.LogCaptureFixture) -> None:
    enc.append("readable", turn("wombat"), expected_version=0)
    enc.append("broken", turn("wombat"), expected_version=0)
    raw = enc.inner.load("broken")
    enc.inner.delete("broken")
    message = dict(raw.messages[0].message)
    block = dict(message["content"][0])
    block["ct"] = block["ct"][:-4] + ("AAAA" if block["ct"][-4:] != "AAAA" else "BBBB")
    message["content"] = [block]
    enc.inner.append("broken", [Entry(message), *[Entry(m.message) for m in raw.messages[1:]]], expected_version=0)
    with pytest.raises(DecryptionError):
        enc.load("broken")
    assert {hit.session_id for hit in enc.search("wombat")} == {"readable"}
    assert "broken" in caplog.text
