"""`claude-history chat`: an interactive chat whose history is kept in a store, by session id."""

from __future__ import annotations

import contextlib
import difflib
import shlex
import warnings
from typing import TYPE_CHECKING, Any

import click
from rich.panel import Panel
from rich.text import Text

from ..errors import ConflictError, SessionNotFound
from ..models import model_info
from ..pricing import PricingWarning
from .continuable import why_not_continuable
from .errors import CliError, CliSetupError, describe_error, is_expected
from .ids import new_session_id, title_from
from .lines import LineReader, make_reader
from .options import err_console, out_console, store_option
from .render import content_text, format_spending, format_usage, render_session
from .reply_view import ReplyView, make_view, status_line, stop_notice
from .spent import record_spent, spending
from .store_access import check_readable, opened

if TYPE_CHECKING:
    import anthropic

    from ..chat import Chat
    from ..stores.base import Store

__all__ = ["MISSING_KEY_MESSAGE", "chat_command"]

DEFAULT_MODEL = "claude-sonnet-4-6"
SIMULATED_TAG = "simulated"

OFFLINE_HINT = (
    "Or try it offline: claude-history chat --simulator   (replies come from the built-in simulator)"
)

MISSING_KEY_MESSAGE = (
    "ANTHROPIC_API_KEY is not set, so there is no way to reach Claude.\n"
    "Set it:            export ANTHROPIC_API_KEY=sk-ant-...\n" + OFFLINE_HINT
)

SIMULATOR_BANNER = (
    "SIMULATED REPLIES: you are talking to claude-history's built-in Messages API simulator, not to Claude.\n"
    "Its answers are canned and deterministic (it can tell you what history it received). "
    "Set ANTHROPIC_API_KEY and drop --simulator to talk to Claude."
)

HELP_TEXT = """Commands:
  /help          this list
  /usage         tokens and cost of this session so far (undone and interrupted replies included)
  /undo          remove the last turn (your message and the reply) from the session; its cost stays on record
  /history       show the session so far
  /session       show the session id and how to come back to it
  /exit, /quit   leave (so do `exit`, `quit` and Ctrl-D; Ctrl-C stops a reply that is streaming)
Start a message with // to send a text that begins with /."""

# Typed alone, these leave the chat instead of being sent to Claude as a message.
EXIT_WORDS = frozenset({"exit", "quit", "/exit", "/quit"})


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
    help=f"Model id. Default: the session's model, else {DEFAULT_MODEL}.",
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
    import anthropic

    with contextlib.ExitStack() as stack:
        if simulator:
            from ..testing import Simulator

            sim = stack.enter_context(Simulator())
            client = anthropic.Anthropic(api_key="simulator", base_url=sim.base_url)
            banner = Panel(Text(SIMULATOR_BANNER), border_style="yellow", title="simulator")
            err_console().print(banner, soft_wrap=False)  # wrap inside the box, never crop it
        else:
            try:
                client = anthropic.Anthropic()
            except anthropic.CredentialsError as exc:  # e.g. a profile that is selected but unreadable
                raise CliSetupError(f"cannot load Anthropic credentials: {exc}\n{OFFLINE_HINT}") from exc
            if not _has_credentials(client):
                raise CliSetupError(MISSING_KEY_MESSAGE)
        stack.callback(client.close)

        from ..chat import Chat

        store = stack.enter_context(opened(store_url, create=True))
        session_id, stored_model = _resolve_session(store, session_id, continue_latest)
        options: dict[str, Any] = {}
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        chat = Chat(
            client,
            model=model or stored_model or DEFAULT_MODEL,
            store=store,
            session_id=session_id,
            system=system,  # None: the system prompt stored with the session, if any
            **options,
        )
        # Prices: the /usage line says when a model has no price; the library's warning would repeat it.
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", PricingWarning)
        _check_sendable(chat)
        reader = make_reader(store_url)
        repl = _Repl(chat, reader=reader, simulated=simulator, store_url=store_url, max_tokens=max_tokens)
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


