"""Money spent on replies that are no longer in the log: undone turns and replies stopped with Ctrl-C.

The log is the truth for the conversation, but not for the bill: an undone reply was paid for, and so was the
part of a reply streamed before Ctrl-C. Their usage is kept in the session's ``metadata`` under ``SPENT_KEY``
(a list of ``{"model", "usage", "reason", "at"}``), so the session's totals in the chat, ``sessions show``,
``sessions list`` and ``cost`` include them, shown apart from the replies still in the log.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..pricing import PricingWarning, cost_of
from ..usage import TokenUsage

if TYPE_CHECKING:
    from ..stores.base import SessionInfo, Store, StoredMessage

__all__ = [
    "FORK_KEY",
    "SPENT_KEY",
    "Spending",
    "inherited",
    "off_log",
    "priced",
    "record_interrupted",
    "record_spent",
    "spending",
]

SPENT_KEY = "claude_history_cli_off_log_usage"
# A fork copies its parent's first messages with their usage: they were paid once, by the parent.
FORK_KEY = "claude_history_cli_forked_from"  # {"session": parent id, "messages": how many were copied}


def record_spent(
    store: Store, session_id: str, items: Iterable[tuple[str | None, Mapping[str, Any]]], reason: str
) -> None:
    """Add the usage of replies leaving the log (``reason``: ``"undone"`` or ``"interrupted"``) to the session's
    record. A session that does not exist yet (Ctrl-C during its first reply) is created empty to hold it."""
    at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    new = [{"model": model, "usage": dict(usage), "reason": reason, "at": at} for model, usage in items if usage]
    if not new:
        return
    from ..errors import SessionNotFound

    try:
        metadata = dict(store.get_session(session_id).metadata)
    except SessionNotFound:
        store.update_session(session_id, create=True)
        metadata = {}
    metadata[SPENT_KEY] = [*off_log(metadata), *new]
    store.update_session(session_id, metadata=metadata)


def record_interrupted(store: Store, session_id: str, snapshot: Any) -> None:
    """Keep on record what a reply stopped with Ctrl-C cost: its input as the API reported it at the start,
    its output estimated from the text received (the count arrives only with the last event)."""
    if snapshot is None:  # no reply had started: nothing known to be billed
        return
    usage = dict(snapshot.usage.model_dump(exclude_none=True)) if snapshot.usage else {}
    streamed = "".join(getattr(b, "text", "") or getattr(b, "thinking", "") for b in snapshot.content)
    if streamed:
        from ..tokens import estimate_text

        usage["output_tokens"] = max(int(usage.get("output_tokens") or 0), round(estimate_text(streamed)))
    record_spent(store, session_id, [(snapshot.model, usage)], "interrupted")


def off_log(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The recorded usage of replies no longer in the log (ill-formed records are skipped, never fatal)."""
    records = metadata.get(SPENT_KEY)
    if not isinstance(records, list):
        return []
    return [r for r in records if isinstance(r, dict) and isinstance(r.get("usage"), dict)]


def inherited(metadata: Mapping[str, Any]) -> int:
    """How many of the first messages a fork copied from its parent (their cost is the parent's)."""
    record = metadata.get(FORK_KEY)
    count = record.get("messages") if isinstance(record, dict) else None
    return count if isinstance(count, int) and count > 0 else 0


@dataclass
class Spending:
    """A session's token usage and cost: replies in the log plus those that left it."""

    usage: TokenUsage
    cost: float
    unpriced: int  # replies whose model has no price (their cost is not in ``cost``)
    replies: int
    off_log_cost: float
    off_log_replies: int

    @property
    def complete(self) -> bool:
        return self.unpriced == 0


def priced(model: str | None, usage: Mapping[str, Any]) -> float | None:
    """The cost of one API call; None when its model has no price (the display says so, no warning noise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PricingWarning)
        return cost_of(usage, model)


def spending(info: SessionInfo, messages: Sequence[StoredMessage] = ()) -> Spending:
    """Totals of a session: ``messages`` (the log, when loaded; a fork's copied prefix left out, the parent paid
    for it) and the off-log record in ``info.metadata``."""
    total = Spending(TokenUsage(), 0.0, 0, 0, 0.0, 0)
    skip = inherited(info.metadata)
    for message in messages:
        if message.seq < skip:
            continue
        if message.usage:
            _add(total, message.model, message.usage, off_log=False)
    for record in off_log(info.metadata):
        model = record.get("model")
        _add(total, model if isinstance(model, str) else None, record["usage"], off_log=True)
    return total


def _add(total: Spending, model: str | None, usage: Mapping[str, Any], *, off_log: bool) -> None:
    total.usage = total.usage + TokenUsage.from_api(usage)
    total.replies += 1
    total.off_log_replies += off_log
    cost = priced(model, usage)
    if cost is None:
        total.unpriced += 1
        return
    total.cost += cost
    if off_log:
        total.off_log_cost += cost
