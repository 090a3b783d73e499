"""Tenants and their API keys, kept in the store through its public API (no extra table).

A key is stored only as its SHA-256, as an empty reserved session ``~keys/<sha256>`` tagged ``KEY_TAG`` whose
metadata names the tenant; so lookup is one ``get_session`` on every backend, and revoking is ``delete``.
Every session of a tenant is stored as ``<tenant>/<session id>``: tenants never see (or collide with) each
other's ids, so another tenant's session is simply not found (no existence leak).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import ConfigurationError, SessionNotFound
from ..stores.base import AsyncStore, SessionInfo, Store

__all__ = [
    "KEY_TAG",
    "USAGE_PREFIX",
    "KeyInfo",
    "check_tenant",
    "create_key",
    "is_internal",
    "list_keys",
    "resolve_key",
    "revoke_key",
    "scoped",
    "unscoped",
]

KEY_TAG = "claude-history:api-key"
_KEY_PREFIX = "chk_"
_RESERVED = "~keys/"
USAGE_PREFIX = "~usage/"  # pass-through usage records (see usage_records.py): nobody's session either
_INTERNAL = (_RESERVED, USAGE_PREFIX)
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class KeyInfo:
    """What is kept about a key: never the key itself."""

    key_id: str  # the first 12 hex digits of its hash: what `keys list` shows and `keys revoke` takes
    tenant: str
    name: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "tenant": self.tenant, "name": self.name,
                "created_at": self.created_at.isoformat()}  # fmt: skip


def check_tenant(name: str) -> str:
    if not _TENANT.match(name):
        raise ConfigurationError(
            f"tenant name {name!r} is not allowed: 1-64 letters, digits, '_', '.', '@' or '-', starting with a "
            "letter or digit"
        )
    return name


def scoped(tenant: str | None, session_id: str) -> str:
    """The store's id of a tenant's session (the id itself without tenants; the key records are nobody's)."""
    if tenant is None and session_id.startswith(_INTERNAL):
        raise SessionNotFound(session_id)
    return session_id if tenant is None else f"{tenant}/{session_id}"


def is_internal(store_id: str) -> bool:
    """Whether a stored id is one of the service's own records (keys, usage), never a conversation to list."""
    return store_id.startswith(_INTERNAL)


def unscoped(tenant: str | None, store_id: str) -> str | None:
    """The tenant's id of a stored session; None when it is not that tenant's (or is a reserved record)."""
    if tenant is None:
        return None if is_internal(store_id) else store_id
    prefix = f"{tenant}/"
    return store_id[len(prefix) :] if store_id.startswith(prefix) else None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _info(session: SessionInfo) -> KeyInfo:
    meta = session.metadata
    return KeyInfo(key_id=session.id[len(_RESERVED) :][:12], tenant=str(meta.get("tenant")),
                   name=meta.get("name"), created_at=session.created_at)  # fmt: skip


def create_key(store: Store, tenant: str, name: str | None = None) -> tuple[str, KeyInfo]:
    """A new key for ``tenant``: returns the key (shown once, never stored) and what is kept about it."""
    check_tenant(tenant)
    key = _KEY_PREFIX + secrets.token_urlsafe(32)
    session = store.update_session(
        _RESERVED + _hash(key), tags=[KEY_TAG], metadata={"tenant": tenant, "name": name}, create=True
    )
    return key, _info(session)


def list_keys(store: Store, tenant: str | None = None) -> list[KeyInfo]:
    keys = [_info(s) for s in store.list_sessions(tag=KEY_TAG, limit=100_000) if s.id.startswith(_RESERVED)]
    return [k for k in keys if tenant is None or k.tenant == tenant]


def revoke_key(store: Store, key_id: str) -> KeyInfo | None:
    """Delete the key whose id (or a unique prefix of at least 6 digits) is ``key_id``."""
    if len(key_id) < 6:
        raise ConfigurationError("give at least the first 6 characters of the key id (see `keys list`)")
    matches = [s for s in store.list_sessions(tag=KEY_TAG, limit=100_000) if s.id.startswith(_RESERVED + key_id)]
    if len(matches) > 1:
        raise ConfigurationError(f"{key_id!r} matches {len(matches)} keys; give more of the key id")
    if not matches:
        return None
    store.delete(matches[0].id)
    return _info(matches[0])


async def resolve_key(store: AsyncStore, key: str) -> str | None:
    """The tenant a key belongs to, or None for an unknown (or revoked) key."""
    if not key.startswith(_KEY_PREFIX):
        return None
    try:
        session = await store.get_session(_RESERVED + _hash(key))
    except SessionNotFound:
        return None
    tenant = session.metadata.get("tenant")
    return tenant if isinstance(tenant, str) and KEY_TAG in session.tags else None
