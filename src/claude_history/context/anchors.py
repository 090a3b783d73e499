"""1-hour cache anchors: what ``choose_ttl`` weighs for a request. From the billed usage of earlier requests of
the same window, the tokens this request will write and the prefix a live 1-hour cache entry still holds (now
and at the next request), and where that entry ends (a breakpoint must stay within the API's lookback of it)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .cache import TTL_SECONDS
from .log_index import NotLoaded
from .replay import Decision, Replay
from .transforms import has_image
from .usage_index import NEVER
from .window import Window

__all__ = ["CacheState", "cache_state"]

_ANCHOR_LOOKBACK = 64  # request points searched back for the newest 1-hour write
_TTL_MARGIN = 60.0  # seconds kept under the 1-hour TTL for request latency


@dataclass(frozen=True)
class CacheState:
    """What the TTL choice needs to know about the cache as this request finds it."""

    writes: int  # tokens this request will write
    held_now: int  # prefix a live 1-hour entry holds for this request
    held_next: int  # ... and still at the next request
    anchor: int | None  # the log index of that entry's last message


def cache_state(
    replay: Replay,
    decision: Decision,
    full: Sequence[Mapping[str, Any]],
    before_messages: int,
    gaps: Sequence[float],
    now: datetime | None,
) -> CacheState:
    """What ``choose_ttl`` weighs: the tokens this request will write, and the prefix a live 1-hour entry
    holds.

    The writes are what the previous request of this view did not leave in the cache: nothing more than the
    new messages while its entries live; after they expired (``now`` tells), everything past the newest
    live 1-hour entry; after an image was added, every message (adding an image anywhere invalidates the
    cached messages: claude-api-facts.md, "Prompt caching"). Without ``now`` the previous entries are taken
    as live.
    """
    new = max(0, decision.predicted - decision.exact_prefix)
    prev = decision.previous
    if prev is None:
        return CacheState(new, 0, 0, None)
    if any(has_image(full[i]) for i in range(prev.point + 1, len(full))):  # (not islice: it walks the log)
        return CacheState(max(new, decision.predicted - before_messages), 0, 0, None)
    points = replay.usage
    newest = points.get(prev.point + 1)
    if newest is None or newest.created_at is None or not newest.usage:
        return CacheState(new, 0, 0, None)
    now = now or newest.created_at
    held_now = held_next = 0
    anchor = _newest_anchor(replay, prev.window)
    if anchor is not None:
        age = (now - anchor[1]).total_seconds()
        if age < TTL_SECONDS["1h"] - _TTL_MARGIN:
            held_now = anchor[0]
        if age + max(gaps, default=TTL_SECONDS["5m"]) < TTL_SECONDS["1h"] - _TTL_MARGIN:
            held_next = anchor[0]
    last = newest.first_request
    one_hour = last.ephemeral_1h_input_tokens > 0 and last.ephemeral_5m_input_tokens == 0
    lifetime = TTL_SECONDS["1h" if one_hour else "5m"]
    writes = new
    if (now - newest.created_at).total_seconds() >= lifetime - _TTL_MARGIN / 4:
        writes = max(new, decision.predicted - held_now)
    return CacheState(writes, held_now, held_next, anchor[2] if anchor is not None else None)


def _newest_anchor(replay: Replay, window: Window) -> tuple[int, datetime, int] | None:
    """``(prompt tokens, time, log index of the request's newest message)`` of the newest 1-hour cache entry
    written by an earlier request of the window ``window``, or ``None``.

    From the billed usage: the newest request that wrote at the 1-hour TTL holds its prefix up to its last
    1-hour write (longer TTLs come first, so that is cache read + 1-hour write). It does not count when a
    later request of the view read less than that (it was gone, or invalidated). An entry is refreshed only
    when it is the one read, so its age runs from its write.
    """
    found = _search(replay.usage, window, replay.replays.checkpoints)
    if found is _EXHAUSTED:
        if replay.replays.partial:  # the search ran past the first checkpoint kept (a checkpointed load)
            raise NotLoaded("the 1-hour cache anchor search reaches before the part of the log that was read")
        return None
    return found  # type: ignore[no-any-return]


_EXHAUSTED: Any = object()


def _search(points: Mapping[int, Any], window: Window, checkpoints: Sequence[Any]) -> Any:
    """The walk of ``_newest_anchor``; ``_EXHAUSTED`` when it ran out of checkpoints without an answer."""
    least_read = NEVER
    for checkpoint in itertools.islice(reversed(checkpoints), _ANCHOR_LOOKBACK):
        request = checkpoint.state.previous
        if request is None or request.window != window:
            return None
        point = points.get(request.point + 1)
        if point is None or not point.usage:
            return None
        usage = point.first_request
        if usage.ephemeral_1h_input_tokens > 0:
            held = usage.cache_read_input_tokens + usage.ephemeral_1h_input_tokens
            if held > least_read or point.created_at is None:
                return None
            return held, point.created_at, request.point
        least_read = min(least_read, usage.cache_read_input_tokens)
    return _EXHAUSTED if len(checkpoints) < _ANCHOR_LOOKBACK else None
