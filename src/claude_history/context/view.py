"""``View``: the messages one window sends (``transform`` applied, thinking-only replies merged away), before
any cache breakpoint and trimmed as a request may carry it (``history.sendable``, once per message, not per
request), with what the request builder needs per message: where its blocks start, the block a
breakpoint goes on, the caller's own markers and the running raw size. Kept per window on the ``LogIndex`` and
extended as the log grows, so a request costs its new messages plus one shallow copy of the view."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from ..history import content_blocks, sendable_content
from ..tokens import ZERO, TokenEstimate
from .cache import marker_ttl
from .log_index import LogIndex
from .transforms import markable, transform
from .window import Window

__all__ = ["View", "view_for"]


class View:
    """The view ``full[start:covered]`` of one window (cut, epoch, image boundary; thinking rule) as
    ``transform`` makes it, before any breakpoint: per view message its role, content (shared with the log
    or the cache: copied before it is handed out), last merged origin, first block position, markable block
    and whether it holds a caller's marker, and the running raw size. Extended as the log grows, so a request
    costs its new messages (plus one shallow copy of the view it sends)."""

    def __init__(self, window: Window, drop_thinking: bool) -> None:
        self.window = window
        self.drop_thinking = drop_thinking  # False under ServerCompaction: the server handles thinking
        self.start = window.cut
        self.covered = window.cut
        self.roles: list[str] = []
        self.contents: list[str | list[Any]] = []
        self.origins: list[int] = []
        self.offsets: list[int] = [0]  # block position of each view message; one more: the block count
        self.ends: list[int] = []  # the block a breakpoint for the message goes on (-1: none)
        self.marked: list[int] = []  # view messages holding a caller's cache_control, ascending
        self.running: list[TokenEstimate] = []  # raw size of the view up to each message

    def truncate(self, n: int) -> bool:
        """Forget what depends on messages from ``n`` on; False when nothing is left."""
        if n <= self.start:
            return False
        m = bisect.bisect_left(self.origins, n)
        if m < len(self.origins):
            del self.roles[m:], self.contents[m:], self.origins[m:], self.offsets[m + 1 :]
            del self.ends[m:], self.running[m:]
            del self.marked[bisect.bisect_left(self.marked, m) :]
            self.covered = self.origins[-1] + 1 if self.origins else self.start
        self.covered = min(self.covered, n)
        return True

    def extend(self, full: Sequence[Mapping[str, Any]], log: LogIndex) -> None:
        """Cover ``full`` (the log's messages up to the newest): transform what is new."""
        epoch, boundary, drop = self.window.epoch, self.window.image_boundary, self.drop_thinking
        for i in range(self.covered, len(full)):
            message = transform(
                full[i], drop_thinking=i < epoch and drop, replace_images=i < boundary, placeholder=log.placeholder
            )
            if message is None:
                continue
            content = sendable_content(message["content"])
            if self.roles and self.roles[-1] == message["role"]:
                # A thinking-only reply was dropped: merge the users.
                merged = [*content_blocks({"content": self.contents[-1]}), *content_blocks({"content": content})]
                self._pop()
                self._push(message["role"], merged, i, log)
            else:
                self._push(message["role"], content, i, log)
        self.covered = len(full)

    def _pop(self) -> None:
        m = len(self.roles) - 1
        for column in (self.roles, self.contents, self.origins, self.offsets, self.ends, self.running):
            column.pop()
        if self.marked and self.marked[-1] == m:
            self.marked.pop()

    def _push(self, role: str, content: Any, origin: int, log: LogIndex) -> None:
        m = len(self.roles)
        first = self.start if m == 0 else self.origins[-1] + 1
        size = log.size(first, self.window.epoch, self.window.image_boundary, origin + 1)
        self.running.append((self.running[-1] if m else ZERO) + size)
        self.roles.append(role)
        self.contents.append(content)
        self.origins.append(origin)
        if isinstance(content, str):
            self.offsets.append(self.offsets[-1] + 1)
            self.ends.append(0)
            return
        self.offsets.append(self.offsets[-1] + len(content))
        j = markable(content)
        self.ends.append(j if j is not None else -1)
        if any(marker_ttl(b) is not None for b in content):
            self.marked.append(m)


_VIEWS = 4  # windows kept per log (several policies planning the same session)


def view_for(full: Sequence[Mapping[str, Any]], log: LogIndex, window: Window, drop_thinking: bool) -> View:
    """The view of ``window`` over ``full``: the log's cached one, extended, or a new one."""
    key = (window.cut, window.epoch, window.image_boundary, drop_thinking)
    view = log.views.get(key)
    if view is None:
        view = log.views[key] = View(Window(window.cut, window.epoch, window.image_boundary), drop_thinking)
        while len(log.views) > _VIEWS:
            log.views.popitem(last=False)
    else:
        log.views.move_to_end(key)
    view.extend(full, log)
    return view
