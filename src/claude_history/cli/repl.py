"""The chat loop: read a line, send it (or run a slash command), show the reply and what it cost."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from ..errors import ConflictError, SessionNotFound
from ..models import model_info
from .attachments import attachment_block, with_attachments
from .errors import CliError, describe_error, is_expected
from .forking import fork_session
from .ids import edited_tags, missing_removals, new_session_id, title_from
from .lines import LineReader
from .markdown_export import export_text
from .options import err_console, out_console, resolve_model
from .overview import session_row
from .render import content_text, format_spending, format_usage, render_session, render_sessions
from .reply_view import Interrupted, ReplyView, follow, make_view, status_line, stop_notice
from .spent import record_interrupted, record_spent, spending

if TYPE_CHECKING:
    from ..chat import Chat

__all__ = ["COMMANDS", "EXIT_WORDS", "SIMULATED_TAG", "ChatFactory", "Repl"]

SIMULATED_TAG = "simulated"

# Typed alone, these leave the chat instead of being sent to Claude as a message.
EXIT_WORDS = frozenset({"exit", "quit", "/exit", "/quit"})

# Makes the chat for a session and a model (the system prompt is the one stored with the session).
ChatFactory = Callable[[str, str], "Chat"]


@dataclass(frozen=True)
class Command:
    name: str
    args: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("/help", "", "this list"),
    Command("/undo", "", "remove the last turn from the session (what it cost stays on record)"),
    Command("/retry", "", "ask the last message again (the old reply is undone)"),
    Command("/edit", "[TEXT]", "change your last message and ask again (without TEXT: edit it at the prompt)"),
    Command("/fork", "[AT]", "continue in a new session holding this one's messages before AT (default: all)"),
    Command("/model", "[NAME]", "show or change the model"),
    Command("/system", "[TEXT]", "show or set the system prompt (`/system -` removes it)"),
    Command("/context", "", "what the next request holds: kept, cut, summarised and cached"),
    Command("/cost", "", "tokens and cost of this session, undone and interrupted replies included (or /usage)"),
    Command("/title", "TEXT", "rename this session"),
    Command("/tag", "TAG... | -TAG", "add tags (or remove one with -TAG)"),
    Command("/attach", "FILE", "attach an image or a PDF to your next message"),
    Command("/export", "[FILE]", "write the session to FILE (.md: Markdown, else JSON Lines; default: stdout)"),
    Command("/history", "", "show the session so far"),
    Command("/clear", "", "start a new session"),
    Command("/sessions", "", "the most recent sessions of this store"),
    Command("/session", "", "this session's id and how to come back to it"),
    Command("/quit", "", "leave (so do /exit, `exit`, `quit`, Ctrl-D, and Ctrl-C twice)"),
)
ALIASES = {"/usage": "/cost", "/exit": "/quit"}


def help_text() -> str:
    width = max(len(f"{c.name} {c.args}") for c in COMMANDS)
    lines = ["Commands:"]
    lines += [f"  {f'{c.name} {c.args}'.strip():<{width}}  {c.help}" for c in COMMANDS]
    lines.append("Start a message with // to send a text that begins with /.")
    lines.append("At the prompt: Esc Enter starts a new line, Ctrl-X Ctrl-E opens $EDITOR, Ctrl-C clears the line.")
    return "\n".join(lines)


class Repl:
    def __init__(
        self,
        chat: Chat,
        *,
        make_chat: ChatFactory,
        reader: LineReader,
        simulated: bool,
        store_url: str | None,
        max_tokens: int | None = None,
    ) -> None:
        self.chat = chat
        self.make_chat = make_chat
        self.reader = reader
        self.simulated = simulated
        self.store_url = store_url
        self.max_tokens = max_tokens
        self.err = err_console()
        self.out = out_console()
        self.view: ReplyView = make_view(self.out)
        self.failed_turns = 0
        self._labelled = False
        self._attachments: list[dict[str, Any]] = []
        self._handlers: dict[str, Callable[[str], bool | None]] = {
            "/help": self._help,
            "/undo": self._undo,
            "/retry": self._retry,
            "/edit": self._edit,
            "/fork": self._fork,
            "/model": self._model,
            "/system": self._system,
            "/context": self._context,
            "/cost": self._cost,
            "/title": self._title,
            "/tag": self._tag,
            "/attach": self._attach,
            "/export": self._export,
            "/history": self._history,
            "/clear": self._clear,
            "/sessions": self._sessions,
            "/session": self._session_info,
        }

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
        content = with_attachments(text, self._attachments)
        self._attachments = []
        view = self.view
        final: Any = None
        try:
            with self.chat.stream(content) as stream:
                follow(stream, view)
                with contextlib.suppress(RuntimeError):  # no final reply: an empty or paused turn
                    final = stream.get_final_message()
            view.finish()
        except KeyboardInterrupt as stop:
            view.finish()
            if isinstance(stop, Interrupted):
                self._record_interrupted(stop.snapshot)
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
        off_log = spending(self.chat.store.get_session(self.chat.session_id))
        total = self.chat.cost + off_log.cost
        complete = self.chat.cost_complete and off_log.complete
        model = message.model or self.chat.model
        known = model_info(model)
        self.err.print(status_line(usage, model, total, complete, known.context_window if known else None))

    def _record_interrupted(self, snapshot: Any) -> None:
        """The part of a reply streamed before Ctrl-C was paid for: keep its usage on the session's record."""
        try:
            record_interrupted(self.chat.store, self.chat.session_id, snapshot)
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
        if info.title is None and self.chat.messages and not _titles_in_clear_beside_encryption(store):
            changes["title"] = title_from(content_text(self.chat.messages[0].get("content")))
        if self.simulated and SIMULATED_TAG not in info.tags:
            changes["tags"] = [*info.tags, SIMULATED_TAG]
        if changes:
            store.update_session(session_id, **changes)

    # -- slash commands --------------------------------------------------------------------------------------

    def _command(self, line: str) -> bool:
        """Run a slash command; False means leave the chat."""
        name, _, rest = line.partition(" ")
        name = ALIASES.get(name.lower(), name.lower())
        if name == "/quit":
            return False
        handler = self._handlers.get(name)
        if handler is None:
            self.err.print(f"unknown command {name}; /help lists the commands", style="red", markup=False)
            return True
        try:
            handler(rest.strip())
        except CliError as exc:
            self.err.print(Text("Error: " + exc.format_message(), style="red"))
        except Exception as exc:
            if not is_expected(exc):
                raise
            self.err.print(Text("Error: " + describe_error(exc), style="red"))
        return True

    def _say(self, text: str) -> None:
        self.out.print(Text(text))

    def _help(self, _: str) -> None:
        self.out.print(help_text(), markup=False)

    def _cost(self, _: str) -> None:
        try:
            data = self.chat.store.load(self.chat.session_id)
        except SessionNotFound:
            self._say("Nothing spent yet.")
            return
        spent = spending(data.info, data.messages)
        self._say(f"tokens: {format_usage(spent.usage)}")
        self._say(f"cost:   {format_spending(spent)}")

    def _undo_last(self) -> list[dict[str, Any]]:
        """Remove the last turn, keeping what its replies cost on the session's record; returns its messages."""
        before = self.chat.store.load(self.chat.session_id).messages if self.chat.messages else []
        removed = self.chat.undo()
        remaining = len(self.chat.messages)
        paid = [(m.model, m.usage) for m in before[remaining:] if m.usage]
        record_spent(self.chat.store, self.chat.session_id, paid, "undone")
        return removed

    def _undo(self, _: str) -> None:
        removed = self._undo_last()
        if not removed:
            self._say("Nothing to undo.")
            return
        self._say(
            f"Removed the last turn ({len(removed)} messages); {len(self.chat.messages)} messages remain. "
            "Its cost stays in the session's totals."
        )

    def _last_question(self) -> Any:
        if not self.chat.messages:
            raise CliError("there is no message to ask again yet")
        removed = self._undo_last()
        return removed[0]["content"] if removed else None

    def _retry(self, _: str) -> None:
        content = self._last_question()
        if content is not None:
            self._send_content(content)

    def _edit(self, text: str) -> None:
        if not self.chat.messages:
            raise CliError("there is no message to edit yet")
        old = content_text(self.chat.messages[-2]["content"]) if len(self.chat.messages) >= 2 else ""
        if not text:
            edited = self.reader.read(default=old) if self.reader.interactive else None
            if edited is None:
                raise CliError("give the new text: /edit TEXT")
            text = edited
        self._last_question()
        self._turn(text)

    def _send_content(self, content: Any) -> None:
        """Send stored content again (text, or blocks with attachments) as a new turn."""
        if isinstance(content, str):
            self._turn(content)
            return
        blocks = [b for b in content if b.get("type") != "text"]
        text = "\n".join(b.get("text", "") for b in content if b.get("type") == "text")
        self._attachments = blocks
        self._turn(text)

    def _fork(self, arg: str) -> None:
        at = None
        if arg:
            if not arg.isdigit():
                raise CliError("/fork takes a message index: /fork 4")
            at = int(arg)
        forked = fork_session(self.chat.store, self.chat.session_id, at, None)
        parent = self.chat.session_id
        self._switch(forked)
        self._say(f"Forked {parent} into {forked}; you are now in {forked} ({len(self.chat.messages)} messages).")

    def _model(self, name: str) -> None:
        if not name:
            self._say(f"model {self.chat.model}")
            return
        name = resolve_model(name) or name
        if model_info(name) is None:
            self.err.print(Text(f"(model {name!r} is not in the table of known models; using it anyway)", "yellow"))
        self._switch(self.chat.session_id, name)
        self._say(f"Model: {name}")

    def _system(self, text: str) -> None:
        if not text:
            current = self.chat.system
            self._say(f"system: {content_text(current)}" if current else "No system prompt.")
            return
        system = None if text == "-" else text
        self.chat.store.update_session(self.chat.session_id, system=system, create=True)
        self._switch(self.chat.session_id)
        self._say("System prompt removed." if system is None else "System prompt set for this session.")

    def _context(self, _: str) -> None:
        self.out.print(Text(str(self.chat.context_report())))

    def _title(self, text: str) -> None:
        if not text:
            raise CliError("give the title: /title TEXT")
        self.chat.store.update_session(self.chat.session_id, title=text, create=True)
        self._labelled = True
        self._say(f"Title: {text}")

    def _tag(self, arg: str) -> None:
        store, session_id = self.chat.store, self.chat.session_id
        if not arg:
            shown = store.get_session(session_id).tags if self.chat.messages else ()
            self._say("tags: " + (", ".join(shown) if shown else "none"))
            return
        info = store.update_session(session_id, create=True)
        tags = edited_tags(info.tags, arg.split())
        store.update_session(session_id, tags=tags)
        missing = missing_removals(info.tags, arg.split())
        if missing:
            self._say(f"There was {missing}.")
        self._say("tags: " + (", ".join(tags) if tags else "none"))

    def _attach(self, arg: str) -> None:
        if not arg:
            raise CliError("give the file: /attach FILE")
        path = " ".join(shlex.split(arg))
        self._attachments.append(attachment_block(path))
        self._say(f"Attached {Path(path).name} to your next message ({len(self._attachments)} attachment(s)).")

    def _export(self, arg: str) -> None:
        fmt = "markdown" if arg.lower().endswith((".md", ".markdown")) else "jsonl"
        text = export_text(self.chat.store, self.chat.session_id, fmt)
        if not arg:
            self.out.print(text, markup=False, end="")
            return
        Path(arg).expanduser().write_text(text, encoding="utf-8")
        self._say(f"Wrote session {self.chat.session_id} to {arg} ({fmt}).")

    def _history(self, _: str) -> None:
        try:
            data = self.chat.store.load(self.chat.session_id)
        except SessionNotFound:
            self._say("No messages yet.")
            return
        render_session(self.out, data)

    def _clear(self, _: str) -> None:
        self._switch(new_session_id())
        self._say(f"New session {self.chat.session_id}.")

    def _sessions(self, _: str) -> None:
        store = self.chat.store
        render_sessions(self.out, [session_row(store, info) for info in store.list_sessions(limit=10)])

    def _session_info(self, _: str) -> None:
        self._say(f"session {self.chat.session_id}")
        self._say(f"continue with: {self._continue_hint()}")

    def _switch(self, session_id: str, model: str | None = None) -> None:
        """Go on in ``session_id`` (the same one after a model or system change) with ``model`` (default: the
        current one)."""
        self.chat = self.make_chat(session_id, model or self.chat.model)
        self._labelled = False

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


def _titles_in_clear_beside_encryption(store: Any) -> bool:
    """An encrypted store keeps titles in clear unless it encrypts them: a title made of the first message
    would put the conversation's opening in clear beside its ciphertext."""
    return getattr(store, "key_id", None) is not None and not getattr(store, "encrypt_titles", False)
