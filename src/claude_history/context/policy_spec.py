"""A context policy (or a ``Combine`` of several) reduced to what the planner acts on: the token budgets, the
turn limit, the image rule, the summariser and server compaction. Checked here once, so a bad combination is a
clear ``ConfigurationError`` before anything is planned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from .policies import (
    CacheAwareWindow,
    Combine,
    KeepAll,
    LastTurns,
    OldImages,
    ServerCompaction,
    Summarize,
)

__all__ = ["PolicySpec", "policy_spec"]


@dataclass(frozen=True)
class PolicySpec:
    """What the planner enforces; ``name`` (the policy's repr) goes into the report and the replay's key."""

    windows: tuple[tuple[int, int], ...] = ()  # (max_input_tokens, low-water target)
    last_turns: int | None = None
    images: OldImages | None = None
    summarize: Summarize | None = None
    compaction: ServerCompaction | None = None
    name: str = "KeepAll()"

    @property
    def reads_whole(self) -> bool:
        """The window is the whole log unless the context window itself forces a cut (``KeepAll``, with or
        without ``OldImages``)."""
        return not (self.windows or self.last_turns is not None or self.compaction or self.summarize)

    @property
    def whole_checkpoint(self) -> str | None:
        """How a checkpoint of a window from the first message is kept (context/checkpoint.py): "newest" for
        ``KeepAll`` (the newest requests only: the window grows with the session), "window" for a budget or
        ``LastTurns`` in its first turns (every request of the window, which the policy bounds), None when the
        window is unbounded and a moving image boundary makes its bound walk every request since the first
        message (``KeepAll & OldImages``), under ``ServerCompaction`` (nothing is ever cut) or ``Summarize``."""
        if self.summarize is not None:
            return None
        if self.reads_whole:
            return "newest" if self.images is None else None
        return "window" if self.windows or self.last_turns is not None else None


def policy_spec(policy: Any) -> PolicySpec:
    """``policy`` (``None``: ``KeepAll``) as a ``PolicySpec``: the tightest ``LastTurns`` and ``OldImages``
    win, every token budget is kept (the replay enforces each)."""
    if policy is None:
        policy = KeepAll()
    parts = policy.parts if isinstance(policy, Combine) else (policy,)
    windows: list[tuple[int, int]] = []
    last: int | None = None
    images: OldImages | None = None
    summarize: Summarize | None = None
    compaction: ServerCompaction | None = None
    for part in parts:
        if isinstance(part, KeepAll):
            continue
        if isinstance(part, LastTurns):
            last = part.n if last is None else min(last, part.n)
        elif isinstance(part, CacheAwareWindow):  # TokenBudget included
            windows.append((part.max_input_tokens, part.target))
        elif isinstance(part, OldImages):
            images = part if images is None or part.after_turns < images.after_turns else images
        elif isinstance(part, Summarize):
            summarize = part
            windows.append((part.max_input_tokens, part.target))
        elif isinstance(part, ServerCompaction):
            compaction = part
        else:
            raise ConfigurationError(
                f"not a context policy: {part!r}; use KeepAll, LastTurns, TokenBudget, CacheAwareWindow, "
                "OldImages, Summarize or ServerCompaction (combine them with &)"
            )
    if compaction is not None and (windows or last is not None):
        raise ConfigurationError("ServerCompaction leaves trimming to the API: do not combine it with a window")
    return PolicySpec(tuple(windows), last, images, summarize, compaction, repr(policy))
