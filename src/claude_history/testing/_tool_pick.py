"""Which custom tool a default reply calls, and with what input: a deterministic stand-in for a model's choice.

A test model must exercise its caller's tool loop: asked "What is the weather in SF?" with ``get_weather``
("Get the weather for a specific location") offered, it calls ``get_weather``. The choice depends only on the
request: the words the user typed and each tool's name and description (rules in docs/simulator.md, "Default
replies").
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Pick", "from_schema", "pick_tool", "tool_words", "words"]

# Words too common to say which tool a user wants: asking "what is the ..." must not call every tool whose
# description says "the".
_STOPWORDS = """a about after all also am an and any are as at be been before but by can could did do does for from get
    give had has have he her here him his how i if in into is it its just let me more most my no not now of on
    one or our out please she should so some tell than that the their them then there these they this to too
    up us use using very was we were what when where which who why will with would you your"""
STOPWORDS = frozenset(_STOPWORDS.split())
# A tool is relevant when at least 1/RELEVANT of the meaningful words of the user's text are its words.
RELEVANT = 4
_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def words(text: str) -> set[str]:
    """The meaningful words of ``text``: lower case, ``snake_case`` and ``camelCase`` split, stopwords
    dropped, plurals made singular (:func:`_singular`)."""
    out = set()
    for word in _WORD.findall(_CAMEL.sub(" ", text).lower()):
        if word in STOPWORDS or len(word) < 2:
            continue
        out.add(_singular(word))
    return out


def _singular(word: str) -> str:
    """``cities`` -> ``city``, ``searches`` -> ``search``, ``tools`` -> ``tool``; ``status``, ``class``,
    ``analysis`` and short words stay."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    return word[:-1]


def tool_words(tool: dict[str, Any]) -> set[str]:
    """The words of a tool's name and description."""
    return words(f"{tool['name']} {tool.get('description') or ''}")


def _named(tool: dict[str, Any], low: str) -> int | None:
    """Where the tool's exact name appears in the (lower-case) text as a word, if it does."""
    found = re.search(r"(?<![a-z0-9_-])" + re.escape(tool["name"].lower()) + r"(?![a-z0-9_-])", low)
    return found.start() if found else None


class Pick:
    """A tool a default reply calls: the tool and the words of the user's text that led to it."""

    def __init__(self, tool: dict[str, Any], matched: set[str]) -> None:
        self.tool = tool
        self.matched = matched


def pick_tool(
    custom: list[dict[str, Any]], choice: dict[str, Any] | None, text: str, *, overlap: bool = True
) -> Pick | None:
    """The tool to call for ``text`` among ``custom`` tools, or ``None`` for a text reply.

    ``tool_choice`` ``tool`` forces that tool, ``none`` forbids all; otherwise a tool named in the text wins
    (the earliest mention), then (``overlap``) the tool sharing the most words with the text (name and
    description; ties go to the first offered) if they are at least a quarter of the text's words (a long
    message that happens to contain "look" does not call ``lookup``); ``any`` falls back to the first tool.
    """
    if not custom:
        return None
    kind = (choice or {"type": "auto"})["type"]
    if kind == "none":
        return None
    if kind == "tool":
        assert choice is not None
        forced = next((t for t in custom if t["name"] == choice["name"]), None)
        return Pick(forced, set()) if forced is not None else None
    low = text.lower()
    mentions = [(at, k) for k, t in enumerate(custom) if (at := _named(t, low)) is not None]
    if mentions:
        return Pick(custom[min(mentions)[1]], set())
    if overlap:
        said = words(text)
        best: tuple[int, int] | None = None
        for k, tool in enumerate(custom):
            shared = len(said & tool_words(tool))
            if shared and shared * RELEVANT >= len(said) and (best is None or shared > best[0]):
                best = (shared, k)
        if best is not None:
            tool = custom[best[1]]
            return Pick(tool, said & tool_words(tool))
    return Pick(custom[0], set()) if kind == "any" else None


# A value for each string ``format`` the structured-outputs docs list (platform.claude.com/docs/en/
# build-with-claude/structured-outputs, "JSON Schema limitations": supported string formats).
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00",
    "date": "2026-01-01",
    "duration": "P1D",
    "email": "user@example.com",
    "hostname": "example.com",
    "uri": "https://example.com/",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def from_schema(schema: Any, depth: int = 0, text: str | None = None, root: Any = None) -> Any:
    """A value that fits a JSON schema: default, const, first enum value, or a fixed value per type that
    honours the bounds (``minimum``/``maximum``, ``minLength``/``maxLength``, ``minItems``, string
    ``format``); ``$ref`` into ``$defs`` / ``definitions`` is followed.

    ``text`` (when given) is the value of every free string (a search tool's query), else ``"example"``.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 16:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return from_schema(target, depth + 1, text, root)
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return from_schema(schema[key][0], depth + 1, text, root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        required = schema.get("required")
        names = [n for n in props if n in required] if isinstance(required, list) else list(props)
        return {n: from_schema(props[n], depth + 1, text, root) for n in names}
    if kind == "array":
        items = schema.get("items")
        low = schema.get("minItems", 1)
        n = max(1, low) if isinstance(low, int) else 1
        if isinstance(schema.get("maxItems"), int):
            n = min(n, schema["maxItems"])
        return [from_schema(items, depth + 1, text, root) if items else None for _ in range(n)]
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    value = _FORMATS.get(str(schema.get("format")), text if text is not None else "example")
    shortest, longest = schema.get("minLength"), schema.get("maxLength")
    if isinstance(shortest, int) and len(value) < shortest:
        value += "x" * (shortest - len(value))
    if isinstance(longest, int) and len(value) > longest:
        value = value[:longest]
    return value


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    value: float = 1 if integer else 1.5
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if isinstance(low, (int, float)):
        value = low + (1 if "minimum" not in schema else 0)
    elif isinstance(high, (int, float)) and value >= high:
        value = high - (1 if "maximum" not in schema else 0)
    return int(value) if integer else float(value)
