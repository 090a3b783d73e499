"""How a streamed reply reaches the screen, and the status line after it.

On a terminal the reply is Markdown, re-rendered as it streams (code highlighted); into a pipe or a file it is
the plain text, chunk by chunk, so scripts and tests read exactly what Claude wrote.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Protocol

from rich.console import Console
from rich.text import Text

from .render import format_cost
from .spent import priced

__all__ = [
    "Interrupted",
    "MarkdownView",
    "PlainView",
    "ReplyView",
    "follow",
    "make_view",
    "status_line",
    "stop_notice",
]

# Re-rendering Markdown costs more as the reply grows; a few frames a second look live and stay cheap.
REFRESHES_PER_SECOND = 8


class ReplyView(Protocol):
    def add(self, chunk: str) -> None: ...
    def finish(self) -> None:
        """The reply ended (complete, failed or interrupted): leave the cursor on a fresh line."""
        ...


class PlainView:
    def __init__(self) -> None:
        self._started = False

    def add(self, chunk: str) -> None:
        self._started = True
        sys.stdout.write(chunk)
        sys.stdout.flush()

    def finish(self) -> None:
        if self._started:
            sys.stdout.write("\n")
            sys.stdout.flush()
        self._started = False


class MarkdownView:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._text = ""
        self._live: Any = None

    def add(self, chunk: str) -> None:
        from rich.markdown import Markdown

        self._text += chunk
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                console=self._console,
                refresh_per_second=REFRESHES_PER_SECOND,
                vertical_overflow="visible",
                transient=False,
            )
            self._live.start()
        self._live.update(Markdown(self._text, code_theme="monokai"))

    def finish(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
        self._live = None
        self._text = ""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a reply, with the last snapshot of the reply (``None`` before its first event): what
    the API had billed so far, which stays on record though the reply is discarded."""

    def __init__(self, snapshot: Any) -> None:
        super().__init__()
        self.snapshot = snapshot


def follow(stream: Any, view: ReplyView) -> None:
    """Show the text of a ``ChatStream`` as it comes. Ctrl-C raises :class:`Interrupted`: the snapshot is
    taken at every event, because the interrupted stream closes and its snapshot goes with it."""
    snapshot = None
    try:
        for event in stream:
            snapshot = stream.current_message_snapshot
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                view.add(event.delta.text)
    except KeyboardInterrupt:
        raise Interrupted(snapshot) from None


def make_view(console: Console) -> ReplyView:
    return MarkdownView(console) if console.is_terminal else PlainView()


def stop_notice(stop_reason: str | None, max_tokens: int | None) -> str | None:
    """A sentence for a reply that did not end normally, or None."""
    if stop_reason == "max_tokens":
        limit = f" ({max_tokens:,} tokens)" if max_tokens else ""
        return f"(the reply was cut at the max_tokens limit{limit}: raise it with --max-tokens, or ask to go on)"
    if stop_reason == "refusal":
        return "(Claude declined to answer this request: stop_reason refusal)"
    return None


def status_line(
    usage: Mapping[str, Any], model: str, session_cost: float, session_complete: bool, window: int | None
) -> Text:
    """``in 1,234 (cache read 80%) · out 210 · turn $0.0123 · session $0.1234 · context 2% of 200,000``."""
    read = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + int(usage.get("cache_creation_input_tokens") or 0) + read
    parts = [f"in {prompt:,}" + (f" (cache read {read / prompt:.0%})" if prompt and read else "")]
    parts.append(f"out {int(usage.get('output_tokens') or 0):,}")
    turn = priced(model, usage)
    parts.append(f"turn {format_cost(turn)}")
    parts.append(f"session {'at least ' if not session_complete else ''}{format_cost(session_cost)}")
    if window:
        parts.append(f"context {prompt / window:.0%} of {window:,}")
    return Text(" · ".join(parts), style="dim")
