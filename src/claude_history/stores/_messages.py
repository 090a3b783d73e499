"""Messages as the stores hold them: checked and serialised once on the way in (``encode_entries``), and
built back from stored rows on the way out (``decode_messages``, the one hot loop of every load)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from ..errors import ConfigurationError, InvalidHistory
from ._cas import check_token
from ._checks import check_expected_version, check_json, check_optional_str, check_session_id, usage_dict
from ._json import decode_stdlib, dumps, fast_decoder
from ._search_text import message_text
from ._times import datetime_from_us
from ._validation import MAX_DEPTH, json_depth
from .base import Entry, StoredMessage, UsageRecord

__all__ = [
    "ROLES",
    "EncodedEntry",
    "check_append",
    "check_message",
    "decode_messages",
    "encode_entries",
    "stored_message",
    "usage_records",
]

ROLES = ("user", "assistant")


class EncodedEntry(NamedTuple):
    """An entry checked and serialised once, ready for any backend to write."""

    role: str
    message_json: str
    model: str | None
    usage_json: str | None
    text: str  # searchable text (see ``message_text``)


_new_object = object.__new__
# The slots' own setters: they fill a frozen StoredMessage without its __init__ (keyword arguments, five
# object.__setattr__ calls), in a third of the time, which counts when a load builds 100,000 of them.
_SET_SEQ = vars(StoredMessage)["seq"].__set__
_SET_MESSAGE = vars(StoredMessage)["message"].__set__
_SET_MODEL = vars(StoredMessage)["model"].__set__
_SET_USAGE = vars(StoredMessage)["usage"].__set__
_SET_CREATED_AT = vars(StoredMessage)["created_at"].__set__


def stored_message(
    seq: int, message: dict[str, Any], model: str | None, usage: dict[str, Any] | None, created_at: datetime
) -> StoredMessage:
    """``StoredMessage(seq, message, model, usage, created_at)`` without the frozen dataclass's ``__init__``:
    the same object, built faster. For values the store itself wrote and decoded."""
    item = _new_object(StoredMessage)
    _SET_SEQ(item, seq)
    _SET_MESSAGE(item, message)
    _SET_MODEL(item, model)
    _SET_USAGE(item, usage)
    _SET_CREATED_AT(item, created_at)
    return item


def decode_messages(
    rows: Iterable[Sequence[Any]], *, stamp: Callable[[Any], datetime] = datetime_from_us, first_seq: int = 0
) -> list[StoredMessage]:
    """The messages of a session from rows ``(message_json, model, usage_json, created)`` in log order (seq 0,
    1, ...): the one hot loop of every ``load``. ``stamp`` turns ``created`` into an aware UTC datetime
    (default: integer microseconds); each distinct value is converted once per load, as a turn's messages
    share it. The JSON (UTF-8 bytes, best, or text) is decoded as ``decode_json`` does, inlined: jiter where
    it decodes exactly as ``json.loads``, json for the rest."""
    fast = fast_decoder()
    stdlib = decode_stdlib
    new = _new_object
    set_seq, set_message, set_model, set_usage, set_created_at = (
        _SET_SEQ,
        _SET_MESSAGE,
        _SET_MODEL,
        _SET_USAGE,
        _SET_CREATED_AT,
    )
    stamps: dict[Any, datetime] = {}
    messages: list[StoredMessage] = []
    append = messages.append
    for seq, (message_json, model, usage_json, created) in enumerate(rows, first_seq):
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
        set_seq(item, seq)
        set_message(item, message)
        set_model(item, model)
        set_usage(item, usage)
        set_created_at(item, created_at)
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
            usage_json = check_json(f"usage of entry {index}", usage_dict(f"usage of entry {index}", entry.usage))
        model = check_optional_str(f"model of entry {index}", entry.model)
        encoded.append(EncodedEntry(message["role"], message_json, model, usage_json, message_text(message)))
    return encoded


def usage_records(messages: Iterable[StoredMessage]) -> list[UsageRecord]:
    """``usage_log`` from loaded messages (for backends that cannot read the usage alone)."""
    return [UsageRecord(m.seq, m.model, m.usage, m.created_at) for m in messages if m.usage is not None]


def check_append(
    session_id: object, entries: Sequence[Entry], expected_version: object, incarnation: object, turn_id: object
) -> list[EncodedEntry]:
    """The arguments of ``append``, checked in one order by every backend (and the encrypted wrapper) before
    any I/O: the id, the version, the tokens, then the whole turn, encoded once."""
    check_session_id(session_id)
    check_expected_version(expected_version)
    check_token("incarnation", incarnation)
    check_token("turn_id", turn_id)
    return encode_entries(entries)
