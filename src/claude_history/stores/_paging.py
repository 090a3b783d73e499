"""Keyset pagination of ``list_sessions``: one rule for every backend.

The listing's order is ``updated_at`` newest first, then ``id`` in code-point order (the same as UTF-8 byte
order, PostgreSQL's ``COLLATE "C"``, SQLite's ``BINARY`` and Redis's lexicographic ties). A page after a
``SessionCursor`` holds the sessions strictly after it in that order; the SQL backends and Redis ask their
index for exactly that range, the in-process backends filter with ``listing_key`` below."""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ConfigurationError
from ._checks import check_session_id
from ._times import to_us
from .base import SessionCursor, SessionInfo

__all__ = ["check_cursor", "listing_key", "sorted_page"]


def check_cursor(after: object) -> tuple[int, str] | None:
    """``after`` as (updated_at in microseconds, id), or None; a clear error for anything but a cursor."""
    if after is None:
        return None
    if not isinstance(after, SessionCursor):
        raise ConfigurationError(
            f"after must be a SessionCursor (SessionCursor.after(last_session_of_the_page)), got {type(after).__name__}"
        )
    return to_us(after.updated_at, "after.updated_at"), check_session_id(after.id)


def listing_key(info: SessionInfo) -> tuple[int, str]:
    """A session's place in the listing: smaller comes first."""
    return -to_us(info.updated_at), info.id


def sorted_page(infos: Iterable[SessionInfo], after: object, offset: int, limit: int) -> list[SessionInfo]:
    """One page of a listing held in memory (the memory and file backends)."""
    cursor = check_cursor(after)
    ordered = sorted(infos, key=listing_key)
    if cursor is not None:
        bound = (-cursor[0], cursor[1])
        ordered = [info for info in ordered if listing_key(info) > bound]
    return ordered[offset : offset + limit]
