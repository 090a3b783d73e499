"""`claude-history sessions ...`: browse, search, export, import and delete stored conversations."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ConfigurationError, ConflictError
from .continuable import continuable_copy, left_out, why_not_continuable
from .errors import CliError
from .forking import fork_session, taken
from .ids import edited_tags, missing_removals, new_session_id
from .markdown_export import FORMATS, export_text
from .options import err_console, out_console, store_option
from .overview import derived_labels, session_row
from .render import render_hits, render_session, render_sessions
from .store_access import check_readable, opened, session_or_none

if TYPE_CHECKING:
    from ..stores.base import SessionInfo, Store

__all__ = ["sessions_group"]

F = TypeVar("F", bound=Callable[..., Any])
_opened = opened


@click.group("sessions")
def sessions_group() -> None:
    """Browse and manage stored conversations."""


def _owner_option(description: str) -> Callable[[F], F]:
    """``--owner NAME``: the same filter for listing and searching (the store matches the name exactly)."""
    return click.option("--owner", metavar="NAME", help=description)


@sessions_group.command("list")
@_owner_option("Only sessions of this owner.")
@click.option("--tag", help="Only sessions with this tag.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many (for paging).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@store_option
def list_command(
    owner: str | None, tag: str | None, limit: int, offset: int, as_json: bool, store_url: str | None
) -> None:
    """Sessions, most recently updated first, with their turns and cost.

    \b
    Examples:
      claude-history sessions list -n 5
      claude-history sessions list --tag travel --json
    """
    with _opened(store_url) as store:
        listed = _conversations(store, owner=owner, tag=tag, limit=limit, offset=offset)
        rows = [session_row(store, info) for info in listed]
    if as_json:
        for row in rows:
            record = _info_json(row.info)
            record["turns"] = row.turns
            record["cost"] = row.spent.cost if row.spent is not None and row.spent.complete else None
            click.echo(json.dumps(record, ensure_ascii=False))
        return
    render_sessions(out_console(), rows)


def _conversations(store: Store, *, owner: str | None, tag: str | None, limit: int, offset: int) -> list[SessionInfo]:
    """A page of conversations, without the service's internal records (``~keys/``, ``~usage/``).

    The store pages over every record, so this pages on until ``offset + limit`` visible ones are seen.
    Imported here: the server package loads FastAPI, which ``--help`` and listing must not pay for.
    """
    from ..server.tenants import is_internal

    seen: list[SessionInfo] = []
    at = 0
    while len(seen) < offset + limit:
        page = store.list_sessions(owner=owner, tag=tag, limit=offset + limit, offset=at)
        seen.extend(info for info in page if not is_internal(info.id))
        if len(page) < offset + limit:
            break
        at += len(page)
    return seen[offset : offset + limit]


@sessions_group.command("show")
@click.argument("session_id", metavar="ID")
@store_option
def show_command(session_id: str, store_url: str | None) -> None:
    """Every message of a session, with the model, token usage and cost of each reply.

    \b
    Example:
      claude-history sessions show trip
    """
    with _opened(store_url) as store:
        data = store.load(session_id)
    check_readable(data.info)
    render_session(out_console(), data)


@sessions_group.command("search")
@click.argument("query")
@click.option("--session", "session_id", metavar="ID", help="Search only this session.")
@_owner_option("Search only the sessions of this owner.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@store_option
def search_command(
    query: str, session_id: str | None, owner: str | None, limit: int, as_json: bool, store_url: str | None
) -> None:
    """Full-text search over the text of stored messages.

    \b
    Example:
      claude-history sessions search "lisbon hotel" -n 5
    """
    with _opened(store_url) as store:
        hits = store.search(query, session_id=session_id, owner=owner, limit=limit)
    if as_json:
        for hit in hits:
            record = {"session_id": hit.session_id, "seq": hit.seq, "role": hit.role, "snippet": hit.snippet}
            click.echo(json.dumps(record, ensure_ascii=False))
        return
    render_hits(out_console(), hits)


@sessions_group.command("delete")
@click.argument("session_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@store_option
def delete_command(session_id: str, yes: bool, store_url: str | None) -> None:
    """Delete a session with its messages, summaries and search entries.

    \b
    Example:
      claude-history sessions delete trip --yes
    """
    with _opened(store_url) as store:
        info = store.get_session(session_id)  # SessionNotFound -> one clear line
        if not yes:
            click.confirm(
                f"Delete session {session_id} ({info.message_count} messages)?", abort=True, err=True
            )
        store.delete(session_id)
    err_console().print(f"Deleted session {session_id}.", markup=False)


@sessions_group.command("compact")
@store_option
def compact_command(store_url: str | None) -> None:
    """Remove what deletes left in the store's files (maintenance).

    A SQLite delete is quick because it leaves the deleted words in the search index and the freed pages
    as they were; this rebuilds the index and zeroes those pages, after which nothing of a deleted session
    is left in the file. A file store's delete leaves a long session's words in its search index (named by
    nothing, erased a few at a time by later writes); this erases them all. Writers wait while it runs.
    Other stores remove deleted data at once.

    \b
    Example:
      claude-history sessions compact
    """
    with _opened(store_url) as store:
        compact = getattr(store, "compact", None)
        if compact is None:
            err_console().print("Nothing to compact: this store removes deleted data at once.", markup=False)
            return
        compact()
    err_console().print("Compacted the store.", markup=False)


@sessions_group.command("export")
@click.argument("session_id", metavar="ID")
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="File to write (default stdout).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help="jsonl: what `sessions import` reads back; markdown: for reading and sharing.",
)
@store_option
def export_command(session_id: str, output: IO[str], fmt: str, store_url: str | None) -> None:
    """Write a session as JSON Lines (a header line with the metadata, then one line per message) or Markdown.

    \b
    Examples:
      claude-history sessions export trip -o trip.jsonl
      claude-history sessions export trip --format markdown > trip.md
    """
    with _opened(store_url) as store:
        text = export_text(store, session_id, fmt)
    output.write(text)


@sessions_group.command("import")
@click.argument("source", metavar="FILE", type=click.File("rb"))
@click.option("--session", "session_id", metavar="ID", help="Store it under this id (default: the exported id).")
@store_option
def import_command(source: IO[bytes], session_id: str | None, store_url: str | None) -> None:
    """Import a session from JSON Lines (from `sessions export`) or from a JSON list of {"role", "content"}
    messages as the guides store them. FILE may be - for stdin. Prints the session id.

    \b
    Examples:
      claude-history sessions import trip.jsonl
      claude-history sessions import - --session copy < trip.jsonl
    """
    name = _name(source)
    try:
        data = source.read().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"cannot import {name}: it is not UTF-8 text (byte {exc.start}); exports are UTF-8 JSON Lines"
        ) from exc
    if not data.strip():
        raise CliError(f"{name} is empty; nothing to import")
    with _opened(store_url, create=True) as store:
        try:
            new_id = store.import_jsonl(data, session_id=session_id)
        except ConfigurationError as exc:  # the file's content, not the user's settings
            raise CliError(f"cannot import {name}: {exc}") from exc
        except ConflictError as exc:  # an import only ever creates: the id is taken
            raise CliError(taken(exc.session_id, "import it under another id with --session ID")) from exc
        loaded = store.load(new_id)
        _label(store, loaded.info, loaded.message_params(), [m.model for m in loaded.messages])
    messages = loaded.message_params()
    click.echo(new_id)
    err = err_console()
    err.print(f"Imported {len(messages)} messages into session {new_id}.", markup=False)
    problem = why_not_continuable(messages, new_id)
    if problem is not None:
        # Imported as it is (the log is never rewritten behind the user's back), but say the chat cannot go on.
        err.print(
            f"Warning: imported as it is, but the chat cannot continue it: {problem}\n"
            f"Write a copy the chat can continue with: claude-history sessions repair {shlex.quote(new_id)}",
            style="yellow",
            markup=False,
        )


def _label(store: Store, info: SessionInfo, messages: list[dict[str, Any]], models: list[str | None]) -> None:
    """Store the title and model `sessions list` would derive, so the imported session keeps them."""
    changes = derived_labels(info, messages, models)
    if changes:
        store.update_session(info.id, **changes)


@sessions_group.command("fork")
@click.argument("session_id", metavar="ID")
@click.option("--at", type=click.IntRange(min=0), help="Keep messages before this index, a turn start (default: all).")
@click.option("--new-id", metavar="ID", help="Id of the new session (default: generated).")
@store_option
def fork_command(session_id: str, at: int | None, new_id: str | None, store_url: str | None) -> None:
    """Start a new session that shares the beginning of an existing one. Prints the new id.

    \b
    Examples:
      claude-history sessions fork trip             # a copy to take elsewhere
      claude-history sessions fork trip --at 2      # keep the first turn only
    """
    with _opened(store_url) as store:
        forked = fork_session(store, session_id, at, new_id)
    click.echo(forked)


@sessions_group.command("rename")
@click.argument("session_id", metavar="ID")
@click.argument("title")
@store_option
def rename_command(session_id: str, title: str, store_url: str | None) -> None:
    """Give a session a new title (shown by `sessions list`).

    \b
    Example:
      claude-history sessions rename 3f2a9c1b7d4e "Trip to Lisbon"
    """
    cleared = not title.strip()  # `sessions rename ID ""` takes the title away
    with _opened(store_url) as store:
        store.get_session(session_id)  # SessionNotFound -> one clear line, nothing created
        store.update_session(session_id, title=None if cleared else title)
    said = "has no title now" if cleared else f"is now titled {title!r}"
    err_console().print(f"Session {session_id} {said}.", markup=False)


@sessions_group.command("tag")
@click.argument("session_id", metavar="ID")
@click.argument("tags", nargs=-1, required=True, metavar="TAG... | -TAG")
@store_option
def tag_command(session_id: str, tags: tuple[str, ...], store_url: str | None) -> None:
    """Add tags to a session, or remove one written as -TAG (`sessions list --tag TAG` filters by them).

    \b
    Examples:
      claude-history sessions tag trip travel 2026
      claude-history sessions tag trip -- -2026      # remove a tag (-- ends the options)
    """
    with _opened(store_url) as store:
        info = store.get_session(session_id)
        new = edited_tags(info.tags, list(tags))
        store.update_session(session_id, tags=new)
    missing = missing_removals(info.tags, list(tags))
    if missing:
        err_console().print(f"Session {session_id} had {missing}.", markup=False)
    click.echo(" ".join(new))


@sessions_group.command("repair")
@click.argument("session_id", metavar="ID")
@click.option("--new-id", metavar="ID", help="Id of the repaired copy (default: generated).")
@store_option
def repair_command(session_id: str, new_id: str | None, store_url: str | None) -> None:
    """Write a copy of a session that the chat can continue (the original is kept). Prints the new id.

    Empty messages are dropped, same-role runs merged, tool calls without results closed, and a last user
    message without a reply left out, as `claude_history.repair()` does.

    \b
    Example:
      claude-history sessions repair imported-42 && claude-history chat -c
    """
    from ..stores.base import Entry

    with _opened(store_url) as store:
        data = store.load(session_id)
        check_readable(data.info)
        messages = data.message_params()
        if why_not_continuable(messages, session_id) is None:
            err_console().print(f"Session {session_id} needs no repair; continue it as it is.", markup=False)
            click.echo(session_id)
            return
        fixed = continuable_copy(messages)
        target = new_id or new_session_id()
        if session_or_none(store, target) is not None:
            raise CliError(taken(target, "choose another with --new-id ID"))
        info = data.info
        store.update_session(
            target, create=True, title=info.title, model=info.model, system=info.system, tags=info.tags,
            metadata=info.metadata,
        )
        if fixed:
            store.append(target, [Entry(m) for m in fixed], expected_version=0)
    click.echo(target)
    err = err_console()
    err.print(
        f"Wrote {len(fixed)} messages (of {len(messages)}) to session {target}; {session_id} is unchanged.",
        markup=False,
    )
    dropped = left_out(messages, fixed)
    if dropped:
        err.print(
            f"Left out, as it never got a reply (send it again in: claude-history chat --session {target}):",
            markup=False,
        )
        for text in dropped:
            err.print("  > " + text.replace("\n", "\n    "), markup=False)


def _info_json(info: SessionInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "version": info.version,
        "message_count": info.message_count,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
        "title": info.title,
        "owner": info.owner,
        "tags": list(info.tags),
        "model": info.model,
        "expires_at": info.expires_at.isoformat() if info.expires_at else None,
    }


def _name(stream: IO[Any]) -> str:
    name = getattr(stream, "name", None)
    return "stdin" if stream in (sys.stdin, sys.stdin.buffer) or name in (None, "<stdin>") else str(name)
