"""`claude-history ask "question"` (also `claude-history "question"`): one turn, as `llm` users expect.

The question and any piped stdin are joined into one message; the reply goes to stdout (streamed, or whole with
``--no-stream``, or as JSON with ``--json``); the turn is kept in a session like the chat's, so ``-c`` goes on
from it. The exit status is 1 when no reply was saved.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from typing import Any

import click
from rich.text import Text

from ..pricing import PricingWarning
from .attachments import attachment_block, with_attachments
from .chat_command import DEFAULT_MODEL, resolve_session
from .client import open_client
from .continuable import why_not_continuable
from .errors import CliError, describe_error, is_expected
from .ids import title_from
from .options import err_console, out_console, resolve_model, store_option
from .reply_view import Interrupted, follow, make_view, stop_notice
from .spent import priced, record_interrupted
from .store_access import opened

__all__ = ["ask_command"]


@click.command("ask")
@click.argument("prompt", nargs=-1)
@click.option("--continue", "-c", "continue_latest", is_flag=True, help="Continue the most recent session.")
@click.option("--session", "session_id", metavar="ID", help="Continue (or start) the session with this id.")
@click.option("--system", "-s", metavar="TEXT", help="System prompt; kept with the session.")
@click.option("--model", "-m", envvar="CLAUDE_HISTORY_MODEL", help="Model id or alias (sonnet, opus, haiku).")
@click.option("--attach", "-a", "attachments", multiple=True, metavar="FILE", help="Attach an image or a PDF.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Maximum tokens of the reply.")
@click.option("--thinking", type=click.IntRange(min=1024), metavar="TOKENS", help="Extended thinking budget.")
@click.option("--no-stream", is_flag=True, help="Print the reply when it is complete.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: text, session, model, usage, cost.")
@click.option("--simulator", is_flag=True, help="Ask the built-in simulator instead of Claude.")
@store_option
def ask_command(
    prompt: tuple[str, ...],
    continue_latest: bool,
    session_id: str | None,
    system: str | None,
    model: str | None,
    attachments: tuple[str, ...],
    max_tokens: int | None,
    thinking: int | None,
    no_stream: bool,
    as_json: bool,
    simulator: bool,
    store_url: str | None,
) -> None:
    """Ask one question; the turn is saved in a session (continue it with -c or `chat -c`).

    \b
    Examples:
      claude-history "What is the capital of France?"
      claude-history ask -c "And its population?"
      git diff | claude-history ask -s "You review code." "Review this change"
      claude-history ask -m haiku --json "Say hi" --simulator
    """
    if session_id is not None and continue_latest:
        raise click.UsageError("use either --session ID or --continue, not both")
    text = _question(prompt)
    blocks = [attachment_block(path) for path in attachments]
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", PricingWarning)
        client = open_client(stack, simulator)
        store = stack.enter_context(opened(store_url, create=True))
        session_id, stored_model = resolve_session(store, session_id, continue_latest)
        from ..chat import Chat

        options: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
        chat = Chat(
            client,
            model=resolve_model(model) or stored_model or DEFAULT_MODEL,
            store=store,
            session_id=session_id,
            system=system,
            **options,
        )
        problem = why_not_continuable(chat.messages, session_id)
        if problem is not None:
            raise CliError(f"session {session_id!r} cannot be continued: {problem}")
        overrides: dict[str, Any] = {}
        if thinking:
            overrides["thinking"] = {"type": "enabled", "budget_tokens": thinking}
            overrides.setdefault("max_tokens", max(max_tokens or 0, thinking + 1024))
        message = _reply(chat, with_attachments(text, blocks), overrides, stream=not (no_stream or as_json))
        if chat.pending:
            chat.discard_pending()
            raise CliError("the reply was incomplete or empty; nothing was saved")
        info = store.get_session(session_id)
        if info.title is None:
            store.update_session(session_id, title=title_from(text))
    usage = message.usage.model_dump(exclude_none=True) if message.usage else {}
    if as_json:
        reply_text = "".join(getattr(b, "text", "") for b in message.content)
        record = {
            "session_id": session_id,
            "model": message.model,
            "text": reply_text,
            "stop_reason": message.stop_reason,
            "usage": usage,
            "cost": priced(message.model, usage),
        }
        click.echo(json.dumps(record, ensure_ascii=False))
    notice = stop_notice(message.stop_reason, max_tokens)
    if notice:
        err_console().print(Text(notice, style="yellow"))


def _question(prompt: tuple[str, ...]) -> str:
    """The words given, then stdin when it is piped (``git diff | claude-history ask "review this"``)."""
    text = " ".join(prompt).strip()
    if not sys.stdin.isatty():
        piped = sys.stdin.read().strip()
        text = f"{text}\n\n{piped}" if text and piped else text or piped
    if not text:
        raise click.UsageError('give a question: claude-history ask "What is ...?" (or pipe it on stdin)')
    return text


def _reply(chat: Any, content: Any, overrides: dict[str, Any], *, stream: bool) -> Any:
    try:
        if not stream:
            message = chat.send(content, **overrides)
            if not _json_mode():
                click.echo("".join(getattr(b, "text", "") for b in message.content))
            return message
        view = make_view(out_console())
        try:
            with chat.stream(content, **overrides) as reply:
                follow(reply, view)
                return reply.get_final_message()
        finally:
            view.finish()
    except KeyboardInterrupt as stop:
        if isinstance(stop, Interrupted):
            record_interrupted(chat.store, chat.session_id, stop.snapshot)
        raise CliError("interrupted: the reply was discarded (what it cost stays on record)") from None
    except Exception as exc:
        if not is_expected(exc):
            raise
        raise CliError(describe_error(exc) + " (nothing was saved)") from exc


def _json_mode() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.params.get("as_json"))
