"""`claude-history logs`: the newest turns across sessions (a question and its reply), as `llm logs` shows them.

A turn here is a user message that starts a turn and the last assistant reply before the next one; tool loops
inside it are summed into its usage.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from ..errors import SessionNotFound
from ..history import turns
from ..usage import TokenUsage
from .options import err_console, out_console, store_option
from .render import content_text, format_cost, format_usage
from .spent import inherited, priced
from .store_access import ENCRYPTION_MARK, check_readable, opened

if TYPE_CHECKING:
    from ..stores.base import SessionInfo, Store, StoredMessage

__all__ = ["logs_group"]

# Sessions are read newest first, and only until the answer cannot change; a search for a rare text may
# still walk far back: a bound keeps one command on a huge store from reading everything.
MAX_SESSIONS = 10_000
PAGE = 100  # sessions listed per store call
FIRST_WINDOW = 16  # messages read from the end of a session first; doubled while more turns are needed


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


def _turn_log(info: SessionInfo, messages: Sequence[StoredMessage], span: range) -> TurnLog:
    first = messages[span.start]
    replies = [messages[i] for i in span if messages[i].role == "assistant"]
    total = TokenUsage()
    cost: float | None = 0.0
    for reply in replies:
        if reply.usage:
            total = total + TokenUsage.from_api(reply.usage)
            one = priced(reply.model, reply.usage)
            cost = None if one is None or cost is None else cost + one
    last = replies[-1] if replies else None
    return TurnLog(
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


def _turn_logs_newest_first(store: Store, info: SessionInfo) -> Iterator[TurnLog]:
    """A session's turns from its newest back, read from the end of the log in growing windows, so a caller
    that has what it needs stops before the session is read whole. A fork's copied turns are left out: they
    are logged once, in the parent."""
    skip = inherited(info.metadata)
    high, size = info.message_count, FIRST_WINDOW
    pending: list[StoredMessage] = []  # the start of the window read last: a turn that begins further back
    while high > skip:
        low = max(skip, high - size)
        try:
            chunk = store.load_messages(info.id, start=low, stop=high)
        except SessionNotFound:  # deleted since it was listed
            return
        if not chunk:  # cut since it was listed
            return
        messages = [*chunk, *pending]
        spans = turns([m.message for m in messages])
        pending = messages[: spans[0].start] if spans else messages
        for span in reversed(spans):
            yield _turn_log(info, messages, span)
        high, size = low, size * 2


def _newest_turns(
    store: Store,
    infos: Iterable[SessionInfo],
    count: int,
    keep: Callable[[TurnLog], bool],
    after: datetime | None,
    locked: list[str],
) -> list[TurnLog]:
    """The ``count`` newest turns that ``keep`` accepts, newest first. Sessions come most recently updated
    first, and no message of a session is newer than its last update: once ``count`` turns are found, a
    session updated before the oldest of them (and, in a session, a turn before it) cannot change the
    answer, so the rest is not read. Encrypted sessions met without their key are left out and named in
    ``locked``."""
    best: list[tuple[datetime, int, TurnLog]] = []  # a min-heap of the newest found so far
    order = itertools.count()

    def floor() -> datetime | None:
        """What a turn must not be older than to count: ``--since``, and the oldest of ``count`` found."""
        limits = [after] if after is not None else []
        if len(best) == count:
            limits.append(best[0][0])
        return max(limits) if limits else None

    for info in infos:
        bound = floor()
        if bound is not None and info.updated_at < bound:
            break
        if ENCRYPTION_MARK in info.metadata:
            locked.append(info.id)
            continue
        for log in _turn_logs_newest_first(store, info):
            bound = floor()
            if bound is not None and log.at < bound:
                break
            if not keep(log):
                continue
            item = (log.at, next(order), log)
            if len(best) < count:
                heapq.heappush(best, item)
            else:
                heapq.heappushpop(best, item)
    return [log for _, _, log in sorted(best, key=lambda item: (item[0], item[1]), reverse=True)]


def _listed(store: Store) -> Iterator[SessionInfo]:
    """Every session, most recently updated first, a page at a time (at most ``MAX_SESSIONS``)."""
    offset = 0
    while offset < MAX_SESSIONS:
        page = store.list_sessions(limit=min(PAGE, MAX_SESSIONS - offset), offset=offset)
        yield from page
        if len(page) < PAGE:
            return
        offset += len(page)


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

    def keep(log: TurnLog) -> bool:
        return (model is None or log.model == model) and (
            query is None or query.lower() in (log.prompt + "\n" + log.reply).lower()
        )

    locked: list[str] = []
    with opened(store_url) as store:
        if session_id:
            check_readable(store.get_session(session_id))
        infos = [store.get_session(session_id)] if session_id else _listed(store)
        newest = _newest_turns(store, infos, count, keep, after, locked)
    if locked:
        err_console().print(
            f"({len(locked)} encrypted session(s) left out: set CLAUDE_HISTORY_ENCRYPTION_KEY to include them)",
            style="yellow",
        )
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
