"""PostgreSQL store (``postgresql://user:pass@host:5432/db?schema=name``): shared by several app servers.

psycopg 3 with a connection pool. One row per message (``json`` columns that keep the exact text, see
``_sql``), a ``sessions`` row carrying the version, numbered migrations applied under an advisory lock,
full-text search over a GIN-indexed ``tsvector``. Appending a turn is one transaction: compare-and-swap on the
session version and a multi-row insert in one statement, so its cost depends on the size of the turn, not of
the history. Each operation runs pipelined: a statement whose result it ignores (BEGIN, the expiry check) goes
with the next one it waits for, and the commit goes with the last statement when the operation knows it is the
last (``Query.commit``), so appending a turn or reading a session's row waits for the server once and loading
a session twice, whatever their number of statements (each wait is a wake-up of the server's backend and of
the caller: milliseconds on a busy machine).

``PostgresStore`` and ``AsyncPostgresStore`` share every statement and every rule (``_ops``) and the methods
that dispatch to them (``.._dispatch``); they differ only in how a query is sent (``_run``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import ConfigurationError, StoreUnavailable
from .._dispatch import AsyncOpsStore, OpsStore, StoreOps
from . import _ops
from ._ops import Batch, Op, Query, Rows
from ._sql import Statements

try:
    import psycopg
    from psycopg import conninfo as _conninfo
    from psycopg import pq
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


def _commits(query: Query | Batch, progress: _Progress) -> bool:
    """Whether ``query`` ends its operation's transaction (its COMMIT goes in the same wait). From the send
    on, a failure may have stored the operation: unless it is ``replayable``, it counts as executed."""
    if not isinstance(query, Query) or not query.commit:
        return False
    if not query.replayable:
        progress.executed += 1
    return True


@dataclass
class _Paused:
    """An operation stopped at its committing statement (``Query.commit``), sent with the COMMIT: the caller
    ends the pipeline, whose closing Sync is the one wait for both, then resumes the operation with the rows
    of ``cursor``. (Ending a pipeline always sends a Sync and waits for it: a ``sync()`` before it would make
    a second wait.)"""

    cursor: Any
    sent: int  # statements sent since the last wait, the COMMIT included


_START: Any = object()  # ``_run_*``'s ``send``: start the operation


def _rows_of(cursor: psycopg.Cursor[Any]) -> Rows:
    return cursor.fetchall() if cursor.description is not None else []


def _run_sync(conn: psycopg.Connection[Any], op: Op[T], progress: _Progress,
              pipeline: psycopg.Pipeline | None = None, send: Any = _START) -> T | _Paused:  # fmt: skip
    """Drive an operation: send each query, feed its rows back (``send``: the rows to resume a paused one
    with). With ``pipeline`` (the connection in pipeline mode), a query whose rows the operation ignores is
    sent without waiting for it: it goes with the next query that is waited for (or the commit), and a
    ``Batch`` is one wait for all its queries; the committing query pauses the operation (``_Paused``)."""
    pending = 0  # sent in the pipeline, not yet waited for
    paused = False
    try:
        query = next(op) if send is _START else op.send(send)
        while True:
            batch = query.queries if isinstance(query, Batch) else (query,)
            cursors = [conn.execute(q.sql, q.params) for q in batch]
            if pipeline is None:
                progress.executed += len(batch)
            elif _commits(query, progress):
                conn.execute(_COMMIT)
                paused = True
                return _Paused(cursors[0], pending + 2)
            elif any(q.rows for q in batch):
                pipeline.sync()
                progress.executed += pending + len(batch)
                pending = 0
            else:
                pending += len(batch)
                query = op.send([] if isinstance(query, Query) else [[] for _ in batch])
                continue
            results = [_rows_of(cursor) for cursor in cursors]
            query = op.send(results[0] if isinstance(query, Query) else results)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        if not paused:
            op.close()


async def _async_rows_of(cursor: psycopg.AsyncCursor[Any]) -> Rows:
    return await cursor.fetchall() if cursor.description is not None else []


async def _run_async(conn: psycopg.AsyncConnection[Any], op: Op[T], progress: _Progress,
                     pipeline: psycopg.AsyncPipeline | None = None, send: Any = _START) -> T | _Paused:  # fmt: skip
    """``_run_sync`` on an async connection."""
    pending = 0
    paused = False
    try:
        query = next(op) if send is _START else op.send(send)
        while True:
            batch = query.queries if isinstance(query, Batch) else (query,)
            cursors = [await conn.execute(q.sql, q.params) for q in batch]
            if pipeline is None:
                progress.executed += len(batch)
            elif _commits(query, progress):
                await conn.execute(_COMMIT)
                paused = True
                return _Paused(cursors[0], pending + 2)
            elif any(q.rows for q in batch):
                await pipeline.sync()
                progress.executed += pending + len(batch)
                pending = 0
            else:
                pending += len(batch)
                query = op.send([] if isinstance(query, Query) else [[] for _ in batch])
                continue
            results = [await _async_rows_of(cursor) for cursor in cursors]
            query = op.send(results[0] if isinstance(query, Query) else results)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        if not paused:
            op.close()


# Pooled connections are in autocommit mode and an operation's transaction is framed by these statements,
# sent in the pipeline with the operation's first and last statements: psycopg's own ``transaction()`` waits
# for its BEGIN and its COMMIT on their own (two more round trips per operation).
_BEGIN = "BEGIN"
_COMMIT = "COMMIT"
_OPEN = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)


def _transaction_sync(conn: psycopg.Connection[Any], op: Op[T], progress: _Progress) -> T:
    """``op`` in one transaction, pipelined: BEGIN goes with its first statements, COMMIT with its last. An
    operation paused at its committing statement goes on after the pipeline, on its own (``_Paused``)."""
    try:
        with conn.pipeline() as pipeline:
            conn.execute(_BEGIN)
            result = _run_sync(conn, op, progress, pipeline)
            if not isinstance(result, _Paused):
                conn.execute(_COMMIT)
                progress.executed += 1  # the commit: from here on a failure may have stored the operation
        if not isinstance(result, _Paused):
            return result
        progress.executed += result.sent
        done = _run_sync(conn, op, progress, send=_rows_of(result.cursor))
        assert not isinstance(done, _Paused)  # no pipeline: nothing pauses
        return done
    except BaseException:
        op.close()
        if not conn.closed and conn.pgconn.transaction_status in _OPEN:
            with contextlib.suppress(psycopg.Error):  # a broken connection: the pool drops it
                conn.execute("ROLLBACK")
        raise


async def _transaction_async(conn: psycopg.AsyncConnection[Any], op: Op[T], progress: _Progress) -> T:
    """``_transaction_sync`` on an async connection."""
    try:
        async with conn.pipeline() as pipeline:
            await conn.execute(_BEGIN)
            result = await _run_async(conn, op, progress, pipeline)
            if not isinstance(result, _Paused):
                await conn.execute(_COMMIT)
                progress.executed += 1
        if not isinstance(result, _Paused):
            return result
        progress.executed += result.sent
        done = await _run_async(conn, op, progress, send=await _async_rows_of(result.cursor))
        assert not isinstance(done, _Paused)
        return done
    except BaseException:
        op.close()
        if not conn.closed and conn.pgconn.transaction_status in _OPEN:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("ROLLBACK")
        raise


# A transaction that PostgreSQL aborted to break a deadlock wrote nothing: it is run again this many times. Only
# operations on related forks lock rows in opposite orders (a rewind of a parent copies into its forks; a fork's
# delete then updates its deleted parent), so this is rare and each retry starts afresh.
_DEADLOCK_ATTEMPTS = 5


def _after_deadlock(config: _Config, exc: psycopg.errors.DeadlockDetected, attempt: int) -> None:
    """Return to run the operation again, or raise the library's error once the attempts are spent (the
    transaction was rolled back each time: nothing was written)."""
    if attempt == _DEADLOCK_ATTEMPTS - 1:
        raise StoreUnavailable(
            f"PostgreSQL at {config.where} aborted this operation {_DEADLOCK_ATTEMPTS} times to break deadlocks"
            " with concurrent operations on related forks; nothing was written: run it again"
        ) from exc


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
    _names_turns = True  # the commit goes with the append (``_ops.append``): a retry must find its own turn

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
            kwargs={"autocommit": True},  # each operation frames its own transaction (``_transaction_*``)
            name=f"claude-history {self._config.where}",
            open=False,
        )
        self._pool.open(wait=False)

    @property
    def schema(self) -> str:
        return self._config.schema

    def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        """Run ``operation(statements, *args)`` in one transaction on a pooled connection."""
        reconnected = False
        for deadlocks in range(_DEADLOCK_ATTEMPTS):
            progress = _Progress()
            try:
                with _unavailable(self._config), self._pool.connection() as conn:
                    return _transaction_sync(conn, operation(self._st, *args), progress)
            except psycopg.errors.DeadlockDetected as exc:
                _after_deadlock(self._config, exc, deadlocks)
            except StoreUnavailable as exc:
                if reconnected or not _retryable(exc, progress):
                    raise
                reconnected = True
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
    _names_turns = True  # the commit goes with the append (``_ops.append``): a retry must find its own turn

    def __init__(self, url: str = "postgresql://", **options: Any) -> None:
        self._config = _config(url, options)
        self._st = Statements(self._config.schema)
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self._config.conninfo,
            min_size=self._config.pool_min_size,
            max_size=self._config.pool_max_size,
            timeout=self._config.pool_timeout,
            kwargs={"autocommit": True},  # each operation frames its own transaction (``_transaction_*``)
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
        reconnected = False
        for deadlocks in range(_DEADLOCK_ATTEMPTS):
            progress = _Progress()
            try:
                with _unavailable(self._config):
                    async with self._pool.connection() as conn:
                        return await _transaction_async(conn, operation(self._st, *args), progress)
            except psycopg.errors.DeadlockDetected as exc:
                _after_deadlock(self._config, exc, deadlocks)
            except StoreUnavailable as exc:
                if reconnected or not _retryable(exc, progress):
                    raise
                reconnected = True
                await self._pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    async def __aenter__(self) -> AsyncPostgresStore:
        return await self.open()

    async def aclose(self) -> None:
        self._closed = True
        await self._pool.close()

    def __repr__(self) -> str:
        return f"AsyncPostgresStore({self._config.where!r}, schema={self._config.schema!r})"
