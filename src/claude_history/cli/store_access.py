"""Opening the store a command names, with the checks a terminal user needs before the library opens it.

``open_store`` creates what a URL names (a SQLite file, a directory), which is right for an application and
wrong for a typo: ``sessions list --store sqlite:///typo.db`` must not create ``typo.db`` and say "No sessions.".
So commands that only read refuse a store that does not exist yet, and URLs that the library would take in a
surprising way (``file://relative`` names a host, ``redis://host/abc`` has no database number) are refused
with the place the URL came from (``--store`` or ``$CLAUDE_HISTORY_STORE``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import click

from ..errors import ConfigurationError, SessionNotFound, StoreUnavailable
from .errors import CliError, CliSetupError

if TYPE_CHECKING:
    from ..stores.base import SessionInfo, Store

__all__ = [
    "ENCRYPTION_MARK",
    "STORE_ENV",
    "check_readable",
    "opened", "remember_source", "session_or_none", "source_of", "store_path",
    "validate_url", "where_from"]

STORE_ENV = "CLAUDE_HISTORY_STORE"
ENCRYPTION_MARK = "_claude_history_encryption"  # encrypted.RESERVED_METADATA_KEY, without importing cryptography
_SOURCE_KEY = "claude_history.store_source"
_URL_KEY = "claude_history.store_url"


def remember_source(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback of ``--store``: note whether the URL came from the option or the environment."""
    if value and param.name:
        from_env = ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT
        ctx.meta[_SOURCE_KEY] = f"${STORE_ENV}" if from_env else "--store"
        ctx.meta[_URL_KEY] = value
    return value or None


def source_of(url: str) -> str:
    """``--store`` or ``$CLAUDE_HISTORY_STORE``: where the URL of the running command came from."""
    ctx = click.get_current_context(silent=True)
    return str(ctx.meta.get(_SOURCE_KEY, "--store")) if ctx is not None else "--store"


def where_from(ctx: click.Context) -> str:
    """`` (store URL '...' from $CLAUDE_HISTORY_STORE)`` for an error of the store the command opened, so a
    URL the user did not type on this command line can be found; empty for the default store."""
    url = ctx.meta.get(_URL_KEY)
    return f" (store URL {url!r} from {ctx.meta.get(_SOURCE_KEY, '--store')})" if url else ""


def store_path(url: str) -> Path | None:
    """The file or directory a ``sqlite:///`` or ``file:///`` URL names (None for other stores and the default)."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "sqlite" and rest.startswith("/"):
        return Path(unquote(rest[1:].split("?", 1)[0])).expanduser()
    if scheme == "file" and rest:
        rest = unquote(rest)
        return Path(rest[len("localhost") :] if rest.startswith("localhost/") else rest).expanduser()
    return None


def validate_url(url: str, *, create: bool) -> None:
    """Refuse, with the URL's origin, what would be a surprise: a mistyped path that a read-only command would
    create, ``file://relative`` (which names a host), a Redis database that is not a number."""
    origin = source_of(url)
    scheme = url.partition("://")[0].lower()
    if scheme == "file":
        rest = url.partition("://")[2]
        if rest and not rest.startswith("/") and not rest.startswith("localhost/"):
            raise CliSetupError(
                f"bad store URL {url!r} (from {origin}): file://{rest.split('/')[0]} names a host; "
                "write file:///absolute/dir (three slashes)"
            )
    if scheme in ("redis", "rediss"):
        database = urlsplit(url).path.strip("/")
        if database and not database.isdigit():
            raise CliSetupError(
                f"bad store URL {url!r} (from {origin}): the database must be a number, as in redis://host:6379/0"
            )
    path = store_path(url)
    if path is not None and not create and not path.exists():
        kind = "directory" if scheme == "file" else "database file"
        raise CliError(
            f"no store at {url!r} (from {origin}): the {kind} {str(path)!r} does not exist; "
            "check the URL (a chat or `sessions import` creates it)"
        )


@contextlib.contextmanager
def opened(store_url: str | None, *, create: bool = False) -> Iterator[Store]:
    """The store of a command, closed at the end. ``create``: the command writes (chat, import), so a store
    that does not exist yet is made; read-only commands refuse it instead."""
    from ..stores import open_store

    if store_url:
        validate_url(store_url, create=create)
    try:
        store = open_store(store_url)
    except CliError:
        raise
    except Exception as exc:
        if store_url and _is_setup_error(exc):
            # A bad URL or option is the user's setup (exit 2); an unreachable server is a failure (exit 1).
            error = CliError if isinstance(exc, StoreUnavailable) else CliSetupError
            raise error(f"store unavailable: {store_url!r} (from {source_of(store_url)}): {exc}") from exc
        raise
    try:
        yield store
    finally:
        with contextlib.suppress(Exception):
            store.close()


def _is_setup_error(exc: BaseException) -> bool:
    return isinstance(exc, (ConfigurationError, StoreUnavailable, OSError))


def check_readable(info: SessionInfo) -> None:
    """An encrypted session read without its key would show ``[encrypted]`` blocks or fail validation: say what
    is missing instead."""
    if ENCRYPTION_MARK in info.metadata:  # the encrypting wrapper hides its mark: this store has no key
        raise CliError(
            f"session {info.id!r} is encrypted and this store was opened without its key; "
            "set CLAUDE_HISTORY_ENCRYPTION_KEY to read it"
        )


def session_or_none(store: Store, session_id: str) -> SessionInfo | None:
    try:
        return store.get_session(session_id)
    except SessionNotFound:
        return None
