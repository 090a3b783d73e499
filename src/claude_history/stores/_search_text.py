"""Search text, matched the same way by every backend: "every word of the query, whole words,
case-insensitive". Words are runs of letters and digits, as SQLite FTS5's unicode61 tokenizer and
PostgreSQL's 'simple' parser see them; ``message_text`` says which parts of a message are searchable."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError
from ..history import well_formed

__all__ = ["make_snippet", "message_text", "search_terms", "text_matches"]


def message_text(message: Mapping[str, Any]) -> str:
    """The human-readable text of a message, for full-text search: text blocks, tool results, search results
    and plain-text documents. Thinking, tool inputs and binary data are not indexed."""
    parts: list[str] = []
    _collect_text(message.get("content"), parts)
    text = "\n".join(part for part in parts if part)
    if not text.isascii():
        text = well_formed(text)  # a lone surrogate (see ``dumps``) as one U+FFFD: indexes hold UTF-8 text only
    return text


def _collect_text(content: Any, parts: list[str]) -> None:
    if isinstance(content, str):
        parts.append(content)
        return
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str):
                parts.append(text)
        elif kind in ("tool_result", "search_result"):
            if isinstance(block.get("title"), str):
                parts.append(block["title"])
            _collect_text(block.get("content"), parts)
        elif kind == "document":
            if isinstance(block.get("title"), str):
                parts.append(block["title"])
            source = block.get("source")
            if isinstance(source, Mapping) and source.get("type") == "text" and isinstance(source.get("data"), str):
                parts.append(source["data"])


_WORD = re.compile(r"[^\W_]+")


def search_terms(query: object) -> list[str]:
    if not isinstance(query, str):
        raise ConfigurationError(f"search query must be a string, got {type(query).__name__}")
    if query.isascii():  # lowering first finds the same words (ASCII letters stay letters): one pass, in C
        return list(dict.fromkeys(_WORD.findall(query.lower())))
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(query)))


def text_matches(text: str, terms: Sequence[str]) -> bool:
    if not terms:
        return False
    words = {word.lower() for word in _WORD.findall(text)}
    return all(term in words for term in terms)


def make_snippet(text: str, terms: Sequence[str], width: int = 160) -> str:
    """About ``width`` characters of ``text`` around the first matching word, on one line."""
    lowered = text.lower()
    position = -1
    for match in _WORD.finditer(lowered):
        if match.group() in terms:
            position = match.start()
            break
    if len(text) <= width:
        snippet = text
    else:
        start = max(0, min(position - width // 3, len(text) - width)) if position >= 0 else 0
        snippet = text[start : start + width]
        snippet = ("…" if start > 0 else "") + snippet + ("…" if start + width < len(text) else "")
    return " ".join(snippet.split())
