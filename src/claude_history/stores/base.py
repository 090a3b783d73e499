"""The Store contract shared by every backend (memory, sqlite, file, postgres, redis, and encrypted wrappers).

Principles (../shared/DESIGN.md): the stored log is the truth and is append-only per session; a turn is appended
atomically with compare-and-swap on the session version; summaries are derived records stored beside the log.

Versions: a session that does not exist has version 0. Every successful ``append`` or ``rewind`` adds exactly 1.
``append(..., expected_version=0)`` creates the session; if it already exists that is a ``ConflictError``.
Metadata updates (title, tags, ...) do not change the version.

Incarnations: a session deleted and created again under the same id is another session. Each creation gives
it a new ``incarnation`` (an opaque token); ``append(..., incarnation=...)`` compares it with the version, so
a writer holding the old session (a stale ``Chat``) gets a ``ConflictError``, never a silent append at the
same version of the new one. Sessions written before incarnations existed have ``None`` (not compared).
A bare ``incarnation`` names a session the writer read, so an append never creates a session under it (that
session was deleted: ``ConflictError``); ``incarnation=_cas.creating(token)`` creates one under ``token``.

Idempotent commits: ``append(..., turn_id=...)`` records the id of the turn it committed. When the
acknowledgement of a commit is lost (the server committed, the connection dropped) the same append retried
with the same ``turn_id`` finds it committed and returns the version it produced instead of storing the turn
twice. Only the last append is remembered: any later append or rewind turns a retry into a ``ConflictError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "UNSET",
    "AsyncCheckpointStore",
    "AsyncLeaseStore",
    "AsyncStore",
    "CheckpointStore",
    "Entry",
    "LeaseStore",
    "SearchHit",
    "SessionCursor",
    "SessionData",
    "SessionInfo",
    "Store",
    "StoredMessage",
    "Summary",
    "UsageRecord",
    "WouldBlock",
]


class WouldBlock(Exception):
    """A ``*_nowait`` read found it would have to wait for a lock: the caller makes the blocking call on a
    thread instead (``ThreadedAsyncStore``). Never reaches a user."""


class _Unset:
    """Marker for "leave this field as it is" in ``update_session``."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Entry:
    """A message to append: a ``MessageParam`` dict plus, for an assistant reply, the model and usage of its call."""

    message: Mapping[str, Any]  # {"role": "user"|"assistant", "content": str | list[block dict]}
    model: str | None = None
    usage: Mapping[str, Any] | None = None  # Usage.model_dump(exclude_none=True) of the API call


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One row of the log. ``seq`` is the 0-based position in the session. Slotted: a load builds one per
    message, and an object without a ``__dict__`` is one allocation (and one object for the garbage collector
    to walk) instead of two."""

    seq: int
    message: dict[str, Any]
    model: str | None
    usage: dict[str, Any] | None
    created_at: datetime

    @property
    def role(self) -> str:
        return str(self.message["role"])


@dataclass(frozen=True)
class UsageRecord:
    """The usage of one reply in the log, without its content: what a session's cost is added up from."""

    seq: int
    model: str | None
    usage: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Summary:
    """A derived record: a summary of messages ``[start, end)`` of the log, written by ``model``."""

    start: int
    end: int
    text: str
    model: str | None = None
    usage: Mapping[str, Any] | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class SessionInfo:
    id: str
    version: int
    created_at: datetime
    updated_at: datetime
    message_count: int = 0
    title: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    model: str | None = None
    system: str | list[dict[str, Any]] | None = None  # the session's system prompt, kept with it
    expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # free-form, JSON-serialisable
    incarnation: str | None = None  # new at each creation of the id (None: written before incarnations)


