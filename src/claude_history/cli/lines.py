"""Where the chat reads the user's lines from: prompt_toolkit on a terminal, plain stdin lines otherwise.

Piped input (tests, scripts: ``echo hi | claude-history chat``) must not go through prompt_toolkit, which
needs a real terminal.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

__all__ = ["LineReader", "PipeReader", "TerminalReader", "make_reader"]


class LineReader(Protocol):
    def read(self) -> str | None:
        """The next message, or ``None`` at end of input (Ctrl-D, EOF). Ctrl-C raises KeyboardInterrupt."""
        ...


class PipeReader:
    """One message per line of a non-interactive stream; blank lines are skipped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def read(self) -> str | None:
        while True:
            line = self._stream.readline()
            if not line:
                return None
            text = line.rstrip("\r\n")
            if text.strip():
                return text


class TerminalReader:
    """An editable prompt with input history; Esc then Enter (or Alt-Enter) inserts a newline."""

    def __init__(self, prompt: str = "you> ") -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory
        from prompt_toolkit.key_binding import KeyBindings
        from prompt_toolkit.key_binding.key_processor import KeyPressEvent

        bindings = KeyBindings()

        @bindings.add("escape", "enter")
        def _newline(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text("\n")

        self._session: PromptSession[str] = PromptSession(history=InMemoryHistory(), key_bindings=bindings)
        self._prompt = prompt

    def read(self) -> str | None:
        while True:
            try:
                text = self._session.prompt(self._prompt)
            except EOFError:
                return None
            if text.strip():
                return text


def make_reader(stdin: TextIO | None = None) -> LineReader:
    stream = stdin if stdin is not None else sys.stdin
    if _is_tty(stream) and _is_tty(sys.stdout):
        return TerminalReader()
    return PipeReader(stream)


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # closed or detached streams
        return False
