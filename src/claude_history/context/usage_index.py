"""The session's usage records as the planner reads them: which request each record answers, its prompt size,
and the gaps between turns (for the cache TTL). ``UsageIndex`` follows the usage history from call to call so
that a turn parses only its new records."""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..tokens import observed_prompt_tokens
from ..usage import TokenUsage
from .log_index import NotLoaded

__all__ = [
    "NEVER",
    "UsageIndex",
    "UsagePoint",
    "compacted",
    "first_request_usage",
    "usage_point",
    "usage_points",
]


@dataclass(frozen=True)
class UsagePoint:
    """The usage of the API call that produced message ``seq`` (an index into ``log + pending``)."""

    seq: int
    usage: Mapping[str, Any] | None
    created_at: datetime | None = None
    model: str | None = None

    @functools.cached_property
    def first_request(self) -> TokenUsage:
        """The usage of the request made at this point (``first_request_usage``), parsed once: the 1-hour
        anchor search reads the same points turn after turn."""
        return TokenUsage.from_api(first_request_usage(self.usage or {}))


def usage_points(items: Sequence[Any]) -> dict[int, UsagePoint]:
    """Accepts ``StoredMessage`` objects (``SessionData.messages``) or mappings with ``seq``, ``usage`` and
    optionally ``created_at`` (datetime or ISO string) and ``model``. Items without usage are skipped."""
    points: dict[int, UsagePoint] = {}
    for item in items:
        point = usage_point(item)
        if point is not None:
            points[point.seq] = point
    return points


def usage_point(item: Any) -> UsagePoint | None:
    if isinstance(item, Mapping):
        seq, usage = item.get("seq"), item.get("usage")
        created, model = item.get("created_at"), item.get("model")
    else:
        seq, usage = getattr(item, "seq", None), getattr(item, "usage", None)
        created, model = getattr(item, "created_at", None), getattr(item, "model", None)
    if not isinstance(seq, int) or not usage:
        return None
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created)
        except ValueError:
            created = None
    return UsagePoint(seq, usage, created if isinstance(created, datetime) else None, model)


