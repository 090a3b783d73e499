"""Planner checkpoints kept beside a session (the optional ``CheckpointStore`` capability, stores/base.py).

A checkpoint is a small JSON object the chat writes after a commit (context/checkpoint.py says what is in it)
so that a fresh ``Chat`` reads only the newest part of a long session instead of all of it. The store keeps
one per session with the session version it describes, and knows nothing else about it: whether it still
describes the log is the reader's check (the version, the incarnation, the length), so a concurrent writer's
commit makes it stale and it is then ignored and replaced, never trusted.

The rules every backend follows, in one place:

- ``save_checkpoint(session_id, version, data)`` keeps ``data`` unless the one kept has a higher version (a slow
  writer never puts back an older one); nothing is kept for a session that does not exist;
- ``append(..., checkpoint=data)`` keeps ``data`` as the checkpoint of the version the append makes, in the
  append's own transaction or script (no second write per turn); an append that writes nothing (a conflict, a
  retried turn already stored) keeps nothing;
- ``load_checkpoint(session_id)`` gives ``(version, data)`` or None (none kept, no such session);
- deleting a session deletes its checkpoint; a fork or an import starts without one;
- a store without the capability (``StoreBase``'s default, a user's own store, the encrypted wrapper, which
  would otherwise keep plaintext beside its ciphertext) keeps none: a fresh chat then reads the whole session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ._cas import takes_append_arguments
from ._checks import check_session_id
from ._json import decode_json, dumps

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "CheckpointTooLarge",
    "append_checkpointed",
    "check_checkpoint",
    "decode_checkpoint",
    "supports_checkpoints",
    "takes_append_checkpoint",
]

# A checkpoint is a few kilobytes (about 60 bytes per request of the window it describes); a bigger one is
# refused rather than stored beside every session.
MAX_CHECKPOINT_BYTES = 256 * 1024


class CheckpointTooLarge(ValueError):
    """A checkpoint over ``MAX_CHECKPOINT_BYTES``. Every store raises it before it writes anything, so a chat's
    commit goes in again without the checkpoint (``turn_path._commit``): the turn is what must not be lost, and a
    checkpoint is derived data (a fresh chat then reads the whole session)."""


def supports_checkpoints(store: Any) -> bool:
    """Does ``store`` keep planner checkpoints (``load_checkpoint`` and ``save_checkpoint``)? A wrapper may say
    so for itself with ``checkpoints_supported``."""
    said = getattr(store, "checkpoints_supported", None)
    if isinstance(said, bool):
        return said
    return callable(getattr(store, "load_checkpoint", None)) and callable(getattr(store, "save_checkpoint", None))


def check_checkpoint(session_id: str, version: int, data: Mapping[str, Any]) -> str:
    """The arguments of ``save_checkpoint`` checked; ``data`` as the JSON text to keep."""
    check_session_id(session_id)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"a checkpoint describes a stored session: version must be an int >= 1, got {version!r}")
    if not isinstance(data, Mapping):
        raise TypeError(f"a checkpoint is a JSON object, got {type(data).__name__}")
    text = _object_json(data)
    if (len(text) if text.isascii() else len(text.encode("utf-8"))) > MAX_CHECKPOINT_BYTES:
        raise CheckpointTooLarge(f"a checkpoint is at most {MAX_CHECKPOINT_BYTES} bytes of JSON")
    return text


_SPLICED = 1024  # a string value at least this long that JSON writes as it is is spliced in, not encoded
_ESCAPED = bytes(range(0x20)) + b'"\\'  # the ASCII characters a JSON string escapes


def _written_as_is(value: str) -> bool:
    """Does JSON write ``value`` between its quotes unchanged (ASCII, no character it escapes)? Checked on its
    bytes (``bytes.translate``: three times the encoder's own speed; ``str.isprintable`` is slower than both)."""
    if not value.isascii():
        return False
    raw = value.encode("ascii")
    return len(raw.translate(None, _ESCAPED)) == len(raw)


def _object_json(data: Mapping[str, Any]) -> str:
    """``dumps(dict(data))``, byte for byte when its long plain strings come last (the planner's text of the
    earlier requests, tens of kilobytes of digits and brackets, does): such a string, ASCII without a quote,
    a backslash or a control character, is written as it is instead of run through the encoder (which took
    ~0.1 ms per commit for it at 10,000 messages). Other key orders give the same object."""
    plain = {
        key: value
        for key, value in data.items()
        if type(key) is str and type(value) is str and len(value) >= _SPLICED and _written_as_is(value)
    }
    if not plain:
        return dumps(dict(data))
    text = dumps({key: value for key, value in data.items() if key not in plain})
    spliced = ",".join(f'{dumps(key)}:"{value}"' for key, value in plain.items())
    return text[:-1] + ("," if len(text) > 2 else "") + spliced + "}"


def decode_checkpoint(version: int, text: str | bytes) -> tuple[int, dict[str, Any]] | None:
    """What ``load_checkpoint`` returns for a kept row; None for one that is not a JSON object."""
    try:
        data = decode_json(text)
    except ValueError:
        return None
    return (int(version), data) if isinstance(data, dict) else None


def takes_append_checkpoint(store: Any) -> bool:
    """Does ``store`` keep checkpoints and take one in ``append`` (every store of ours that keeps them)?"""
    return supports_checkpoints(store) and takes_append_arguments(store, "checkpoint")


def append_checkpointed(
    store: Any, session_id: str, entries: Any, checkpoint: Mapping[str, Any] | None, **arguments: Any
) -> int:
    """``store.append`` with ``checkpoint`` in the same write when the store takes it; for a store that keeps
    checkpoints only through ``save_checkpoint`` (a user's own), saved after the append, best effort."""
    if checkpoint is None or not supports_checkpoints(store):
        return int(store.append(session_id, entries, **arguments))
    if takes_append_arguments(store, "checkpoint"):
        return int(store.append(session_id, entries, checkpoint=checkpoint, **arguments))
    version = int(store.append(session_id, entries, **arguments))
    with contextlib.suppress(Exception):  # the turn is stored; a missing checkpoint costs a whole read
        store.save_checkpoint(session_id, version, checkpoint)
    return version
