"""Rich rendering of sessions, messages, usage and search hits. Presentation only: no history logic here."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from ..stores.base import SearchHit, SessionData, StoredMessage
from .spent import Spending, inherited, priced, spending

if TYPE_CHECKING:
    from .overview import SessionRow

__all__ = [
    "USAGE_FIELDS",
    "content_text",
    "format_cost",
    "format_spending",
    "format_usage",
    "message_cost",
    "render_hits",
    "render_session",
    "render_sessions",
    "usage_dict",
]

# Token kinds in the order we show them, with short labels.
USAGE_FIELDS: tuple[tuple[str, str], ...] = (
    ("input_tokens", "input"),
    ("output_tokens", "output"),
    ("cache_creation_input_tokens", "cache write"),
    ("cache_read_input_tokens", "cache read"),
)


def usage_dict(usage: Any) -> dict[str, Any]:
    """A plain dict from whatever usage object we are given (SDK model, dataclass, mapping, None)."""
    if usage is None:
        return {}
    if isinstance(usage, Mapping):
        return dict(usage)
    dump = getattr(usage, "model_dump", None)
    if callable(dump):
        return dict(dump(exclude_none=True))
    if dataclasses.is_dataclass(usage) and not isinstance(usage, type):
        return dataclasses.asdict(usage)
    return {k: v for k, v in vars(usage).items() if not k.startswith("_")}


def format_usage(usage: Any) -> str:
    """``input 12 · output 30 · cache write 0 · cache read 0`` (kinds that are absent are left out)."""
    data = usage_dict(usage)
    parts = [f"{label} {int(data[key]):,}" for key, label in USAGE_FIELDS if data.get(key) is not None]
    return " · ".join(parts) if parts else "no usage recorded"


def format_cost(cost: float | None) -> str:
    if cost is None:
        return "cost unknown"
    if cost and cost < 0.01:
        return f"${cost:.6f}"
    return f"${cost:.4f}"


def content_text(content: Any) -> str:
    """A message's content as readable text: text blocks verbatim, other blocks as short bracketed notes."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or ():
        parts.append(_block_text(block if isinstance(block, Mapping) else usage_dict(block)))
    return "\n".join(p for p in parts if p)


