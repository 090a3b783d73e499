"""What the next request will hold, in tokens and dollars (pure data; computed by ``plan_request``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ContextReport"]


@dataclass(frozen=True)
class ContextReport:
    """The shape and expected cost of one request view.

    Token figures are estimates, calibrated from the session's observed usage; the part already sent in the
    previous request is known exactly from that request's usage (``exact_prefix_tokens``).
    ``cached_tokens`` is what should be read from the prompt cache, ``uncached_tokens`` the rest (written to
    the cache when a breakpoint covers it). ``estimated_cost`` is USD for the input side only (the output is
    unknown before the call); ``None`` when the model has no price.
    """

    model: str
    policy: str
    system_tokens: int
    tools_tokens: int
    summary_tokens: int
    messages_tokens: int
    total_tokens: int
    exact_prefix_tokens: int
    cached_tokens: int
    uncached_tokens: int
    kept_messages: int
    kept_turns: int
    dropped_turns: int
    window_start: int
    budget: int | None
    context_window: int
    cache_ttl: str | None
    breakpoints: int
    estimated_cost: float | None
    calibration_ratio: float
    calibration_observations: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"model {self.model}, policy {self.policy}",
            f"  system {self.system_tokens:,} + tools {self.tools_tokens:,} + summary "
            f"{self.summary_tokens:,} + messages {self.messages_tokens:,} = {self.total_tokens:,} tokens"
            + (f" (budget {self.budget:,})" if self.budget else ""),
            f"  kept {self.kept_turns} turns ({self.kept_messages} messages), dropped {self.dropped_turns}",
            f"  cached {self.cached_tokens:,}, uncached {self.uncached_tokens:,}; "
            f"{self.breakpoints} breakpoints, TTL {self.cache_ttl or '-'}",
        ]
        if self.estimated_cost is not None:
            lines.append(f"  estimated input cost ${self.estimated_cost:.6f}")
        return "\n".join(lines)
