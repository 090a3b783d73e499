"""Library and SDK exceptions as one clear line for the terminal: no tracebacks for expected failures."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..errors import (
    BudgetExceeded,
    ConfigurationError,
    ConflictError,
    DecryptionError,
    HistoryError,
    InvalidHistory,
    SessionNotFound,
    StoreUnavailable,
)

if TYPE_CHECKING:
    import anthropic

__all__ = ["CliError", "CliSetupError", "cli_advice", "cli_error", "describe_error", "is_expected", "is_store_error"]

# Store drivers whose own errors (a refused connection, a database index out of range, a file that is not a
# database) are the user's setup, not a bug: shown as one line. Told by module so they need not be imported.
_DRIVER_MODULES = ("redis", "psycopg", "psycopg_pool", "sqlite3")


def is_expected(exc: BaseException) -> bool:
    """True for failures a user can cause or meet in normal operation: shown as one line, never a traceback.

    The SDK is imported only by the commands that call the API, so its errors are only looked for once it is
    loaded (``claude-history --help`` must not pay for importing it)."""
    if isinstance(exc, HistoryError) or _is_driver_error(exc):
        return True
    if "anthropic" not in sys.modules:
        return False
    import anthropic

    from ..connection import TRANSPORT_ERRORS

    return isinstance(exc, (anthropic.AnthropicError, *TRANSPORT_ERRORS))


def is_store_error(exc: BaseException) -> bool:
    """A failure of the store itself (unreachable, misconfigured), as opposed to one of its sessions."""
    return isinstance(exc, (StoreUnavailable, ConfigurationError)) or _is_driver_error(exc)


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__.split(".")[0]
    return module in _DRIVER_MODULES and isinstance(exc, Exception)


class CliError(click.ClickException):
    """A failure shown as ``Error: <message>`` on stderr, exit code 1."""


class CliSetupError(CliError):
    """A failure of the setup (missing key, bad URL or option value): exit code 2, like usage errors."""

    exit_code = 2


def cli_error(message: str, exit_code: int = 1) -> CliError:
    return CliSetupError(message) if exit_code == 2 else CliError(message)


def describe_error(exc: BaseException) -> str:
    """One line that says what went wrong and, where we know it, what to do about it."""
    if isinstance(exc, SessionNotFound):
        return f"no session {exc.session_id!r} in this store (see `claude-history sessions list`)"
    if isinstance(exc, ConflictError):
        return (
            f"session {exc.session_id!r} was changed by another writer (expected version "
            f"{exc.expected_version}, found {exc.actual_version}); the last turn was not saved"
        )
    if isinstance(exc, StoreUnavailable):
        return f"store unavailable: {exc}"
    if isinstance(exc, DecryptionError):
        return f"cannot decrypt the stored session: {exc}"
    if isinstance(exc, BudgetExceeded):
        return f"the message does not fit in the context budget ({exc.needed} > {exc.budget} tokens): {exc}"
    if isinstance(exc, InvalidHistory):
        where = f" (message {exc.index})" if exc.index is not None else ""
        return f"invalid history{where}: {cli_advice(str(exc))}"
    if isinstance(exc, ConfigurationError):
        return f"configuration error: {exc}"
    if _is_driver_error(exc):
        return f"store error ({type(exc).__module__.split('.')[0]}): {exc}"
    if "anthropic" not in sys.modules:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    import anthropic

    from ..connection import connection_failure

    if isinstance(exc, anthropic.AuthenticationError):
        return f"the API rejected the credentials (401): {_api_message(exc)}; check ANTHROPIC_API_KEY"
    if isinstance(exc, anthropic.APIStatusError):
        kind = f" {exc.type}" if exc.type else ""
        return f"API error {exc.status_code}{kind}: {_api_message(exc)}"
    failure = connection_failure(exc)
    if failure is not None:
        request = getattr(exc, "request", None)
        url = request.url if request is not None else "the API"
        if failure == "timeout":
            return f"the request to {url} timed out; try again"
        if failure == "unreachable":
            return f"cannot reach {url}; check your network and ANTHROPIC_BASE_URL"
        return f"the connection to the API broke ({url})"
    if isinstance(exc, anthropic.AnthropicError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def cli_advice(text: str) -> str:
    """The library's advice to call ``claude_history.repair()`` (a Python function a terminal user cannot reach)
    turned into the command that does it."""
    text = text.replace("call claude_history.repair()", "run `claude-history sessions repair ID`")
    return text.replace("claude_history.repair()", "`claude-history sessions repair ID`")


def _api_message(exc: anthropic.APIStatusError) -> str:  # only called once the SDK is loaded
    # ``api_message`` (the error body's own text) is newer than anthropic 2.0; older releases keep it in ``body``.
    found = getattr(exc, "api_message", None)
    if found is None and isinstance(exc.body, dict):
        error = exc.body.get("error")
        found = error.get("message") if isinstance(error, dict) else None
    return found if isinstance(found, str) and found else exc.message
