"""Sessions a chat cannot continue, said in HTTP terms: an imported history the API would reject, or a log that
ends with a user message that got no reply. Each turn on one would fail before the upstream call, with the
library's advice to call ``claude_history.repair()``, which an HTTP client cannot reach; the service names
``POST /v1/sessions/{id}/repair`` instead (the CLI's ``sessions repair``: a copy that can continue, the session
itself kept as it is)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..history import continuation_problem
from .errors import ApiError, http_advice, repair_endpoint

__all__ = ["problem_of", "stuck"]


def problem_of(messages: Sequence[dict[str, Any]], session_id: str) -> str | None:
    """Why no turn can follow ``messages`` (None when one can), and how to get a session where one can."""
    problem = continuation_problem(messages)
    if problem is None:
        return None
    advice = http_advice(problem, session_id)
    if "/repair" not in advice:
        advice += f"; {repair_endpoint(session_id)} writes a copy that can go on (this session is kept as it is)"
    return advice


def stuck(messages: Sequence[dict[str, Any]], session_id: str) -> ApiError | None:
    """The 400 for a turn on a session whose stored log cannot take one (None when it can)."""
    problem = problem_of(messages, session_id)
    return None if problem is None else ApiError(400, f"session {session_id!r} cannot be continued: {problem}")
