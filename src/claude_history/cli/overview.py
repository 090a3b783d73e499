"""One row of `sessions list`: the session's metadata with what the listing derives from its log (a title and a
model when the session has none, the number of turns, the spending)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..history import turn_starts
from .ids import title_from
from .render import content_text
from .spent import Spending, spending
from .store_access import ENCRYPTION_MARK

if TYPE_CHECKING:
    from ..stores.base import SessionInfo, Store

__all__ = ["SessionRow", "derived_labels", "session_row"]


@dataclasses.dataclass
class SessionRow:
    info: SessionInfo
    turns: int | None  # None: not known (an encrypted session read without its key)
    spent: Spending | None


def derived_labels(
    info: SessionInfo, messages: Sequence[dict[str, Any]], models: Sequence[str | None]
) -> dict[str, Any]:
    """What a session without a title or model (imported, or written by the library) is shown with: its first
    user message as title, the model of its last reply. Only the missing fields."""
    changes: dict[str, Any] = {}
    if info.title is None:
        first = next((m for m in messages if m.get("role") == "user"), None)
        text = content_text(first.get("content")) if first else ""
        if text.strip():
            changes["title"] = title_from(text)
    if info.model is None:
        model = next((m for m in reversed(models) if m), None)
        if model:
            changes["model"] = model
    return changes


def session_row(store: Store, info: SessionInfo) -> SessionRow:
    """The row of one session (loads its log: a listing is a page of at most a few dozen sessions)."""
    if ENCRYPTION_MARK in info.metadata:
        return SessionRow(info, None, spending(info))
    data = store.load(info.id)
    messages = data.message_params()
    labels = derived_labels(info, messages, [m.model for m in data.messages])
    shown = dataclasses.replace(info, **labels) if labels else info
    return SessionRow(shown, len(turn_starts(messages)), spending(info, data.messages))
