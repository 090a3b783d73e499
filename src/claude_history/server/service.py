"""What every route shares: the store, the upstream client, prices, metrics, and the turns in flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import anthropic
import httpx2

from ..pricing import load_prices
from ..stores import open_async_store
from ..stores.base import AsyncStore
from ..warm import WarmSessions
from .config import ServerConfig
from .metrics import Metrics
from .tenants import resolve_key
from .upstream import Http, RawUpstream
from .usage_records import UsageRecorder

__all__ = ["Service"]

T = TypeVar("T")

_KEY_CACHE_SECONDS = 5.0  # a revoked key stops working within this long on every server


class Service:
    """Opened by the app's lifespan, closed after the turns in flight have finished."""

    def __init__(self, config: ServerConfig, store: AsyncStore | None = None) -> None:
        self.config = config
        self.store: AsyncStore = store if store is not None else open_async_store(config.store_url)
        self.prices = load_prices()
        self.metrics = Metrics()
        self.usage = UsageRecorder(self.store)
        self.upstream = anthropic.AsyncAnthropic(
            api_key=config.upstream_key or None,
            base_url=config.upstream_url,
            timeout=config.upstream_timeout,
            max_retries=0,  # the client's own SDK retries; retrying here too would multiply them
        )
        self.base_url = str(self.upstream.base_url).rstrip("/")
        # As the SDK's own pool: a service with many sessions in flight keeps its upstream connections alive.
        # The pass-through's (streamed, relayed as it comes) on httpx2; the turns' POSTs on aiohttp (``Http``).
        limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
        self.http = httpx2.AsyncClient(timeout=config.upstream_timeout, limits=limits)
        self.pool = Http(config.upstream_timeout)
        self.raw = RawUpstream(self.upstream, self.pool)
        self.warm = WarmSessions(config.warm_sessions, config.warm_messages)
        self._inflight: set[asyncio.Task[Any]] = set()
        self._keys: dict[str, tuple[str | None, float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    def client_for(self, client_key: str | None) -> RawUpstream:
        """The upstream client for one request's turn: the server's key, or the client's with
        ``forward_client_key``."""
        if self.config.forward_client_key and client_key:
            return RawUpstream(self.upstream.with_options(api_key=client_key), self.pool)
        return self.raw

    def upstream_key(self, client_key: str | None) -> str | None:
        if self.config.forward_client_key and client_key:
            return client_key
        return self.upstream.api_key

    async def tenant_of(self, key: str) -> str | None:
        now = time.monotonic()
        cached = self._keys.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        tenant = await resolve_key(self.store, key)
        self._keys[key] = (tenant, now + _KEY_CACHE_SECONDS)
        return tenant

    def allow(self, tenant: str) -> float | None:
        """Token bucket per tenant: None when the request may go on, else the seconds to wait."""
        rate = self.config.rate_limit
        if rate is None:
            return None
        now = time.monotonic()
        burst = float(self.config.rate_burst)
        tokens, last = self._buckets.get(tenant, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[tenant] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[tenant] = (tokens - 1.0, now)
        return None

    def record_passthrough(self, tenant: str | None, model: str | None, usage: Any) -> None:
        """A pass-through reply's usage: in the metrics now, in the tenant's stored totals in the background
        (the client's reply does not wait for the store; shutdown does)."""
        self.metrics.record_usage(tenant, model, usage, self.prices, "passthrough")
        if isinstance(usage, dict) and usage:
            self.spawn(self.usage.record(tenant, model, usage))

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run a turn as its own task: a client that disconnects does not cancel it (the turn is finished and
        committed), and shutdown waits for it."""
        task = asyncio.ensure_future(coro)
        self._inflight.add(task)
        self.metrics.in_flight.set(len(self._inflight))

        def done(t: asyncio.Task[Any]) -> None:
            self._inflight.discard(t)
            self.metrics.in_flight.set(len(self._inflight))

        task.add_done_callback(done)
        return task

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``spawn`` and wait; a cancelled request leaves the turn running."""
        return await asyncio.shield(self.spawn(coro))

    async def close(self) -> None:
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        await self.http.aclose()
        await self.pool.aclose()
        await self.upstream.close()
        await self.store.aclose()
