"""Where a rewind cuts and what a fork copies, the same on every backend: the start of the last turn (found
from the tail of the log), an explicit rewind index, and the session a fork creates."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import ConfigurationError
from ._cas import new_incarnation
from ._checks import check_session_id, new_session_id
from ._times import from_us
from ._validation import MAX_INTEGER
from .base import SessionData, SessionInfo

__all__ = [
    "REWIND_RETRIES",
    "TAIL_CHUNK",
    "check_fork_point",
    "check_rewind_index",
    "find_last_turn",
    "fork_info",
    "fork_session",
    "rewind_target",
]

REWIND_RETRIES = 8  # a rewind of "the last turn as it is now" looks again this often when a writer slips in


def rewind_target(messages: Sequence[Mapping[str, Any]], to: int | None) -> int:
    """Where a rewind cuts: ``to`` itself, checked, or by default the start of the last turn (the last user
    message that is not only tool results, per ``history.turn_starts``)."""
    count = len(messages)
    if to is None:
        from ..history import last_turn_start

        start = last_turn_start(messages)
        if start is None:
            raise ConfigurationError("the session has no turn to rewind")
        return start
    return check_rewind_index(to, count)


def check_rewind_index(to: object, count: int | None = None) -> int:
    """An explicit rewind target: an int from 0 to ``count`` (the session's message count; ``None``: check the
    type only, before the count is known)."""
    if isinstance(to, bool) or not isinstance(to, int) or to < 0 or to > (MAX_INTEGER if count is None else count):
        upto = "n (the message count)" if count is None else str(count)
        raise ConfigurationError(f"rewind target must be an index from 0 to {upto}, got {to!r}")
    return to


TAIL_CHUNK = 16  # messages read per step, growing 4x, when looking for the start of the last turn


def find_last_turn(read: Callable[[int, int], Sequence[Mapping[str, Any]]], count: int) -> int:
    """The start of the last turn, reading the log backwards in growing chunks: ``read(start, end)`` returns
    messages ``[start, end)``. A rewind then costs about one turn however long the session is."""
    from ..history import last_turn_start

    end, size = count, TAIL_CHUNK
    while end > 0:
        start = max(0, end - size)
        found = last_turn_start(read(start, end))
        if found is not None:
            return start + found
        end, size = start, size * 4
    raise ConfigurationError("the session has no turn to rewind")


def check_fork_point(at: object, count: int) -> int:
    """A fork point: an int from 0 to ``count`` (the session's message count), ``None`` meaning ``count``."""
    if at is None:
        return count
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= count:
        raise ConfigurationError(f"fork point must be an index from 0 to {count}, got {at!r}")
    return at


def fork_info(info: SessionInfo, *, at: int, new_id: str, now: int) -> SessionInfo:
    """The session record of a fork of ``info`` at ``at`` (checked) under ``new_id`` (checked): the metadata, a
    new incarnation, version 1 if it holds messages (as if appended in one go), else 0."""
    stamp = from_us(now)
    return replace(
        info,
        id=new_id,
        version=1 if at else 0,
        created_at=stamp,
        updated_at=stamp,
        message_count=at,
        tags=tuple(info.tags),
        metadata=dict(info.metadata),
        incarnation=new_incarnation(),
    )


def fork_session(data: SessionData, *, at: int | None, new_id: str | None, now: int) -> SessionData:
    """The session a fork creates: messages ``[0, at)`` with their timestamps, the metadata, and the summaries
    that lie inside the prefix. Its version is 1 if it holds messages (as if appended in one go), else 0."""
    at = check_fork_point(at, len(data.messages))
    target = check_session_id(new_id) if new_id is not None else new_session_id()
    info = fork_info(data.info, at=at, new_id=target, now=now)
    return SessionData(
        info=info,
        messages=list(data.messages[:at]),
        summaries=[summary for summary in data.summaries if summary.end <= at],
    )
