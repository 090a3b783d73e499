"""``Window``: which part of the stored log a request sends, and in what form. The planner's decisions are
windows; a cached view and the size of a request are keyed by one."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Window"]


@dataclass(frozen=True, slots=True)
class Window:
    """A request's window over the log (all fields are indices into ``log + pending``).

    - ``cut``: the first message sent, a turn start; it only moves forward, when a policy asks;
    - ``epoch``: the turn start where the view last changed shape (the cut moved, old images were replaced).
      Thinking blocks before it are dropped (they were bound to another prefix), those from it on are kept;
    - ``image_boundary``: images before it are replaced by the ``OldImages`` placeholder;
    - ``compaction_start``: the newest compaction block at or before the request point (0: none); with
      ``ServerCompaction`` the tokens sent are counted from there.
    """

    cut: int
    epoch: int
    image_boundary: int
    compaction_start: int = 0
