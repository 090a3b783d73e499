"""`claude-history sessions ...`: browse, search, export, import and delete stored conversations."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ConfigurationError, ConflictError, InvalidHistory
from ..history import validate
from .errors import CliError
from .options import err_console, out_console, store_option
from .render import render_hits, render_session, render_sessions

if TYPE_CHECKING:
    from ..stores.base import SessionInfo, Store

__all__ = ["sessions_group"]

F = TypeVar("F", bound=Callable[..., Any])


@contextlib.contextmanager
def _opened(store_url: str | None) -> Iterator[Store]:
    from ..stores import open_store

    store = open_store(store_url)
    try:
        yield store
    finally:
        store.close()


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
    """Sessions, most recently updated first."""
    with _opened(store_url) as store:
        sessions = store.list_sessions(owner=owner, tag=tag, limit=limit, offset=offset)
    if as_json:
        for info in sessions:
            click.echo(json.dumps(_info_json(info), ensure_ascii=False))
        return
    render_sessions(out_console(), sessions)


@sessions_group.command("show")
@click.argument("session_id", metavar="ID")
@store_option
def show_command(session_id: str, store_url: str | None) -> None:
    """Every message of a session, with the model, token usage and cost of each reply."""
    with _opened(store_url) as store:
        data = store.load(session_id)
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
    """Full-text search over the text of stored messages."""
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
    """Delete a session with its messages, summaries and search entries."""
    with _opened(store_url) as store:
        info = store.get_session(session_id)  # SessionNotFound -> one clear line
        if not yes:
            click.confirm(
                f"Delete session {session_id} ({info.message_count} messages)?", abort=True, err=True
            )
        store.delete(session_id)
    err_console().print(f"Deleted session {session_id}.", markup=False)


@sessions_group.command("export")
@click.argument("session_id", metavar="ID")
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8"),
    default="-",
    help="File to write (default stdout).",
)
@store_option
def export_command(session_id: str, output: IO[str], store_url: str | None) -> None:
    """Write a session as JSON Lines: a header line with the metadata, then one line per message."""
    with _opened(store_url) as store:
        text = store.export_jsonl(session_id)
    output.write(text if text.endswith("\n") or not text else text + "\n")


@sessions_group.command("import")
@click.argument("source", metavar="FILE", type=click.File("r", encoding="utf-8"))
@click.option(
    "--session", "session_id", metavar="ID", help="Store it under this id (default: the exported id)."
)
@store_option
def import_command(source: IO[str], session_id: str | None, store_url: str | None) -> None:
    """Import a session from JSON Lines (from `sessions export`) or from a JSON list of {"role", "content"}
    messages as the guides store them. FILE may be - for stdin. Prints the session id."""
    data = source.read()
    if not data.strip():
        raise CliError(f"{_name(source)} is empty; nothing to import")
    with _opened(store_url) as store:
        try:
            new_id = store.import_jsonl(data, session_id=session_id)
        except ConfigurationError as exc:  # the file's content, not the user's settings
            raise CliError(f"cannot import {_name(source)}: {exc}") from exc
        except ConflictError as exc:  # an import only ever creates: the id is taken
            raise CliError(_taken(exc.session_id, "import it under another id with --session ID")) from exc
        messages = store.load(new_id).message_params()
    click.echo(new_id)
    err = err_console()
    err.print(f"Imported {len(messages)} messages into session {new_id}.", markup=False)
    try:
        validate(messages, for_sending=False)
    except InvalidHistory as exc:
        # Imported as it is (the log is never rewritten behind the user's back), but say it cannot be sent.
        err.print(
            f"Warning: imported as it is, but the API would reject this history: {exc}",
            style="yellow",
            markup=False,
        )


@sessions_group.command("fork")
@click.argument("session_id", metavar="ID")
@click.option("--at", type=click.IntRange(min=0), help="Keep messages before this index (default: all).")
@click.option("--new-id", metavar="ID", help="Id of the new session (default: generated).")
@store_option
def fork_command(session_id: str, at: int | None, new_id: str | None, store_url: str | None) -> None:
    """Start a new session that shares the beginning of an existing one. Prints the new id."""
    with _opened(store_url) as store:
        try:
            forked = store.fork(session_id, at=at, new_id=new_id)
        except ConflictError as exc:  # a fork only ever creates: the new id is taken
            raise CliError(_taken(exc.session_id, "choose another with --new-id ID")) from exc
    click.echo(forked)


def _taken(session_id: str, advice: str) -> str:
    return f"session {session_id!r} already exists in this store; {advice}, or delete it first"


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


def _name(stream: IO[str]) -> str:
    name = getattr(stream, "name", None)
    return "stdin" if stream is sys.stdin or name in (None, "<stdin>") else str(name)
