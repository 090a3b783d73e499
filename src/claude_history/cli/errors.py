"""Library and SDK exceptions as one clear line for the terminal: no tracebacks for expected failures."""

from __future__ import annotations

import importlib

import anthropic
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

__all__ = ["EXPECTED_ERRORS", "CliError", "CliSetupError", "cli_error", "describe_error"]


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's transport errors: a stream cut mid-reply surfaces as one of these, not as an SDK
    error. anthropic 2.x uses httpx2 (older releases httpx)."""
    found: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


TRANSPORT_ERRORS = _transport_errors()

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
    if isinstance(exc, anthropic.APIConnectionError):
        url = exc.request.url if exc.request is not None else "the API"
        if isinstance(exc, anthropic.APITimeoutError):
            return f"the request to {url} timed out; try again"
        if exc.message == "Connection error.":  # the SDK's text when nothing answered
            return f"cannot reach {url}; check your network and ANTHROPIC_BASE_URL"
        return f"{exc.message} ({url})"
    if isinstance(exc, TRANSPORT_ERRORS):
        return f"the connection to the API broke: {exc}"
    if isinstance(exc, anthropic.AnthropicError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _api_message(exc: anthropic.APIStatusError) -> str:
    return exc.api_message or exc.message
