"""Whether the chat can continue a stored session, and the repaired copy that can when it cannot.

The chat appends the user's next message to the stored log, so the log must pass the API's rules and end with
a reply. A fork cut after a user message, or an imported history, may not: without this check every turn
would fail with advice meant for Python callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InvalidHistory
from ..history import repair, validate
from .errors import cli_advice

__all__ = ["continuable_copy", "why_not_continuable"]


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
    without a trailing user message that never got a reply (the original session keeps it)."""
    fixed = repair(messages)
    while fixed and _ends_unanswered(fixed):
        fixed.pop()
    return fixed


def _ends_unanswered(messages: Sequence[dict[str, Any]]) -> bool:
    return messages[-1].get("role") == "user"
