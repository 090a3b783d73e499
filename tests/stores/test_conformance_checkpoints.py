"""Planner checkpoints over every backend, sync and async (stores/_checkpoints.py): one per session, kept with
the version it describes, never replaced by an older one, gone with the session; the encrypted wrapper keeps
none (a checkpoint in clear beside the ciphertext would tell what the session holds)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from claude_history import AsyncChat, Chat
from claude_history.context import CacheAwareWindow
from claude_history.errors import ConflictError
from claude_history.stores import _checkpoints
from claude_history.stores._cas import creating
from claude_history.stores._checkpoints import CheckpointTooLarge, supports_checkpoints
from claude_history.testing import Simulator

from .conftest import Backend
from .samples import turn

# The backends that keep checkpoints; the others (the encrypted wrapper) keep none, which is always correct.
KEEPING = {"memory", "sqlite", "file", "postgres", "redis"}

DATA = {
    "format": 1,
    "start": 9_560,
    "text": [0.1, 1e-17, 12345.678901234567, 2.0**-40],  # floats come back bit for bit
    "settings": ["CacheAwareWindow(max_input_tokens=20000, low_water=None)", 7.428571428571429, 0],
    "note": "ünïcödé \u2028 and a \"quote\"",
    "anchors": [[3, 1, [0, 0, 0, 0], 1.5, 0, 10, None, True]],
}


def keeps(backend: Backend) -> bool:
    return backend.name in KEEPING


def test_a_store_says_whether_it_keeps_checkpoints(backend: Backend) -> None:
    opened = backend.open()
    try:
        assert supports_checkpoints(opened) is keeps(backend)
    finally:
        opened.close()


def test_a_checkpoint_is_kept_with_its_version(backend: Backend, store: Any) -> None:
    if not keeps(backend):
        pytest.skip(f"{backend.name} keeps no checkpoints (a fresh chat reads the whole session)")
    assert store.load_checkpoint("s") is None
    store.save_checkpoint("s", 1, DATA)  # no such session: nothing is kept
    assert store.load_checkpoint("s") is None
    version = store.append("s", turn("one"), expected_version=0)
    store.save_checkpoint("s", version, DATA)
    assert store.load_checkpoint("s") == (version, DATA)
    store.save_checkpoint("s", version, {"again": True})  # the same version: replaced
    assert store.load_checkpoint("s") == (version, {"again": True})
    newer = store.append("s", turn("two"), expected_version=version)
    store.save_checkpoint("s", newer, {"newer": True})
    store.save_checkpoint("s", version, {"older": True})  # a slow writer never puts back an older one
    assert store.load_checkpoint("s") == (newer, {"newer": True})
    assert store.load("s").version == newer and len(store.load("s").messages) == 4  # the log is untouched


def test_a_checkpoint_goes_with_its_session(backend: Backend, store: Any) -> None:
    if not keeps(backend):
        pytest.skip(f"{backend.name} keeps no checkpoints")
    version = store.append("s", turn("one"), expected_version=0)
    store.save_checkpoint("s", version, DATA)
    forked = store.fork("s")
    assert store.load_checkpoint(forked) is None  # a fork starts without one
    rewound = store.rewind("s")
    assert store.load_checkpoint("s") == (version, DATA)  # kept, and stale: of another version
    assert rewound != version
    assert store.delete("s")
    assert store.load_checkpoint("s") is None
    if backend.name == "redis":  # nothing of it is left behind either
        import redis

        client = redis.Redis.from_url(backend.url)
        try:
            assert not client.exists(backend.options["prefix"] + "checkpoint:s")
        finally:
            client.close()
    store.append("s", turn("again"), expected_version=0)  # created again: the old one is not its
    assert store.load_checkpoint("s") is None


def test_a_checkpoint_is_checked_before_it_is_kept(backend: Backend, store: Any) -> None:
    if not keeps(backend):
        pytest.skip(f"{backend.name} keeps no checkpoints")
    version = store.append("s", turn("one"), expected_version=0)
    for bad_version in (0, -1, True, "1"):
        with pytest.raises(ValueError):
            store.save_checkpoint("s", bad_version, DATA)
    with pytest.raises(TypeError):
        store.save_checkpoint("s", version, ["not", "an", "object"])
    with pytest.raises(CheckpointTooLarge):
        store.save_checkpoint("s", version, {"huge": "x" * 300_000})
    assert store.load_checkpoint("s") is None


def test_an_encrypted_store_keeps_no_checkpoint_in_clear(enc_backend: Backend) -> None:
    """The wrapper has no checkpoint methods, so a chat over it reads whole sessions, and the store under it
    never gets one from it."""
    opened = enc_backend.open()
    try:
        assert not supports_checkpoints(opened)
        assert not hasattr(opened, "save_checkpoint")
    finally:
        opened.close()


def test_an_append_keeps_the_checkpoint_of_the_version_it_makes(backend: Backend, store: Any) -> None:
    """The chat's commit carries the planner checkpoint (issue 14.1): the append keeps it in its own
    transaction or script, of the version it makes, and keeps nothing when it writes nothing."""
    if not keeps(backend):
        assert store.append("s", turn("one"), expected_version=0, checkpoint=DATA) == 1  # taken, not kept
        return
    version = store.append("s", turn("one"), expected_version=0, incarnation=creating("inc"), checkpoint=DATA)
    assert store.load_checkpoint("s") == (version, DATA)
    with pytest.raises(ConflictError):
        store.append("s", turn("late"), expected_version=0, checkpoint={"late": True})
    with pytest.raises(CheckpointTooLarge):  # refused before anything is written
        store.append("s", turn("two"), expected_version=version, checkpoint={"huge": "x" * 300_000})
    assert store.load_checkpoint("s") == (version, DATA)
    assert store.load("s").version == version and len(store.load("s").messages) == 2
    newer = store.append("s", turn("two"), expected_version=version, turn_id="t2", checkpoint={"newer": True})
    assert store.load_checkpoint("s") == (newer, {"newer": True})
    store.save_checkpoint("s", version, {"older": True})  # a slow writer never puts back an older one
    assert store.load_checkpoint("s") == (newer, {"newer": True})
    # The same turn sent again (a retry after a lost reply): already stored, nothing more is written.
    assert store.append("s", turn("two"), expected_version=version, turn_id="t2", checkpoint={"retry": 1}) == newer
    assert store.load_checkpoint("s") == (newer, {"newer": True})
    assert len(store.load("s").messages) == 4


def _said(data: Any) -> list[str]:
    return [m.message["content"] for m in data.messages if m.message["role"] == "user"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["Chat", "AsyncChat"])
def test_a_checkpoint_too_large_to_keep_never_costs_the_turn(
    backend: Backend, asynchronous: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long session's planner checkpoint can outgrow MAX_CHECKPOINT_BYTES (KeepAll's did at 20,000 messages):
    the store refuses it before writing anything and the chat commits the turn without it. Before, the error
    ended the turn after its API call was billed, and every later turn of the session failed the same way."""
    # A window that moves from the fourth turn on: from there each commit carries a checkpoint.
    model, policy = "claude-sonnet-4-6", CacheAwareWindow(3_000)
    bound = _checkpoints.MAX_CHECKPOINT_BYTES
    monkeypatch.setattr(_checkpoints, "MAX_CHECKPOINT_BYTES", 64)  # any real checkpoint is over this
    texts = [f"{n} " + "word " * 600 for n in ("one", "two", "three", "four", "five", "six")]
    kept: list[Any] = []
    with Simulator() as sim:
        if asynchronous:

            async def run() -> Any:
                store = backend.open_async()
                try:
                    for text in texts:
                        chat = AsyncChat(
                            sim.async_client(max_retries=0), model=model, store=store, session_id="s", context=policy
                        )
                        await chat.send(text)
                        if text == texts[4]:
                            kept.append(await store.load_checkpoint("s") if keeps(backend) else None)
                            monkeypatch.setattr(_checkpoints, "MAX_CHECKPOINT_BYTES", bound)
                    kept.append(await store.load_checkpoint("s") if keeps(backend) else None)
                    return await store.load("s")
                finally:
                    await store.aclose()

            data = asyncio.run(run())
        else:
            store = backend.open()
            try:
                for text in texts:
                    Chat(sim.client(max_retries=0), model=model, store=store, session_id="s", context=policy).send(text)
                    if text == texts[4]:
                        kept.append(store.load_checkpoint("s") if keeps(backend) else None)
                        monkeypatch.setattr(_checkpoints, "MAX_CHECKPOINT_BYTES", bound)
                kept.append(store.load_checkpoint("s") if keeps(backend) else None)
                data = store.load("s")
            finally:
                store.close()
    assert _said(data) == texts
    assert [m.message["role"] for m in data.messages] == ["user", "assistant"] * 6
    assert data.version == 6
    assert kept[0] is None  # none fitted, so none was kept: a fresh chat read the whole session
    if keeps(backend):
        assert kept[1] is not None and kept[1][0] == 6  # under the real bound the next commit keeps one
