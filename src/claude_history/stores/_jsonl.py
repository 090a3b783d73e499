"""JSON Lines export and import, the same on every backend: ``export_session`` writes a header and one line
per message (messages embedded unchanged, so an import restores them byte for byte); ``parse_import`` reads
that, plain JSON Lines of messages, or a JSON list of messages, and checks everything before anything is
written."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigurationError, InvalidHistory
from ._cas import new_incarnation
from ._checks import (
    check_json,
    check_metadata,
    check_optional_str,
    check_session_id,
    check_summary,
    check_system,
    new_session_id,
    normalize_tags,
    usage_dict,
)
from ._json import dumps
from ._messages import check_message
from ._times import from_us, to_us
from .base import SessionData, SessionInfo, StoredMessage, Summary

__all__ = ["EXPORT_FORMAT", "export_session", "parse_import"]

EXPORT_FORMAT = "claude-history/1"


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
            usage = usage_dict(f"usage on import line {line_number}", usage)
            check_json(f"usage on import line {line_number}", usage)
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
