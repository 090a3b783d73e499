"""The `claude-history` command group. Expected failures become one line on stderr, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from .. import __version__
from ..errors import ConfigurationError
from .ask_command import ask_command
from .chat_command import chat_command
from .errors import cli_error, describe_error, is_expected, is_store_error
from .keys_command import keys_group
from .logs_command import logs_group
from .report_commands import cost_command, models_command
from .serve_command import serve_command
from .sessions_command import sessions_group
from .store_access import where_from

__all__ = ["cli", "main"]


class _Group(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # `claude-history "question"`: anything that is not a command or an option is a question to ask.
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["ask", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not is_expected(exc):
                raise
            code = 2 if isinstance(exc, ConfigurationError) else 1
            where = where_from(ctx) if is_store_error(exc) else ""
            raise cli_error(describe_error(exc) + where, code) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="claude-history")
def cli() -> None:
    """Conversations with Claude that are kept, searchable and cheap.

    Start with `claude-history chat` (or `claude-history chat --simulator` without an API key).

    \b
    Examples:
      claude-history chat --simulator
      claude-history "What is the capital of France?"
      claude-history sessions list
    """


cli.add_command(ask_command)
cli.add_command(chat_command)
cli.add_command(sessions_group)
cli.add_command(serve_command)
cli.add_command(keys_group)
cli.add_command(cost_command)
cli.add_command(logs_group)
cli.add_command(models_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``claude_history.cli:main``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="claude-history")
