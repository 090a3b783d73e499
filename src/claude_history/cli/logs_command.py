"""`claude-history logs`: the newest turns across sessions (a question and its reply), as `llm logs` shows them.

A turn here is a user message that starts a turn and the last assistant reply before the next one; tool loops
inside it are summed into its usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from ..history import turns
from ..usage import TokenUsage
from .options import out_console, store_option
from .render import content_text, format_cost, format_usage
from .spent import inherited, priced
from .store_access import ENCRYPTION_MARK, opened

if TYPE_CHECKING:
    from ..stores.base import SessionInfo, Store

__all__ = ["logs_group"]

# Every listed session is read; a bound keeps one command on a huge store from reading everything.
MAX_SESSIONS = 1_000


@dataclass
class TurnLog:
    session_id: str
    title: str | None
    seq: int
    at: datetime
    prompt: str
    reply: str
    model: str | None
    usage: dict[str, int]
    cost: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "prompt": self.prompt,
            "reply": self.reply,
            "model": self.model,
            "usage": self.usage,
            "cost": self.cost,
        }


def _since(value: str) -> datetime:
    """``2026-12-01``, an ISO time, or a duration back from now: ``30m``, ``12h``, ``7d``."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if value[:-1].isdigit() and value[-1:] in units:
        return datetime.now(timezone.utc) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use a date (2026-12-01), a time (2026-12-01T09:30) or 30m / 12h / 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _turn_logs(store: Store, info: SessionInfo) -> Iterator[TurnLog]:
    data = store.load(info.id)
    params = data.message_params()
    skip = inherited(info.metadata)  # a fork's copied turns are logged once, in the parent
    for span in turns(params):
        if span.start < skip:
            continue
        first = data.messages[span.start]
        replies = [data.messages[i] for i in span if data.messages[i].role == "assistant"]
        total = TokenUsage()
        cost: float | None = 0.0
        for reply in replies:
            if reply.usage:
                total = total + TokenUsage.from_api(reply.usage)
                one = priced(reply.model, reply.usage)
                cost = None if one is None or cost is None else cost + one
        last = replies[-1] if replies else None
        yield TurnLog(
            session_id=info.id,
            title=info.title,
            seq=first.seq,
            at=first.created_at,
            prompt=content_text(first.message.get("content")),
            reply=content_text(last.message.get("content")) if last else "",
            model=last.model if last else None,
            usage=total.to_dict(),
            cost=cost if replies else None,
        )


@click.group("logs", invoke_without_command=True)
@click.option("-n", "--count", type=click.IntRange(min=1), default=3, show_default=True, help="How many turns.")
@click.option("-q", "--query", metavar="TEXT", help="Only turns whose question or reply holds TEXT.")
@click.option("-m", "--model", help="Only replies of this model.")
@click.option("--since", metavar="WHEN", help="Only turns since a date, a time, or 30m / 12h / 7d ago.")
@click.option("--session", "session_id", metavar="ID", help="Only this session.")
@click.option("--cost", "show_cost", is_flag=True, help="Show each turn's tokens and cost.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, newest first.")
@store_option
@click.pass_context
def logs_group(
    ctx: click.Context,
    count: int,
    query: str | None,
    model: str | None,
    since: str | None,
    session_id: str | None,
    show_cost: bool,
    as_json: bool,
    store_url: str | None,
) -> None:
    """The newest turns across sessions, newest last (like `llm logs`).

    \b
    Examples:
      claude-history logs -n 10
      claude-history logs -q lisbon --since 7d --cost
      claude-history logs path
    """
    if ctx.invoked_subcommand is not None:
        return
    after = _since(since) if since else None
    with opened(store_url) as store:
        infos = [store.get_session(session_id)] if session_id else store.list_sessions(limit=MAX_SESSIONS)
        found = [
            log
            for info in infos
            if ENCRYPTION_MARK not in info.metadata
            for log in _turn_logs(store, info)
            if (after is None or log.at >= after)
            and (model is None or log.model == model)
            and (query is None or query.lower() in (log.prompt + "\n" + log.reply).lower())
        ]
    newest = sorted(found, key=lambda log: log.at, reverse=True)[:count]
    if as_json:
        for log in newest:
            click.echo(json.dumps(log.to_json(), ensure_ascii=False))
        return
    console = out_console()
    if not newest:
        console.print("No turns.", style="dim")
        return
    for log in reversed(newest):  # oldest first, so the newest is next to the prompt
        head = f"── {log.at.astimezone():%Y-%m-%d %H:%M} · session {log.session_id} #{log.seq}"
        head += f" · {log.model}" if log.model else " · no reply"
        if show_cost and log.model:
            head += f" · {format_usage(log.usage)} · {format_cost(log.cost)}"
        console.print(Text(head, style="dim"))
        console.print(Text("> " + log.prompt.replace("\n", "\n> "), style="cyan"))
        console.print(Text(log.reply))


@logs_group.command("path")
@store_option
def path_command(store_url: str | None) -> None:
    """Where the logs are kept: the store's file or directory, or its URL.

    \b
    Example:
      claude-history logs path
    """
    import os

    from ..stores import DEFAULT_STORE_ENV, default_sqlite_path
    from .store_access import store_path

    url = store_url or os.environ.get(DEFAULT_STORE_ENV)
    if not url or url == "sqlite://":
        click.echo(str(default_sqlite_path()))
        return
    path = store_path(url)
    click.echo(str(path) if path is not None else url)
