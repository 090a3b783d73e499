"""Usage of pass-through requests (no ``x-session-id``), kept in the store per tenant.

There is no session to put such a reply in, yet its tokens and cost are the tenant's: each is stored in a
hidden record session ``~usage/<tenant>/<server>``, as two placeholder messages (the content is not kept)
whose reply carries the model and usage, so ``usage_log`` (and thus every cost tool) reads it like any
session's. Each server process writes its own record (no compare-and-swap races between servers; one lock per
tenant inside the process); the tenant's totals add them all up. Record ids are outside every tenant's
``<tenant>/`` space, so no listing, search or route of the sessions API ever shows them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import ConflictError, SessionNotFound
from ..stores.base import AsyncStore, Entry, SessionInfo
from .tenants import USAGE_PREFIX

__all__ = ["USAGE_TAG", "UsageRecorder", "is_usage_record"]

USAGE_TAG = "claude-history:pass-through-usage"
_REQUEST = {"role": "user", "content": "(a pass-through request: its content is not kept)"}
_REPLY = {"role": "assistant", "content": [{"type": "text", "text": "(its reply: content not kept)"}]}

log = logging.getLogger("claude_history.server")


def is_usage_record(tenant: str | None, info: SessionInfo) -> bool:
    """Whether ``info`` is one of ``tenant``'s pass-through usage records."""
    return info.id.startswith(f"{USAGE_PREFIX}{tenant or '-'}/")


class UsageRecorder:
    """Appends pass-through usage to this process's record session of each tenant."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self._server = uuid.uuid4().hex[:12]
        self._locks: dict[str, asyncio.Lock] = {}
        self._versions: dict[str, int] = {}

    def _record_id(self, tenant: str | None) -> str:
        return f"{USAGE_PREFIX}{tenant or '-'}/{self._server}"

    async def record(self, tenant: str | None, model: str | None, usage: Mapping[str, Any]) -> None:
        """Store one reply's usage; a store failure is logged, never raised (the client has its reply)."""
        record_id = self._record_id(tenant)
        lock = self._locks.setdefault(record_id, asyncio.Lock())
        entries = [Entry(_REQUEST), Entry(_REPLY, model=model, usage=dict(usage))]
        async with lock:
            try:
                version = await self._version(record_id, tenant)
                try:
                    self._versions[record_id] = await self._store.append(record_id, entries, expected_version=version)
                except ConflictError:  # changed behind this process's back (an import, a restore): read again
                    self._versions.pop(record_id, None)
                    version = await self._version(record_id, tenant)
                    self._versions[record_id] = await self._store.append(record_id, entries, expected_version=version)
            except Exception:
                self._versions.pop(record_id, None)
                log.exception("could not store the usage of a pass-through request of tenant %r", tenant)

    async def _version(self, record_id: str, tenant: str | None) -> int:
        known = self._versions.get(record_id)
        if known is not None:
            return known
        try:
            return (await self._store.get_session(record_id)).version
        except SessionNotFound:
            await self._store.update_session(record_id, owner=tenant, tags=[USAGE_TAG], create=True)
            return 0