class UsageIndex:
    """``usage_points`` of the usage history, kept in step with it call after call: items are matched by
    identity (a chat passes the same record objects every turn), so a call parses only the items that are new
    since the previous one. Usage mappings are taken as never changed in place, like the log's blocks."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        # Per item: (seq, the point that seq had before the item) to undo it, or None for a skipped item.
        self.undo: list[tuple[int, UsagePoint | None] | None] = []
        self.points: dict[int, UsagePoint] = {}
        self.timed: list[int] = []  # seqs of the points with a created_at, ascending
        self.prompts: dict[int, tuple[Mapping[str, Any], int | None]] = {}  # seq -> (usage, first request prompt)
        # A checkpointed load (checkpoint.py) reads the records from some seq on: whether records with a time
        # come before it (the gaps between turns would then be unknown if the walk reached them).
        self.earlier_timed = False
        self.settled = 0  # records before this seq are known to the restored checkpoint
        # Records before this seq are not read even when given (a checkpoint restored for the whole log: the
        # planner looks no further back than what a checkpointed load reads, see ``skip``).
        self.floor = 0

    def update(self, items: Sequence[Any], trusted: int = 0) -> int:
        """Follow ``items``; returns the smallest seq whose usage changed (``NEVER`` when none did).
        ``trusted``: how many leading messages of the log the caller vouches are the very objects it passed
        before (``Planner.follow``); the items up to the last of them, in seq order as a chat passes them, are
        not compared again."""
        old = self.items
        n = min(len(old), len(items))
        # How many leading items are the ones followed (by identity): only the rest is undone and parsed.
        if not (0 < trusted <= n and items[trusted - 1] is old[trusted - 1] and _seq(old[trusted - 1]) < trusted):
            trusted = 0  # (a record of a later position, e.g. of the turn in progress, is never vouched for)
        same = next(
            itertools.compress(itertools.count(trusted), map(operator.is_not, old[trusted:n], items[trusted:n])), n
        )
        before: dict[int, UsagePoint | None] = {}
        for i in range(len(old) - 1, same - 1, -1):
            change = self.undo[i]
            if change is not None:
                seq, previous = change
                before.setdefault(seq, self.points.get(seq))
                self._set(seq, previous)
        del old[same:]
        del self.undo[same:]
        if self.floor and same == 0:
            same = self._skip(items)
        for item in items[same:]:  # (one slice: ``items`` may be a ``Joined`` view)
            old.append(item)
            point = usage_point(item)
            if point is None:
                self.undo.append(None)
                continue
            current = self.points.get(point.seq)
            before.setdefault(point.seq, current)
            self.undo.append((point.seq, current))
            self._set(point.seq, point)
        settled = self.settled  # first seen, these records are the ones a restored checkpoint already holds
        changed = [
            seq
            for seq, point in before.items()
            if not _same_usage(point, self.points.get(seq)) and not (point is None and seq < settled)
        ]
        return min(changed, default=NEVER)

    def _skip(self, items: Sequence[Any]) -> int:
        """Follow the leading ``items`` of seqs before ``floor`` without parsing them (as if skipped); returns
        how many. Records come in seq order (a session's, then the turn's), so this is a binary search."""
        lo, hi = 0, len(items)
        while lo < hi:
            mid = (lo + hi) // 2
            if _seq(items[mid]) < self.floor:
                lo = mid + 1
            else:
                hi = mid
        self.items.extend(items[:lo])
        self.undo.extend([None] * lo)
        return lo

    def _set(self, seq: int, point: UsagePoint | None) -> None:
        current = self.points.get(seq)
        if current is not None and current.created_at is not None:
            del self.timed[bisect.bisect_left(self.timed, seq)]
        if point is None:
            self.points.pop(seq, None)
            return
        self.points[seq] = point
        if point.created_at is not None:
            bisect.insort(self.timed, seq)

    def prompt(self, seq: int) -> int | None:
        """Prompt tokens of the request answered by message ``seq`` (parsed once per usage mapping)."""
        point = self.points.get(seq)
        if point is None or not point.usage:
            return None
        known = self.prompts.get(seq)
        if known is not None and known[0] is point.usage:
            return known[1]
        value = None if compacted(point.usage) else _first_request_prompt(point.usage)
        self.prompts[seq] = (point.usage, value)
        return value

    def recent_gaps(self, starts: Sequence[int], limit: int) -> list[float]:
        """The newest ``limit`` non-negative gaps between turns, oldest first: from the last reply of a turn
        to the first reply of the next (what ``choose_ttl`` looks at), found from the newest reply back."""
        gaps, floor = self._gaps(starts, limit)
        if floor is None and self.earlier_timed:  # the gaps before the first record read are unknown
            raise NotLoaded("the gaps between turns reach before the part of the log that was read")
        return gaps

    def gap_floor(self, starts: Sequence[int], limit: int) -> int | None:
        """The oldest seq ``recent_gaps`` reads (None: it reads every timed record there is): a checkpoint's
        read must start there for the gaps to be found in it (checkpoint.py)."""
        return self._gaps(starts, limit)[1]

    def _gaps(self, starts: Sequence[int], limit: int) -> tuple[list[float], int | None]:
        timed, points = self.timed, self.points
        gaps: list[float] = []
        floor: int | None = None
        for j in range(len(timed) - 1, 0, -1):
            seq = timed[j]
            turn = bisect.bisect_left(starts, seq - 1)
            if turn == len(starts) or starts[turn] != seq - 1:
                continue
            after, before = points[seq].created_at, points[timed[j - 1]].created_at
            assert after is not None and before is not None
            gap = (after - before).total_seconds()
            if gap >= 0:
                gaps.append(gap)
                if len(gaps) == limit:
                    floor = min(seq - 1, timed[j - 1])
                    break
        gaps.reverse()
        return gaps, floor


def _seq(item: Any) -> int:
    seq = item.get("seq") if isinstance(item, Mapping) else getattr(item, "seq", None)
    return seq if isinstance(seq, int) else NEVER


NEVER = 1 << 62  # a seq past any log: "nothing changed"


def _same_usage(a: UsagePoint | None, b: UsagePoint | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.usage is b.usage or a.usage == b.usage


def first_request_usage(usage: Mapping[str, Any]) -> Mapping[str, Any]:
    """The usage of the request made at a point. A reply that took several calls (pause_turn) stores the
    calls under ``requests``; the first one is the request the point made."""
    inner = usage.get("requests")
    if isinstance(inner, list) and inner and isinstance(inner[0], Mapping):
        return inner[0]
    return usage


def compacted(usage: Mapping[str, Any]) -> bool:
    """Whether the request made at a point ran a server compaction pass. Its size is then not observed: the
    top-level usage is the reply's pass over the compacted context, and the compaction iteration may bill less
    than the context it closed (SDK ``BetaUsage.iterations`` docs); so it neither calibrates the estimate nor
    pins the size of the next request."""
    iterations = first_request_usage(usage).get("iterations")
    return isinstance(iterations, list) and any(
        isinstance(item, Mapping) and item.get("type") == "compaction" for item in iterations
    )


def _first_request_prompt(usage: Mapping[str, Any]) -> int:
    """Prompt tokens of the request made at a point."""
    return observed_prompt_tokens(first_request_usage(usage))
