"""Warm sessions: what the last turn on a session left in this process (its state and planner), for the next.

Each request makes a fresh ``AsyncChat``. Loading the session and planning its request from nothing costs
O(session) on the service's one event loop: reading and decoding every message, sizing each for the
planner, replaying its earlier requests' cache layout (bench/RESULTS.md "Proxy"). The chat that committed a
turn knows all of that; keeping it lets the next request on the session read one metadata row instead, and
plan only the new messages.

Advisory, never trusted blindly: a request takes its session's entry out (so two requests in flight never
share one) and uses it only if the stored session is still at the entry's version and incarnation (another
server's turn, a rewind, a delete and re-create all change one of them); the turn's compare-and-swap commit
guards the moment after. Bounded by sessions and by messages held (least recently used first out), so long
sessions cannot pin the service's memory.
"""

from __future__ import annotations

from collections import OrderedDict

from ..context.planner import Planner
from ..turn import SessionState

__all__ = ["WarmSessions"]

Kept = tuple[SessionState, Planner]


class WarmSessions:
    """At most ``sessions`` entries holding at most ``messages`` messages in all (0 sessions: none kept)."""

    def __init__(self, sessions: int, messages: int) -> None:
        self._sessions = sessions
        self._messages = messages
        self._entries: OrderedDict[str, Kept] = OrderedDict()
        self._held = 0  # messages held by the entries' states

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def held(self) -> int:
        """Messages held by the entries' states."""
        return self._held

    def take(self, key: str) -> Kept | None:
        """The entry for ``key``, removed: the caller owns it until it ``put``s one back."""
        kept = self._entries.pop(key, None)
        if kept is not None:
            self._held -= len(kept[0].records)
        return kept

    def put(self, key: str, kept: Kept | None) -> None:
        """Keep ``kept`` as the newest entry for ``key`` (None: nothing to keep, any older entry dropped)."""
        self.take(key)
        if kept is None or self._sessions <= 0:
            return
        size = len(kept[0].records)
        if size > self._messages:  # a session longer than the whole budget is loaded per request instead
            return
        self._entries[key] = kept
        self._held += size
        while len(self._entries) > self._sessions or self._held > self._messages:
            _, (state, _) = self._entries.popitem(last=False)
            self._held -= len(state.records)
