"""The one table of model facts: context window, minimum cacheable prefix, prefill support, thinking binding.

Sources: ../shared/claude-api-facts.md (collected 2026-11-22 from platform.claude.com/docs: models overview,
prompt caching "minimum cacheable length", "assistant message prefill" deprecation for 4.6+, preserved thinking on
the newest models). Prices live in ``data/prices.json`` (see ``pricing.py``), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODELS", "ModelInfo", "model_info"]


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


_M = 1_000_000
_K200 = 200_000


def _m(name: str, window: int, min_cache: int, prefill: bool, binds: bool, factor: float) -> ModelInfo:
    # The 4.7 generation changed the tokenizer and the image limits together.
    return ModelInfo(name, window, min_cache, prefill, binds, factor, high_res_images=factor > 1.0)


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        # 5.5 generation: minimum cacheable length unconfirmed -> 1,024 (claude-api-facts.md).
        _m("claude-opus-5-5", _M, 1024, False, True, 1.3),
        _m("claude-sonnet-5-5", _M, 1024, False, True, 1.3),
        _m("claude-haiku-5-5", _M, 1024, False, True, 1.3),
        _m("claude-fable-5-2", _M, 512, False, True, 1.3),
        _m("claude-fable-5-1", _M, 512, False, True, 1.3),
        _m("claude-mythos-5-2", _M, 512, False, True, 1.3),
        _m("claude-mythos-5-1", _M, 512, False, True, 1.3),
        _m("claude-fable-5", _M, 512, False, False, 1.3),
        _m("claude-mythos-5", _M, 512, False, False, 1.3),
        _m("claude-opus-5", _M, 512, False, False, 1.3),
        _m("claude-sonnet-5", _M, 1024, False, False, 1.3),
        _m("claude-opus-4-8", _M, 1024, False, False, 1.3),
        _m("claude-opus-4-7", _M, 2048, False, False, 1.3),
        _m("claude-mythos-preview", _M, 2048, False, False, 1.3),
        _m("claude-opus-4-6", _M, 4096, False, False, 1.0),
        _m("claude-sonnet-4-6", _M, 1024, False, False, 1.0),
        _m("claude-opus-4-5", _K200, 4096, True, False, 1.0),
        _m("claude-sonnet-4-5", _K200, 1024, True, False, 1.0),
        _m("claude-haiku-4-5", _K200, 4096, True, False, 1.0),
    ]
}

# Dated snapshot names the SDK knows (anthropic.types.Model) resolve to their alias.
ALIASES: dict[str, str] = {
    "claude-haiku-4-5-20251001": "claude-haiku-4-5",
    "claude-opus-4-5-20251101": "claude-opus-4-5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
}


def model_info(name: str) -> ModelInfo | None:
    """Facts for a model id (alias or dated snapshot); ``None`` for a model this table does not know."""
    return MODELS.get(ALIASES.get(name, name))
