"""Whether the chat can continue a stored session, and the repaired copy that can when it cannot.

The chat appends the user's next message to the stored log, so the log must pass the API's rules and end with
a reply. A fork cut after a user message, or an imported history, may not: without this check every turn
would fail with advice meant for Python callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InvalidHistory
from ..history import repair, turn_starts, validate
from .errors import cli_advice

__all__ = ["continuable_copy", "left_out", "why_not_continuable"]


def why_not_continuable(messages: Sequence[dict[str, Any]], session_id: str) -> str | None:
    """Why the chat cannot go on from ``messages`` (None when it can)."""
    if not messages:
        return None
    try:
        validate(messages, for_sending=False)
    except InvalidHistory as exc:
        return "the API would reject its history: " + cli_advice(str(exc)).replace("ID`", f"{session_id}`")
    if _ends_unanswered(messages):
        return f"it ends with a user message (#{len(messages) - 1}) that has no reply"
    return None


def continuable_copy(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``sessions repair`` stores: ``history.repair`` (dropped empties, merged runs, closed tool calls),
    without a last turn that never got a reply (the original session keeps it). Never raises for content."""
    current = list(messages)
    for _ in range(len(messages) + 2):  # each round drops at least one message
        while current and _ends_unanswered(current):
            current.pop()
        if not current:
            return []
        try:
            fixed = repair(current)
        except InvalidHistory:  # the newest user message holds nothing sendable: its turn goes
            current = current[: max(i for i, m in enumerate(current) if m.get("role") == "user")]
            continue
        if not fixed or not _ends_unanswered(fixed):
            return fixed
        # repair closed a tool call with an "interrupted" result: that turn has no reply, so it goes too.
        starts = turn_starts(fixed)
        current = fixed[: starts[-1]] if starts else []
    return []


def left_out(original: Sequence[dict[str, Any]], copy: Sequence[dict[str, Any]]) -> list[str]:
    """What the user said in ``original`` that ``copy`` no longer holds (a last turn that never got a reply
    is left out of a repaired copy): said, so that the user can send it again instead of losing it."""
    from .render import content_text

    kept = "\n".join(content_text(m.get("content")) for m in copy if m.get("role") == "user")
    said = [content_text(original[i].get("content")) for i in turn_starts(original)]
    return [text for text in said if text.strip() and text not in kept]


def _ends_unanswered(messages: Sequence[dict[str, Any]]) -> bool:
    return messages[-1].get("role") == "user"
