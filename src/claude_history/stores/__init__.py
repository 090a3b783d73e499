"""Stores keep sessions: ``open_store(url)`` picks the backend from the URL.

=====================================  =======================================================================
``memory://``                          in this process only (a new, empty store each call)
``sqlite:///chats.db``                 SQLite file relative to the working directory (``sqlite:////abs/x.db``
                                       for an absolute path); ``sqlite://``, ``None`` or ``""``: the default
                                       database in the user data directory (or ``$CLAUDE_HISTORY_STORE``)
``file:///var/lib/chats``              a directory of JSON Lines files, one per session
``postgresql://user@host/db``          PostgreSQL (extra ``postgres``); ``postgres://`` is accepted too
``redis://host:6379/0``                Redis (extra ``redis``); ``rediss://`` for TLS
=====================================  =======================================================================
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..errors import ConfigurationError, StoreUnavailable
from .base import (
    UNSET,
    AsyncStore,
    Entry,
    SearchHit,
    SessionCursor,
    SessionData,
    SessionInfo,
    Store,
    StoredMessage,
    Summary,
)

__all__ = [
    "DEFAULT_STORE_ENV",
    "ENCRYPTION_KEY_ENV",
    "SCHEMES",
    "UNSET",
    "AsyncStore",
    "Entry",
    "SearchHit",
    "SessionCursor",
    "SessionData",
    "SessionInfo",
    "Store",
    "StoredMessage",
    "Summary",
    "default_sqlite_path",
    "open_async_store",
    "open_store",
]

DEFAULT_STORE_ENV = "CLAUDE_HISTORY_STORE"
ENCRYPTION_KEY_ENV = "CLAUDE_HISTORY_ENCRYPTION_KEY"  # as encrypted.ENV_VAR, without importing cryptography
SCHEMES = ("memory", "sqlite", "file", "postgresql", "postgres", "redis", "rediss")

# The pip extra that provides each optional dependency, for the error message when it is missing.
_EXTRAS = {"psycopg": "postgres", "psycopg_pool": "postgres", "redis": "redis", "cryptography": "crypto"}


def default_sqlite_path() -> Path:
    """Where ``open_store()`` keeps history when no URL is given: the per-user data directory."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("claude-history", appauthor=False)) / "history.db"


def _split(url: str | None) -> tuple[str, str]:
    if not url:
        url = os.environ.get(DEFAULT_STORE_ENV) or "sqlite://"
    if not isinstance(url, str):
        raise ConfigurationError(f"store URL must be a string, got {type(url).__name__}")
    scheme, separator, _ = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in SCHEMES:
        raise ConfigurationError(
            f"unknown store URL {url!r}; use one of: memory://, sqlite:///path.db, file:///dir,"
            " postgresql://..., redis://..."
        )
    return scheme, url


def _sqlite_path(url: str) -> Path:
    rest = url.partition("://")[2]
    if not rest:
        path = default_sqlite_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"bad SQLite URL {url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    name = unquote(rest[1:].split("?", 1)[0])
    if name in ("", ":memory:"):
        raise ConfigurationError(f"bad SQLite URL {url!r}: give a file path (for an in-memory store use memory://)")
    return Path(name).expanduser()


def _file_path(url: str) -> Path:
    rest = unquote(url.partition("://")[2])
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    if not rest:
        raise ConfigurationError(f"bad file store URL {url!r}: write file:///absolute/dir")
    return Path(rest).expanduser()


@contextmanager
def _optional(what: str, module: str) -> Iterator[None]:
    """Turn a missing optional dependency, at import or at first use, into an error that says what to
    install."""
    try:
        yield
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        extra = _EXTRAS.get(root)
        if extra is not None:
            raise StoreUnavailable(
                f"{what} needs the optional dependency {root!r}: pip install 'claude-history[{extra}]'"
            ) from exc
        if exc.name == module:
            raise StoreUnavailable(f"{what} is not available in this installation ({module} is missing)") from exc
        raise


_POSTGRES = ("the PostgreSQL store", "claude_history.stores.postgres")
_REDIS = ("the Redis store", "claude_history.stores.redis")
_ENCRYPTION = ("encryption at rest", "claude_history.stores.encrypted")


