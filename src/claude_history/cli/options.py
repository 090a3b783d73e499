"""Options shared by several commands, and the console objects commands print through."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from .store_access import STORE_ENV, remember_source

__all__ = ["STORE_ENV", "err_console", "out_console", "resolve_model", "store_option"]

F = TypeVar("F", bound=Callable[..., Any])


def store_option(func: F) -> F:
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        envvar=STORE_ENV,
        show_envvar=True,
        default=None,
        callback=remember_source,
        help="Where sessions are kept: sqlite:///path.db, postgresql://..., redis://..., file:///dir, "
        "memory://. "
        "Default: a SQLite database in your user data directory.",
    )(func)


# Wide enough for any row: piped output (``sessions list | grep``) is never wrapped at 80 columns.
PIPE_WIDTH = 4096


# Consoles are created per call: click's test runner swaps sys.stdout / sys.stderr for each invocation.
def out_console() -> Console:
    """stdout; on a terminal as wide as the terminal, into a pipe or a file one line per row.

    Text that has no UTF-8 form (a lone surrogate in a stored message) is written as ``\\ud83d``, as Python
    writes it to stderr, instead of failing the command with a traceback."""
    stream = sys.stdout
    if getattr(stream, "errors", None) in ("strict", "surrogateescape") and isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors="backslashreplace")
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = PIPE_WIDTH
    return console


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def resolve_model(name: str | None) -> str | None:
    """A model id from an alias: ``sonnet``, ``opus``, ``haiku`` name the newest current model of that family
    (the alias map `claude-history models` shows); anything else is taken as it is."""
    if name is None:
        return None
    from ..models import family_aliases

    return family_aliases().get(name.lower(), name)
