"""PostgreSQL store (``postgresql://user:pass@host:5432/db?schema=name``): shared by several app servers.

psycopg 3 with a connection pool. One row per message (``json`` columns that keep the exact text, see
``_sql``), a ``sessions`` row carrying the version, numbered migrations applied under an advisory lock,
full-text search over a GIN-indexed ``tsvector``. Appending a turn is one transaction: compare-and-swap on the
session version, then one multi-row insert, so its cost depends on the size of the turn, not of the history.

``PostgresStore`` and ``AsyncPostgresStore`` share every statement and every rule (``_ops``) and the methods
that dispatch to them (``.._dispatch``); they differ only in how a query is sent (``_run``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import ConfigurationError, StoreUnavailable
from .._dispatch import AsyncOpsStore, OpsStore, StoreOps
from . import _ops
from ._ops import Op, Query
from ._sql import Statements

try:
    import psycopg
    from psycopg import conninfo as _conninfo
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise StoreUnavailable(
        "the PostgreSQL store needs psycopg 3 and psycopg-pool: pip install 'claude-history[postgres]'"
    ) from exc

__all__ = ["AsyncPostgresStore", "PostgresStore"]

T = TypeVar("T")

DEFAULT_SCHEMA = "claude_history"
# Options that belong to the store, not to libpq; accepted as keyword arguments or as URL query parameters.
_STORE_OPTIONS = ("schema", "pool_min_size", "pool_max_size", "pool_timeout")


@dataclass(frozen=True)
class _Config:
    conninfo: str
    schema: str
    pool_min_size: int
    pool_max_size: int
    pool_timeout: float
    where: str  # host:port/db for messages, never the password


def _config(url: str, options: dict[str, Any]) -> _Config:
    """Split store options from libpq parameters. Keyword arguments win over URL query parameters; anything
    else (``sslmode``, ``application_name``, ...) goes to libpq unchanged."""
    if not isinstance(url, str):
        raise ConfigurationError(f"PostgreSQL URL must be a string, got {type(url).__name__}")
    store: dict[str, Any] = {}
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        query = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in _STORE_OPTIONS:
                store[key] = value
            else:
                query.append((key, value))
        url = urlunsplit(parts._replace(query=urlencode(query)))
    libpq = {k: v for k, v in options.items() if k not in _STORE_OPTIONS}
    store.update({k: v for k, v in options.items() if k in _STORE_OPTIONS})
    try:
        params = _conninfo.conninfo_to_dict(url, **libpq)
        params.setdefault("connect_timeout", 10)
        conninfo = _conninfo.make_conninfo("", **params)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"bad PostgreSQL connection settings: {exc}") from None
    schema = store.get("schema", DEFAULT_SCHEMA)
    if not isinstance(schema, str) or not schema or "\x00" in schema or len(schema.encode()) > 63:
        raise ConfigurationError(f"schema must be a PostgreSQL name of 1 to 63 bytes, got {schema!r}")
    try:
        min_size = int(store.get("pool_min_size", 1))
        max_size = int(store.get("pool_max_size", 10))
        timeout = float(store.get("pool_timeout", 10.0))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"bad PostgreSQL pool setting: {exc}") from None
    if not 0 <= min_size <= max_size or max_size < 1 or timeout <= 0:
        raise ConfigurationError(
            "pool sizes must satisfy 0 <= pool_min_size <= pool_max_size, pool_max_size >= 1,"
            f" pool_timeout > 0; got {min_size}, {max_size}, {timeout}"
        )
    where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}/{params.get('dbname') or ''}"
    return _Config(conninfo, schema, min_size, max_size, timeout, where)


_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03")


@contextmanager
def _unavailable(config: _Config) -> Iterator[None]:
    """Connection trouble becomes ``StoreUnavailable`` with where and why; SQL errors pass through."""
    try:
        yield
    except PoolTimeout as exc:
        raise StoreUnavailable(
            f"PostgreSQL at {config.where}: no connection within {config.pool_timeout:g}s (server"
            f" unreachable, or all {config.pool_max_size} pooled connections busy: raise pool_max_size):"
            f" {exc}"
        ) from exc
    except PoolClosed as exc:
        raise StoreUnavailable("this PostgreSQL store is closed") from exc
    except psycopg.OperationalError as exc:
        state = exc.sqlstate
        if state is None or state.startswith(_CONNECTION_SQLSTATES):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(f"PostgreSQL at {config.where} is unavailable: {reason}") from exc
        raise


class _Progress:
    """How many queries of an operation the server has executed: zero means a retry cannot repeat a write."""

    executed = 0


def _run_sync(conn: psycopg.Connection[Any], op: Op[T], progress: _Progress) -> T:
    """Drive an operation: send each query, feed its rows back (a chunked query's chunk by chunk, streamed)."""
    try:
        with conn.cursor() as cur:
            query = next(op)
            while True:
                if query.chunked:
                    progress.executed += 1
                    rows_in = cur.stream(query.sql, query.params, size=_ops.CHUNK_ROWS)
                    while True:
                        chunk = list(itertools.islice(rows_in, _ops.CHUNK_ROWS))
                        query = op.send(chunk)
                        if not chunk:
                            break
                        _check_more(query)
                    continue
                cur.execute(query.sql, query.params)
                progress.executed += 1
                rows = cur.fetchall() if cur.description is not None else []
                query = op.send(rows)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        op.close()


def _check_more(query: Query) -> None:
    if query is not _ops.MORE:  # pragma: no cover - a bug in an operation
        raise AssertionError("an operation must read a chunked query to its end before the next query")


async def _run_async(conn: psycopg.AsyncConnection[Any], op: Op[T], progress: _Progress) -> T:
    try:
        async with conn.cursor() as cur:
            query: Query = next(op)
            while True:
                if query.chunked:
                    progress.executed += 1
                    chunk: list[Any] = []
                    async for row in cur.stream(query.sql, query.params, size=_ops.CHUNK_ROWS):
                        chunk.append(row)
                        if len(chunk) == _ops.CHUNK_ROWS:
                            _check_more(op.send(chunk))
                            chunk = []
                    if chunk:
                        _check_more(op.send(chunk))
                    query = op.send([])
                    continue
                await cur.execute(query.sql, query.params)
                progress.executed += 1
                rows = await cur.fetchall() if cur.description is not None else []
                query = op.send(rows)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        op.close()


def _retryable(exc: StoreUnavailable, progress: _Progress) -> bool:
    """A pooled connection that died while idle (server restart, failover, idle timeout in a proxy) fails on
    the first query; nothing was written, so the operation is safely run again on a fresh connection."""
    cause = exc.__cause__
    return (
        progress.executed == 0
        and isinstance(cause, psycopg.OperationalError)
        and not isinstance(cause, (PoolTimeout, PoolClosed))
    )


class PostgresStore(OpsStore):
    """Synchronous PostgreSQL store. Thread-safe (a pool of connections); safe across processes and machines.

    Options: ``schema`` (default ``claude_history``; created if missing), ``pool_min_size`` (1),
    ``pool_max_size`` (10), ``pool_timeout`` (seconds to wait for a connection, 10); any other keyword is a
    libpq connection parameter. Opening applies pending migrations and raises ``StoreUnavailable`` if the
    server cannot be reached."""

    _ops: ClassVar[StoreOps] = _ops

    def __init__(self, url: str = "postgresql://", **options: Any) -> None:
        self._config = _config(url, options)
        self._st = Statements(self._config.schema)
        with _unavailable(self._config), psycopg.connect(self._config.conninfo, autocommit=True) as conn:
            _run_sync(conn, _ops.migrate(self._st), _Progress())
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._config.conninfo,
            min_size=self._config.pool_min_size,
            max_size=self._config.pool_max_size,
            timeout=self._config.pool_timeout,
            name=f"claude-history {self._config.where}",
            open=False,
        )
        self._pool.open(wait=False)

    @property
    def schema(self) -> str:
        return self._config.schema

    def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        """Run ``operation(statements, *args)`` in one transaction on a pooled connection."""
        for attempt in range(2):
            progress = _Progress()
            try:
                with _unavailable(self._config), self._pool.connection() as conn, conn.transaction():
                    return _run_sync(conn, operation(self._st, *args), progress)
            except StoreUnavailable as exc:
                if attempt or not _retryable(exc, progress):
                    raise
                self._pool.check()  # drop the other dead connections too
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._config.where!r}, schema={self._config.schema!r})"


