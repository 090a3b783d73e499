"""The simulator's token rule and the block layout that prompt caching and thinking signatures work on.

The rule (documented in docs/simulator.md; there is no public tokenizer, claude-api-facts.md "Tokens"):

* text: ``ceil(utf8_bytes * tokenizer_factor / 4)`` (factor 1.0, or 1.3 for Claude 4.7+ and 5.x);
* every content block, tool definition and system block: +3; every message: +4 (on its first block);
* tool definition: text rule over its canonical JSON (without ``cache_control``);
* tool_use / server_tool_use: name + canonical JSON of the input; tool_result: its content
  (a string, or the sum of its blocks);
* thinking: the thinking text (signatures are free); redacted_thinking: the data string; compaction: its
  content;
* image: ceil(w/28) * ceil(h/28) after downscaling (``claude_history.images``); url/file images count the cap;
* PDF document: 3,068 tokens a page (1,500 text + 1,568 page image), pages counted from ``/Type /Page``
  objects; url/file documents count one page; text documents by the text rule; plus title and context;
* any other block: the text rule over its canonical JSON.

``count_tokens`` returns the sum over the blocks the model sees; ``usage`` splits that same sum.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from fractions import Fraction
from json.encoder import encode_basestring
from typing import Any

from claude_history.images import decode_base64, image_limits, image_tokens

from ._common import canonical, canonical_block, digest
from ._validation import Request

__all__ = [
    "BLOCK_OVERHEAD",
    "MESSAGE_OVERHEAD",
    "PDF_PAGE_TOKENS",
    "Counter",
    "Layout",
    "Position",
    "build_layout",
    "compacted_layout",
]

BLOCK_OVERHEAD = 3
MESSAGE_OVERHEAD = 4
PDF_PAGE_TOKENS = 1_500 + 1_568
_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
UNCACHEABLE = ("thinking", "redacted_thinking")


class Counter:
    """Token counts for one model."""

    def __init__(
        self, model: str, tokenizer_factor: float, image_sizes: dict[int, tuple[int, int]] | None = None
    ):
        self.factor = Fraction(str(tokenizer_factor)).limit_denominator(1000)
        self.limits = image_limits(model)
        self.image_sizes = image_sizes or {}

    def text(self, text: str) -> int:
        n = len(text.encode("utf-8")) * self.factor.numerator
        d = 4 * self.factor.denominator
        return -(-n // d)

    def json(self, value: Any) -> int:
        return self.text(canonical(canonical_block(value)))

    def block(self, block: dict[str, Any]) -> int:
        """Tokens of one content block, overhead included."""
        return BLOCK_OVERHEAD + self._content(block)

    def _content(self, block: dict[str, Any]) -> int:
        kind = block.get("type")
        if kind == "text":
            return self.text(block["text"])
        if kind == "thinking":
            return self.text(block["thinking"])
        if kind == "redacted_thinking":
            return self.text(block["data"])
        if kind == "compaction":
            return self.text(block.get("content") or "")
        if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            return self.text(block["name"]) + self.json(block["input"])
        if kind == "tool_result":
            content = block.get("content")
            if content is None:
                return 0
            if isinstance(content, str):
                return self.text(content)
            return sum(self.block(inner) for inner in content)
        if kind == "image":
            return self._image(block["source"])
        if kind == "document":
            return self._document(block)
        if kind == "search_result":
            return (
                self.text(block["title"])
                + self.text(block["source"])
                + sum(self.block(inner) for inner in block["content"])
            )
        return self.json(block)

    def _image(self, source: dict[str, Any]) -> int:
        size = self.image_sizes.get(id(source))
        if size is None:  # url / file images: the size is unknown here, count the cap
            return self.limits[1]
        return image_tokens(size[0], size[1], long_edge_cap=self.limits[0], token_cap=self.limits[1])

    def _document(self, block: dict[str, Any]) -> int:
        source = block["source"]
        kind = source.get("type")
        extra = self.text(block.get("title") or "") + self.text(block.get("context") or "")
        if kind == "text":
            return extra + self.text(source["data"])
        if kind == "content":
            content = source["content"]
            if isinstance(content, str):
                return extra + self.text(content)
            return extra + sum(self.block(inner) for inner in content)
        if kind == "base64":
            pages = len(_PDF_PAGE.findall(decode_base64(source["data"])))
            return extra + max(1, pages) * PDF_PAGE_TOKENS
        return extra + PDF_PAGE_TOKENS


@dataclass
class Position:
    """One block of the prefix, in order tools -> system -> messages."""

    key: str  # identity of the prefix up to and including this block (prompt caching)
    end: int  # tokens up to and including this block
    cache_control: dict[str, Any] | None
    cacheable: bool  # automatic caching may put its breakpoint here


@dataclass
class Layout:
    positions: list[Position]
    total: int
    bind_start: str  # thinking-binding chain state after tools and system
    bind_end: str  # ... after the last block the model sees
    # thinking-binding chain state before each thinking block, by (message index, block index)
    bound_prefix: dict[tuple[int, int], str] = field(default_factory=dict)


def chain(state: str, role: str, first: bool, block: dict[str, Any]) -> str:
    """Next state of the thinking-binding chain: the identity of everything up to ``block``."""
    return _link(state, role, first, _block_json(block))


def _link(state: str, role: str, first: bool, block_json: str) -> str:
    return hashlib.sha256(f"{state}|{role}|{int(first)}|{block_json}".encode()).hexdigest()


def build_layout(req: Request, counter: Counter) -> Layout:
    """Token counts and prefix identities of every block the model sees."""
    positions: list[Position] = []
    total = 0
    key = digest(["sim-cache-v1", req.model])

    def add(descriptor: str, tokens: int, cc: dict[str, Any] | None, cacheable: bool = True) -> None:
        nonlocal total, key
        total += tokens
        key = hashlib.sha256(f"{key}|{descriptor}".encode()).hexdigest()
        positions.append(Position(key, total, cc, cacheable))

    for tool in req.tools:
        tool_json = canonical(canonical_block(tool))
        add("tool|" + tool_json, BLOCK_OVERHEAD + counter.text(tool_json), tool.get("cache_control"))
    for block in req.system:
        add("system|" + canonical(canonical_block(block)), counter.block(block), block.get("cache_control"))

    # Only models that bind thinking to its prefix need the binding chain (the other models sign the text
    # alone).
    binds = req.info.binds_thinking
    bind = digest(["sim-bind-v1", canonical_block(req.tools), canonical_block(req.system)]) if binds else ""
    bind_start = bind
    bound: dict[tuple[int, int], str] = {}
    # Changing tool_choice or thinking settings, or adding or removing an image anywhere, invalidates the
    # messages
    # part of the cache (claude-api-facts.md, "Prompt caching"): salt the first message block with them.
    blocks = req.effective_blocks()
    images = sum(1 for _i, _j, b in blocks if _has_image(b))
    salt = canonical([req.tool_choice, req.thinking, images])
    previous_message = -1
    for i, j, block in blocks:
        role = req.messages[i]["role"]
        first = i != previous_message
        previous_message = i
        tokens = counter.block(block) + (MESSAGE_OVERHEAD if first else 0)
        cc = block.get("cache_control")
        if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            for inner in block["content"]:  # a marker inside a tool_result marks the tool_result's position
                if isinstance(inner, dict) and inner.get("cache_control") is not None:
                    cc = inner["cache_control"]
        block_json = _block_json(block)
        add(f"msg|{role}|{int(first)}|{salt}|{block_json}", tokens, cc, block.get("type") not in UNCACHEABLE)
        salt = ""
        if binds:
            if block.get("type") == "thinking":
                bound[(i, j)] = bind
            bind = _link(bind, role, first, block_json)
    return Layout(positions, total, bind_start, bind, bound)


def compacted_layout(req: Request, layout: Layout, compaction: dict[str, Any], counter: Counter) -> Layout:
    """The context the reply is written from after server compaction: tools, system and the new compaction
    block (what the API keeps; claude-api-facts.md, "Server-side features"). Tools and system keep their
    prefix identities and cache markers; the compaction block is new content without a marker, and not a place
    for automatic caching."""
    head = layout.positions[: len(req.tools) + len(req.system)]
    start = head[-1].end if head else 0
    key = head[-1].key if head else digest(["sim-cache-v1", req.model])
    total = start + counter.block(compaction) + MESSAGE_OVERHEAD
    key = hashlib.sha256(f"{key}|compacted|{_block_json(compaction)}".encode()).hexdigest()
    return Layout([*head, Position(key, total, None, False)], total, layout.bind_start, layout.bind_start)


def _block_json(block: dict[str, Any]) -> str:
    """Canonical JSON of a block; plain text blocks (most of a long history) skip the generic walk."""
    text = block.get("text")
    if len(block) == 2 and isinstance(text, str) and block.get("type") == "text":
        return '{"text":' + encode_basestring(text) + ',"type":"text"}'  # == canonical(block), faster
    return canonical(canonical_block(block))


def _has_image(block: dict[str, Any]) -> bool:
    if block.get("type") == "image":
        return True
    content = block.get("content")
    if block.get("type") == "tool_result" and isinstance(content, list):
        return any(isinstance(inner, dict) and inner.get("type") == "image" for inner in content)
    return False
