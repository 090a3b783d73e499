"""The one table of model facts: limits, caching, prefill, thinking modes, effort levels, names and dates.

The library (token budgets, cache breakpoints, image sizing) and the simulator (validation, ``/v1/models``) both
read it, so a rule about a model lives here once. Prices live in ``data/prices.json`` (see ``pricing.py``).

Sources (collected 2026-11-22 and 2026-12-05):
- context window and max output: each model's page, platform.claude.com/docs/en/models/<model>/overview
  ("Context window: 1M tokens · Max output: 128K tokens"), and the comparison table of the models overview
  (platform.claude.com/docs/en/models/overview): 1M / 128K for every 5.x model, Opus 4.6+ and Sonnet 4.6;
  the 4.5 generation 200K (Sonnet 4.5: 1M) / 64K;
- thinking modes: "Adaptive thinking" (platform.claude.com/docs/en/build-with-claude/adaptive-thinking, and the
  same page on Amazon Bedrock): Opus 4.6 and Sonnet 4.6 accept ``adaptive`` and the deprecated ``enabled``;
  Opus 4.7 and Mythos Preview only ``adaptive`` ("Manual extended thinking ... will return a 400 error");
  Fable 5 and Mythos 5 not ``disabled`` either; "Older models (Sonnet 4.5, Opus 4.5, etc.) do not support
  adaptive thinking"; the models overview lists Fable 5.x and Opus 5.5 as "Adaptive (always on)";
- effort: "Effort" (platform.claude.com/docs/en/build-with-claude/effort): Opus 4.5 low/medium/high; Sonnet 4.6
  and Opus 4.6 add ``max``; the SDK's ``OutputConfigParam.effort`` adds ``xhigh`` (Opus 4.7 and later);
- interleaved thinking with ``enabled`` needs the ``interleaved-thinking-2025-05-14`` beta on the Claude 4
  models (extended-thinking page, "Interleaved thinking"); ``adaptive`` interleaves by itself;
- minimum cacheable prefix, prefill and thinking binding: ../shared/claude-api-facts.md;
- release dates: each model's overview page where it gives one; otherwise the epoch, as ``/v1/models`` does for an
  unknown date (SDK ``ModelInfo.created_at``: "May be set to an epoch value if the release date is unknown").
Assumed, not documented (kept in one place, flagged in docs/simulator.md): Opus 5, Sonnet 5 and Opus 4.8 take
what Opus 4.7 takes plus ``disabled``; Sonnet 5.5 and Haiku 5.5 ("Adaptive", not "always on") accept ``disabled``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ALIASES", "DEPRECATED", "MODELS", "ModelInfo", "family_aliases", "model_info"]

EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    context_window: int
    min_cacheable_tokens: int
    supports_prefill: bool
    # Newest models bind each thinking block to the prefix before it (preserved thinking): a trimmed or summarised
    # history must drop thinking blocks of earlier turns.
    binds_thinking: bool
    # Claude 4.7+ and 5.x tokenizers give about 30% more tokens for the same text.
    tokenizer_factor: float
    # Claude 4.7+ and 5.x accept images up to 2576 px on the long edge (4,784 tokens) instead of 1568 px.
    high_res_images: bool = False
    max_output_tokens: int = 64_000
    # The ``thinking.type`` values the model accepts (``between_tools`` is not modelled).
    thinking_modes: frozenset[str] = frozenset({"enabled", "disabled"})
    # ``output_config.effort`` levels; empty: the model takes no effort setting.
    effort_levels: tuple[str, ...] = ()
    # ``enabled`` thinking with the interleaved-thinking beta may have a budget above max_tokens.
    interleaved_beta: bool = False
    display_name: str = ""
    created_at: str = EPOCH
    dated_id: str | None = None  # the snapshot id (``claude-haiku-4-5-20251001``) when the alias has one


_M = 1_000_000
_K200 = 200_000
_K128 = 128_000
_K64 = 64_000
_ADAPTIVE_ONLY = frozenset({"adaptive"})  # "always on": not even ``disabled``
_ADAPTIVE = frozenset({"adaptive", "disabled"})
_BOTH = frozenset({"enabled", "adaptive", "disabled"})
_MANUAL = frozenset({"enabled", "disabled"})
_E3 = ("low", "medium", "high")
_E4 = ("low", "medium", "high", "max")
_E5 = ("low", "medium", "high", "xhigh", "max")


def _m(
    name: str,
    display: str,
    window: int,
    min_cache: int,
    prefill: bool,
    binds: bool,
    factor: float,
    out: int,
    thinking: frozenset[str],
    effort: tuple[str, ...],
    *,
    created: str = EPOCH,
    dated: str | None = None,
    interleaved: bool = False,
) -> ModelInfo:
    # The 4.7 generation changed the tokenizer and the image limits together.
    return ModelInfo(
        name,
        window,
        min_cache,
        prefill,
        binds,
        factor,
        high_res_images=factor > 1.0,
        max_output_tokens=out,
        thinking_modes=thinking,
        effort_levels=effort,
        interleaved_beta=interleaved,
        display_name=display,
        created_at=created,
        dated_id=dated,
    )


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        # 5.5 generation: minimum cacheable length unconfirmed -> 1,024 (claude-api-facts.md).
        _m("claude-opus-5-5", "Claude Opus 5.5", _M, 1024, False, True, 1.3, _K128, _ADAPTIVE_ONLY, _E5),
        _m("claude-sonnet-5-5", "Claude Sonnet 5.5", _M, 1024, False, True, 1.3, _K128, _ADAPTIVE, _E5),
        _m("claude-haiku-5-5", "Claude Haiku 5.5", _M, 1024, False, True, 1.3, _K128, _ADAPTIVE, _E5),
        _m("claude-fable-5-2", "Claude Fable 5.2", _M, 512, False, True, 1.3, _K128, _ADAPTIVE_ONLY, _E5),
        _m("claude-fable-5-1", "Claude Fable 5.1", _M, 512, False, True, 1.3, _K128, _ADAPTIVE_ONLY, _E5),
        _m("claude-mythos-5-2", "Claude Mythos 5.2", _M, 512, False, True, 1.3, _K128, _ADAPTIVE_ONLY, _E5),
        _m("claude-mythos-5-1", "Claude Mythos 5.1", _M, 512, False, True, 1.3, _K128, _ADAPTIVE_ONLY, _E5),
        _m(
            "claude-fable-5",
            "Claude Fable 5",
            _M,
            512,
            False,
            False,
            1.3,
            _K128,
            _ADAPTIVE_ONLY,
            _E5,
            created="2026-06-09T00:00:00Z",
        ),
        _m("claude-mythos-5", "Claude Mythos 5", _M, 512, False, False, 1.3, _K128, _ADAPTIVE_ONLY, _E5),
        _m("claude-opus-5", "Claude Opus 5", _M, 512, False, False, 1.3, _K128, _ADAPTIVE, _E5),
        _m("claude-sonnet-5", "Claude Sonnet 5", _M, 1024, False, False, 1.3, _K128, _ADAPTIVE, _E5),
        _m("claude-opus-4-8", "Claude Opus 4.8", _M, 1024, False, False, 1.3, _K128, _ADAPTIVE, _E5),
        _m("claude-opus-4-7", "Claude Opus 4.7", _M, 2048, False, False, 1.3, _K128, _ADAPTIVE, _E5),
        _m("claude-mythos-preview", "Claude Mythos Preview", _M, 2048, False, False, 1.3, _K128, _ADAPTIVE, _E5),
        _m(
            "claude-opus-4-6",
            "Claude Opus 4.6",
            _M,
            4096,
            False,
            False,
            1.0,
            _K128,
            _BOTH,
            _E4,
            created="2026-02-05T00:00:00Z",
            interleaved=True,
        ),
        _m(
            "claude-sonnet-4-6",
            "Claude Sonnet 4.6",
            _M,
            1024,
            False,
            False,
            1.0,
            _K128,
            _BOTH,
            _E4,
            created="2026-02-17T00:00:00Z",
            interleaved=True,
        ),
        _m(
            "claude-opus-4-5",
            "Claude Opus 4.5",
            _K200,
            4096,
            True,
            False,
            1.0,
            _K64,
            _MANUAL,
            _E3,
            created="2025-11-24T00:00:00Z",
            dated="claude-opus-4-5-20251101",
            interleaved=True,
        ),
        _m(
            "claude-sonnet-4-5",
            "Claude Sonnet 4.5",
            _K200,
            1024,
            True,
            False,
            1.0,
            _K64,
            _MANUAL,
            (),
            created="2025-09-29T00:00:00Z",
            dated="claude-sonnet-4-5-20250929",
            interleaved=True,
        ),
        _m(
            "claude-haiku-4-5",
            "Claude Haiku 4.5",
            _K200,
            4096,
            True,
            False,
            1.0,
            _K64,
            _MANUAL,
            (),
            created="2025-10-15T00:00:00Z",
            dated="claude-haiku-4-5-20251001",
            interleaved=True,
        ),
    ]
}

# Dated snapshot names resolve to their alias (anthropic.types.Model lists both).
ALIASES: dict[str, str] = {m.dated_id: m.name for m in MODELS.values() if m.dated_id}


# Deprecated models (still served until they retire; not what a short name should pick): the models the SDK
# warns about, ``anthropic._data.deprecated_models.DEPRECATED_MODELS`` (anthropic 2.17.0: Mythos Preview
# retiring June 30th, 2026, Opus 4.5 January 22nd, 2027). tests/cli/test_cli_models.py checks the two lists agree.
DEPRECATED: frozenset[str] = frozenset({"claude-mythos-preview", "claude-opus-4-5"})


def _version(name: str) -> tuple[str, tuple[int, ...]] | None:
    """``claude-sonnet-4-6`` -> ``("sonnet", (4, 6))``; ``None`` for a name without a version number."""
    parts = name.split("-")
    if len(parts) < 3 or parts[0] != "claude" or not all(p.isdigit() for p in parts[2:]):
        return None
    return parts[1], tuple(int(p) for p in parts[2:])


def family_aliases(
    models: Mapping[str, ModelInfo] | None = None, deprecated: frozenset[str] = DEPRECATED
) -> dict[str, str]:
    """Short names as `llm` users type them: ``sonnet``, ``opus``, ``haiku`` (and every other family) name
    the newest current (not deprecated) model of that family in the table, by version number."""
    newest: dict[str, tuple[tuple[int, ...], str]] = {}
    for info in (MODELS if models is None else models).values():
        parsed = _version(info.name)
        if parsed is None or info.name in deprecated or (info.dated_id or "") in deprecated:
            continue
        family, version = parsed
        if family not in newest or version > newest[family][0]:
            newest[family] = (version, info.name)
    return {family: name for family, (_, name) in sorted(newest.items())}


def model_info(name: str) -> ModelInfo | None:
    """Facts for a model id (alias or dated snapshot); ``None`` for a model this table does not know."""
    return MODELS.get(ALIASES.get(name, name))
