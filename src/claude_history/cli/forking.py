"""Forking a session from the command line (``sessions fork``, ``/fork``): only at a turn start, so the fork
can be continued; with the chat's id format, a title of its own, and without the parent's off-log spending."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConflictError
from ..history import turn_starts
from .errors import CliError
from .ids import new_session_id, title_from
from .render import content_text
from .spent import FORK_KEY, SPENT_KEY
from .store_access import check_readable

if TYPE_CHECKING:
    from ..stores.base import Store

__all__ = ["fork_session", "taken"]


def fork_session(store: Store, session_id: str, at: int | None, new_id: str | None) -> str:
    """Fork ``session_id`` keeping messages ``[0, at)`` (all when None); returns the new id."""
    data = store.load(session_id)
    check_readable(data.info)
    messages = data.message_params()
    if at is not None and at < len(messages) and at not in turn_starts(messages):
        raise CliError(_not_a_turn_start(at, messages))
    try:
        forked = store.fork(session_id, at=at, new_id=new_id or new_session_id())
    except ConflictError as exc:  # a fork only ever creates: the new id is taken
        raise CliError(taken(exc.session_id, "choose another with --new-id ID")) from exc
    kept = len(messages) if at is None else min(at, len(messages))
    title = data.info.title or (title_from(content_text(messages[0]["content"])) if messages else "")
    metadata = {k: v for k, v in data.info.metadata.items() if k != SPENT_KEY}  # the parent's spending
    # The copied replies were paid by the parent (for a fork of a fork: by whoever paid them first).
    metadata[FORK_KEY] = {"session": session_id, "messages": kept}
    store.update_session(forked, title=title_from(f"{title} (fork of {session_id} at {kept})"), metadata=metadata)
    return forked


def _not_a_turn_start(at: int, messages: list[dict[str, Any]]) -> str:
    """A fork cut inside a turn could not be continued (it would end with an unanswered message)."""
    starts = [*turn_starts(messages), len(messages)]
    before = max((i for i in starts if i < at), default=0)
    after = min(i for i in starts if i > at)
    return (
        f"--at {at} would cut a turn in two (message {at} is {_article(messages[at]['role'])} message inside a turn); "
        f"fork at a turn start: --at {before} or --at {after}"
    )


def taken(session_id: str, advice: str) -> str:
    return f"session {session_id!r} already exists in this store; {advice}, or delete it first"


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"
