"""A session as a Markdown document (``sessions export --format markdown``, ``/export FILE.md``): for reading
and sharing; the JSON Lines export is the one that round-trips."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .render import content_text, format_cost, format_usage, message_cost
from .store_access import check_readable

if TYPE_CHECKING:
    from ..stores.base import SessionData, Store

__all__ = ["FORMATS", "export_text", "session_markdown"]

FORMATS = ("jsonl", "markdown")


def export_text(store: Store, session_id: str, fmt: str) -> str:
    """The session in ``fmt`` (one of ``FORMATS``), ending with a newline."""
    if fmt == "markdown":
        data = store.load(session_id)
        check_readable(data.info)
        return session_markdown(data)
    check_readable(store.get_session(session_id))
    text = store.export_jsonl(session_id)
    return text if text.endswith("\n") or not text else text + "\n"


def session_markdown(data: SessionData) -> str:
    info = data.info
    lines = [f"# {info.title or 'Session ' + info.id}", ""]
    meta = [f"session `{info.id}`", f"created {info.created_at:%Y-%m-%d %H:%M} UTC"]
    if info.model:
        meta.append(f"model `{info.model}`")
    if info.tags:
        meta.append("tags " + ", ".join(f"`{t}`" for t in info.tags))
    lines += [" · ".join(meta), ""]
    if info.system:
        lines += ["## System", "", content_text(info.system), ""]
    for message in data.messages:
        heading = "You" if message.role == "user" else "Claude"
        lines += [f"## {heading}", ""]
        if message.usage:
            usage = f"{format_usage(message.usage)} · {format_cost(message_cost(message))}"
            lines += [f"*{message.model or 'unknown model'} · {usage}*", ""]
        lines += [content_text(message.message.get("content")), ""]
    return "\n".join(lines).rstrip() + "\n"
