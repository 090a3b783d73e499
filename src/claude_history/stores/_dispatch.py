"""The store methods of the backends whose operations are generators (``postgres._ops``, ``redis._ops``).

Each such backend writes every operation once as a generator over its context (SQL statements, key layout)
and differs from its twin only in how a step is sent (``_run``: sync or async driver). The public methods are
then the same one-line dispatch everywhere, written here once: ``OpsStore`` / ``AsyncOpsStore`` map each
``Store`` / ``AsyncStore`` method to ``self._run(self._ops.<name>, ..., now)``. A backend sets ``_ops`` to its
operations module and implements ``_run``, ``close`` / ``aclose`` and its own opening.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeVar

from ._base_classes import AsyncStoreBase, StoreBase
from ._cas import named_turn
from ._times import now_us, to_us
from .base import Entry, SearchHit, SessionCursor, SessionData, SessionInfo, StoredMessage, Summary, UsageRecord

__all__ = ["AsyncOpsStore", "OpsStore", "StoreOps"]

T = TypeVar("T")
# An operation: yields the backend's steps (queries, script calls), is sent their replies, returns the result.
Op = Generator[Any, Any, T]


class StoreOps(Protocol):
    """What an operations module provides: a generator per operation, taking the backend's context first
    (``_run`` passes it) and, where the operation needs the time, ``now_us()`` last."""

    def load(self, context: Any, session_id: str, now: int, /) -> Op[SessionData]: ...
    def get_session(self, context: Any, session_id: str, now: int, /) -> Op[SessionInfo]: ...
    def load_messages(
        self, context: Any, session_id: str, start: int, stop: int | None, now: int, /
    ) -> Op[list[StoredMessage]]: ...
    def usage_log(self, context: Any, session_id: str, now: int, /) -> Op[list[UsageRecord]]: ...
    def append(
        self,
        context: Any,
        session_id: str,
        entries: Sequence[Entry],
        expected_version: int,
        incarnation: str | None,
        turn_id: str | None,
        lease: int | None,
        now: int,
        checkpoint: Mapping[str, Any] | None = None,
        /,
    ) -> Op[int]: ...
    def acquire_lease(self, context: Any, session_id: str, ttl: float, now: int, /) -> Op[int | None]: ...
    def release_lease(self, context: Any, session_id: str, token: int, now: int, /) -> Op[None]: ...
    def update_session(
        self, context: Any, session_id: str, changes: dict[str, Any], create: bool, now: int, /
    ) -> Op[SessionInfo]: ...
    def list_sessions(
        self,
        context: Any,
        owner: str | None,
        tag: str | None,
        limit: int,
        offset: int,
        after: SessionCursor | None,
        now: int,
        /,
    ) -> Op[list[SessionInfo]]: ...
    def delete(self, context: Any, session_id: str, /) -> Op[bool]: ...
    def fork(self, context: Any, session_id: str, at: int | None, new_id: str | None, now: int, /) -> Op[str]: ...
    def rewind(
        self,
        context: Any,
        session_id: str,
        to: int | None,
        expected_version: int | None,
        now: int,
        incarnation: str | None,
        /,
    ) -> Op[int]: ...
    def save_summary(self, context: Any, session_id: str, summary: Summary, now: int, /) -> Op[None]: ...
    def search(
        self, context: Any, query: str, session_id: str | None, owner: str | None, limit: int, now: int, /
    ) -> Op[list[SearchHit]]: ...
    def purge_expired(self, context: Any, now: int, /) -> Op[int]: ...
    def create(self, context: Any, data: SessionData, now: int, /) -> Op[None]: ...
    def truncate(
        self, context: Any, session_id: str, to: int, expected_version: int, now: int, incarnation: str | None, /
    ) -> Op[int]: ...


class OpsStore(StoreBase):
    """A sync ``Store`` over an operations module. ``fork`` and ``rewind`` are the module's own (one
    transaction or script each), not ``StoreBase``'s generic ones."""

    _ops: ClassVar[StoreOps]
    # Appends get an id when the caller gives none, so a retry after a lost reply finds its own turn
    # (``_cas.named_turn``).
    _names_turns: ClassVar[bool] = False

    @abstractmethod
    def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        """Run ``operation(context, *args)`` to its result (one transaction)."""

    def load(self, session_id: str) -> SessionData:
        return self._run(self._ops.load, session_id, now_us())

    def get_session(self, session_id: str) -> SessionInfo:
        return self._run(self._ops.get_session, session_id, now_us())

    def load_messages(self, session_id: str, *, start: int = 0, stop: int | None = None) -> list[StoredMessage]:
        return self._run(self._ops.load_messages, session_id, start, stop, now_us())

    def usage_log(self, session_id: str) -> list[UsageRecord]:
        return self._run(self._ops.usage_log, session_id, now_us())

    def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        *,
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
        lease: int | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> int:
        """``append`` with ``checkpoint`` (the planner's, for the new version) in the same write (_checkpoints.py)."""
        turn_id = named_turn(turn_id) if self._names_turns else turn_id
        return self._run(
            self._ops.append, session_id, entries, expected_version, incarnation, turn_id, lease, now_us(), checkpoint
        )

    def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        return self._run(self._ops.acquire_lease, session_id, ttl, now_us())

    def release_lease(self, session_id: str, token: int) -> None:
        return self._run(self._ops.release_lease, session_id, token, now_us())

    def _update_session(self, session_id: str, changes: dict[str, Any], create: bool) -> SessionInfo:
        return self._run(self._ops.update_session, session_id, changes, create, now_us())

    def list_sessions(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: SessionCursor | None = None,
    ) -> list[SessionInfo]:
        return self._run(self._ops.list_sessions, owner, tag, limit, offset, after, now_us())

    def delete(self, session_id: str) -> bool:
        return self._run(self._ops.delete, session_id)

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        return self._run(self._ops.fork, session_id, at, new_id, now_us())

    def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int:
        return self._run(self._ops.rewind, session_id, to, expected_version, now_us(), incarnation)

    def save_summary(self, session_id: str, summary: Summary) -> None:
        self._run(self._ops.save_summary, session_id, summary, now_us())

    @property
    def checkpoints_supported(self) -> bool:  # type: ignore[override]
        """Planner checkpoints are kept when the operations module has them (``_checkpoints.py``)."""
        return hasattr(self._ops, "save_checkpoint")

    def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        if not self.checkpoints_supported:
            return None
        return self._run(self._ops.load_checkpoint, session_id, now_us())  # type: ignore[attr-defined,no-any-return]

    def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        if self.checkpoints_supported:
            self._run(self._ops.save_checkpoint, session_id, version, data, now_us())  # type: ignore[attr-defined]

    def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        return self._run(self._ops.search, query, session_id, owner, limit, now_us())

    def purge_expired(self, now: datetime | None = None) -> int:
        return self._run(self._ops.purge_expired, now_us() if now is None else to_us(now))

    def _create(self, data: SessionData) -> None:
        self._run(self._ops.create, data, now_us())

    def _truncate(self, session_id: str, to: int, expected_version: int, incarnation: str | None = None) -> int:
        return self._run(self._ops.truncate, session_id, to, expected_version, now_us(), incarnation)


