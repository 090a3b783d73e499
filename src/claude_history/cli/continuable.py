"""Whether the chat can continue a stored session, and the repaired copy that can when it cannot.

The chat appends the user's next message to the stored log, so the log must pass the API's rules and end with
a reply. A fork cut after a user message, or an imported history, may not: without this check every turn
would fail with advice meant for Python callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..history import continuable_copy, continuation_problem, left_out
from .errors import cli_advice

__all__ = ["continuable_copy", "left_out", "why_not_continuable"]


def why_not_continuable(messages: Sequence[dict[str, Any]], session_id: str) -> str | None:
    """Why the chat cannot go on from ``messages`` (None when it can), with the command that repairs it."""
    problem = continuation_problem(messages)
    return None if problem is None else cli_advice(problem).replace("ID`", f"{session_id}`")