@dataclass(frozen=True)
class SessionCursor:
    """Where a page of ``list_sessions`` ended, for keyset pagination: the next page holds the sessions strictly
    after it in the listing's order (``updated_at`` newest first, then ``id`` in code-point order). A page
    costs O(page) on every backend, where an offset costs O(offset) on PostgreSQL and Redis; a session
    created or updated meanwhile moves to the front and is not repeated in later pages."""

    updated_at: datetime
    id: str

    @classmethod
    def after(cls, info: SessionInfo) -> SessionCursor:
        """The cursor of the page that ends with ``info``."""
        return cls(info.updated_at, info.id)


@dataclass(frozen=True)
class SessionData:
    info: SessionInfo
    messages: list[StoredMessage]
    summaries: list[Summary] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.info.version

    def message_params(self) -> list[dict[str, Any]]:
        """The log as plain ``MessageParam`` dicts, ready for ``client.messages.create``."""
        return [m.message for m in self.messages]


@dataclass(frozen=True)
class SearchHit:
    session_id: str
    seq: int
    role: str
    snippet: str


@runtime_checkable
class Store(Protocol):
    """Synchronous store. Every method is safe across threads; CAS makes it safe across processes."""

    def load(self, session_id: str) -> SessionData:
        """The whole session. Raises ``SessionNotFound``."""
        ...

    def get_session(self, session_id: str) -> SessionInfo:
        """Session metadata without messages. Raises ``SessionNotFound``."""
        ...

    def load_messages(self, session_id: str, *, start: int = 0, stop: int | None = None) -> list[StoredMessage]:
        """Messages ``[start, stop)`` of the log (``stop`` None: to its end; a range past the end is cut to
        it), reading only those: the newest turns of a long session without loading all of it. Raises
        ``SessionNotFound``."""
        ...

    def usage_log(self, session_id: str) -> list[UsageRecord]:
        """The seq, model, usage and time of every message with a usage (the replies), in log order, without
        their content: a session's cost without loading its conversation. Raises ``SessionNotFound``."""
        ...

    def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        *,
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
    ) -> int:
        """Append ``entries`` as one transaction if the session is at ``expected_version`` (and, when given,
        is still ``incarnation``; a session this call creates takes the one ``creating(token)`` names, never
        a bare one, which was read from a session now deleted); returns the new version
        (``expected_version + 1``), also when ``turn_id`` names the turn the last append already committed.
        Raises ``ConflictError`` (with ``unsaved=list(entries)``) otherwise."""
        ...

    def update_session(
        self,
        session_id: str,
        *,
        title: str | None = UNSET,
        owner: str | None = UNSET,
        tags: Iterable[str] = UNSET,
        model: str | None = UNSET,
        system: str | list[dict[str, Any]] | None = UNSET,
        expires_at: datetime | None = UNSET,
        metadata: dict[str, Any] = UNSET,
        create: bool = False,
        incarnation: str | None = None,
    ) -> SessionInfo:
        """Change metadata (only the arguments given). With ``create=True`` a missing session is created empty
        (version 0, it stays appendable with ``expected_version=0``); otherwise raises ``SessionNotFound``.
        ``incarnation``: that of the session the write was built from; a session deleted and created again
        since is not written (``ConflictError``), nor created again."""
        ...

    def list_sessions(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: SessionCursor | None = None,
    ) -> list[SessionInfo]:
        """Sessions, most recently updated first (ties by id), filtered and paginated: ``after`` (the
        ``SessionCursor.after`` of the previous page's last session) starts after it, in O(page); ``offset``
        skips that many more. Expired sessions are left out."""
        ...

    def delete(self, session_id: str) -> bool:
        """Remove the session, its messages, summaries and search index entries. ``False`` if it did not exist."""
        ...

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        """A new session holding messages ``[0, at)`` (all when ``at`` is None) plus the metadata; returns its id."""
        ...

    def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int:
        """Drop messages from index ``to`` on (default: the last turn, see ``history.turn_starts``) and summaries
        that cover them; a versioned operation (CAS when ``expected_version`` is given, and on the session's
        incarnation when ``incarnation`` is: a session deleted and created again is not cut). Returns the new
        version."""
        ...

    def save_summary(self, session_id: str, summary: Summary) -> None: ...

    def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        """Full-text search over message text: messages holding every word of ``query``, at most ``limit``.
        ``session_id`` / ``owner`` keep only that session / that owner's sessions, filtered inside the query
        before ``limit`` (one user's conversations in a store shared by many). Expired sessions are left out."""
        ...

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete sessions whose ``expires_at`` has passed; returns how many."""
        ...

    def export_jsonl(self, session_id: str) -> str:
        """The session as JSON Lines: one header line (metadata) then one line per message."""
        ...

    def import_jsonl(self, data: str | Iterable[str], *, session_id: str | None = None) -> str:
        """Import what ``export_jsonl`` wrote, or a plain JSON list of ``{"role", "content"}`` dicts as the
        guides store it. Returns the session id."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LeaseStore(Protocol):
    """A store that keeps turn leases (every store of ours; see ``stores/_leases.py`` for the rules):
    ``Chat(on_concurrent="reject" | "enqueue")`` needs one. Its ``append`` also takes ``lease=token`` and
    refuses the commit with ``LeaseLost`` once a newer lease was taken on the session."""

    def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        """A lease on the session for ``ttl`` seconds: its fencing token, or None while another is held."""
        ...

    def release_lease(self, session_id: str, token: int) -> None:
        """Free the lease ``token`` if it is still the one held (otherwise nothing happens)."""
        ...


