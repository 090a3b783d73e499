"""`claude-history chat`: an interactive chat whose history is kept in a store, by session id."""

from __future__ import annotations

import contextlib
import difflib
import shlex
import warnings
from typing import TYPE_CHECKING, Any

import click
from rich.text import Text

from ..errors import SessionNotFound
from ..pricing import PricingWarning
from .client import open_client
from .continuable import why_not_continuable
from .errors import CliError
from .ids import new_session_id
from .lines import make_reader
from .options import err_console, resolve_model, store_option
from .repl import COMMANDS, Repl
from .store_access import check_readable, opened

if TYPE_CHECKING:

    from ..chat import Chat
    from ..stores.base import Store

__all__ = ["DEFAULT_MODEL", "chat_command", "resolve_session"]

DEFAULT_MODEL = "claude-sonnet-4-6"

@click.command("chat")
@click.option(
    "--session", "-s", "session_id", metavar="ID", help="Continue (or start) the session with this id."
)
@click.option(
    "--continue", "-c", "continue_latest", is_flag=True, help="Continue the most recently updated session."
)
@click.option(
    "--model",
    "-m",
    envvar="CLAUDE_HISTORY_MODEL",
    show_envvar=True,
    help=f"Model id or alias (sonnet, opus, haiku). Default: the session's model, else {DEFAULT_MODEL}.",
)
@click.option("--system", metavar="TEXT", help="System prompt; kept with the session.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Maximum tokens per reply.")
@click.option(
    "--simulator",
    is_flag=True,
    help="Talk to the built-in Messages API simulator instead of Claude (no key, no network, canned replies)",
)
@store_option
def chat_command(
    session_id: str | None,
    continue_latest: bool,
    model: str | None,
    system: str | None,
    max_tokens: int | None,
    simulator: bool,
    store_url: str | None,
) -> None:
    """Chat with Claude; the conversation is saved and can be continued later with --session ID or -c.

    Without a terminal (piped input), every line of stdin is one message; the exit status is 1 when a turn
    failed.

    \b
    Examples:
      claude-history chat --simulator             # try it offline
      claude-history chat -c                      # continue the latest session
      echo "Capital of France?" | claude-history chat -s geo
    """
    if session_id is not None and continue_latest:
        raise click.UsageError("use either --session ID or --continue, not both")
    with contextlib.ExitStack() as stack:
        client = open_client(stack, simulator)

        from ..chat import Chat

        store = stack.enter_context(opened(store_url, create=True))
        session_id, stored_model = resolve_session(store, session_id, continue_latest)
        options: dict[str, Any] = {}
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        chat = Chat(
            client,
            model=resolve_model(model) or stored_model or DEFAULT_MODEL,
            store=store,
            session_id=session_id,
            system=system,  # None: the system prompt stored with the session, if any
            **options,
        )

        def make_chat(new_session: str, new_model: str) -> Chat:
            return Chat(client, model=new_model, store=store, session_id=new_session, **options)

        # Prices: the /usage line says when a model has no price; the library's warning would repeat it.
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", PricingWarning)
        _check_sendable(chat)
        reader = make_reader(store_url, [c.name for c in COMMANDS])
        repl = Repl(
            chat, make_chat=make_chat, reader=reader, simulated=simulator, store_url=store_url, max_tokens=max_tokens
        )
        repl.run()
    if repl.failed_turns:
        raise SystemExit(1)  # scripts must see that a message got no reply (each failure was said on stderr)


def _check_sendable(chat: Chat) -> None:
    """A session the chat cannot continue would fail every turn: say so once, with the command that writes a
    repaired copy."""
    problem = why_not_continuable(chat.messages, chat.session_id)
    if problem is not None:
        raise CliError(
            f"session {chat.session_id!r} cannot be continued: {problem}\n"
            f"Write a copy the chat can continue with: claude-history sessions repair {shlex.quote(chat.session_id)}"
        )


def resolve_session(store: Store, session_id: str | None, continue_latest: bool) -> tuple[str, str | None]:
    """The session id to use and the model it was last used with (None for a new session)."""
    if continue_latest:
        latest = store.list_sessions(limit=1)
        if not latest:
            raise CliError("there is no session to continue yet; start one with `claude-history chat`")
        return latest[0].id, latest[0].model
    if session_id is None:
        return new_session_id(), None
    try:
        info = store.get_session(session_id)
    except SessionNotFound:
        _say_new(store, session_id)
        return session_id, None
    check_readable(info)
    return session_id, info.model


def _say_new(store: Store, session_id: str) -> None:
    """``chat -s typo`` must not silently start a new session: say so, and name the sessions it may have meant."""
    known = [info.id for info in store.list_sessions(limit=200)]
    close = difflib.get_close_matches(session_id, known, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    err_console().print(
        Text(f"No session {session_id!r} in this store{hint}: starting a new one with this id.", style="yellow")
    )