class AsyncPostgresStore(AsyncOpsStore):
    """The asyncio twin of ``PostgresStore`` (psycopg's async connections and pool): never blocks the loop.

    Same options. The pool opens and migrations run on first use (or ``await store.open()`` / ``async with``);
    a store belongs to the event loop that first used it."""

    _ops: ClassVar[StoreOps] = _ops

    def __init__(self, url: str = "postgresql://", **options: Any) -> None:
        self._config = _config(url, options)
        self._st = Statements(self._config.schema)
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self._config.conninfo,
            min_size=self._config.pool_min_size,
            max_size=self._config.pool_max_size,
            timeout=self._config.pool_timeout,
            name=f"claude-history {self._config.where}",
            open=False,
        )
        self._opened = False
        self._closed = False
        self._open_lock: asyncio.Lock | None = None

    @property
    def schema(self) -> str:
        return self._config.schema

    async def open(self) -> AsyncPostgresStore:
        """Connect, apply pending migrations and open the pool (done on first use anyway)."""
        if self._opened:
            return self
        if self._closed:
            raise StoreUnavailable("this PostgreSQL store is closed")
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                with _unavailable(self._config):
                    conn = await psycopg.AsyncConnection.connect(self._config.conninfo, autocommit=True)
                    async with conn:
                        await _run_async(conn, _ops.migrate(self._st), _Progress())
                    await self._pool.open(wait=False)
                self._opened = True
        return self

    async def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        await self.open()
        for attempt in range(2):
            progress = _Progress()
            try:
                with _unavailable(self._config):
                    async with self._pool.connection() as conn, conn.transaction():
                        return await _run_async(conn, operation(self._st, *args), progress)
            except StoreUnavailable as exc:
                if attempt or not _retryable(exc, progress):
                    raise
                await self._pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    async def __aenter__(self) -> AsyncPostgresStore:
        return await self.open()

    async def aclose(self) -> None:
        self._closed = True
        await self._pool.close()

    def __repr__(self) -> str:
        return f"AsyncPostgresStore({self._config.where!r}, schema={self._config.schema!r})"
