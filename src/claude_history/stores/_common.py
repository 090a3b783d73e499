"""Backend-independent store logic: every backend (memory, sqlite, file, postgres, redis) uses these, so the
rules (what a valid session id is, how messages are serialised, what "rewind the last turn" means, the
export format, how search matches) are written once.

The pure functions do the work; ``StoreBase`` / ``AsyncStoreBase`` are thin glue that build ``fork``,
``rewind``, ``export_jsonl`` and ``import_jsonl`` out of two small primitives each backend provides:

* ``_create(data)``: insert a whole session (info, messages, summaries) atomically; ``ConflictError`` if a
  live session with that id exists (an expired one is replaced, as if purged).
* ``_truncate(session_id, to, expected_version)``: keep messages ``[0, to)``, drop summaries with ``end >
  to``, bump the version by one, with compare-and-swap on ``expected_version`` (checked first), and
  ``check_rewind_index(to, count)`` against the session as it is; returns the new version.

and, optionally, ``_last_turn(session_id) -> (version, start)``: where the last turn starts, read in one
snapshot. The default loads the whole session; a backend that can read the tail of its log overrides it, so
``rewind()`` costs one turn, not one session."""

from __future__ import annotations

import functools
import json
import re
import sys
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from ..errors import ConfigurationError, ConflictError, InvalidHistory
from ._validation import (
    MAX_DEPTH,
    MAX_INTEGER,
    MAX_KEY_BYTES,
    check_depth,
    check_integer,
    check_text,
    check_timestamp_us,
    json_depth,
)
from .base import UNSET, Entry, SessionData, SessionInfo, StoredMessage, Summary

__all__ = [
    "EXPORT_FORMAT",
    "MAX_SESSION_ID_LENGTH",
    "ROLES",
    "AsyncStoreBase",
    "EncodedEntry",
    "StoreBase",
    "append_allowed",
    "check_expected_version",
    "check_filters",
    "check_metadata",
    "check_optional_str",
    "check_page",
    "check_rewind_index",
    "check_session_changes",
    "check_session_id",
    "check_summary",
    "check_system",
    "check_token",
    "conflict",
    "decode_json",
    "decode_messages",
    "dumps",
    "encode_entries",
    "export_session",
    "find_last_turn",
    "fork_session",
    "from_us",
    "is_expired",
    "make_snippet",
    "message_text",
    "new_incarnation",
    "new_session_id",
    "normalize_tags",
    "now_us",
    "parse_import",
    "rewind_target",
    "search_terms",
    "stored_message",
    "text_matches",
    "to_us",
]

ROLES = ("user", "assistant")
MAX_SESSION_ID_LENGTH = 1000
EXPORT_FORMAT = "claude-history/1"
REWIND_RETRIES = 8


# --------------------------------------------------------------------------------------------------------
# JSON


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder()


def dumps(value: Any) -> str:
    """Compact JSON that keeps key order and non-ASCII text as is: what is stored is what the API returned.
    (``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, with one shared encoder.)

    A lone surrogate (valid in JSON as ``"\\ud800"``, so a reply can carry one) cannot be written as UTF-8:
    such a value is written with ``\\u`` escapes instead, which decode to the very same string."""
    text = _ENCODER.encode(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _ASCII_ENCODER.encode(value)
    return text


_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]  # the C scanner

_jiter: Any
try:  # jiter (Rust; the anthropic SDK's own JSON parser, so always there): two to three times json's speed
    import jiter as _jiter
except ImportError:  # pragma: no cover - a dependency of ours and of anthropic's
    _jiter = None


def _jiter_decoder(module: Any) -> Callable[..., Any] | None:
    """``module.from_json`` if it is jiter 0.5 or newer (0.4.0 decoded ``"\\u0080"`` to the wrong text), else None."""
    if module is None:
        return None
    match = re.match(r"(\d+)\.(\d+)", str(getattr(module, "__version__", "")))
    if match is None or (int(match[1]), int(match[2])) < (0, 5):
        return None
    decoder: Callable[..., Any] = module.from_json
    return decoder


