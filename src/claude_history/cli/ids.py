"""How the command line names and titles sessions: one id format and one title rule for chats, forks, imports."""

from __future__ import annotations

import uuid

__all__ = ["TITLE_LENGTH", "new_session_id", "title_from"]

TITLE_LENGTH = 60


def new_session_id() -> str:
    """A short random id (12 hex digits), easy to type after ``--session``."""
    return uuid.uuid4().hex[:12]


def title_from(text: str) -> str:
    """A one-line title from a message: its words, clipped to ``TITLE_LENGTH`` characters."""
    words = " ".join(text.split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"