def _has_credentials(client: anthropic.Anthropic) -> bool:  # the SDK is loaded by then
    """True when the SDK found some credential (key, token, profile or federation) to send."""
    return bool(client.api_key or client.auth_token or getattr(client, "credentials", None))


def _resolve_session(store: Store, session_id: str | None, continue_latest: bool) -> tuple[str, str | None]:
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


class _Repl:
    def __init__(
        self,
        chat: Chat,
        *,
        reader: LineReader,
        simulated: bool,
        store_url: str | None,
        max_tokens: int | None = None,
    ) -> None:
        self.chat = chat
        self.reader = reader
        self.simulated = simulated
        self.store_url = store_url
        self.err = err_console()
        self.out = out_console()
        self.view: ReplyView = make_view(self.out)
        self.max_tokens = max_tokens
        self._labelled = False
        self.failed_turns = 0

    def run(self) -> None:
        self._hello()
        while True:
            try:
                line = self.reader.read()
            except KeyboardInterrupt:
                break
            if line is None or line.strip().lower() in EXIT_WORDS:
                break
            if line.startswith("/") and not line.startswith("//"):
                if not self._command(line.strip()):
                    break
                continue
            self._turn(line[1:] if line.startswith("//") else line)
        self._goodbye()

    # -- one turn --------------------------------------------------------------------------------------------

    def _turn(self, text: str) -> None:
        view = self.view
        final: Any = None
        try:
            with self.chat.stream(text) as stream:
                try:
                    for chunk in stream.text_stream:
                        view.add(chunk)
                except KeyboardInterrupt:
                    self._record_interrupted(stream)
                    raise
                with contextlib.suppress(RuntimeError):  # no final reply: an empty or paused turn
                    final = stream.get_final_message()
            view.finish()
        except KeyboardInterrupt:
            view.finish()
            self.err.print(
                "(interrupted: the reply was discarded and the session is unchanged; what it cost stays on record)",
                style="yellow",
            )
            return
        except Exception as exc:
            if not is_expected(exc):
                raise
            view.finish()
            self.failed_turns += 1
            if isinstance(exc, ConflictError):  # the chat has reloaded the session: go on from there
                self.err.print(Text(f"Error: {describe_error(exc)}; continuing from the stored session", "red"))
            else:
                self.err.print(Text(f"Error: {describe_error(exc)} (this turn was not saved)", "red"))
            return
        if self.chat.pending:
            # Without tools a turn stays open only when the reply was empty or paused: nothing to keep.
            self.chat.discard_pending()
            self.failed_turns += 1
            self.err.print("(the reply was incomplete or empty; nothing was saved)", style="yellow")
            return
        if final is not None:
            self._after_reply(final)
        try:
            self._label_session()
        except Exception as exc:  # labels are a convenience: never end the chat over them
            if not is_expected(exc):
                raise
            self.err.print(Text("Error: " + describe_error(exc), style="red"))

    def _after_reply(self, message: Any) -> None:
        """A notice when the reply did not end normally, then the status line: tokens, costs, context fill."""
        notice = stop_notice(message.stop_reason, self.max_tokens)
        if notice:
            self.err.print(Text(notice, style="yellow"))
        usage = message.usage.model_dump(exclude_none=True) if message.usage else {}
        info = self.chat.store.get_session(self.chat.session_id)
        off_log = spending(info)
        total = self.chat.cost + off_log.cost
        complete = self.chat.cost_complete and off_log.complete
        known = model_info(message.model or self.chat.model)
        window = known.context_window if known else None
        self.err.print(status_line(usage, message.model or self.chat.model, total, complete, window))

    def _record_interrupted(self, stream: Any) -> None:
        """The part of a reply streamed before Ctrl-C was paid for: keep its usage on the session's record."""
        try:
            snapshot = stream.current_message_snapshot
        except RuntimeError:  # no reply had started
            return
        usage = dict(snapshot.usage.model_dump(exclude_none=True)) if snapshot.usage else {}
        streamed = "".join(getattr(b, "text", "") for b in snapshot.content)
        if streamed:
            from ..tokens import estimate_text

            # The output count arrives only with the last event: estimate what was generated so far.
            usage["output_tokens"] = max(int(usage.get("output_tokens") or 0), round(estimate_text(streamed)))
        try:
            record_spent(self.chat.store, self.chat.session_id, [(snapshot.model, usage)], "interrupted")
        except Exception as exc:
            if not is_expected(exc):
                raise
            self.err.print(Text("Error: could not record the interrupted reply's cost: " + describe_error(exc), "red"))

    def _label_session(self) -> None:
        """Once per run: give an untitled session a title (its first message) for `sessions list`, and tag
        sessions that got simulated replies so they are not mistaken for real ones."""
        if self._labelled:
            return
        self._labelled = True
        store, session_id = self.chat.store, self.chat.session_id
        info = store.get_session(session_id)
        changes: dict[str, Any] = {}
        if info.title is None and self.chat.messages:
            changes["title"] = title_from(content_text(self.chat.messages[0].get("content")))
        if self.simulated and SIMULATED_TAG not in info.tags:
            changes["tags"] = [*info.tags, SIMULATED_TAG]
        if changes:
            store.update_session(session_id, **changes)

    # -- slash commands --------------------------------------------------------------------------------------

    def _command(self, line: str) -> bool:
        """Run a slash command; False means leave the chat."""
        name = line.split()[0].lower()
        if name in ("/exit", "/quit"):
            return False
        handler = {
            "/help": self._help,
            "/usage": self._usage,
            "/undo": self._undo,
            "/history": self._history,
            "/session": self._session_info,
        }.get(name)
        if handler is None:
            self.err.print(f"unknown command {name}; /help lists the commands", style="red", markup=False)
            return True
        try:
            handler()
        except Exception as exc:
            if not is_expected(exc):
                raise
            self.err.print(Text("Error: " + describe_error(exc), style="red"))
        return True

    def _help(self) -> None:
        self.out.print(HELP_TEXT, markup=False)

    def _usage(self) -> None:
        try:
            data = self.chat.store.load(self.chat.session_id)
        except SessionNotFound:
            self.out.print("Nothing spent yet.")
            return
        spent = spending(data.info, data.messages)
        self.out.print(f"tokens: {format_usage(spent.usage)}", markup=False)
        self.out.print(f"cost:   {format_spending(spent)}", markup=False)

    def _undo(self) -> None:
        before = self.chat.store.load(self.chat.session_id).messages if self.chat.messages else []
        removed = self.chat.undo()
        if not removed:
            self.out.print("Nothing to undo.")
            return
        remaining = len(self.chat.messages)
        paid = [(m.model, m.usage) for m in before[remaining:] if m.usage]
        record_spent(self.chat.store, self.chat.session_id, paid, "undone")
        self.out.print(
            f"Removed the last turn ({len(removed)} messages); {remaining} messages remain. "
            "Its cost stays in the session's totals."
        )

    def _history(self) -> None:
        try:
            data = self.chat.store.load(self.chat.session_id)
        except SessionNotFound:
            self.out.print("No messages yet.")
            return
        render_session(self.out, data)

    def _session_info(self) -> None:
        self.out.print(f"session {self.chat.session_id}", markup=False)
        self.out.print(f"continue with: {self._continue_hint()}", markup=False)

    # -- greeting --------------------------------------------------------------------------------------------

    def _hello(self) -> None:
        count = len(self.chat.messages)
        state = "new session" if count == 0 else f"continuing, {count} messages"
        hello = f"session {self.chat.session_id} ({state}) · model {self.chat.model} · /help for commands"
        self.err.print(Text(hello, style="dim"))

    def _goodbye(self) -> None:
        if self.store_url and self.store_url.lower().startswith("memory:"):
            self.err.print(Text("The memory:// store keeps nothing: this session is gone.", style="dim"))
        elif self.chat.messages:
            bye = f"Session {self.chat.session_id} saved. Continue with: {self._continue_hint()}"
            self.err.print(Text(bye, style="dim"))

    def _continue_hint(self) -> str:
        hint = f"claude-history chat --session {shlex.quote(self.chat.session_id)}"
        if self.store_url:
            hint += f" --store {shlex.quote(self.store_url)}"
        if self.simulated:
            hint += " --simulator"
        return hint