_jiter_from_json = _jiter_decoder(_jiter)

# jiter refuses integer literals longer than this; json.loads refuses those longer than
# sys.get_int_max_str_digits() (4,300 by default, 0 = no limit), so jiter is used only when the limit is not lower.
_JITER_INT_DIGITS = 4300


def _fast_decoder() -> Callable[..., Any] | None:
    """jiter's ``from_json`` where it decodes exactly as ``json.loads``, else None.

    Where jiter accepts a text it gives the very values ``json.loads`` gives (same types, same floats to the
    bit, same key order, last duplicate key wins), with NaN and Infinity refused (``allow_inf_nan=False``); it
    refuses a few texts ``json.loads`` accepts (lone surrogate escapes, NaN, more than 200 levels of nesting,
    integers of more than 4,300 digits): callers then decode with ``json``, which gives its own value or its
    own error. So the results and the errors stay ``json.loads``'s; tests/stores/test_fast_decode.py checks it.
    ``cache_mode="keys"``: dict keys come from jiter's bounded process-wide cache; values are not cached, so
    no message text (even a short one) outlives its session in that cache after a delete, for about 4% of a
    long load."""
    if _jiter_from_json is None:
        return None
    limit = getattr(sys, "get_int_max_str_digits", None)  # Python 3.10.7+
    if limit is not None and 0 < limit() < _JITER_INT_DIGITS:
        return None
    return _jiter_from_json


def _decode_stdlib(text: str | bytes) -> Any:
    if not isinstance(text, str):
        text = text.decode("utf-8")
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)  # for json.loads's own error
    if end != len(text):
        return json.loads(text)
    return value


def decode_json(text: str | bytes | None) -> Any:
    """``json.loads`` for what the stores wrote, faster: through jiter (see ``_fast_decoder``) when it takes the
    text, else straight to json's C scanner for compact JSON with nothing around it (``JSONDecoder.decode``
    adds two regex matches per call), else the full decoder, so the result and the errors are exactly
    ``json.loads``'s. Bytes are UTF-8."""
    if text is None:
        return None
    fast = _fast_decoder()
    if fast is not None and (type(text) is bytes or type(text) is str):
        try:
            data = text.encode("utf-8") if isinstance(text, str) else text
            return fast(data, allow_inf_nan=False, cache_mode="keys")
        except ValueError:  # refused (or a lone surrogate that UTF-8 cannot encode): json decides
            pass
    return _decode_stdlib(text)


# --------------------------------------------------------------------------------------------------------
# Time: stores keep integer microseconds since the epoch (UTC) so every backend round-trips datetimes exactly.


