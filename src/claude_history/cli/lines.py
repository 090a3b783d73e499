"""Where the chat reads the user's lines from: prompt_toolkit on a terminal, plain stdin lines otherwise.

Piped input (tests, scripts: ``echo hi | claude-history chat``) must not go through prompt_toolkit, which
needs a real terminal.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO

__all__ = ["LineReader", "PipeReader", "TerminalReader", "history_file", "make_reader"]

# Slash commands complete only as the first word of the line.
_SLASH_WORD = re.compile(r"^/\w*")


class LineReader(Protocol):
    interactive: bool  # a person at a terminal (prompts can be prefilled), not a stream of lines

    def read(self, default: str = "") -> str | None:
        """The next message, or ``None`` at end of input (Ctrl-D, EOF). ``default``: text to start the prompt
        with (ignored without a terminal)."""
        ...


class PipeReader:
    """One message per line of a non-interactive stream; blank lines are skipped."""

    interactive = False

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def read(self, default: str = "") -> str | None:
        while True:
            line = self._stream.readline()
            if not line:
                return None
            text = line.rstrip("\r\n")
            if text.strip():
                return text


class TerminalReader:
    """An editable prompt with input history kept between runs; Esc then Enter (or Alt-Enter) inserts a newline.

    Ctrl-C clears the line being typed; a second Ctrl-C on an empty line leaves (as Ctrl-D does)."""

    interactive = True

    def __init__(
        self, history_file: Path | None = None, commands: Sequence[str] = (), prompt: str = "you> "
    ) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import WordCompleter
        from prompt_toolkit.history import FileHistory, History, InMemoryHistory
        from prompt_toolkit.key_binding import KeyBindings
        from prompt_toolkit.key_binding.key_processor import KeyPressEvent

        bindings = KeyBindings()

        @bindings.add("escape", "enter")
        def _newline(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text("\n")

        history: History = InMemoryHistory()
        if history_file is not None:
            try:
                history_file.parent.mkdir(parents=True, exist_ok=True)
                history = FileHistory(str(history_file))
            except OSError:  # a read-only home: the chat works, only without remembered input
                pass
        self._session: PromptSession[str] = PromptSession(
            history=history,
            key_bindings=bindings,
            completer=WordCompleter(list(commands), sentence=True, pattern=_SLASH_WORD),
            complete_while_typing=True,
            enable_open_in_editor=True,  # Ctrl-X Ctrl-E: write a long message in $EDITOR
            prompt_continuation=lambda width, line, soft: "." * (width - 1) + " ",
        )
        self._prompt = prompt

    def read(self, default: str = "") -> str | None:
        interrupted = False
        while True:
            try:
                text = self._session.prompt(self._prompt, default=default)
            except EOFError:
                return None
            except KeyboardInterrupt:
                if interrupted:
                    return None
                interrupted = True
                print("(Ctrl-C again, Ctrl-D or `exit` to leave)", file=sys.stderr)
                continue
            if text.strip():
                return text
            interrupted = False


def history_file(store_url: str | None) -> Path:
    """Where the typed lines of chats on one store are remembered (one file per store URL)."""
    from platformdirs import user_data_dir

    digest = hashlib.sha256((store_url or "default").encode()).hexdigest()[:16]
    return Path(user_data_dir("claude-history", appauthor=False)) / "input-history" / digest


def make_reader(
    store_url: str | None = None, commands: Sequence[str] = (), stdin: TextIO | None = None
) -> LineReader:
    stream = stdin if stdin is not None else sys.stdin
    if _is_tty(stream) and _is_tty(sys.stdout):
        return TerminalReader(history_file(store_url), commands)
    return PipeReader(stream)


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # closed or detached streams
        return False
