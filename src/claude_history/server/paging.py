"""The opaque cursors of the sessions API: ``next_cursor`` of a listing (a ``SessionCursor``, keyset, so the
store reads O(page) rows) and of a session's messages (the position to continue at). Base64 of JSON: opaque to
clients, but nothing secret; a cursor only ever positions a listing that is filtered to the caller's tenant."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..stores._times import from_us, to_us
from ..stores.base import SessionCursor, SessionInfo
from .errors import ApiError
from .tenants import scoped, unscoped

__all__ = ["decode_messages_cursor", "decode_sessions_cursor", "messages_cursor", "sessions_cursor"]

_BAD = "cursor: not a cursor this service returned (pass next_cursor from the previous page unchanged)"


def _encode(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise ApiError(400, _BAD) from exc


def sessions_cursor(tenant: str | None, info: SessionInfo) -> str:
    """The cursor of a listing page that ends with ``info`` (the tenant's id, not the store's)."""
    return _encode({"u": to_us(info.updated_at), "i": unscoped(tenant, info.id)})


def decode_sessions_cursor(tenant: str | None, cursor: str | None) -> SessionCursor | None:
    if not cursor:
        return None
    value = _decode(cursor)
    if not isinstance(value, dict) or not isinstance(value.get("u"), int) or not isinstance(value.get("i"), str):
        raise ApiError(400, _BAD)
    try:
        return SessionCursor(from_us(value["u"]), scoped(tenant, value["i"]))
    except Exception as exc:
        raise ApiError(400, _BAD) from exc


def messages_cursor(seq: int) -> str:
    """The cursor of a messages page: the position of the next message."""
    return _encode({"s": seq})


def decode_messages_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    value = _decode(cursor)
    seq = value.get("s") if isinstance(value, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ApiError(400, _BAD)
    return seq
