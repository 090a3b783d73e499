"""Token accounting: local estimates (pure), calibration from observed usage, and the exact count (I/O).

There is no official local tokenizer for Claude 3 and later (claude-api-facts.md, "Tokens"), so:

- text is *estimated* from its characters (about 3.5 ASCII characters a token, one token per other character,
  JSON denser), times the model's ``tokenizer_factor`` (Claude 4.7+ and 5.x give about 30% more tokens);
- images are *computed* by the documented rule (``ceil(w/28) * ceil(h/28)`` after downscaling, see
  ``claude_history.images``), reading the real size from the image bytes;
- PDFs are counted per page at the top of the documented range (3,000 tokens a page, the page image included);
- every response's ``usage`` is exact: :class:`Calibration` turns observed prompt sizes into a per-session
  correction ratio for the estimated (text) part, smoothed so one odd request does not swing it;
- ``count_tokens`` / ``acount_tokens`` ask the API for an exact figure (free but rate-limited): worth it only
  near a limit.

Estimates keep the *text-like* part (estimated, calibrated) apart from the *fixed* part (images, documents by
rule), so calibration never scales what is already known.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .images import decode_base64, image_limits, image_size, image_tokens
from .models import model_info
from .usage import TokenUsage

__all__ = [
    "PDF_PAGE_TOKENS",
    "UNBOUNDED",
    "Calibration",
    "TokenEstimate",
    "acount_tokens",
    "bound_block",
    "bound_message",
    "bound_system",
    "bound_text",
    "bound_tools",
    "count_tokens",
    "estimate_block",
    "estimate_message",
    "estimate_messages",
    "estimate_request",
    "estimate_system",
    "estimate_text",
    "estimate_tools",
    "observed_prompt_tokens",
]

# Documented: "PDFs: about 1,500-3,000 tokens a page plus each page's image". The top of the range keeps the
# estimate on the safe side; calibration does not touch it.
PDF_PAGE_TOKENS = 3_000
# A PDF given by URL or file id cannot be measured locally: assume this many pages.
UNKNOWN_PDF_PAGES = 10
# Structure around each message / block (role markers, block framing).
MESSAGE_OVERHEAD = 4.0
BLOCK_OVERHEAD = 2.0
# Tools carry a hidden system preamble when present.
TOOLS_OVERHEAD = 300.0


@dataclass(frozen=True, slots=True)
class TokenEstimate:
    """``text`` is estimated from characters (calibrated by the session's ratio), ``fixed`` is computed by a
    documented rule (images, PDFs) and never scaled."""

    text: float = 0.0
    fixed: int = 0

    def __add__(self, other: TokenEstimate) -> TokenEstimate:
        return TokenEstimate(self.text + other.text, self.fixed + other.fixed)

    def __sub__(self, other: TokenEstimate) -> TokenEstimate:
        return TokenEstimate(self.text - other.text, self.fixed - other.fixed)

    def tokens(self, ratio: float = 1.0) -> int:
        """The estimate in tokens, the text part scaled by a calibration ``ratio``."""
        return max(0, math.ceil(self.text * ratio - 1e-9)) + self.fixed


ZERO = TokenEstimate()

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def estimate_text(text: str) -> float:
    """Raw (uncalibrated, model-independent) tokens of ``text``: 3.5 ASCII characters a token, one token for
    every other character (CJK, emoji and accented text tokenise densely)."""
    if not text:
        return 0.0
    if text.isascii():  # the usual case, without a regex pass (the same figure)
        return len(text) / 3.5
    non_ascii = len(_NON_ASCII.findall(text))
    return (len(text) - non_ascii) / 3.5 + non_ascii


def _json_tokens(value: Any) -> float:
    # JSON is punctuation-heavy: about 3 characters a token.
    try:
        dumped = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        dumped = str(value)
    return len(dumped) / 3.0


def _without_cache_control(block: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k != "cache_control"}


@lru_cache(maxsize=512)
def _base64_image_tokens(data: str, long_edge_cap: int, token_cap: int) -> int:
    """Tokens of a base64 image, or the cap when its size cannot be read (the safe side)."""
    try:
        # The size sits in the first bytes for PNG, GIF and WebP; JPEG may need more (EXIF comes first).
        head = decode_base64(data[:65_536])
        try:
            width, height = image_size(head)
        except ValueError:
            width, height = image_size(decode_base64(data))
    except ValueError:
        return token_cap
    return image_tokens(width, height, long_edge_cap=long_edge_cap, token_cap=token_cap)


def _image_estimate(block: Mapping[str, Any], model: str | None) -> TokenEstimate:
    long_edge_cap, token_cap = image_limits(model or "")
    source = block.get("source")
    if isinstance(source, Mapping) and source.get("type") == "base64" and isinstance(source.get("data"), str):
        return TokenEstimate(BLOCK_OVERHEAD, _base64_image_tokens(source["data"], long_edge_cap, token_cap))
    # URL or file images cannot be measured offline: assume the largest image the model accepts.
    return TokenEstimate(BLOCK_OVERHEAD, token_cap)


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


@lru_cache(maxsize=128)
def _pdf_pages(data: str) -> int:
    try:
        raw = decode_base64(data)
    except ValueError:
        return UNKNOWN_PDF_PAGES
    return max(1, len(_PDF_PAGE.findall(raw)))


def _document_estimate(block: Mapping[str, Any], model: str | None) -> TokenEstimate:
    source = block.get("source")
    extra = estimate_text(str(block.get("title") or "")) + estimate_text(str(block.get("context") or ""))
    base = TokenEstimate(BLOCK_OVERHEAD + extra)
    if not isinstance(source, Mapping):
        return base + TokenEstimate(0.0, UNKNOWN_PDF_PAGES * PDF_PAGE_TOKENS)
    kind = source.get("type")
    if kind == "text":
        return base + TokenEstimate(estimate_text(str(source.get("data") or "")))
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return base + TokenEstimate(estimate_text(inner))
        return base + sum((estimate_block(b, model) for b in inner or () if isinstance(b, Mapping)), ZERO)
    if kind == "base64" and isinstance(source.get("data"), str):
        return base + TokenEstimate(0.0, _pdf_pages(source["data"]) * PDF_PAGE_TOKENS)
    return base + TokenEstimate(0.0, UNKNOWN_PDF_PAGES * PDF_PAGE_TOKENS)


def estimate_block(block: Mapping[str, Any], model: str | None = None) -> TokenEstimate:
    """Raw estimate of one content block (text part before the model's tokenizer factor)."""
    kind = block.get("type")
    if kind == "text":
        return TokenEstimate(BLOCK_OVERHEAD + estimate_text(str(block.get("text") or "")))
    if kind == "image":
        return _image_estimate(block, model)
    if kind == "document":
        return _document_estimate(block, model)
    if kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, str):
            return TokenEstimate(BLOCK_OVERHEAD * 3 + estimate_text(inner))
        parts = (estimate_block(b, model) for b in inner or () if isinstance(b, Mapping))
        return TokenEstimate(BLOCK_OVERHEAD * 3) + sum(parts, ZERO)
    if kind == "tool_use":
        return TokenEstimate(
            BLOCK_OVERHEAD * 3
            + estimate_text(str(block.get("name") or ""))
            + _json_tokens(block.get("input"))
        )
    if kind == "thinking":
        return TokenEstimate(BLOCK_OVERHEAD + estimate_text(str(block.get("thinking") or "")))
    if kind == "redacted_thinking":
        # Encrypted: about one token per 4 characters of the opaque data.
        return TokenEstimate(BLOCK_OVERHEAD + len(str(block.get("data") or "")) / 4.0)
    if kind == "compaction":
        return TokenEstimate(BLOCK_OVERHEAD + estimate_text(str(block.get("content") or "")))
    if kind == "search_result":
        inner = block.get("content")
        parts = (estimate_block(b, model) for b in inner or () if isinstance(b, Mapping))
        head = estimate_text(str(block.get("title") or "")) + estimate_text(str(block.get("source") or ""))
        return TokenEstimate(BLOCK_OVERHEAD + head) + sum(parts, ZERO)
    # Server tool blocks and anything newer: their JSON.
    return TokenEstimate(BLOCK_OVERHEAD + _json_tokens(_without_cache_control(block)))


# Worst-case bounds -------------------------------------------------------------------------------------------
#
# The estimate above is a best guess; a request planned on it alone can be larger than it looks (code, CJK,
# base64-like or otherwise dense text tokenises far denser than prose). The bounds below are never below the
# real count, so a request whose bound fits its limit needs no ``count_tokens``:
#
# - text: its UTF-8 bytes. Claude's tokenizers, like every byte-level subword tokenizer, spend at least one
#   byte of input on each token (there is no public tokenizer, claude-api-facts.md "Tokens"; this holds for any
#   vocabulary, the denser 4.7+ / 5.x ones included). Prose is about 4 bytes a token, so this bound is ~4x the
#   count: it is used for what was never billed (the newest messages), never for what usage already measured;
# - JSON (tool inputs, unknown blocks): the bytes of its most verbose form (ASCII-escaped, with spaces);
# - images: the documented rule, which is exact (the size is read from the image bytes), or the model's cap
#   when the image cannot be read (larger images are downscaled to it);
# - PDFs: the top of the documented range per page plus the page image at the model's cap; a PDF whose pages
#   cannot be counted (by URL or file id, or pages hidden in compressed object streams) is UNBOUNDED;
# - framing: BOUND_BLOCK_OVERHEAD per block, BOUND_MESSAGE_OVERHEAD per message, BOUND_TOOLS_PREAMBLE for the
#   hidden tool-use system prompt (the docs list 159-530 tokens per model).
#
# tests/context/test_token_bounds.py checks by property (hypothesis, adversarial content of every kind) that each
# bound is at least the simulator's count, and at least three times the estimate for text.

UNBOUNDED = 10**12
BOUND_BLOCK_OVERHEAD = 8
BOUND_MESSAGE_OVERHEAD = 8
BOUND_TOOLS_PREAMBLE = 1_000
_PDF_PAGE_BOUND = PDF_PAGE_TOKENS  # plus the page image at the model's cap


def bound_text(text: str) -> int:
    """Worst-case tokens of ``text``: its UTF-8 bytes (at least one byte per token)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _bound_json(value: Any) -> int:
    try:
        dumped = json.dumps(value, ensure_ascii=True, default=str)
    except (TypeError, ValueError):
        dumped = str(value)
    return bound_text(dumped)


@lru_cache(maxsize=128)
def _pdf_pages_bound(data: str) -> int | None:
    """Pages of a base64 PDF when they can be counted for sure (``None``: they cannot)."""
    try:
        raw = decode_base64(data)
    except ValueError:
        return None
    if b"/ObjStm" in raw:  # page objects may hide in compressed object streams
        return None
    pages = len(_PDF_PAGE.findall(raw))
    return pages if pages > 0 else None


def _bound_document(block: Mapping[str, Any], model: str | None) -> int:
    source = block.get("source")
    extra = bound_text(str(block.get("title") or "")) + bound_text(str(block.get("context") or ""))
    if not isinstance(source, Mapping):
        return UNBOUNDED
    kind = source.get("type")
    if kind == "text":
        return extra + bound_text(str(source.get("data") or ""))
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return extra + bound_text(inner)
        return extra + sum(bound_block(b, model) for b in inner or () if isinstance(b, Mapping))
    if kind == "base64" and isinstance(source.get("data"), str):
        pages = _pdf_pages_bound(source["data"])
        if pages is None:
            return UNBOUNDED
        return extra + pages * (_PDF_PAGE_BOUND + image_limits(model or "")[1])
    return UNBOUNDED


def _bound_content(block: Mapping[str, Any], model: str | None) -> int:
    kind = block.get("type")
    if kind == "text":
        return bound_text(str(block.get("text") or ""))
    if kind == "image":
        return _image_estimate(block, model).fixed
    if kind == "document":
        return _bound_document(block, model)
    if kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, str):
            return 2 * BOUND_BLOCK_OVERHEAD + bound_text(inner)
        parts = sum(bound_block(b, model) for b in inner or () if isinstance(b, Mapping))
        return 2 * BOUND_BLOCK_OVERHEAD + parts
    if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
        return 2 * BOUND_BLOCK_OVERHEAD + bound_text(str(block.get("name") or "")) + _bound_json(block.get("input"))
    if kind == "thinking":
        return bound_text(str(block.get("thinking") or ""))
    if kind == "redacted_thinking":
        return bound_text(str(block.get("data") or ""))
    if kind == "compaction":
        return bound_text(str(block.get("content") or ""))
    if kind == "search_result":
        inner = block.get("content")
        head = bound_text(str(block.get("title") or "")) + bound_text(str(block.get("source") or ""))
        return head + sum(bound_block(b, model) for b in inner or () if isinstance(b, Mapping))
    return _bound_json(_without_cache_control(block))


def bound_block(block: Mapping[str, Any], model: str | None = None) -> int:
    """Worst-case tokens of one content block (see "Worst-case bounds" above)."""
    return min(UNBOUNDED, BOUND_BLOCK_OVERHEAD + _bound_content(block, model))


def bound_message(message: Mapping[str, Any], model: str | None = None, *, placeholder: str | None = None) -> int:
    """Worst-case tokens of one message as sent, whatever the planner does to it: with its thinking blocks (a
    view may only drop them) and, given the ``placeholder`` that replaces old images, the larger of an image
    and its placeholder."""
    content = message.get("content")
    if isinstance(content, str):
        return BOUND_MESSAGE_OVERHEAD + BOUND_BLOCK_OVERHEAD + bound_text(content)
    total = BOUND_MESSAGE_OVERHEAD
    for block in content or ():
        if not isinstance(block, Mapping):
            continue
        total += bound_block(block, model)
        if placeholder is not None:
            total += _images_in(block) * (BOUND_BLOCK_OVERHEAD + bound_text(placeholder))
    return min(UNBOUNDED, total)


def _images_in(block: Mapping[str, Any]) -> int:
    if block.get("type") == "image":
        return 1
    inner = block.get("content")
    if block.get("type") == "tool_result" and isinstance(inner, list):
        return sum(1 for b in inner if isinstance(b, Mapping) and b.get("type") == "image")
    return 0


def bound_system(system: str | Sequence[Mapping[str, Any]] | None, model: str | None = None) -> int:
    """Worst-case tokens of a system prompt (a string or text blocks)."""
    if not system:
        return 0
    if isinstance(system, str):
        return BOUND_BLOCK_OVERHEAD + bound_text(system)
    return min(UNBOUNDED, sum(bound_block(b, model) for b in system))


def bound_tools(tools: Sequence[Mapping[str, Any]] | None) -> int:
    """Worst-case tokens of tool definitions, the hidden tool-use system prompt included."""
    if not tools:
        return 0
    return BOUND_TOOLS_PREAMBLE + sum(
        BOUND_BLOCK_OVERHEAD + _bound_json(_without_cache_control(t)) for t in tools
    )


def _factor(model: str | None) -> float:
    info = model_info(model) if model else None
    return info.tokenizer_factor if info is not None else 1.3  # unknown: assume the denser tokenizer


def _scaled(estimate: TokenEstimate, model: str | None) -> TokenEstimate:
    return TokenEstimate(estimate.text * _factor(model), estimate.fixed)


def estimate_message(
    message: Mapping[str, Any], model: str | None = None, *, drop_thinking: bool = False
) -> TokenEstimate:
    """Estimate of one message for ``model`` (text part including the tokenizer factor, uncalibrated).
    ``drop_thinking`` gives the size once its thinking blocks are stripped."""
    content = message.get("content")
    if isinstance(content, str):
        raw = TokenEstimate(MESSAGE_OVERHEAD + BLOCK_OVERHEAD + estimate_text(content))
    else:
        raw = TokenEstimate(MESSAGE_OVERHEAD)
        for block in content or ():
            if not isinstance(block, Mapping):
                continue
            if drop_thinking and block.get("type") in ("thinking", "redacted_thinking"):
                continue
            raw = raw + estimate_block(block, model)
    return _scaled(raw, model)


def estimate_messages(messages: Iterable[Mapping[str, Any]], model: str | None = None) -> TokenEstimate:
    return sum((estimate_message(m, model) for m in messages), ZERO)


def estimate_system(
    system: str | Sequence[Mapping[str, Any]] | None, model: str | None = None
) -> TokenEstimate:
    if not system:
        return ZERO
    if isinstance(system, str):
        return _scaled(TokenEstimate(BLOCK_OVERHEAD + estimate_text(system)), model)
    return _scaled(sum((estimate_block(b, model) for b in system), ZERO), model)


def estimate_tools(tools: Sequence[Mapping[str, Any]] | None, model: str | None = None) -> TokenEstimate:
    if not tools:
        return ZERO
    raw = TOOLS_OVERHEAD + sum(_json_tokens(_without_cache_control(t)) for t in tools)
    return _scaled(TokenEstimate(raw), model)


def estimate_request(
    messages: Sequence[Mapping[str, Any]],
    *,
    model: str | None = None,
    system: str | Sequence[Mapping[str, Any]] | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    calibration: Calibration | None = None,
) -> int:
    """Estimated input tokens of a request (what ``count_tokens`` would say), calibrated when given."""
    total = estimate_system(system, model) + estimate_tools(tools, model) + estimate_messages(messages, model)
    return total.tokens(calibration.ratio if calibration is not None else 1.0)


def observed_prompt_tokens(usage: Any) -> int:
    """Every input token of one call, from its usage: uncached + cache writes + cache reads."""
    return TokenUsage.from_api(usage).prompt_tokens


@dataclass(frozen=True, slots=True)
class Calibration:
    """Per-session correction of the text estimate: a smoothed ratio of observed to estimated tokens.

    The first observation sets the ratio; later ones move it by ``weight`` (an exponential moving average),
    so a stable bias is learnt within a few turns and a single odd request (a changed system prompt, say)
    cannot swing it. Ratios are clamped to [0.25, 4]: outside that the estimate or the observation is not
    about the same request.
    """

    ratio: float = 1.0
    observations: int = 0
    weight: float = 0.5

    def observe(self, observed_tokens: int, estimate: TokenEstimate) -> Calibration:
        """A new calibration after one request estimated as ``estimate`` was billed ``observed_tokens``."""
        if estimate.text <= 0:
            return self
        sample = (observed_tokens - estimate.fixed) / estimate.text
        sample = min(4.0, max(0.25, sample))
        if self.observations == 0:
            return Calibration(sample, 1, self.weight)
        return Calibration(
            self.ratio + self.weight * (sample - self.ratio), self.observations + 1, self.weight
        )


# Arguments of messages.create about the output, which count_tokens does not take (used only for a method whose
# signature cannot be read).
_OUTPUT_ONLY = frozenset(
    {"max_tokens", "stream", "metadata", "stop_sequences", "temperature", "top_p", "top_k", "service_tier"}
)


def count_kwargs(method: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """The ``messages.create`` arguments that ``method`` (a ``count_tokens``) accepts, read from its signature:
    count_tokens takes neither the output settings (the API refuses ``max_tokens: Extra inputs are not
    permitted``) nor several create-only inputs (``container``, ``inference_geo``, ``diagnostics``, ...), which
    the SDK refuses with a TypeError. ``None`` values are left out."""
    try:
        parameters = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - a client we cannot inspect
        parameters = []
    if not parameters or any(p.kind is p.VAR_KEYWORD for p in parameters):  # a wrapper: cannot tell
        return {k: v for k, v in request.items() if k not in _OUTPUT_ONLY and v is not None}
    accepted = {p.name for p in parameters}
    return {k: v for k, v in request.items() if k in accepted and v is not None}


def _endpoint(client: Any, request: Mapping[str, Any]) -> Any:
    # Beta features (context_management for compaction) are counted by the beta endpoint.
    return client.beta.messages if request.get("betas") else client.messages


def count_tokens(client: Any, **request: Any) -> int:
    """Exact input tokens of a request from the API (``client.messages.count_tokens``): free but rate-limited,
    so use it near a limit (``RequestPlan.check_count``), not on every turn. Takes the ``messages.create``
    keyword arguments (``model``, ``**plan.request_kwargs()``); output-only ones are dropped."""
    method = _endpoint(client, request).count_tokens
    result = method(**count_kwargs(method, request))
    return int(result.input_tokens)


async def acount_tokens(client: Any, **request: Any) -> int:
    """``count_tokens`` for ``AsyncAnthropic``."""
    method = _endpoint(client, request).count_tokens
    result = await method(**count_kwargs(method, request))
    return int(result.input_tokens)