@runtime_checkable
class CheckpointStore(Protocol):
    """A store that keeps one planner checkpoint per session (optional; see ``stores/_checkpoints.py`` for the
    rules): a fresh ``Chat`` then reads only the part of a long session its next request sends. ``StoreBase``
    keeps none by default, which is always correct (the chat reads the whole session). Every store of ours
    that keeps them also takes ``append(..., checkpoint=data)``: kept as the checkpoint of the version the
    append makes, in the same write (a chat's commit does so); a store without it is given the checkpoint by
    ``save_checkpoint`` after the append."""

    def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        """``(version, data)`` of the checkpoint kept for the session, or None."""
        ...

    def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        """Keep ``data`` (a JSON object) as the checkpoint of session version ``version``, unless the one kept
        is of a higher version; nothing for a session that does not exist."""
        ...


@runtime_checkable
class AsyncCheckpointStore(Protocol):
    """The asynchronous twin of ``CheckpointStore``."""

    async def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None: ...
    async def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None: ...


@runtime_checkable
class AsyncLeaseStore(Protocol):
    """The asynchronous twin of ``LeaseStore``."""

    async def acquire_lease(self, session_id: str, *, ttl: float) -> int | None: ...
    async def release_lease(self, session_id: str, token: int) -> None: ...


@runtime_checkable
class AsyncStore(Protocol):
    """The asynchronous twin of ``Store``: same methods, same semantics, awaitable, never blocks the loop."""

    async def load(self, session_id: str) -> SessionData: ...
    async def get_session(self, session_id: str) -> SessionInfo: ...
    async def load_messages(
        self, session_id: str, *, start: int = 0, stop: int | None = None
    ) -> list[StoredMessage]: ...
    async def usage_log(self, session_id: str) -> list[UsageRecord]: ...
    async def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        *,
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
    ) -> int: ...
    async def update_session(self, session_id: str, **changes: Any) -> SessionInfo: ...
    async def list_sessions(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: SessionCursor | None = None,
    ) -> list[SessionInfo]: ...
    async def delete(self, session_id: str) -> bool: ...
    async def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str: ...
    async def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int: ...
    async def save_summary(self, session_id: str, summary: Summary) -> None: ...
    async def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]: ...
    async def purge_expired(self, now: datetime | None = None) -> int: ...
    async def export_jsonl(self, session_id: str) -> str: ...
    async def import_jsonl(self, data: str | Iterable[str], *, session_id: str | None = None) -> str: ...
    async def aclose(self) -> None: ...