def _block_text(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "thinking":
        return f"[thinking] {block.get('thinking', '')}"
    if kind == "redacted_thinking":
        return "[redacted thinking]"
    if kind == "tool_use" or kind == "server_tool_use":
        args = json.dumps(block.get("input", {}), ensure_ascii=False)
        return f"[{kind} {block.get('name')} {block.get('id')}] {_clip(args, 300)}"
    if kind == "tool_result":
        flag = " error" if block.get("is_error") else ""
        inner = content_text(block.get("content", ""))
        return f"[tool_result{flag} {block.get('tool_use_id')}] {_clip(inner, 300)}"
    if kind in ("image", "document"):
        source = block.get("source") or {}
        detail = source.get("media_type") or source.get("url") or source.get("type") or ""
        return f"[{kind} {detail}]".replace(" ]", "]")
    if kind == "compaction":
        return f"[compaction] {_clip(str(block.get('content', '')), 300)}"
    return f"[{kind}]"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else ""


def render_sessions(console: Console, rows: Sequence[SessionRow]) -> None:
    if not rows:
        console.print("No sessions.", style="dim")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("session", overflow="fold")
    table.add_column("updated", no_wrap=True)
    table.add_column("turns", justify="right")
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("model")
    table.add_column("title", overflow="ellipsis")
    for row in rows:
        info = row.info
        title = info.title or ""
        if info.tags:
            title = (title + " " if title else "") + " ".join(f"#{t}" for t in info.tags)
        table.add_row(
            Text(info.id),
            _when(info.updated_at),
            "?" if row.turns is None else str(row.turns),
            _short_cost(row.spent),
            Text(info.model or ""),
            Text(title),
        )
    console.print(table)


def _short_cost(spent: Spending | None) -> str:
    if spent is None or not spent.replies:
        return ""
    if spent.unpriced == spent.replies:
        return "?"
    return ("≥" if spent.unpriced else "") + format_cost(spent.cost)


def message_cost(message: StoredMessage) -> float | None:
    """Cost of the API call that produced this reply; ``None`` when the model has no price (no warning noise:
    the display says "cost unknown")."""
    return priced(message.model, message.usage) if message.usage else None


def format_spending(spent: Spending) -> str:
    """``$0.0123``, with what is uncertain or off the log said: ``at least ...`` when some replies have no
    price, ``(of which $x for 2 undone or interrupted replies)`` when some were paid for and left the log."""
    if spent.unpriced == spent.replies and spent.replies:
        text = format_cost(None)
    elif spent.unpriced:
        text = f"at least {format_cost(spent.cost)} (+{spent.unpriced} of {spent.replies} replies from unpriced models)"
    else:
        text = format_cost(spent.cost)
    if spent.off_log_replies:
        count = spent.off_log_replies
        replies = "1 undone or interrupted reply" if count == 1 else f"{count} undone or interrupted replies"
        text += f" (of which {format_cost(spent.off_log_cost)} for {replies})"
    return text


def render_session(console: Console, data: SessionData) -> None:
    """Every message with its role and time; replies with their model, usage and cost; then totals."""
    info = data.info
    console.print(Text(f"Session {info.id}", style="bold"))
    meta = [
        f"created {_when(info.created_at)}",
        f"updated {_when(info.updated_at)}",
        f"version {info.version}",
    ]
    if info.model:
        meta.append(f"model {info.model}")
    if info.owner:
        meta.append(f"owner {info.owner}")
    if info.tags:
        meta.append("tags " + ", ".join(info.tags))
    console.print(Text(" · ".join(meta), style="dim"))
    if info.title:
        console.print(Text(f"title: {info.title}", style="dim"))
    if info.system:
        console.print()
        console.print(Text("system", style="bold magenta"))
        console.print(Text(content_text(info.system)))
    for message in data.messages:
        console.print()
        console.print(_message_title(message, message_cost(message)))
        console.print(_body(console, message))
    for summary in data.summaries:
        note = f"[summary of messages {summary.start}-{summary.end - 1}] {summary.text}"
        console.print(Text(note, style="dim"))
    # Piped, the console is PIPE_WIDTH wide so that no row wraps: the rule keeps a terminal's width.
    console.print(Rule(style="dim"), width=None if console.is_terminal else min(console.width, 80))
    line = f"{len(data.messages)} messages"
    spent = spending(info, data.messages)
    if spent.replies:
        line += f" · {format_usage(spent.usage)} · {format_spending(spent)}"
    skip = inherited(info.metadata)
    if skip:
        line += f" (messages 0-{skip - 1} were copied from the session this forks, and paid there)"
    console.print(Text(line, style="bold"))


def _body(console: Console, message: StoredMessage) -> RenderableType:
    """A reply as Markdown on a terminal (as the chat showed it); everything else, and any text into a pipe,
    exactly as stored."""
    text = content_text(message.message.get("content"))
    if message.role == "assistant" and console.is_terminal:
        from rich.markdown import Markdown

        return Markdown(text, code_theme="monokai")
    return Text(text)


def _message_title(message: StoredMessage, cost: float | None) -> Text:
    style = "cyan" if message.role == "user" else "green"
    title = Text(f"#{message.seq} {message.role}", style="bold " + style)
    extra = [_when(message.created_at)]
    if message.model:
        extra.append(message.model)
    if message.usage:
        extra.append(format_usage(message.usage))
        extra.append(format_cost(cost))
    title.append(" · " + " · ".join(e for e in extra if e), style="dim")
    return title


def render_hits(console: Console, hits: Iterable[SearchHit]) -> None:
    hits = list(hits)
    if not hits:
        console.print("No matches.", style="dim")
        return
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("session", overflow="fold")
    table.add_column("#", justify="right")
    table.add_column("role")
    table.add_column("snippet", overflow="fold")
    for hit in hits:
        table.add_row(Text(hit.session_id), str(hit.seq), hit.role, Text(hit.snippet))
    console.print(table)
