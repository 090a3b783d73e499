"""Context policies: what part of the stored log a request carries. Plain, frozen settings objects.

The log is never changed; a policy only shapes the request view (see ``plan.plan_request``). Every policy cuts
at :func:`claude_history.history.turn_starts` only, so a view starts with a real user message and never
separates a tool_use from its tool_result. Cuts never move backwards within a session.

Compose with ``&``: ``LastTurns(30) & TokenBudget(50_000) & OldImages(after_turns=5)`` keeps what every part
allows (the latest cut wins). ``Summarize`` and ``ServerCompaction`` are whole strategies: at most one of them
in a combination.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "CacheAwareWindow",
    "Combine",
    "KeepAll",
    "LastTurns",
    "OldImages",
    "Policy",
    "ServerCompaction",
    "Summarize",
    "TokenBudget",
]

DEFAULT_SUMMARY_PROMPT = (
    "You maintain a running summary of a conversation between a user and an AI assistant. Write a concise "
    "summary that preserves every fact, decision, name, number, open question and user preference needed to "
    "continue the conversation. Write it as notes, not as dialogue. Do not add anything that was not said."
)


class _Composable:
    def __and__(self, other: object) -> Combine:
        if not isinstance(other, _Composable):
            return NotImplemented
        return Combine(*_parts(self), *_parts(other))


def _parts(policy: _Composable) -> tuple[Any, ...]:
    return policy.parts if isinstance(policy, Combine) else (policy,)


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class KeepAll(_Composable):
    """Send the whole log every time. With prompt caching this is already cheap: each turn reads the previous
    turns from the cache. The request is still kept inside the model's context window (by cutting old turns
    when the log outgrows it, like ``CacheAwareWindow``)."""


@dataclass(frozen=True)
class LastTurns(_Composable):
    """The newest ``n`` turns (the current one included): the guides' ``messages[-n:]`` done right, cut at
    turn boundaries only. The window moves every turn, so the cache is read only up to the system prompt."""

    n: int

    def __post_init__(self) -> None:
        _positive("LastTurns(n)", self.n)


@dataclass(frozen=True)
class CacheAwareWindow(_Composable):
    """Keep the newest turns within ``max_input_tokens`` (the whole request: system, tools, summary,
    messages).

    When a request would exceed the budget, the window is cut in one step down to ``low_water`` tokens
    (default 60% of the budget), then stays put, growing turn by turn, until the budget is exceeded again. So
    the prefix stays byte-identical and cached between cuts; a cut costs one cache write of the kept window.
    """

    max_input_tokens: int
    low_water: int | None = None

    def __post_init__(self) -> None:
        _positive("max_input_tokens", self.max_input_tokens)
        if self.low_water is not None:
            _positive("low_water", self.low_water)
            if self.low_water > self.max_input_tokens:
                raise ConfigurationError(
                    f"low_water ({self.low_water}) must not exceed max_input_tokens ({self.max_input_tokens})"
                )

    @property
    def target(self) -> int:
        return self.low_water if self.low_water is not None else int(self.max_input_tokens * 0.6)


@dataclass(frozen=True)
class TokenBudget(CacheAwareWindow):
    """The newest turns that fit in ``max_input_tokens``: cuts as little as possible each time the budget is
    exceeded (so once full, nearly every turn moves the window: prefer ``CacheAwareWindow``). When the window is
    due to move within a turn or two, it moves to where the request provably fits (a turn or so further than
    the estimate asks) rather than ask ``count_tokens`` whether it does."""

    @property
    def target(self) -> int:
        return self.max_input_tokens if self.low_water is None else self.low_water


@dataclass(frozen=True)
class OldImages(_Composable):
    """Replace images older than ``after_turns`` turns with a short text placeholder.

    Images are replaced in batches, every ``after_turns`` turns, so the prefix changes (and the cache is
    rewritten) once per batch, not every turn. An image is kept for at least ``after_turns`` turns.
    """

    after_turns: int
    placeholder: str = "[image omitted: it was shown earlier in the conversation]"

    def __post_init__(self) -> None:
        _positive("OldImages(after_turns)", self.after_turns)


@dataclass(frozen=True)
class Summarize(_Composable):
    """A rolling summary of what leaves the window, so old turns are condensed instead of forgotten.

    Windowing is ``CacheAwareWindow(max_input_tokens, low_water)``; at each cut, ``plan_request`` returns a
    ``summary_request``: the caller (Chat) asks ``model`` for an updated summary covering the previous summary
    plus the turns just dropped, stores it as a ``Summary`` record (the log is untouched) and plans again. The
    summary goes in a second system block after the static system prompt, so the cached system prefix stays
    valid. A failed summary call falls back to plain trimming (``RequestPlan.fallback``), never to an error.
    The newest user message is never summarised.
    """

    max_input_tokens: int
    low_water: int | None = None
    model: str = "claude-haiku-4-5"
    max_summary_tokens: int = 1_024
    prompt: str = DEFAULT_SUMMARY_PROMPT
    # The transcript sent to the summariser is capped (characters, the newest part is kept).
    max_transcript_chars: int = 400_000

    def __post_init__(self) -> None:
        _positive("max_input_tokens", self.max_input_tokens)
        _positive("max_summary_tokens", self.max_summary_tokens)
        if self.low_water is not None:
            _positive("low_water", self.low_water)
        if self.max_summary_tokens >= self.target:
            raise ConfigurationError("max_summary_tokens must be well below the low-water mark of the window")

    @property
    def window(self) -> CacheAwareWindow:
        return CacheAwareWindow(self.max_input_tokens, self.low_water)

    @property
    def target(self) -> int:
        return self.window.target


@dataclass(frozen=True)
class ServerCompaction(_Composable):
    """Let the API compact the conversation (the ``compact_20260112`` context-management edit, beta
    ``compact-2026-01-12``): when the input passes ``trigger_tokens`` the server summarises and answers with a
    ``compaction`` block that must be sent back, which the store round-trips like every other block. The view
    is the whole log (the API ignores what precedes the latest compaction block), thinking blocks included."""

    trigger_tokens: int = 150_000
    instructions: str | None = None
    pause_after_compaction: bool = False

    def __post_init__(self) -> None:
        _positive("trigger_tokens", self.trigger_tokens)

    def edit(self) -> dict[str, Any]:
        edit: dict[str, Any] = {
            "type": "compact_20260112",
            "trigger": {"type": "input_tokens", "value": self.trigger_tokens},
        }
        if self.instructions:
            edit["instructions"] = self.instructions
        if self.pause_after_compaction:
            edit["pause_after_compaction"] = True
        return edit


@dataclass(frozen=True)
class Combine(_Composable):
    """Several policies at once: the latest cut any of them asks for wins."""

    parts: tuple[Any, ...] = field(default=())

    def __init__(self, *parts: Any) -> None:
        flat: list[Any] = []
        for part in parts:
            if not isinstance(part, _Composable):
                raise ConfigurationError(f"not a context policy: {part!r}")
            flat.extend(_parts(part))
        strategies = [p for p in flat if isinstance(p, (Summarize, ServerCompaction))]
        if len(strategies) > 1:
            raise ConfigurationError(
                f"combine at most one of Summarize / ServerCompaction, got {len(strategies)}"
            )
        object.__setattr__(self, "parts", tuple(flat))


Policy = (
    KeepAll | LastTurns | CacheAwareWindow | TokenBudget | OldImages | Summarize | ServerCompaction | Combine
)
