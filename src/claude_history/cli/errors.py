"""Library and SDK exceptions as one clear line for the terminal: no tracebacks for expected failures."""

from __future__ import annotations

import anthropic
import click

from ..connection import TRANSPORT_ERRORS, connection_failure
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

__all__ = ["EXPECTED_ERRORS", "CliError", "CliSetupError", "cli_error", "describe_error"]

# Exceptions a user can cause or meet in normal operation: shown as one line, never as a traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (HistoryError, anthropic.AnthropicError, *TRANSPORT_ERRORS)


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
        return f"invalid history{where}: {exc}"
    if isinstance(exc, ConfigurationError):
        return f"configuration error: {exc}"
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


def _api_message(exc: anthropic.APIStatusError) -> str:
    # ``api_message`` (the error body's own text) is newer than anthropic 2.0; older releases keep it in ``body``.
    found = getattr(exc, "api_message", None)
    if found is None and isinstance(exc.body, dict):
        error = exc.body.get("error")
        found = error.get("message") if isinstance(error, dict) else None
    return found if isinstance(found, str) and found else exc.message
