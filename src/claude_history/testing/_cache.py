"""Prompt caching as claude-api-facts.md ("Prompt caching") describes it, on the simulator's clock.

* Breakpoints: blocks with ``cache_control`` plus, with top-level ``cache_control``, the last cacheable block.
* An entry is written only at a breakpoint, and only when its prefix has at least the model's minimum
  cacheable tokens; its identity is the hash of the canonical prefix (tools -> system -> messages) up to
  that block.
* A read: for each breakpoint, the block positions from the breakpoint back to 19 before it (20 in all) are
  looked up; the longest live entry found over all breakpoints is read.
* TTL 5 minutes or 1 hour; a hit refreshes the entry's expiry.
* Usage: ``cache_read_input_tokens`` = the prefix read; ``cache_creation_input_tokens`` = from there to the
  last cacheable breakpoint, split by the TTL of the breakpoint that covers each part; ``input_tokens`` = the
  rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._tokens import Position

__all__ = ["LOOKBACK", "TTL_SECONDS", "CacheUsage", "PromptCache"]

LOOKBACK = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass
class CacheUsage:
    input_tokens: int
    cache_read_input_tokens: int
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.ephemeral_5m_input_tokens + self.ephemeral_1h_input_tokens

    def as_usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def as_iteration(self, kind: str, output_tokens: int) -> dict[str, Any]:
        """One entry of ``usage.iterations`` (the SDK's ``BetaCompactionIterationUsage`` /
        ``BetaMessageIterationUsage``): ``type`` and the token figures of one sampling pass."""
        usage = self.as_usage(output_tokens)
        del usage["service_tier"]
        return {"type": kind, **usage}


@dataclass
class _Entry:
    expires: float
    ttl: float
    tokens: int


class PromptCache:
    """One organisation's cache. Not thread-safe by itself: the simulator calls it under its lock."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def account(
        self,
        positions: list[Position],
        total: int,
        automatic: dict[str, Any] | None,
        min_tokens: int,
        now: float,
        *,
        commit: bool = True,
    ) -> CacheUsage:
        """Read and write the cache for one request; return how its input tokens split. ``commit=False``
        only computes the split (for a request the rate limits have yet to admit)."""
        self._expire(now)
        breakpoints: dict[int, str] = {}
        for k, pos in enumerate(positions):
            if pos.cache_control is not None:
                breakpoints[k] = pos.cache_control.get("ttl", "5m")
        if automatic is not None:
            last = next((k for k in range(len(positions) - 1, -1, -1) if positions[k].cacheable), None)
            if last is not None:
                ttl = automatic.get("ttl", "5m")
                breakpoints[last] = max(breakpoints.get(last, ttl), ttl, key=TTL_SECONDS.__getitem__)
        if not breakpoints:
            return CacheUsage(total, 0, 0, 0)

        read_at = -1
        for bp in breakpoints:
            for k in range(bp, max(-1, bp - LOOKBACK), -1):
                if positions[k].key in self._entries:
                    read_at = max(read_at, k)
                    break
        read = positions[read_at].end if read_at >= 0 else 0
        if read_at >= 0 and commit:
            entry = self._entries[positions[read_at].key]
            entry.expires = now + entry.ttl

        covered = read
        written = {"5m": 0, "1h": 0}
        for bp in sorted(breakpoints):
            pos = positions[bp]
            if pos.end < min_tokens:
                continue  # shorter prefixes are silently not cached (facts)
            ttl = breakpoints[bp]
            seconds = TTL_SECONDS[ttl]
            existing = self._entries.get(pos.key)
            if not commit:
                pass
            elif existing is not None:
                existing.ttl = max(existing.ttl, seconds)
                existing.expires = max(existing.expires, now + seconds)
            else:
                self._entries[pos.key] = _Entry(now + seconds, seconds, pos.end)
            if pos.end > covered:
                written[ttl] += pos.end - covered
                covered = pos.end
        return CacheUsage(total - covered, read, written["5m"], written["1h"])

    def _expire(self, now: float) -> None:
        dead = [key for key, entry in self._entries.items() if entry.expires <= now]
        for key in dead:
            del self._entries[key]