def _encryption_key(key: Any) -> Any:
    """What to encrypt with: the key given; with none, ``$CLAUDE_HISTORY_ENCRYPTION_KEY`` if it is set (an
    application configured for encryption must not write plaintext because one call forgot the argument);
    ``False``: a plain store whatever the environment says. None: do not encrypt."""
    if key is False:
        return None
    if key is None:
        return _FROM_ENVIRONMENT if os.environ.get(ENCRYPTION_KEY_ENV, "").strip() else None
    return key


_FROM_ENVIRONMENT = object()  # wrap() without a key reads the key, and the old keys, from the environment


def _encrypt(store: Any, key: Any, *, asynchronous: bool = False) -> Any:
    try:
        if importlib.util.find_spec(_ENCRYPTION[1]) is None:
            raise ConfigurationError("encryption was asked for but this installation has no encryption support")
        with _optional(*_ENCRYPTION):
            module = importlib.import_module(_ENCRYPTION[1])
            wrap = module.wrap_async if asynchronous else module.wrap
            return wrap(store) if key is _FROM_ENVIRONMENT else wrap(store, key)
    except BaseException:
        # A bad key or a missing extra: do not leave the connections of a store nobody will get.
        if not asynchronous:  # async stores connect on first use
            with contextlib.suppress(Exception):
                store.close()
        raise


def _open_sync(scheme: str, url: str, options: dict[str, Any]) -> Any:
    if scheme == "memory":
        from .memory import MemoryStore

        if url.partition("://")[2]:
            raise ConfigurationError(f"bad memory store URL {url!r}: write memory://")
        if options:
            raise ConfigurationError(f"memory:// takes no options, got {', '.join(sorted(options))}")
        return MemoryStore()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(_sqlite_path(url), **options)
    if scheme == "file":
        from .jsonfile import JsonFileStore

        return JsonFileStore(_file_path(url), **options)
    if scheme in ("postgresql", "postgres"):
        with _optional(*_POSTGRES):
            return importlib.import_module(_POSTGRES[1]).PostgresStore(url, **options)
    with _optional(*_REDIS):
        return importlib.import_module(_REDIS[1]).RedisStore(url, **options)


def open_store(url: str | None = None, *, encryption_key: Any = None, **options: Any) -> Store:
    """Open the store a URL names (see the module docstring). ``options`` go to the backend's constructor
    (e.g. ``busy_timeout`` for SQLite, ``pool_size`` for PostgreSQL). With ``encryption_key`` message content
    is encrypted at rest (extra ``crypto``); without it, when ``$CLAUDE_HISTORY_ENCRYPTION_KEY`` is set, with
    that key (and ``$CLAUDE_HISTORY_ENCRYPTION_OLD_KEYS``); ``encryption_key=False`` opens a plain store
    regardless."""
    scheme, url = _split(url)
    key = _encryption_key(encryption_key)
    store = _open_sync(scheme, url, options)
    if key is not None:
        store = _encrypt(store, key)
    return store  # type: ignore[no-any-return]


def open_async_store(url: str | None = None, *, encryption_key: Any = None, **options: Any) -> AsyncStore:
    """The ``AsyncStore`` for a URL: native async clients for PostgreSQL and Redis; for memory, SQLite and
    files the sync store run on a small thread pool, so the event loop never blocks on disk I/O."""
    scheme, url = _split(url)
    key = _encryption_key(encryption_key)
    if scheme in ("postgresql", "postgres", "redis", "rediss"):
        what, module, name = (
            (*_POSTGRES, "AsyncPostgresStore") if scheme.startswith("postgres") else (*_REDIS, "AsyncRedisStore")
        )
        with _optional(what, module):
            store: Any = getattr(importlib.import_module(module), name)(url, **options)
        if key is not None:
            store = _encrypt(store, key, asynchronous=True)
        return store  # type: ignore[no-any-return]
    from .threaded import ThreadedAsyncStore

    sync = _open_sync(scheme, url, options)
    if key is not None:
        # Encrypt in the worker threads too: the cipher work stays off the event loop.
        sync = _encrypt(sync, key)
    return ThreadedAsyncStore(sync)
