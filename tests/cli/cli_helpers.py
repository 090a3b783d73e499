"""Helpers shared by the CLI tests (a plain module: conftest files are not imported by tests)."""

from __future__ import annotations

from collections.abc import Callable

from click.testing import Result

Invoke = Callable[..., Result]


def assert_clean_failure(result: Result, exit_code: int) -> None:
    """A user-facing failure: the expected exit code, one `Error:` line, and no traceback anywhere."""
    assert result.exit_code == exit_code, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Error:" in result.stderr
