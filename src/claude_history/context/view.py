"""``View``: the messages one window sends (``transform`` applied, thinking-only replies merged away), before
any cache breakpoint and trimmed as a request may carry it (``history.sendable``, once per message, not per
request), with what the request builder needs per message: where its blocks start, the block a
breakpoint goes on, the caller's own markers and the running raw size. Kept per window on the ``LogIndex`` and
extended as the log grows, so a request costs its new messages: it sends the view's own message dicts (a list
copy of them), copying only the few it marks."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from ..history import content_blocks, sendable_content
from ..tokens import TokenEstimate
from .cache import marker_ttl
from .log_index import LogIndex
from .transforms import markable, transform
from .window import Window

__all__ = ["View", "view_for"]


class View:
    """The view ``full[start:covered]`` of one window (cut, epoch, image boundary; thinking rule) as
    ``transform`` makes it, before any breakpoint: per view message its role, content (shared with the log
    or the cache), the message dict a request sends (``messages``: made once, shared by every request of
    the window; a request copies one before it changes it), last merged origin, first block position,
    markable block and whether it holds a caller's marker (its running raw size is asked from the log:
    ``running``). Extended as the log grows, so a request costs its new messages."""

    def __init__(self, window: Window, drop_thinking: bool) -> None:
        self.window = window
        self.drop_thinking = drop_thinking  # False under ServerCompaction: the server handles thinking
        self.start = window.cut
        self.covered = window.cut
        self.roles: list[Any] = []
        self.contents: list[str | list[Any]] = []
        self.messages: list[dict[str, Any]] = []  # {"role", "content"} as sent, never changed once made
        self.origins: list[int] = []
        self.offsets: list[int] = [0]  # block position of each view message; one more: the block count
        self.ends: list[int] = []  # the block a breakpoint for the message goes on (-1: none)
        self.marked: list[int] = []  # view messages holding a caller's cache_control, ascending

    def truncate(self, n: int) -> bool:
        """Forget what depends on messages from ``n`` on; False when nothing is left."""
        if n <= self.start:
            return False
        m = bisect.bisect_left(self.origins, n)
        if m < len(self.origins):
            del self.roles[m:], self.contents[m:], self.messages[m:], self.origins[m:], self.offsets[m + 1 :]
            del self.ends[m:]
            del self.marked[bisect.bisect_left(self.marked, m) :]
            self.covered = self.origins[-1] + 1 if self.origins else self.start
        self.covered = min(self.covered, n)
        return True

    def extend(self, full: Sequence[Mapping[str, Any]], log: LogIndex) -> None:
        """Cover ``full`` (the log's messages up to the newest): transform what is new."""
        epoch, boundary, drop = self.window.epoch, self.window.image_boundary, self.drop_thinking
        roles, contents, origins, offsets, ends = self.roles, self.contents, self.origins, self.offsets, self.ends
        messages = self.messages
        for i in range(self.covered, len(full)):
            # The usual message first, at a few attribute reads: text or a plain list of text and tool_use
            # blocks, which no transform, trim or marker touches (a view of a long log is made in one pass
            # when a fresh chat sends the whole session).
            original = full[i]
            role, content = original.get("role"), original.get("content")
            if not roles or roles[-1] != role:
                if type(content) is str:
                    self._push(role, content, i, original)
                    continue
                if type(content) is list and content and all(map(_plain, content)):
                    roles.append(role)
                    contents.append(content)
                    messages.append(original if _as_sent(original) else {"role": role, "content": content})
                    origins.append(i)
                    offsets.append(offsets[-1] + len(content))
                    ends.append(len(content) - 1)
                    continue
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
                self._push(message["role"], merged, i)
            else:
                self._push(message["role"], content, i)
        self.covered = len(full)

    def _pop(self) -> None:
        m = len(self.roles) - 1
        for column in (self.roles, self.contents, self.messages, self.origins, self.offsets, self.ends):
            column.pop()
        if self.marked and self.marked[-1] == m:
            self.marked.pop()

    def running(self, m: int, log: LogIndex) -> TokenEstimate:
        """Raw size of the view up to message ``m`` (from the log's prefix sums: asked only where a breakpoint
        may go, so a view of a long log is never sized message by message)."""
        return log.size(self.start, self.window.epoch, self.window.image_boundary, self.origins[m] + 1)

    def _push(self, role: Any, content: Any, origin: int, original: Mapping[str, Any] | None = None) -> None:
        """Add a view message; ``original``: the log's message it is sent as, when untransformed."""
        m = len(self.roles)
        self.roles.append(role)
        self.contents.append(content)
        self.messages.append(original if _as_sent(original) else {"role": role, "content": content})
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


_PLAIN = frozenset({"text", "tool_use"})


def _as_sent(message: Any) -> TypeGuard[dict[str, Any]]:
    """Whether the log's message is, key for key and in order, the ``{"role", "content"}`` dict the view would
    make for it: then the view holds the log's own dict (never changed in place: a request copies what it
    marks) instead of an equal one, a dict less per message of every window a warm session keeps."""
    return type(message) is dict and len(message) == 2 and next(iter(message)) == "role"


def _plain(block: Any) -> bool:
    """A block the view sends as it is and a breakpoint may go on: text without citations or tool_use, with no
    caller's marker (``transform``, ``sendable_content``, ``markable`` and ``marker_ttl`` leave it alone)."""
    return (
        type(block) is dict
        and block.get("type") in _PLAIN
        and "cache_control" not in block
        and "citations" not in block
    )


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