def to_us(value: datetime, name: str = "datetime") -> int:
    """A naive datetime is taken as local time (what ``datetime.now()`` returns), as Python itself does.
    Refused (naming ``name``) outside the range every backend can give back (``_validation``)."""
    if not isinstance(value, datetime):
        raise ConfigurationError(f"{name} must be a datetime, got {type(value).__name__}")
    try:
        aware = value if value.tzinfo is not None else value.astimezone()
    except (OverflowError, ValueError):  # a naive datetime at the edge of year 1 or 9999
        raise ConfigurationError(f"{name} is out of range: {value!r}") from None
    delta = aware - _EPOCH
    return check_timestamp_us(name, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _datetime(value: int) -> datetime:
    # Exact integer arithmetic (no float seconds), and two to three times faster than fromtimestamp + replace.
    return _EPOCH + timedelta(microseconds=value)


@functools.lru_cache(maxsize=4096)
def from_us(value: int) -> datetime:
    """An aware UTC datetime. Cached: the messages of one turn share a timestamp."""
    return _datetime(value)


def now_us() -> int:
    import time

    return time.time_ns() // 1000


def is_expired(expires_at_us: int | None, now: int) -> bool:
    return expires_at_us is not None and expires_at_us <= now


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------------------
# Argument checks (clear errors for user mistakes, before anything is written)


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
    _check_json("metadata", metadata)
    return metadata


def check_system(system: object) -> str | list[dict[str, Any]] | None:
    if system is None or isinstance(system, str):
        return system
    if isinstance(system, list) and all(isinstance(block, dict) for block in system):
        _check_json("system", system)
        return system
    raise ConfigurationError("system must be a string, a list of content block dicts, or None")


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


def _check_json(name: str, value: Any) -> str:
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
        _check_json("summary usage", _usage_dict("summary usage", summary.usage))
    if summary.created_at is not None:
        to_us(summary.created_at, "summary created_at")
    return summary


def _usage_dict(name: str, usage: object) -> dict[str, Any]:
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


def conflict(
    session_id: str, expected: int, actual: int | None, unsaved: Sequence[Any] = (), *, replaced: bool = False
) -> ConflictError:
    """The one wording of a lost compare-and-swap (``replaced``: same version, another incarnation)."""
    state = f"is at version {actual}" if actual else "does not exist (version 0)"
    if replaced:
        state = f"was deleted and created again since it was read (now version {actual}, another incarnation)"
        hint = "the session you held is gone; reload the session and retry"
    elif expected == 0 and actual:
        hint = "it already exists; load it and append with its version, or choose another id"
    else:
        hint = "another writer committed first; reload the session and retry"
    return ConflictError(
        f"session {session_id!r} {state}, not {expected}: {hint}",
        session_id=session_id,
        expected_version=expected,
        actual_version=actual,
        unsaved=list(unsaved),
    )


def check_token(name: str, value: object) -> str | None:
    """An ``incarnation`` or ``turn_id``: None, or text of 1 to 200 bytes (uuid4 hex is what we make)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string or None, got {value!r}")
    return check_text(name, value, max_bytes=200)


def new_incarnation() -> str:
    return uuid.uuid4().hex


def takes_append_tokens(store: Any) -> bool:
    """Does ``store.append`` take ``incarnation`` and ``turn_id``? Every store of ours does; a user's own
    ``Store`` written before them may not, and keeps working without them. Read at each call (microseconds,
    beside a store write): a method may be replaced at run time."""
    import inspect

    try:
        parameters = inspect.signature(store.append).parameters
    except (TypeError, ValueError):  # pragma: no cover - a builtin or a mock without a signature
        return False
    return ("turn_id" in parameters and "incarnation" in parameters) or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def append_allowed(
    session_id: str,
    entries: Sequence[Any],
    expected: int,
    incarnation: str | None,
    turn_id: str | None,
    actual: int,
    actual_incarnation: str | None,
    last_turn: Callable[[], str | None],
) -> bool:
    """The compare-and-swap of ``append``, written once for every backend, against the session as it is
    (``actual`` 0 and no incarnation when it does not exist). True: write the turn. False: this very turn
    (``turn_id``) is what the last append committed, so the caller returns ``expected + 1`` and writes
    nothing. Otherwise ``ConflictError``. ``last_turn`` reads the id the last append recorded (only called
    when it can matter)."""
    same = incarnation is None or actual_incarnation is None or actual_incarnation == incarnation
    if actual == expected and same:
        return True
    if turn_id is not None and same and actual == expected + 1 and last_turn() == turn_id:
        return False
    raise conflict(session_id, expected, actual, entries, replaced=actual == expected)


# --------------------------------------------------------------------------------------------------------
# Messages


class EncodedEntry(NamedTuple):
    """An entry checked and serialised once, ready for any backend to write."""

    role: str
    message_json: str
    model: str | None
    usage_json: str | None
    text: str  # searchable text (see ``message_text``)


_new_object = object.__new__


def stored_message(
    seq: int, message: dict[str, Any], model: str | None, usage: dict[str, Any] | None, created_at: datetime
) -> StoredMessage:
    """``StoredMessage(seq, message, model, usage, created_at)`` without the frozen dataclass's ``__init__``
    (five ``object.__setattr__`` calls through keyword arguments): the same object, built in half the time,
    which counts when a load builds 10,000 of them. For values the store itself wrote and decoded."""
    item = _new_object(StoredMessage)
    fields = item.__dict__
    fields["seq"] = seq
    fields["message"] = message
    fields["model"] = model
    fields["usage"] = usage
    fields["created_at"] = created_at
    return item


def decode_messages(
    rows: Iterable[Sequence[Any]], *, stamp: Callable[[Any], datetime] = _datetime
) -> list[StoredMessage]:
    """The messages of a session from rows ``(message_json, model, usage_json, created)`` in log order (seq 0,
    1, ...): the one hot loop of every ``load``. ``stamp`` turns ``created`` into an aware UTC datetime
    (default: integer microseconds); each distinct value is converted once per load, as a turn's messages
    share it. The JSON (UTF-8 bytes, best, or text) is decoded as ``decode_json`` does, inlined: jiter where
    it decodes exactly as ``json.loads``, json for the rest."""
    fast = _fast_decoder()
    stdlib = _decode_stdlib
    new = _new_object
    stamps: dict[Any, datetime] = {}
    messages: list[StoredMessage] = []
    append = messages.append
    for seq, (message_json, model, usage_json, created) in enumerate(rows):
        created_at = stamps.get(created)
        if created_at is None:
            created_at = stamps[created] = stamp(created)
        if fast is None:
            message = stdlib(message_json)
            usage = None if usage_json is None else stdlib(usage_json)
        else:
            try:
                message = fast(
                    message_json if type(message_json) is bytes else message_json.encode(),
                    allow_inf_nan=False,
                    cache_mode="keys",
                )
            except (ValueError, AttributeError):  # refused by jiter (json decides), or not bytes nor str
                message = stdlib(message_json)
            if usage_json is None:  # user messages
                usage = None
            else:
                try:
                    usage = fast(
                        usage_json if type(usage_json) is bytes else usage_json.encode(),
                        allow_inf_nan=False,
                        cache_mode="keys",
                    )
                except (ValueError, AttributeError):
                    usage = stdlib(usage_json)
        item = new(StoredMessage)
        fields = item.__dict__
        fields["seq"] = seq
        fields["message"] = message
        fields["model"] = model
        fields["usage"] = usage
        fields["created_at"] = created_at
        append(item)
    return messages


def check_message(message: object, index: int) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise InvalidHistory(f"message {index} must be a dict with 'role' and 'content'", index=index)
    role = message.get("role")
    if role not in ROLES:
        raise InvalidHistory(
            f"message {index}: role must be 'user' or 'assistant', got {role!r}"
            + (" (pass a system prompt as system=..., not as a message)" if role == "system" else ""),
            index=index,
        )
    if "content" not in message:
        raise InvalidHistory(f"message {index} has no 'content'", index=index)
    content = message["content"]
    if not isinstance(content, (str, list)):
        raise InvalidHistory(
            f"message {index}: content must be a string or a list of content blocks, got {type(content).__name__}",
            index=index,
        )
    if isinstance(content, list):
        for position, block in enumerate(content):
            if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
                raise InvalidHistory(
                    f"message {index}: content block {position} must be a dict with a 'type'", index=index
                )
        if json_depth(content) >= MAX_DEPTH:  # the message dict adds one level
            raise InvalidHistory(
                f"message {index} nests more than {MAX_DEPTH} levels deep; so deep a message could not be read back",
                index=index,
            )
    return message if isinstance(message, dict) else dict(message)


def encode_entries(entries: Sequence[Entry]) -> list[EncodedEntry]:
    """Check and serialise a whole turn up front, so a bad entry fails before anything is written."""
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
        raise ConfigurationError("entries must be a sequence of Entry objects")
    if not entries:
        raise ConfigurationError("append needs at least one entry")
    encoded = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Entry):
            raise ConfigurationError(
                f"entry {index} is a {type(entry).__name__}; wrap messages as Entry(message, model=..., usage=...)"
            )
        message = check_message(entry.message, index)
        try:
            message_json = dumps(message)
        except (TypeError, ValueError) as exc:
            raise InvalidHistory(f"message {index} is not JSON-serialisable: {exc}", index=index) from None
        usage_json = None
        if entry.usage is not None:
            usage_json = _check_json(f"usage of entry {index}", _usage_dict(f"usage of entry {index}", entry.usage))
        model = check_optional_str(f"model of entry {index}", entry.model)
        encoded.append(EncodedEntry(message["role"], message_json, model, usage_json, message_text(message)))
    return encoded


def message_text(message: Mapping[str, Any]) -> str:
    """The human-readable text of a message, for full-text search: text blocks, tool results, search results
    and plain-text documents. Thinking, tool inputs and binary data are not indexed."""
    parts: list[str] = []
    _collect_text(message.get("content"), parts)
    text = "\n".join(part for part in parts if part)
    if not text.isascii():
        # Index a lone surrogate (see ``dumps``) as U+FFFD: search indexes hold UTF-8 text only.
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _collect_text(content: Any, parts: list[str]) -> None:
    if isinstance(content, str):
        parts.append(content)
        return
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str):
                parts.append(text)
        elif kind in ("tool_result", "search_result"):
            if isinstance(block.get("title"), str):
                parts.append(block["title"])
            _collect_text(block.get("content"), parts)
        elif kind == "document":
            if isinstance(block.get("title"), str):
                parts.append(block["title"])
            source = block.get("source")
            if isinstance(source, Mapping) and source.get("type") == "text" and isinstance(source.get("data"), str):
                parts.append(source["data"])


# --------------------------------------------------------------------------------------------------------
# Search: every backend matches the same way, "every word of the query, whole words, case-insensitive".
# Words are runs of letters and digits, as SQLite FTS5's unicode61 tokenizer and PostgreSQL's 'simple'
# parser see them.

_WORD = re.compile(r"[^\W_]+")


def search_terms(query: object) -> list[str]:
    if not isinstance(query, str):
        raise ConfigurationError(f"search query must be a string, got {type(query).__name__}")
    return list(dict.fromkeys(word.lower() for word in _WORD.findall(query)))


def text_matches(text: str, terms: Sequence[str]) -> bool:
    if not terms:
        return False
    words = {word.lower() for word in _WORD.findall(text)}
    return all(term in words for term in terms)


def make_snippet(text: str, terms: Sequence[str], width: int = 160) -> str:
    """About ``width`` characters of ``text`` around the first matching word, on one line."""
    lowered = text.lower()
    position = -1
    for match in _WORD.finditer(lowered):
        if match.group() in terms:
            position = match.start()
            break
    if len(text) <= width:
        snippet = text
    else:
        start = max(0, min(position - width // 3, len(text) - width)) if position >= 0 else 0
        snippet = text[start : start + width]
        snippet = ("…" if start > 0 else "") + snippet + ("…" if start + width < len(text) else "")
    return " ".join(snippet.split())


# --------------------------------------------------------------------------------------------------------
# Operations built from loaded sessions


def rewind_target(messages: Sequence[Mapping[str, Any]], to: int | None) -> int:
    """Where a rewind cuts: ``to`` itself, checked, or by default the start of the last turn (the last user
    message that is not only tool results, per ``history.turn_starts``)."""
    count = len(messages)
    if to is None:
        from ..history import last_turn_start

        start = last_turn_start(messages)
        if start is None:
            raise ConfigurationError("the session has no turn to rewind")
        return start
    return check_rewind_index(to, count)


def check_rewind_index(to: object, count: int | None = None) -> int:
    """An explicit rewind target: an int from 0 to ``count`` (the session's message count; ``None``: check the
    type only, before the count is known)."""
    if isinstance(to, bool) or not isinstance(to, int) or to < 0 or to > (MAX_INTEGER if count is None else count):
        upto = "n (the message count)" if count is None else str(count)
        raise ConfigurationError(f"rewind target must be an index from 0 to {upto}, got {to!r}")
    return to


TAIL_CHUNK = 16  # messages read per step, growing 4x, when looking for the start of the last turn


def find_last_turn(read: Callable[[int, int], Sequence[Mapping[str, Any]]], count: int) -> int:
    """The start of the last turn, reading the log backwards in growing chunks: ``read(start, end)`` returns
    messages ``[start, end)``. A rewind then costs about one turn however long the session is."""
    from ..history import last_turn_start

    end, size = count, TAIL_CHUNK
    while end > 0:
        start = max(0, end - size)
        found = last_turn_start(read(start, end))
        if found is not None:
            return start + found
        end, size = start, size * 4
    raise ConfigurationError("the session has no turn to rewind")


def fork_session(data: SessionData, *, at: int | None, new_id: str | None, now: int) -> SessionData:
    """The session a fork creates: messages ``[0, at)`` with their timestamps, the metadata, and the summaries
    that lie inside the prefix. Its version is 1 if it holds messages (as if appended in one go), else 0."""
    count = len(data.messages)
    if at is None:
        at = count
    if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= count:
        raise ConfigurationError(f"fork point must be an index from 0 to {count}, got {at!r}")
    target = check_session_id(new_id) if new_id is not None else new_session_id()
    stamp = from_us(now)
    info = replace(
        data.info,
        id=target,
        version=1 if at else 0,
        created_at=stamp,
        updated_at=stamp,
        message_count=at,
        tags=tuple(data.info.tags),
        metadata=dict(data.info.metadata),
        incarnation=new_incarnation(),
    )
    return SessionData(
        info=info,
        messages=list(data.messages[:at]),
        summaries=[summary for summary in data.summaries if summary.end <= at],
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_iso(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be an ISO 8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(f"{what} is not an ISO 8601 timestamp: {value!r}") from None
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    return from_us(to_us(parsed, what))  # in range, and in UTC as every backend gives it back


def _import_text(data: object) -> str:
    """What ``import_jsonl`` was given, as one text: a str, UTF-8 bytes, or an iterable of str lines."""
    if isinstance(data, str):
        return data
    if isinstance(data, (bytes, bytearray)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"import data is not UTF-8 text: {exc}") from None
    try:
        lines = list(data)  # type: ignore[call-overload]
    except TypeError:
        raise ConfigurationError(
            f"import data must be a string or an iterable of lines, got {type(data).__name__}"
        ) from None
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, str):
            raise ConfigurationError(f"import line {number} must be a string, got {type(line).__name__}")
    return "\n".join(lines)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _import_json(text: str, what: str) -> Any:
    """``json.loads`` of import input, every failure a ``ConfigurationError`` naming ``what``: bad JSON, NaN or
    Infinity (no backend stores them), integers too long to read, nesting too deep for Python's parser."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, NaN, and integers past sys.get_int_max_str_digits()
        raise ConfigurationError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigurationError(f"{what} nests too deeply to be read") from None


def export_session(data: SessionData) -> str:
    """JSON Lines: a header with the metadata and summaries, then one line per message with model, usage and
    creation time. Messages are embedded unchanged (key order kept), so an import restores them byte for
    byte."""
    info = data.info
    header = {
        "type": "session",
        "format": EXPORT_FORMAT,
        "id": info.id,
        "title": info.title,
        "owner": info.owner,
        "tags": list(info.tags),
        "model": info.model,
        "system": info.system,
        "expires_at": _iso(info.expires_at),
        "metadata": info.metadata,
        "created_at": _iso(info.created_at),
        "updated_at": _iso(info.updated_at),
        "message_count": len(data.messages),
        "summaries": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "model": s.model,
                "usage": None if s.usage is None else dict(s.usage),
                "created_at": _iso(s.created_at),
            }
            for s in data.summaries
        ],
    }
    lines = [dumps(header)]
    for stored in data.messages:
        lines.append(
            dumps(
                {
                    "type": "message",
                    "seq": stored.seq,
                    "message": stored.message,
                    "model": stored.model,
                    "usage": stored.usage,
                    "created_at": _iso(stored.created_at),
                }
            )
        )
    return "\n".join(lines) + "\n"


