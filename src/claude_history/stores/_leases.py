"""Turn leases, the rules every backend shares (each keeps its lease with its own primitive).

A lease says "a turn is running on this session" (``Chat(on_concurrent="reject" | "enqueue")``). Taking one
(``acquire_lease(session_id, ttl=seconds)``) succeeds when no unexpired lease is held and returns a fencing
token: a number that grows by one with every lease ever taken on the session id (it survives the release and
the session's deletion). It expires by itself after ``ttl``, so a holder that dies frees the session.
``append(..., lease=token)`` commits only while ``token`` is still the newest one taken: a turn whose lease
expired and was taken by another is refused (``LeaseLost``) even if it commits first, so two turns never
commit out of order. A lease that expired without anyone else taking it still commits (nothing raced it).
``release_lease(session_id, token)`` frees it early; releasing a lease that is no longer held does nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError, LeaseLost

__all__ = ["MAX_TTL", "check_lease", "check_ttl", "fence", "supports_leases", "ttl_us"]

MAX_TTL = 86_400.0  # a day: a longer turn is a mistake, and the number stays well inside every clock type


def check_ttl(ttl: object) -> float:
    """``ttl``: a number of seconds, more than 0 and at most a day."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl):
        raise ConfigurationError(f"a lease ttl is a number of seconds, got {ttl!r}")
    if not 0 < ttl <= MAX_TTL:
        raise ConfigurationError(f"a lease ttl must be more than 0 and at most {MAX_TTL:g} seconds, got {ttl!r}")
    return float(ttl)


def ttl_us(ttl: object) -> int:
    """``ttl`` checked, in whole microseconds (at least 1)."""
    return max(1, math.ceil(check_ttl(ttl) * 1_000_000))


def check_lease(token: object) -> int | None:
    """A fencing token as ``acquire_lease`` returns it (a positive integer), or None (no lease)."""
    if token is None:
        return None
    if isinstance(token, bool) or not isinstance(token, int) or token < 1:
        raise ConfigurationError(f"a lease is the positive integer acquire_lease returned, got {token!r}")
    return token


def fence(session_id: str, lease: int | None, newest: int | None, expected: int, unsaved: Sequence[Any]) -> None:
    """The check ``append(..., lease=...)`` makes inside its transaction, before the compare-and-swap:
    ``newest`` is the newest token taken on the session (None: never one)."""
    if lease is not None and newest != lease:
        raise LeaseLost(
            f"session {session_id!r}: this turn's lease (token {lease}) expired and another turn took the "
            f"session (token {newest}); the turn was not saved. Use a longer lease_ttl for turns this long.",
            session_id=session_id,
            expected_version=expected,
            actual_version=None,
            unsaved=list(unsaved),
        )


def supports_leases(store: Any) -> bool:
    """Does ``store`` keep turn leases (``acquire_lease``, ``release_lease``, ``append(..., lease=)``)? Every
    store of ours does; a user's own ``Store`` may not. A wrapper says so for the store it wraps
    (``leases_supported``)."""
    said = getattr(store, "leases_supported", None)
    if isinstance(said, bool):
        return said
    return callable(getattr(store, "acquire_lease", None)) and callable(getattr(store, "release_lease", None))
