"""One exception hierarchy for everything claude-history raises itself.

Errors from the Anthropic SDK (``anthropic.APIError`` and friends) are *not* wrapped: they pass through unchanged,
after the history has been left exactly as it was.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceeded",
    "ConfigurationError",
    "ConflictError",
    "DecryptionError",
    "HistoryError",
    "InvalidHistory",
    "LeaseLost",
    "SessionNotContinuable",
    "SessionNotFound",
    "StoreUnavailable",
    "ToolResultsMissing",
    "TurnInProgress",
]


class HistoryError(Exception):
    """Base class of every error raised by claude-history."""


class InvalidHistory(HistoryError, ValueError):
    """A message list the API would reject.

    ``index`` is the position of the offending message (``None`` when the list as a whole is wrong);
    the message text says what is wrong and how to fix it.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ToolResultsMissing(InvalidHistory):
    """The last reply called tools (``stop_reason`` ``tool_use``) and the new message does not answer all of
    them. ``tool_use_ids`` are the calls still waiting, so a caller can answer them (or tell its own client
    how: the HTTP service does)."""

    def __init__(self, message: str, *, index: int | None = None, tool_use_ids: list[str] | None = None) -> None:
        super().__init__(message, index=index)
        self.tool_use_ids = list(tool_use_ids or [])


class SessionNotContinuable(InvalidHistory):
    """A turn on a stored session that no turn can follow (an import, an append of the caller's own): its log
    is one the API refuses, or it ends with a message that got no reply. ``problem`` says why, in the words of
    ``history.continuation_problem``; the new message is not at fault. ``history.continuable_copy`` gives a copy
    that can go on."""

    def __init__(self, message: str, *, index: int | None = None, problem: str = "") -> None:
        super().__init__(message, index=index)
        self.problem = problem


class ConflictError(HistoryError):
    """Another writer committed to the session first (compare-and-swap on the session version failed).

    Nothing is lost: ``unsaved`` holds the messages that could not be committed (for a chat turn: the user's
    message, any tool exchanges and the reply), and ``reply`` the API's reply when there was one, so the caller can
    reload and retry or show the reply anyway.
    """

    def __init__(
        self,
        message: str,
        *,
        session_id: str,
        expected_version: int,
        actual_version: int | None,
        unsaved: list[Any] | None = None,
        reply: Any = None,
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        self.unsaved = list(unsaved or [])
        self.reply = reply


class LeaseLost(ConflictError):
    """The turn's lease on the session expired and another turn took it before this one committed
    (``Chat(on_concurrent="reject" | "enqueue")``): the store refused the commit (its fencing token is no
    longer the newest), so two turns never commit out of order. Like any ``ConflictError`` it carries the
    ``unsaved`` messages and the ``reply``; a longer ``lease_ttl`` avoids it."""


class TurnInProgress(HistoryError):
    """Another turn holds the session's lease: raised before any API call, with ``on_concurrent="reject"`` at
    once, with ``"enqueue"`` after waiting ``waited`` seconds (``lease_timeout``). Nothing was sent or
    saved; try again later."""

    def __init__(self, message: str, *, session_id: str, waited: float = 0.0) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.waited = waited


class StoreUnavailable(HistoryError):
    """The store cannot be reached or opened (server down, bad URL, missing optional dependency).

    Raised while committing a chat turn it says whether the turn may have been stored: ``may_be_stored`` is
    True when the connection failed during the append itself (the server may have committed before the
    acknowledgement was lost), False when nothing was sent, None outside a commit. ``turn_id`` is the id the
    turn was appended with: retrying ``store.append(..., turn_id=turn_id)`` with ``unsaved`` never stores it
    twice."""

    may_be_stored: bool | None = None
    turn_id: str | None = None


class SessionNotFound(HistoryError, KeyError):
    """No session with that id exists in the store."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id

    def __str__(self) -> str:
        return f"no session {self.session_id!r} in this store; check the id or list sessions with list_sessions()"


class BudgetExceeded(HistoryError):
    """The newest turn alone does not fit in the token budget; raised before any API call."""

    def __init__(self, message: str, *, needed: int, budget: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.budget = budget


class DecryptionError(HistoryError):
    """Stored content could not be decrypted: wrong key, or data tampered with. The data is left untouched."""


class ConfigurationError(HistoryError, ValueError):
    """A bad argument or setting (unknown store URL scheme, malformed price file, ...)."""