def parse_import(data: str | Iterable[str], *, session_id: str | None, now: int) -> SessionData:
    """Read ``export_session`` output, JSON Lines of plain messages, or a JSON list of ``{"role", "content"}``
    dicts (how the guides save a history). Everything is checked before anything is written."""
    text = _import_text(data)
    stripped = text.lstrip()
    header: dict[str, Any] | None = None
    records: list[tuple[int, Mapping[str, Any]]] = []
    if stripped.startswith("["):
        items = _import_json(stripped, "import data")
        if not isinstance(items, list):
            raise ConfigurationError("import data must be a JSON list of messages or JSON Lines")
        records = [(1, {"message": item}) for item in items]
    else:
        # Split on "\n" only: str.splitlines() also splits on U+2028, U+0085 and others, which JSON written
        # with ensure_ascii=False keeps raw inside strings.
        for line_number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            record = _import_json(line, f"import line {line_number}")
            if not isinstance(record, dict):
                raise ConfigurationError(f"import line {line_number} must be a JSON object")
            kind = record.get("type")
            if kind == "session":
                if header is not None or records:
                    raise ConfigurationError(f"import line {line_number}: the session header must be the first line")
                header = record
            elif kind == "message":
                records.append((line_number, record))
            elif "role" in record:
                records.append((line_number, {"message": record}))
            else:
                raise ConfigurationError(
                    f"import line {line_number} is neither a session header, a message record nor a message"
                )
    stamp = from_us(now)
    messages: list[StoredMessage] = []
    for seq, (line_number, record) in enumerate(records):
        message = check_message(record.get("message"), seq)
        if "seq" in record and record["seq"] != seq:
            raise ConfigurationError(
                f"import line {line_number}: message seq {record['seq']!r} is out of order (expected {seq})"
            )
        try:
            dumps(message)
        except (TypeError, ValueError) as exc:  # pragma: no cover - json.loads output always serialises
            raise InvalidHistory(f"message {seq} is not JSON-serialisable: {exc}", index=seq) from None
        usage = record.get("usage")
        if usage is not None:
            usage = _usage_dict(f"usage on import line {line_number}", usage)
            _check_json(f"usage on import line {line_number}", usage)
        created = _parse_iso(record.get("created_at"), f"created_at on import line {line_number}") or stamp
        messages.append(
            StoredMessage(
                seq=seq,
                message=dict(message),
                model=check_optional_str("model", record.get("model")),
                usage=usage,
                created_at=created,
            )
        )
    head = header or {}
    if header is not None and header.get("format") not in (None, EXPORT_FORMAT):
        raise ConfigurationError(f"unknown export format {header.get('format')!r}; expected {EXPORT_FORMAT!r}")
    target = session_id if session_id is not None else head.get("id")
    target = check_session_id(target) if target is not None else new_session_id()
    summaries = []
    raw_summaries = head.get("summaries") or []
    if not isinstance(raw_summaries, list):
        raise ConfigurationError("summaries in the import header must be a list")
    for raw in raw_summaries:
        if not isinstance(raw, dict):
            raise ConfigurationError("summaries in the import header must be objects")
        try:
            summary = Summary(
                start=raw["start"],
                end=raw["end"],
                text=raw["text"],
                model=raw.get("model"),
                usage=raw.get("usage"),
                created_at=_parse_iso(raw.get("created_at"), "summary created_at") or stamp,
            )
        except KeyError as exc:
            raise ConfigurationError(f"summary in the import header lacks {exc}") from None
        summaries.append(check_summary(summary, len(messages)))
    created_at = _parse_iso(head.get("created_at"), "created_at") or stamp
    updated_at = _parse_iso(head.get("updated_at"), "updated_at") or stamp
    info = SessionInfo(
        id=target,
        version=1 if messages else 0,
        created_at=created_at,
        updated_at=updated_at,
        message_count=len(messages),
        title=check_optional_str("title", head.get("title")),
        owner=check_optional_str("owner", head.get("owner")),
        tags=normalize_tags(head.get("tags") or ()),
        model=check_optional_str("model", head.get("model")),
        system=check_system(head.get("system")),
        expires_at=_parse_iso(head.get("expires_at"), "expires_at"),
        metadata=check_metadata(head.get("metadata") or {}),
        incarnation=new_incarnation(),  # an imported session is a new one, whatever the file says
    )
    return SessionData(info=info, messages=messages, summaries=summaries)


