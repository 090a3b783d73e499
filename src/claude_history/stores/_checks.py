"""Argument checks shared by every backend: clear errors for user mistakes, before anything is written, and
the same answer on every backend so a session moves between them unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError
from ._json import dumps
from ._times import from_us, to_us
from ._validation import MAX_INTEGER, MAX_KEY_BYTES, check_depth, check_integer, check_text
from .base import UNSET, Summary

__all__ = [
    "MAX_SESSION_ID_LENGTH",
    "check_expected_version",
    "check_filters",
    "check_json",
    "check_message_range",
    "check_metadata",
    "check_optional_str",
    "check_page",
    "check_session_changes",
    "check_session_id",
    "check_summary",
    "check_system",
    "clip_range",
    "new_session_id",
    "normalize_tags",
    "usage_dict",
]

MAX_SESSION_ID_LENGTH = 1000


def check_session_id(session_id: object) -> str:
    """Any string of 1 to 1,000 characters is a valid id, except NUL and lone surrogates, which PostgreSQL and
    UTF-8 files cannot hold: rejecting them everywhere keeps sessions portable between backends."""
    if not isinstance(session_id, str):
        raise ConfigurationError(f"session id must be a string, got {type(session_id).__name__}")
    if not session_id:
        raise ConfigurationError("session id must not be empty")
    if len(session_id) > MAX_SESSION_ID_LENGTH:
        raise ConfigurationError(
            f"session id is {len(session_id)} characters long; at most {MAX_SESSION_ID_LENGTH} are allowed"
        )
    return check_text("session id", session_id, max_bytes=MAX_KEY_BYTES)


def new_session_id() -> str:
    return uuid.uuid4().hex


def check_expected_version(expected_version: object) -> int:
    return check_integer("expected_version", expected_version, hint=" (0 creates the session)")


def check_page(limit: object, offset: object) -> tuple[int, int]:
    return check_integer("limit", limit), check_integer("offset", offset)


def check_message_range(start: object, stop: object) -> tuple[int, int | None]:
    """``load_messages``'s ``[start, stop)``: integers from 0 (``stop`` None: to the end)."""
    return check_integer("start", start), None if stop is None else check_integer("stop", stop)


def clip_range(start: int, stop: int | None, count: int) -> tuple[int, int]:
    """A checked range cut to a log of ``count`` messages, so every backend answers a range past the end (or
    one that ends before it starts) the same way: with the messages that exist in it."""
    last = count if stop is None else min(stop, count)
    return min(start, last), last


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags in the order given, duplicates dropped. A bare string is refused: ``tags="a,b"`` is a common
    slip."""
    if isinstance(tags, (str, bytes)):
        raise ConfigurationError("tags must be an iterable of strings such as ['work'], not a single string")
    try:
        items = list(tags)
    except TypeError:
        raise ConfigurationError(f"tags must be an iterable of strings, got {type(tags).__name__}") from None
    result: dict[str, None] = {}
    for tag in items:
        if not isinstance(tag, str) or not tag:
            raise ConfigurationError(f"each tag must be a non-empty string, got {tag!r}")
        result[check_text("tag", tag, max_bytes=MAX_KEY_BYTES)] = None
    return tuple(result)


def check_metadata(metadata: object) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise ConfigurationError(f"metadata must be a dict, got {type(metadata).__name__}")
    check_json("metadata", metadata)
    return metadata


def check_system(system: object) -> str | list[dict[str, Any]] | None:
    if system is None or isinstance(system, str):
        return system
    if isinstance(system, list) and all(isinstance(block, dict) for block in system):
        check_json("system", system)
        return system
    raise ConfigurationError(
        "system must be a string, a list of text blocks ({'type': 'text', 'text': ...}) or None, "
        f"got {type(system).__name__}" + (" holding a non-dict" if isinstance(system, list) else "")
    )


_INDEXED_TEXT = ("owner", "tag")  # PostgreSQL indexes these: held to MAX_KEY_BYTES


def check_optional_str(name: str, value: object) -> str | None:
    """Title, owner, model: text or None, held to ``_validation.check_text`` (no NUL, no lone surrogate, and
    for the indexed ones a length PostgreSQL can index), so a session moves between backends unchanged."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string or None, got {type(value).__name__}")
    return check_text(name, value, max_bytes=MAX_KEY_BYTES if name in _INDEXED_TEXT else None)


def check_filters(owner: object, tag: object = None) -> None:
    """The ``owner`` / ``tag`` filters of ``list_sessions`` and ``search``: text or None, checked as the
    fields they match, so a bad filter is the same clear error on every backend, not a driver's."""
    check_optional_str("owner", owner)
    check_optional_str("tag", tag)


def check_json(name: str, value: Any) -> str:
    check_depth(name, value)
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name} must be JSON-serialisable: {exc}") from None


def check_summary(summary: object, message_count: int) -> Summary:
    if not isinstance(summary, Summary):
        raise ConfigurationError(f"expected a Summary, got {type(summary).__name__}")
    for name in ("start", "end"):
        check_integer(f"summary {name}", getattr(summary, name), minimum=-MAX_INTEGER)
    if summary.start >= summary.end:
        # Nothing to summarise; and rewinding never drops [0, 0), so such a record could never be cut away.
        raise ConfigurationError(
            f"summary range [{summary.start}, {summary.end}) is empty; a summary covers at least one message"
        )
    if summary.start < 0 or summary.end > message_count:
        raise ConfigurationError(
            f"summary range [{summary.start}, {summary.end}) is outside the session's {message_count} messages"
        )
    if not isinstance(summary.text, str):
        raise ConfigurationError("summary text must be a string")
    check_optional_str("summary model", summary.model)
    if summary.usage is not None:
        check_json("summary usage", usage_dict("summary usage", summary.usage))
    if summary.created_at is not None:
        to_us(summary.created_at, "summary created_at")
    return summary


def usage_dict(name: str, usage: object) -> dict[str, Any]:
    """A usage record is an object (``Usage.model_dump()``); ``"abc"`` or ``5`` is refused, not half-read."""
    if not isinstance(usage, Mapping):
        raise ConfigurationError(f"{name} must be a dict (Usage.model_dump()), got {type(usage).__name__}")
    return dict(usage)


_CHANGE_FIELDS = ("title", "owner", "tags", "model", "system", "expires_at", "metadata")


def check_session_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise ``update_session`` arguments, leaving out the ones that are ``UNSET``.
    ``expires_at`` becomes an aware UTC datetime (or None); ``tags`` a tuple."""
    result: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in _CHANGE_FIELDS:
            raise ConfigurationError(
                f"update_session got an unknown field {name!r}; known: {', '.join(_CHANGE_FIELDS)}"
            )
        if value is UNSET:
            continue
        if name in ("title", "owner", "model"):
            result[name] = check_optional_str(name, value)
        elif name == "tags":
            result[name] = normalize_tags(value)
        elif name == "system":
            result[name] = check_system(value)
        elif name == "metadata":
            result[name] = dict(check_metadata(value))
        else:
            result[name] = None if value is None else from_us(to_us(value, name))
    return result
