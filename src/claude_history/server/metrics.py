"""Prometheus metrics at ``/metrics``: turns, tokens by kind, cost, cache-read share, latency, conflicts, errors.

Labels are the tenant, the model and the route: never a key or a session id (unbounded, and private)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..pricing import PriceTable, cost_of
from ..usage import TokenUsage

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """One registry per app, so several apps in one process (tests) do not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("claude_history_http_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "claude_history_http_request_seconds", "Time to the response's first byte", ["route"], registry=r
        )
        self.turns = Counter("claude_history_turns", "Turns committed", ["tenant", "model", "mode"], registry=r)
        self.tokens = Counter("claude_history_tokens", "Tokens by kind", ["tenant", "model", "kind"], registry=r)
        self.cost = Counter("claude_history_cost_usd", "Cost in USD", ["tenant", "model"], registry=r)
        self.cache_read_share = Gauge(
            "claude_history_cache_read_share", "Share of input tokens read from the cache (all turns so far)",
            registry=r,
        )
        self.conflicts = Counter("claude_history_conflicts", "Turns refused with 409", ["tenant"], registry=r)
        self.errors = Counter("claude_history_errors", "Error responses", ["route", "type"], registry=r)
        self.in_flight = Gauge("claude_history_turns_in_flight", "Turns running now", registry=r)
        self._input = 0
        self._read = 0

    def record_usage(self, tenant: str | None, model: str | None, usage: Mapping[str, Any] | None,
                     prices: PriceTable, mode: str) -> None:  # fmt: skip
        """One reply's usage: a turn, its tokens by kind and its cost (when the model has a price)."""
        name, who = model or "unknown", tenant or "-"
        self.turns.labels(who, name, mode).inc()
        if not usage:
            return
        tokens = TokenUsage.from_api(usage)
        for kind, value in tokens.to_dict().items():
            if value:
                self.tokens.labels(who, name, kind).inc(value)
        try:
            cost = cost_of(usage, model, prices)
        except Exception:  # an unpriced model: tokens are still counted
            cost = None
        if cost:
            self.cost.labels(who, name).inc(float(cost))
        self._input += tokens.prompt_tokens
        self._read += tokens.cache_read_input_tokens
        if self._input:
            self.cache_read_share.set(self._read / self._input)

    def render(self) -> bytes:
        return generate_latest(self.registry)
