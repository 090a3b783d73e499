"""The limits every value entering a store is held to, the same for every backend.

One rule each, so a value one backend can hold is a value all of them can, and a value one backend would
choke on (a driver's traceback, or worse a write that cannot be read back) is refused up front with a
``ConfigurationError`` / ``InvalidHistory`` that names the field:

* text fields (ids, owner, title, model, tags, filters) are valid Unicode without NUL: PostgreSQL text and
  UTF-8 cannot hold a lone surrogate or NUL, and Redis's Lua JSON decoder fails on an escaped surrogate;
* the fields PostgreSQL indexes (session id, owner, tags) fit its B-tree / GIN entries (about 2,700 bytes);
* JSON (metadata, system, usage, messages) nests at most ``MAX_DEPTH`` levels, well below the depth at
  which Python's JSON encoder and decoder, ``copy.deepcopy`` and the history checks run out of stack;
* integers (versions, indexes, limits, offsets) fit every backend's integers and Lua's exact doubles;
* datetimes lie within the years 1 to 9999 in UTC, shifted by any time zone, which is what Python's
  ``datetime`` (every backend hands them back as one) can represent.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "MAX_DEPTH",
    "MAX_INTEGER",
    "MAX_KEY_BYTES",
    "check_depth",
    "check_integer",
    "check_text",
    "check_timestamp_us",
    "json_depth",
]

MAX_KEY_BYTES = 2000  # PostgreSQL's B-tree entries hold about 2,700 bytes; the key shares them
MAX_INTEGER = 2**53 - 1  # Lua (Redis scripts) counts in doubles, exact up to here
# Python's json and copy.deepcopy (two frames a level) fail near 1,000 frames, less the caller's: 256 leaves
# a chat's deep copies of its messages room to spare.
MAX_DEPTH = 256

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# A day of margin on each side: a stored instant is shown in any time zone (astimezone) without overflowing.
_MIN_US = (datetime(1, 1, 2, tzinfo=timezone.utc) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime(9999, 12, 30, tzinfo=timezone.utc) - _EPOCH) // timedelta(microseconds=1)


def check_text(name: str, value: str, *, max_bytes: int | None = None) -> str:
    """``value`` (already known to be a ``str``) as every backend can store and index it."""
    if "\x00" in value:
        raise ConfigurationError(f"{name} must not contain NUL characters (\\x00): PostgreSQL cannot store them")
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ConfigurationError(f"{name} must be valid Unicode text (it contains a lone surrogate)") from None
    if max_bytes is not None and size > max_bytes:
        raise ConfigurationError(
            f"{name} is {size} bytes long in UTF-8; at most {max_bytes} are allowed (PostgreSQL indexes it)"
        )
    return value


def json_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``[]`` is 1), counted without recursion; stops counting once
    past ``limit``, so a hostile value costs no more than the part that is read."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return deepest


def check_depth(name: str, value: Any) -> None:
    if json_depth(value) > MAX_DEPTH:
        raise ConfigurationError(
            f"{name} nests more than {MAX_DEPTH} levels deep; flatten it (so deep a value could not be read back)"
        )


def check_integer(name: str, value: object, *, minimum: int = 0, hint: str = "") -> int:
    """An ``int`` (not a ``bool``) from ``minimum`` to ``MAX_INTEGER``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INTEGER:
        raise ConfigurationError(f"{name} must be an integer from {minimum} to {MAX_INTEGER}{hint}, got {value!r}")
    return value


def check_timestamp_us(name: str, value: int) -> int:
    """Microseconds since the epoch, within what every backend gives back as a ``datetime``."""
    if not _MIN_US <= value <= _MAX_US:
        raise ConfigurationError(f"{name} is out of range: it must lie between 0001-01-02 and 9999-12-30 (UTC)")
    return value