# --------------------------------------------------------------------------------------------------------
# Glue: generic fork / rewind / export / import over the backend primitives


def _check_rewind_arguments(to: object, expected_version: object) -> None:
    if expected_version is not None:
        check_expected_version(expected_version)
    if to is not None:
        check_rewind_index(to)


class StoreBase(ABC):
    """Generic ``fork``, ``rewind``, ``export_jsonl``, ``import_jsonl`` and context-manager support for a sync
    backend. Backends implement the rest of ``Store`` plus ``_create`` and ``_truncate``; they may override
    any generic method with a faster native one."""

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
    def _truncate(self, session_id: str, to: int, expected_version: int) -> int:
        """Keep messages ``[0, to)`` and summaries with ``end <= to``; version + 1, with CAS; new version."""

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
    ) -> SessionInfo:
        """The typed signature lives here once; a backend implements ``_update_session`` over the dict of the
        arguments given (``UNSET`` ones included: ``check_session_changes`` drops them)."""
        changes = {
            "title": title,
            "owner": owner,
            "tags": tags,
            "model": model,
            "system": system,
            "expires_at": expires_at,
            "metadata": metadata,
        }
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

    def rewind(self, session_id: str, *, to: int | None = None, expected_version: int | None = None) -> int:
        # Never a whole load unless the backend cannot read its tail: an explicit ``to`` only needs the version
        # (and ``_truncate`` checks it against the count); the last turn is found from the tail. Without
        # expected_version the caller means "the last turn as it is now": look again if a writer slips in.
        check_session_id(session_id)
        _check_rewind_arguments(to, expected_version)
        for attempt in range(REWIND_RETRIES):
            if to is None:
                version, target = self._last_turn(session_id)
            else:
                target = to
                version = self.get_session(session_id).version if expected_version is None else expected_version
            if expected_version is not None and version != expected_version:
                raise conflict(session_id, expected_version, version)
            try:
                return self._truncate(session_id, target, version)
            except ConflictError:
                if expected_version is not None or attempt == REWIND_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

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

    @abstractmethod
    async def load(self, session_id: str) -> SessionData: ...

    @abstractmethod
    async def get_session(self, session_id: str) -> SessionInfo: ...

    @abstractmethod
    async def aclose(self) -> None: ...

    @abstractmethod
    async def _create(self, data: SessionData) -> None: ...

    @abstractmethod
    async def _truncate(self, session_id: str, to: int, expected_version: int) -> int: ...

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

    async def rewind(self, session_id: str, *, to: int | None = None, expected_version: int | None = None) -> int:
        check_session_id(session_id)
        _check_rewind_arguments(to, expected_version)
        for attempt in range(REWIND_RETRIES):
            if to is None:
                version, target = await self._last_turn(session_id)
            else:
                target = to
                version = (await self.get_session(session_id)).version if expected_version is None else expected_version
            if expected_version is not None and version != expected_version:
                raise conflict(session_id, expected_version, version)
            try:
                return await self._truncate(session_id, target, version)
            except ConflictError:
                if expected_version is not None or attempt == REWIND_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

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
