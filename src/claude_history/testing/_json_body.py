"""The request body as the API's JSON parser reads it: strict about lone surrogates, where Python's is not.

Python's ``json`` decodes ``"\\ud800"`` (a UTF-16 surrogate escape without its pair) into a string no UTF-8
encoder can write; the API refuses such a body with a 400 (anthropics/claude-code#3277, #60394, #50919:
``The request body is not valid JSON: no low surrogate in string: line 1 column 217026 (char 217025)``), and
every later request that resends the message fails the same way. A strict oracle must refuse it too.
"""

from __future__ import annotations

import re

__all__ = ["lone_surrogate"]

# Every backslash escape in order, so an escaped backslash (``\\\\``) is never read as the start of ``\\u``.
_ESCAPE = re.compile(rb"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_MAYBE = re.compile(rb"\\u[dD][89a-fA-F]")  # a surrogate escape anywhere (the common case: none, one search)


def lone_surrogate(raw: bytes) -> str | None:
    """The API's message for the first unpaired surrogate escape in ``raw`` (None when there is none)."""
    if _MAYBE.search(raw) is None:
        return None
    pending: re.Match[bytes] | None = None  # a high surrogate waiting for its low one, right after it
    for match in _ESCAPE.finditer(raw):
        escape = match.group(1)
        code = int(escape[1:], 16) if escape[:1] == b"u" and len(escape) == 5 else None
        is_low = code is not None and 0xDC00 <= code <= 0xDFFF
        if pending is not None:
            if match.start() != pending.end() or not is_low:
                return _message("no low surrogate in string", raw, pending.end())
            pending = None
            continue
        if code is not None and 0xD800 <= code <= 0xDBFF:
            pending = match
        elif is_low:
            return _message("invalid high surrogate in string", raw, match.start())
    if pending is not None:
        return _message("no low surrogate in string", raw, pending.end())
    return None


def _message(what: str, raw: bytes, at: int) -> str:
    text = raw[:at].decode("utf-8", "replace")
    line = text.count("\n") + 1
    column = len(text) - (text.rfind("\n") + 1) + 1
    return f"The request body is not valid JSON: {what}: line {line} column {column} (char {len(text)})"
