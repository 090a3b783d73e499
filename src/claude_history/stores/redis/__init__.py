"""Redis store (``redis://host:6379/0?prefix=app:``): shared by several app servers, with native expiry.

Messages are a list per session, appended with RPUSH, so a turn costs the same at any history length; the
session hash carries the version. Every write is one Lua script (atomic, compare-and-swap on the version).
``expires_at`` becomes a real Redis expiry (PEXPIREAT) on every key of the session, kept on each write; index
entries of sessions Redis expired are cleaned by ``list_sessions`` and ``purge_expired``. Search reads a word
index the same scripts keep (``_lua``; docs/stores.md). The scripts assume one Redis node, not Redis Cluster.

Forks are copy-on-write (``_lua``'s fork chain, as SQLite's): a fork's hash points at the storage key it reads
its prefix from, so a fork writes one hash at any length; a rewind below a fork point first hands the fork the
messages it reads, and a deleted session that forks read stays as their data under a key no id can be, until
the last of them goes. Sessions in a fork chain carry no Redis expiry (Redis would drop a parent's rows under
its forks): they expire by the store's clock and are purged on sight or by ``purge_expired``.

``RedisStore`` and ``AsyncRedisStore`` share the scripts, key layout and record format (``_ops``, ``_lua``)
and the methods that dispatch to them (``.._dispatch``); they differ only in how a command is sent (``_run``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import ConfigurationError, StoreUnavailable
from .._dispatch import AsyncOpsStore, OpsStore, StoreOps
from .._times import now_us
from . import _ops
from ._lua import SCRIPTS
from ._ops import Call, Layout, Op

try:
    import redis
    import redis.asyncio
    from redis import exceptions as _errors
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise StoreUnavailable("the Redis store needs redis-py: pip install 'claude-history[redis]'") from exc

__all__ = ["AsyncRedisStore", "RedisStore"]

T = TypeVar("T")


def _split_url(url: str, options: dict[str, Any]) -> tuple[str, Layout, dict[str, Any], str]:
    """The URL without our options, the key layout, the redis-py options and where (host:port/db)."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(f"bad Redis URL {url!r}: write redis://host:6379/0 (rediss:// for TLS)")
    parts = urlsplit(url)
    query = []
    prefix: Any = _ops.DEFAULT_PREFIX
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            prefix = value
        else:
            query.append((key, value))
    client_options = dict(options)
    prefix = client_options.pop("prefix", prefix)
    if client_options.pop("decode_responses", True) is not True:
        raise ConfigurationError("the Redis store needs decode_responses=True (it reads text)")
    clean = urlunsplit(parts._replace(query=urlencode(query)))
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"
    return clean, Layout(prefix), client_options, where


@contextmanager
def _unavailable(where: str) -> Iterator[None]:
    try:
        yield
    except (_errors.ConnectionError, _errors.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis at {where} is unavailable: {exc}") from exc
    except _errors.ResponseError as exc:
        if "claude-history:" not in str(exc):
            raise
        # A script found stored data it cannot read; it checks before its first write, so nothing changed.
        raise StoreUnavailable(
            f"Redis at {where} holds data this session cannot use (nothing was written): {exc}"
        ) from exc


class RedisStore(OpsStore):
    """Synchronous Redis store. Thread-safe (redis-py's connection pool); safe across processes and machines.

    Options: ``prefix`` (default ``claude_history:``; every key starts with it), any other keyword goes to
    ``redis.Redis.from_url`` (``socket_timeout``, ``max_connections``, ...). Opening pings the server and
    raises ``StoreUnavailable`` if it cannot be reached."""

    _ops: ClassVar[StoreOps] = _ops

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        clean, self._keys, client_options, self._where = _split_url(url, options)
        try:
            self._client: redis.Redis = redis.Redis.from_url(clean, decode_responses=True, **client_options)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad Redis settings: {exc}") from None
        # The same script text as the async store; redis-py sends EVALSHA and loads the script when missing.
        self._scripts = {name: self._client.register_script(code) for name, code in SCRIPTS.items()}
        with _unavailable(self._where):
            self._client.ping()

    @property
    def prefix(self) -> str:
        return self._keys.prefix

    def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        op = operation(self._keys, *args)
        try:
            with _unavailable(self._where):
                step = next(op)
                while True:
                    if isinstance(step, Call):
                        reply = self._scripts[step.script](args=[*self._keys.header, *step.args])
                    else:
                        pipe = self._client.pipeline(transaction=True)
                        for command in step.commands:
                            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                        reply = pipe.execute()
                    step = op.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    def rebuild_search_index(self) -> int:
        """Add the sessions written before the word index existed to it (until then search scans them);
        returns how many were indexed. Safe to run while the store is in use, and again."""
        return self._run(_ops.rebuild_search_index, now_us())

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r}, prefix={self._keys.prefix!r})"


class AsyncRedisStore(AsyncOpsStore):
    """The asyncio twin of ``RedisStore`` (``redis.asyncio``): never blocks the loop. Same options; connects
    on first use. A store belongs to the event loop that first used it."""

    _ops: ClassVar[StoreOps] = _ops

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        clean, self._keys, client_options, self._where = _split_url(url, options)
        try:
            self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
                clean, decode_responses=True, **client_options
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad Redis settings: {exc}") from None
        self._scripts = {name: self._client.register_script(code) for name, code in SCRIPTS.items()}

    @property
    def prefix(self) -> str:
        return self._keys.prefix

    async def _run(self, operation: Callable[..., Op[T]], *args: Any) -> T:
        op = operation(self._keys, *args)
        try:
            with _unavailable(self._where):
                step = next(op)
                while True:
                    if isinstance(step, Call):
                        reply = await self._scripts[step.script](args=[*self._keys.header, *step.args])
                    else:
                        pipe = self._client.pipeline(transaction=True)
                        for command in step.commands:
                            pipe.execute_command(*command)
                        reply = await pipe.execute()
                    step = op.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            op.close()

    async def rebuild_search_index(self) -> int:
        """``RedisStore.rebuild_search_index``."""
        return await self._run(_ops.rebuild_search_index, now_us())

    async def __aenter__(self) -> AsyncRedisStore:
        return self

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"AsyncRedisStore({self._where!r}, prefix={self._keys.prefix!r})"
