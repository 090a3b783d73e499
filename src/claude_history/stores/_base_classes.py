"""The base classes every backend (memory, sqlite, file, postgres, redis) subclasses. ``StoreBase`` /
``AsyncStoreBase`` are thin glue over the shared rules (``_rewind_fork``, ``_jsonl``) that build ``fork``,
``rewind``, ``export_jsonl`` and ``import_jsonl`` out of two small primitives each backend provides:

* ``_create(data)``: insert a whole session (info, messages, summaries) atomically; ``ConflictError`` if a
  live session with that id exists (an expired one is replaced, as if purged).
* ``_truncate(session_id, to, expected_version)``: keep messages ``[0, to)``, drop summaries with ``end >
  to``, bump the version by one, with compare-and-swap on ``expected_version`` (checked first), and
  ``check_rewind_index(to, count)`` against the session as it is; returns the new version.

and, optionally, ``_last_turn(session_id) -> (version, start)``: where the last turn starts, read in one
snapshot. The default loads the whole session; a backend that can read the tail of its log overrides it, so
``rewind()`` costs one turn, not one session.

Planner checkpoints (``CheckpointStore``, ``_checkpoints.py``) are optional: the default keeps none, so a store
written without them stays correct (a fresh ``Chat`` reads the whole session); a backend that keeps them
overrides ``load_checkpoint`` and ``save_checkpoint``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..errors import ConflictError
from ._cas import check_token, conflict
from ._checks import check_expected_version, check_session_id
from ._jsonl import export_session, parse_import
from ._rewind_fork import REWIND_RETRIES, check_rewind_index, fork_session, rewind_target
from ._times import now_us
from .base import UNSET, SessionData, SessionInfo

__all__ = ["AsyncStoreBase", "StoreBase"]


def _check_rewind_arguments(to: object, expected_version: object) -> None:
    if expected_version is not None:
        check_expected_version(expected_version)
    if to is not None:
        check_rewind_index(to)


class StoreBase(ABC):
    """Generic ``fork``, ``rewind``, ``export_jsonl``, ``import_jsonl`` and context-manager support for a sync
    backend. Backends implement the rest of ``Store`` plus ``_create`` and ``_truncate``; they may override
    any generic method with a faster native one."""

    # Planner checkpoints (``_checkpoints.py``): a backend that keeps them says so and overrides both methods.
    checkpoints_supported = False

    @abstractmethod
    def load(self, session_id: str) -> SessionData: ...

    @abstractmethod
    def get_session(self, session_id: str) -> SessionInfo: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _create(self, data: SessionData) -> None:
        """Insert a complete session atomically; ``ConflictError`` if a live session with that id exists."""

    @abstractmethod
    def _truncate(self, session_id: str, to: int, expected_version: int, incarnation: str | None = None) -> int:
        """Keep messages ``[0, to)`` and summaries with ``end <= to``; version + 1, with CAS on the version (and
        the incarnation, when given: ``_cas.same_incarnation``); new version."""

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
        """The typed signature lives here once; a backend implements ``_update_session`` over the dict of the
        arguments given (``UNSET`` ones included: ``check_session_changes`` drops them; ``incarnation``, when
        given, is taken out by ``_cas.pop_incarnation``)."""
        changes = {
            "title": title,
            "owner": owner,
            "tags": tags,
            "model": model,
            "system": system,
            "expires_at": expires_at,
            "metadata": metadata,
        }
        if incarnation is not None:
            changes["incarnation"] = incarnation
        return self._update_session(session_id, changes, create)

    @abstractmethod
    def _update_session(self, session_id: str, changes: dict[str, Any], create: bool) -> SessionInfo:
        """Apply metadata ``changes`` (raw, unchecked) to a session, creating it when ``create``."""

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        data = self.load(session_id)
        forked = fork_session(data, at=at, new_id=new_id, now=now_us())
        self._create(forked)
        return forked.info.id

    def _last_turn(self, session_id: str) -> tuple[int, int]:
        """``(version, start of the last turn)`` from one snapshot. This default loads the whole session."""
        data = self.load(session_id)
        return data.version, rewind_target(data.message_params(), None)

    def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int:
        # Never a whole load unless the backend cannot read its tail: an explicit ``to`` only needs the version
        # (and ``_truncate`` checks it against the count); the last turn is found from the tail. Without
        # expected_version the caller means "the last turn as it is now": look again if a writer slips in.
        check_session_id(session_id)
        _check_rewind_arguments(to, expected_version)
        check_token("incarnation", incarnation)
        for attempt in range(REWIND_RETRIES):
            if to is None:
                version, target = self._last_turn(session_id)
            else:
                target = to
                version = self.get_session(session_id).version if expected_version is None else expected_version
            if expected_version is not None and version != expected_version:
                raise conflict(session_id, expected_version, version)
            try:
                return self._truncate(session_id, target, version, incarnation)
            except ConflictError:
                if expected_version is not None or attempt == REWIND_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        """The planner checkpoint kept for the session: none by default (``_checkpoints.py``)."""
        return None

    def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        """Keep a planner checkpoint: by default nothing is kept (``_checkpoints.py``)."""
        return None

    def export_jsonl(self, session_id: str) -> str:
        return export_session(self.load(session_id))

    def import_jsonl(self, data: str | Iterable[str], *, session_id: str | None = None) -> str:
        parsed = parse_import(data, session_id=session_id, now=now_us())
        self._create(parsed)
        return parsed.info.id

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncStoreBase(ABC):
    """The async twin of ``StoreBase``: the same generic operations over awaitable primitives."""

    checkpoints_supported = False

    @abstractmethod
    async def load(self, session_id: str) -> SessionData: ...

    @abstractmethod
    async def get_session(self, session_id: str) -> SessionInfo: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    async def _create(self, data: SessionData) -> None: ...

    @abstractmethod
    async def _truncate(
        self, session_id: str, to: int, expected_version: int, incarnation: str | None = None
    ) -> int: ...

    async def update_session(
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
        """As ``StoreBase.update_session``: the typed signature once, over the backend's ``_update_session``."""
        changes = {
            "title": title,
            "owner": owner,
            "tags": tags,
            "model": model,
            "system": system,
            "expires_at": expires_at,
            "metadata": metadata,
        }
        if incarnation is not None:
            changes["incarnation"] = incarnation
        return await self._update_session(session_id, changes, create)

    @abstractmethod
    async def _update_session(self, session_id: str, changes: dict[str, Any], create: bool) -> SessionInfo:
        """Apply metadata ``changes`` (raw, unchecked) to a session, creating it when ``create``."""

    async def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> str:
        data = await self.load(session_id)
        forked = fork_session(data, at=at, new_id=new_id, now=now_us())
        await self._create(forked)
        return forked.info.id

    async def _last_turn(self, session_id: str) -> tuple[int, int]:
        data = await self.load(session_id)
        return data.version, rewind_target(data.message_params(), None)

    async def rewind(
        self,
        session_id: str,
        *,
        to: int | None = None,
        expected_version: int | None = None,
        incarnation: str | None = None,
    ) -> int:
        check_session_id(session_id)
        _check_rewind_arguments(to, expected_version)
        check_token("incarnation", incarnation)
        for attempt in range(REWIND_RETRIES):
            if to is None:
                version, target = await self._last_turn(session_id)
            else:
                target = to
                version = (await self.get_session(session_id)).version if expected_version is None else expected_version
            if expected_version is not None and version != expected_version:
                raise conflict(session_id, expected_version, version)
            try:
                return await self._truncate(session_id, target, version, incarnation)
            except ConflictError:
                if expected_version is not None or attempt == REWIND_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def load_checkpoint(self, session_id: str) -> tuple[int, dict[str, Any]] | None:
        return None

    async def save_checkpoint(self, session_id: str, version: int, data: Mapping[str, Any]) -> None:
        return None

    async def export_jsonl(self, session_id: str) -> str:
        return export_session(await self.load(session_id))

    async def import_jsonl(self, data: str | Iterable[str], *, session_id: str | None = None) -> str:
        parsed = parse_import(data, session_id=session_id, now=now_us())
        await self._create(parsed)
        return parsed.info.id

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