class AsyncOpsStore(AsyncStoreBase):
    """The async twin of ``OpsStore``: the same dispatch, awaited."""

    _ops: ClassVar[StoreOps]
    # Appends get an id when the caller gives none, so a retry after a lost reply finds its own turn
    # (``_cas.named_turn``).
    _names_turns: ClassVar[bool] = False

    @abstractmethod
    async def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        """Run ``operation(context, *args)`` to its result (one transaction)."""

    async def load(self, session_id: str) -> SessionData:
        return await self._run(self._ops.load, session_id, now_us())

    async def get_session(self, session_id: str) -> SessionInfo:
        return await self._run(self._ops.get_session, session_id, now_us())

    async def load_messages(
        self, session_id: str, *, start: int = 0, stop: int | None = None
    ) -> list[StoredMessage]:
        return await self._run(self._ops.load_messages, session_id, start, stop, now_us())

    async def usage_log(self, session_id: str) -> list[UsageRecord]:
        return await self._run(self._ops.usage_log, session_id, now_us())

    async def append(
        self,
        session_id: str,
        entries: Sequence[Entry],
        *,
        expected_version: int,
        incarnation: str | None = None,
        turn_id: str | None = None,
        lease: int | None = None,
        checkpoint: Mapping[str, Any] | None = None,
    ) -> int:
        """``append`` with ``checkpoint`` (the planner's, for the new version) in the same write (_checkpoints.py)."""
        turn_id = named_turn(turn_id) if self._names_turns else turn_id
        return await self._run(
            self._ops.append, session_id, entries, expected_version, incarnation, turn_id, lease, now_us(), checkpoint
        )

    async def acquire_lease(self, session_id: str, *, ttl: float) -> int | None:
        return await self._run(self._ops.acquire_lease, session_id, ttl, now_us())

    async def release_lease(self, session_id: str, token: int) -> None:
        return await self._run(self._ops.release_lease, session_id, token, now_us())

    async def _update_session(self, session_id: str, changes: dict[str, Any], create: bool) -> SessionInfo:
        return await self._run(self._ops.update_session, session_id, changes, create, now_us())

    async def list_sessions(
        self,
        *,
        owner: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: SessionCursor | None = None,
    ) -> list[SessionInfo]:
        return await self._run(self._ops.list_sessions, owner, tag, limit, offset, after, now_us())

    async def delete(self, session_id: str) -> bool:
        return await self._run(self._ops.delete, session_id)

    async def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        return await self._run(self._ops.fork, session_id, at, new_id, now_us())

    async def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int:
        return await self._run(self._ops.rewind, session_id, to, expected_version, now_us(), incarnation)

    async def save_summary(self, session_id: str, summary: Summary) -> None:
        await self._run(self._ops.save_summary, session_id, summary, now_us())

    @property
    def checkpoints_supported(self) -> bool:  # type: ignore[override]
        return hasattr(self._ops, "save_checkpoint")

    async def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        if not self.checkpoints_supported:
            return None
        return await self._run(self._ops.load_checkpoint, session_id, now_us())  # type: ignore[attr-defined]

    async def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        if self.checkpoints_supported:
            await self._run(self._ops.save_checkpoint, session_id, version, data, now_us())  # type: ignore[attr-defined]

    async def search(
        self, query: str, *, session_id: str | None = None, owner: str | None = None, limit: int = 20
    ) -> list[SearchHit]:
        return await self._run(self._ops.search, query, session_id, owner, limit, now_us())

    async def purge_expired(self, now: datetime | None = None) -> int:
        return await self._run(self._ops.purge_expired, now_us() if now is None else to_us(now))

    async def _create(self, data: SessionData) -> None:
        await self._run(self._ops.create, data, now_us())

    async def _truncate(
        self, session_id: str, to: int, expected_version: int, incarnation: str | None = None
    ) -> int:
        return await self._run(self._ops.truncate, session_id, to, expected_version, now_us(), incarnation)
