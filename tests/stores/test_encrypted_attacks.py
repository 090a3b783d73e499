"""Attacks on the encrypted wrapper by someone who can write the backend but has no key, over every backend
(found by an attack on the released version: each of these leaked or destroyed another session's data)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from claude_history.errors import DecryptionError
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
