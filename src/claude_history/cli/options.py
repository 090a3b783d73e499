"""Options shared by several commands, and the console objects commands print through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

__all__ = ["STORE_ENV", "err_console", "out_console", "store_option"]

STORE_ENV = "CLAUDE_HISTORY_STORE"

F = TypeVar("F", bound=Callable[..., Any])


def store_option(func: F) -> F:
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        envvar=STORE_ENV,
        show_envvar=True,
        default=None,
        help="Where sessions are kept: sqlite:///path.db, postgresql://..., redis://..., file:///dir, "
        "memory://. "
        "Default: a SQLite database in your user data directory.",
    )(func)


# Consoles are created per call: click's test runner swaps sys.stdout / sys.stderr for each invocation.
def out_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)
