"""How the command line names, titles and tags sessions: one id format, one title rule, one tag edit."""

from __future__ import annotations

import uuid

from ..history import well_formed

__all__ = ["TITLE_LENGTH", "edited_tags", "missing_removals", "new_session_id", "title_from"]

TITLE_LENGTH = 60


def new_session_id() -> str:
    """A short random id (12 hex digits), easy to type after ``--session``."""
    return uuid.uuid4().hex[:12]


def title_from(text: str) -> str:
    """A one-line title from a message: its words, clipped to ``TITLE_LENGTH`` characters (a lone surrogate,
    which no store takes in a title, as U+FFFD)."""
    words = " ".join(well_formed(text).split())
    return words if len(words) <= TITLE_LENGTH else words[: TITLE_LENGTH - 1].rstrip() + "…"


def edited_tags(current: tuple[str, ...] | list[str], words: list[str]) -> list[str]:
    """``current`` with each word added, or removed when written ``-TAG`` (``sessions tag``, ``/tag``)."""
    tags = list(current)
    for word in words:
        if word.startswith("-"):
            tags = [t for t in tags if t != word[1:]]
        elif word not in tags:
            tags.append(word)
    return tags


def missing_removals(current: tuple[str, ...] | list[str], words: list[str]) -> str | None:
    """What to say when a ``-TAG`` names a tag the session does not have (a typo would otherwise pass unseen)."""
    absent = [word[1:] for word in words if word.startswith("-") and word[1:] not in current]
    if not absent:
        return None
    return f"no tag {', '.join(map(repr, absent))} to remove (the tags were: {', '.join(current) or 'none'})"
