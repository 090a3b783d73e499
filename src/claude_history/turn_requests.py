"""What the pure core of a turn asks its front end to do: one small type per kind of I/O.

``turn_path.turn_path`` (and ``Turn.prepare`` within it) yields these; ``Chat._loop`` and ``AsyncChat._loop``
do each one (sync or async) and send back its result, or throw its error back in. Each docstring says what
the front end does and what it sends back. Being plain data, the whole path of a turn can be driven in a test
with no network and no store (tests/chat/test_turn_path.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .stores.base import Entry, Summary
from .tools import ToolSet

__all__ = [
    "CallApi",
    "CheckVersion",
    "Commit",
    "CountTokens",
    "Finished",
    "LoadCheckpoint",
    "LoadMessages",
    "LoadSession",
    "Op",
    "ReleaseLease",
    "Request",
    "RunTools",
    "SaveMetadata",
    "SaveSummary",
    "Summarize",
    "TakeLease",
    "Wait",
]


@dataclass(frozen=True)
class TakeLease:
    """``store.acquire_lease(session_id, ttl=ttl)``; send back the fencing token, or ``None`` while another
    turn holds the session (``Chat(on_concurrent="reject" | "enqueue")``, stores/_leases.py)."""

    ttl: float


@dataclass(frozen=True)
class Wait:
    """Sleep ``seconds`` (``time.sleep`` / ``asyncio.sleep``) before asking for the lease again; send back
    ``None``."""

    seconds: float


@dataclass(frozen=True)
class ReleaseLease:
    """``store.release_lease(session_id, token)``; send back ``None``."""

    token: int


@dataclass(frozen=True)
class LoadSession:
    """``store.load(session_id)``; send back a ``turn.SessionState`` (an empty one for an unknown session)."""


@dataclass(frozen=True)
class LoadCheckpoint:
    """``store.load_checkpoint(session_id)`` when the store keeps planner checkpoints
    (``stores._checkpoints.supports_checkpoints``); send back ``(version, data)`` or ``None``."""


@dataclass(frozen=True)
class LoadMessages:
    """``store.load_messages(session_id, start=start)``; send back the list of ``StoredMessage``."""

    start: int


@dataclass(frozen=True)
class CheckVersion:
    """``store.get_session(session_id)`` (one cheap metadata read); send back the ``SessionInfo``, or
    ``None`` when the session does not exist."""


@dataclass(frozen=True)
class Summarize:
    """``client.messages.create(**params)`` (the summariser); send back the reply."""

    params: dict[str, Any]


@dataclass(frozen=True)
class SaveSummary:
    """``store.save_summary(session_id, summary)``; send back ``None``."""

    summary: Summary


@dataclass(frozen=True)
class CountTokens:
    """``count_tokens`` (``client.beta.messages`` when ``beta``) for these request arguments; send back the
    ``input_tokens``."""

    kwargs: dict[str, Any]
    beta: bool


@dataclass(frozen=True)
class CallApi:
    """``messages.create(**kwargs)`` (``client.beta.messages`` when ``beta``), or the same as a stream whose
    events go to the caller; send back the final ``Message``."""

    kwargs: dict[str, Any]
    beta: bool


@dataclass(frozen=True)
class RunTools:
    """Call the local functions of ``toolset`` for these ``tool_use`` blocks (an async front end may run them
    at once); send back one ``tool_result`` block per use, in order. A function's exception becomes an
    ``is_error`` result, unless ``raise_errors``: then it propagates."""

    uses: tuple[dict[str, Any], ...]
    toolset: ToolSet
    raise_errors: bool


@dataclass(frozen=True)
class SaveMetadata:
    """``store.update_session(session_id, create=True, **changes)``; send back the ``SessionInfo``."""

    changes: dict[str, Any]


@dataclass(frozen=True)
class Commit:
    """``store.append(session_id, entries, expected_version=..., **tokens)``: the one write that commits the
    turn; send back the new version. ``tokens``: ``incarnation`` and ``turn_id`` (none for a store written
    before those parameters existed), and the ``lease`` the turn holds, if any. ``checkpoint``: the planner's
    checkpoint of the version the append makes, kept by the same write (``append(..., checkpoint=...)``;
    ``stores._checkpoints.append_checkpointed``), so a fresh chat reads only the newest part of the session."""

    entries: tuple[Entry, ...]
    expected_version: int
    tokens: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None


@dataclass(frozen=True)
class Finished:
    """The turn is over (committed, or parked as pending): ``message`` is the reply to hand to the caller.
    The front end does no I/O for it and sends nothing back."""

    message: Any


Op = Summarize | SaveSummary | CountTokens  # what planning a request may ask for (``Turn.prepare``)
Request = (
    TakeLease | Wait | LoadSession | LoadCheckpoint | LoadMessages | CheckVersion | Op | CallApi | RunTools
    | SaveMetadata | Commit | ReleaseLease | Finished
)
