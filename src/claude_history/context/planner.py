"""``Planner``: what the planner derived for one session (the log's index, the replays' checkpoints, the usage
history as parsed, the views of recent windows), kept between calls so that a request costs its new messages.

A ``Chat`` owns one; a caller of ``plan_request`` passes the same one call after call for a session. Nothing is
kept at module level: a planner lives and dies with its owner. What was derived is matched to each call by
identity (the same message dicts and content lists, the same usage records), so anything that changed drops
what depended on it and the result is always the same as planning from scratch.

Matching walks the log at C speed. With a ``lineage`` the owner vouches for more: while it passes the same
lineage object, the log only grows by appends, so the messages (and as many leading usage records) it passed
before are the very objects it passes now, unchanged; those are not looked at again and a call costs what is
new. A Chat's lineage is the session state it loaded: a reload (a rewind, another writer) starts a new one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from .log_index import LogIndex, NotLoaded

__all__ = ["Planner"]

_LOGS = 4  # indexes kept (one per model and image placeholder the session is planned with)


class Planner:
    """The planner's memory of one session (see the module docstring). Thread-safe: calls are serialised."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._logs: OrderedDict[tuple[str, str], LogIndex] = OrderedDict()
        self._lineage: object | None = None
        self._committed = 0
        # What the last call planned with: the index's key, the replay's settings key, whether the policy
        # summarises and whether it may keep a checkpoint of a window from the first message (checkpoint.snapshot
        # reads them after a commit).
        self.last: tuple[tuple[str, str], Any, bool, str | None] | None = None

    def follow(self, lineage: object | None, committed: int) -> int:
        """How many leading messages (and usage records) of this call are vouched for: those of the previous
        call with the same ``lineage`` (0 without one). ``committed``: the length of this call's log."""
        trusted = min(self._committed, committed) if lineage is not None and lineage is self._lineage else 0
        self._lineage, self._committed = lineage, committed
        return trusted

    def log_for(self, full: Sequence[Mapping[str, Any]], model: str, placeholder: str, trusted: int = 0) -> LogIndex:
        """The index of ``full`` for ``model`` and ``placeholder``, extended (call under ``lock``)."""
        key = (model, placeholder)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = LogIndex(model, placeholder)
            while len(self._logs) > _LOGS:
                self._logs.popitem(last=False)
        elif log.horizon and log.awaiting_head and _holds(full, log.horizon - 1):
            # Restored for a window from the first message: given the whole log, as the checkpoint expects.
            log.attach(full)
            self._logs.move_to_end(key)
        elif log.horizon and _holds(full, log.horizon - 1) and not log.holds_head(full):
            # Restored from a checkpoint, now given the messages before it too (the whole session was read,
            # because the plan needed them): an index built from them all, as if none had been restored.
            log = self._logs[key] = LogIndex(model, placeholder)
        else:
            self._logs.move_to_end(key)
        log.extend(full, trusted)
        return log

    def index(self, model: str, placeholder: str) -> LogIndex | None:
        """The index kept for ``model`` and ``placeholder``, if any."""
        return self._logs.get((model, placeholder))

    def adopt(self, log: LogIndex) -> None:
        """Take ``log`` (restored from a checkpoint) as the index for its model and placeholder; what was
        vouched for by a lineage no longer holds."""
        with self.lock:
            self._logs[(log.model, log.placeholder)] = log
            self._logs.move_to_end((log.model, log.placeholder))
            while len(self._logs) > _LOGS:
                self._logs.popitem(last=False)
            self._lineage, self._committed = None, 0

    def take_over(self, other: Planner) -> None:
        """Hold what ``other`` derived, which no longer does (it starts empty): a planner handed from one
        chat to the next on the same session (``WarmSessions``), moved rather than shared, so no two chats
        ever work on the same index."""
        if other is self:
            return
        with other.lock, self.lock:
            self._logs, self._lineage, self._committed, self.last = (
                other._logs, other._lineage, other._committed, other.last)  # fmt: skip
            other._logs, other._lineage, other._committed, other.last = OrderedDict(), None, 0, None

    def forget_restored(self) -> None:
        """Drop the indexes restored from a checkpoint (their messages before the horizon are not indexed, their
        replay starts late): the next call indexes and replays the whole log it is given."""
        with self.lock:
            for key in [key for key, log in self._logs.items() if log.horizon or log.restored]:
                del self._logs[key]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{model}: {len(log.messages)} messages" for (model, _), log in self._logs.items())
        return f"Planner({sizes})"


def _holds(full: Sequence[Mapping[str, Any]], index: int) -> bool:
    """Whether ``full`` holds message ``index`` (a ``checkpoint.Tail`` does not hold those before its start)."""
    try:
        full[index]
    except (NotLoaded, IndexError):
        return False
    return True
