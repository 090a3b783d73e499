"""Prompt-cache breakpoints and TTL choice (pure).

API rules (claude-api-facts.md, "Prompt caching"): at most 4 ``cache_control`` markers per request; the prefix
order is tools, system, messages; a lookup walks back at most 20 block positions from each breakpoint (the
breakpoint included); prefixes shorter than the model's minimum are silently not cached; in one request longer
TTLs come before shorter ones. Thinking blocks cannot carry a marker, so a message's marker goes on its last
other block.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "GAP_WINDOW",
    "LOOKBACK",
    "MAX_BREAKPOINTS",
    "TTL_SECONDS",
    "Candidate",
    "apply_breakpoints",
    "choose_ttl",
    "count_markers",
    "marker_ttl",
]

MAX_BREAKPOINTS = 4
LOOKBACK = 20
TTL_SECONDS = {"5m": 300, "1h": 3600}
GAP_WINDOW = 20  # the TTL is chosen from this many of the newest gaps between turns
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})


def marker_ttl(block: Mapping[str, Any]) -> str | None:
    """The TTL of a block's ``cache_control`` ("5m" by default), or ``None`` when unmarked."""
    control = block.get("cache_control")
    if not isinstance(control, Mapping):
        return None
    ttl = control.get("ttl")
    return ttl if ttl in TTL_SECONDS else "5m"


def count_markers(blocks: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for b in blocks if marker_ttl(b) is not None)


@dataclass(frozen=True)
class Candidate:
    """A place worth a breakpoint: ``position`` in the flattened tools -> system -> messages block sequence,
    ``prefix_tokens`` up to and including it, ``priority`` (lower first) when slots are short."""

    position: int
    prefix_tokens: int
    priority: int
    reason: str


def choose_ttl(
    gaps: Sequence[float],
    *,
    prefix_tokens: int,
    new_tokens: int,
    anchored: int = 0,
    write_5m: float = 1.25,
    write_1h: float = 2.0,
    read: float = 0.1,
    min_gaps: int = 3,
) -> str:
    """ "1h" when the session's observed gaps between turns make it cheaper than "5m", else "5m".

    A request written at "5m" saves the 1-hour premium on its ``new_tokens``; if the next gap outlives 5
    minutes, what no 1-hour entry holds (``prefix_tokens - anchored``, the tokens past the newest live 1-hour
    entry) is written again instead of read. So "1h" when that part at risk reaches a threshold: the smaller
    of the myopic one (the expected loss of this one request equals the premium) and the economic-order one
    (re-anchoring every m requests, the premium balances the expected losses of the lag that piles up in
    between: m = sqrt(2 * premium / loss rate)). With a live 1-hour entry a session thus pays the premium
    once every few requests, and never loses more than a few turns to a long gap. ``gaps`` are seconds
    between turns (a small margin is kept under each TTL for request latency); prices are relative (any
    unit). Fewer than ``min_gaps`` gaps: "5m", the API's default.
    """
    recent = [g for g in gaps if g >= 0][-GAP_WINDOW:]
    if len(recent) < min_gaps:
        return "5m"
    miss_5m = sum(1 for g in recent if g > TTL_SECONDS["5m"] - 15) / len(recent)
    miss_1h = sum(1 for g in recent if g > TTL_SECONDS["1h"] - 60) / len(recent)
    saved = (miss_5m - miss_1h) * max(write_5m - read, 0.0)  # expected loss a 1-hour entry avoids, per token
    premium = max(write_1h - write_5m, 0.0)
    if saved <= 0:
        return "5m"
    at_risk = prefix_tokens - max(0, min(anchored, prefix_tokens))
    ratio = premium / saved
    return "1h" if at_risk >= max(new_tokens, 1) * min(ratio, math.sqrt(2 * ratio)) else "5m"


def _control(ttl: str) -> dict[str, Any]:
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


class Blocks(Protocol):
    """The flattened request by position (a list, or a view of one that does not build it)."""

    def __len__(self) -> int: ...

    def __getitem__(self, position: int, /) -> dict[str, Any]: ...


def apply_breakpoints(
    blocks: Blocks,
    candidates: Sequence[Candidate],
    *,
    min_tokens: int,
    ttl: str,
    marked: Iterable[int] | None = None,
) -> list[Candidate]:
    """Mark the best candidates on ``blocks`` (the flattened request, modified in place: each entry is the
    block dict that will be sent) and return the chosen ones.

    The caller's own markers already on ``blocks`` are kept and count against the 4 slots; ``marked`` lists
    the positions that may hold one, when the caller knows (a long request need not be scanned). Candidates
    whose prefix is under ``min_tokens`` are skipped (the API would not cache them). TTLs are lowered where
    needed so that no marker has a longer TTL than one before it.
    """
    positions = range(len(blocks)) if marked is None else marked
    taken = {i for i in positions if marker_ttl(blocks[i]) is not None}
    free = MAX_BREAKPOINTS - len(taken)
    chosen: list[Candidate] = []
    for cand in sorted(candidates, key=lambda c: (c.priority, -c.position)):
        if free <= 0:
            break
        if cand.prefix_tokens < min_tokens or cand.position in taken:
            continue
        if not 0 <= cand.position < len(blocks) or blocks[cand.position].get("type") in _UNMARKABLE:
            continue
        chosen.append(cand)
        taken.add(cand.position)
        free -= 1
    # Longer TTLs first: a marker may not outlive any marker before it, nor be shorter than a user's later
    # one.
    marks = sorted(
        [(i, marker_ttl(blocks[i]), False) for i in taken if marker_ttl(blocks[i]) is not None]
        + [(c.position, ttl, True) for c in chosen]
    )
    user_later: list[str | None] = []
    for k in range(len(marks)):
        later = [m[1] for m in marks[k + 1 :] if not m[2]]
        user_later.append("1h" if "1h" in later else ("5m" if later else None))
    ceiling = "1h"
    for (position, mark_ttl, ours), floor in zip(marks, user_later, strict=True):
        if ours:
            value = mark_ttl or "5m"
            if ceiling == "5m":
                value = "5m"
            if floor == "1h":
                value = "1h"
            blocks[position]["cache_control"] = _control(value)
            mark_ttl = value
        if mark_ttl == "5m":
            ceiling = "5m"
    return sorted(chosen, key=lambda c: c.position)
