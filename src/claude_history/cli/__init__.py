"""The `claude-history` command: a thin terminal layer over the library (chat, sessions browser)."""

from .main import cli, main

__all__ = ["cli", "main"]
