"""``WarmSessions``: what the last turn on a session left in this process (its state and planner), for the
next chat on it.

A web handler makes a fresh ``Chat`` per request. Reading the session and planning its request from nothing
costs O(session): decoding every message, sizing each for the planner, replaying its earlier requests' cache
layout. The chat that committed the last turn knew all of that. Given one ``WarmSessions`` shared by the
process (``Chat(..., warm=warm)``), a chat hands what it holds over after each turn, and the next chat on the
session takes it: it reads the session's metadata row instead of its messages and plans only the new ones.

Checked, never trusted blindly: a chat takes its session's entry out (so no two chats ever use one) and uses
it only if the stored session is still at the entry's version and incarnation (a turn from another process, a
rewind, a delete and re-create all change one of them); the turn's compare-and-swap commit guards the moment
after. As for a ``Chat`` kept between turns, a change that moves no version (metadata, a summary saved by
another process) is seen at the session's next version. Bounded by sessions and by messages held (least
recently used first out), so long sessions cannot pin the process's memory. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .context.planner import Planner
    from .turn import SessionState

__all__ = ["WarmSessions", "warm_key"]

Kept = tuple["SessionState", "Planner"]


def warm_key(store: object, session_id: str) -> str:
    """The key of a session's entry: the store a chat was given (a URL, or the object itself) and the id, so
    chats on two stores never take each other's entries, even for the same id."""
    where = store if isinstance(store, str) else f"@{id(store)}"
    return f"{where}\x00{session_id}"


class WarmSessions:
    """At most ``sessions`` entries holding at most ``messages`` messages in all (0 sessions: none kept).
    One per process, shared by its chats; keyed by store and session id (``warm_key``)."""

    def __init__(self, sessions: int = 512, messages: int = 50_000) -> None:
        for name, value in (("sessions", sessions), ("messages", messages)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"WarmSessions({name}=...) must be an integer >= 0, got {value!r}")
        self._sessions = sessions
        self._messages = messages
        self._entries: OrderedDict[str, Kept] = OrderedDict()
        self._held = 0  # messages held by the entries' states
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held(self) -> int:
        """Messages held by the entries' states."""
        return self._held

    def take(self, key: str) -> Kept | None:
        """The entry for ``key``, removed: the caller owns it until it ``put``s one back."""
        with self._lock:
            return self._take(key)

    def _take(self, key: str) -> Kept | None:
        kept = self._entries.pop(key, None)
        if kept is not None:
            self._held -= len(kept[0].records)
        return kept

    def put(self, key: str, kept: Kept | None) -> None:
        """Keep ``kept`` as the newest entry for ``key`` (None: nothing to keep, any older entry dropped)."""
        with self._lock:
            self._take(key)
            if kept is None or self._sessions <= 0:
                return
            size = len(kept[0].records)
            if size > self._messages:  # a session longer than the whole budget is read by each chat instead
                return
            self._entries[key] = kept
            self._held += size
            while len(self._entries) > self._sessions or self._held > self._messages:
                _, (state, _) = self._entries.popitem(last=False)
                self._held -= len(state.records)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._held = 0

    def __repr__(self) -> str:
        return f"WarmSessions({len(self._entries)} sessions, {self._held} messages)"
