"""Per-minute rate limits on the simulator's clock, and the ``anthropic-ratelimit-*`` headers of every reply.

Sources:
* Rate limits, platform.claude.com/docs/en/api/rate-limits (also docs.anthropic.com/en/api/rate-limits): limits
  on requests, input tokens and output tokens per minute, "the token bucket algorithm": capacity is
  continuously replenished up to the maximum, not reset at fixed intervals; "for most Claude models, only
  uncached input tokens count towards your ITPM rate limits" (``input_tokens`` + ``cache_creation_input_tokens``;
  cache reads are free); "OTPM rate limits are estimated based on max_tokens at the beginning of each request,
  and adjusted at the end of the request to reflect the actual number of output tokens used"; a request over a
  limit gets 429 ``rate_limit_error`` with a ``retry-after`` header, "the number of seconds to wait until you
  can retry the request. Earlier retries will fail"; the response headers
  ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``, reset times
  in RFC 3339 format, ``tokens-*`` being the most restrictive token limit.
* A recorded API response with those headers (tidyllm's test fixture,
  rdrr.io/cran/tidyllm/src/tests/testthat/claude/api.anthropic.com/v1/messages-e050b5-POST.R): values as
  integers, resets like ``2025-08-21T12:40:59Z``.
* The 429 message, as users quote it (anthropics/claude-code#55132, continuedev/continue#12057): "This request
  would exceed your organization's rate limit of 30,000 input tokens per minute (org: ..., model: ...). For
  details, refer to: https://docs.claude.com/en/api/rate-limits. ..."
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ._common import ApiError

__all__ = ["RateLimiter", "RateLimits"]

UNLIMITED = 1_000_000_000  # what the headers report for a dimension without a limit


@dataclass(frozen=True)
class RateLimits:
    """Per-minute limits for ``Simulator(rate_limits=...)``; ``None`` leaves a dimension unlimited.

    ``input_tokens_per_minute`` counts uncached input (cache reads are free, as on the API);
    ``output_tokens_per_minute`` admits a request only if its ``max_tokens`` fits, then charges what was
    written."""

    requests_per_minute: int | None = None
    input_tokens_per_minute: int | None = None
    output_tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "input_tokens_per_minute", "output_tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


class _Bucket:
    """A token bucket of ``capacity`` that refills ``capacity`` per 60 seconds of the simulator clock."""

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self.at = now

    def refill(self, now: float) -> None:
        if now > self.at:
            self.level = min(float(self.capacity), self.level + (now - self.at) * self.capacity / 60.0)
            self.at = now

    def wait_for(self, amount: int) -> float:
        """Seconds until ``amount`` fits (0 if it does now; a request larger than the capacity waits for a full
        bucket, then is still refused: it can never fit)."""
        missing = min(amount, self.capacity) - self.level
        return 0.0 if missing <= 0 else missing * 60.0 / self.capacity

    def until_full(self) -> float:
        return (self.capacity - self.level) * 60.0 / self.capacity


class RateLimiter:
    """The organisation's buckets. Not thread-safe by itself: the simulator calls it under its lock."""

    def __init__(self, limits: RateLimits | None, now: float) -> None:
        limits = limits or RateLimits()
        self.limits = limits
        self._buckets: dict[str, _Bucket | None] = {
            "requests": _bucket(limits.requests_per_minute, now),
            "input-tokens": _bucket(limits.input_tokens_per_minute, now),
            "output-tokens": _bucket(limits.output_tokens_per_minute, now),
        }

    def admit(self, now: float, input_tokens: int, max_tokens: int, model: str) -> None:
        """Take one request and its uncached input, or raise the API's 429 with ``retry-after``; the output
        bucket must hold ``max_tokens`` (charged by :meth:`charge_output` once the reply is written)."""
        wanted = {"requests": 1, "input-tokens": input_tokens, "output-tokens": max_tokens}
        for bucket in self._buckets.values():
            if bucket is not None:
                bucket.refill(now)
        for name, bucket in self._buckets.items():
            if bucket is None:
                continue
            wait = bucket.wait_for(wanted[name])
            if wait > 0 or wanted[name] > bucket.capacity:
                raise ApiError(
                    429,
                    f"This request would exceed your organization's rate limit of {bucket.capacity:,} "
                    f"{name.replace('-', ' ')} per minute (org: simulator, model: {model}). For details, refer to: "
                    "https://docs.claude.com/en/api/rate-limits. You can see the response headers for current "
                    "usage. Please reduce the prompt length or the maximum tokens requested, or try again later.",
                    "rate_limit_error",
                    headers={"retry-after": str(max(1, math.ceil(wait))), "x-should-retry": "true"},
                )
        for name in ("requests", "input-tokens"):
            bucket = self._buckets[name]
            if bucket is not None:
                bucket.level -= wanted[name]

    def charge_output(self, now: float, tokens: int) -> None:
        bucket = self._buckets["output-tokens"]
        if bucket is not None:
            bucket.refill(now)
            bucket.level -= tokens  # may go below zero: the estimate was max_tokens, the reply is what counts

    def headers(self, now: float) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers: each bucket's limit, what remains and when it is full again
        (wall-clock RFC 3339); ``tokens-*`` is the tighter of the two token buckets."""
        wall = datetime.now(timezone.utc)
        out: dict[str, str] = {}
        token_views: list[tuple[int, int, str]] = []
        for name, bucket in self._buckets.items():
            if bucket is None:
                limit, remaining, reset = UNLIMITED, UNLIMITED, _rfc3339(wall)
            else:
                bucket.refill(now)
                limit, remaining = bucket.capacity, max(0, math.floor(bucket.level))
                reset = _rfc3339(wall + timedelta(seconds=math.ceil(bucket.until_full())))
            out[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            out[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
            out[f"anthropic-ratelimit-{name}-reset"] = reset
            if name != "requests":
                token_views.append((remaining, limit, reset))
        remaining, limit, reset = min(token_views)
        out["anthropic-ratelimit-tokens-limit"] = str(limit)
        out["anthropic-ratelimit-tokens-remaining"] = str(remaining)
        out["anthropic-ratelimit-tokens-reset"] = reset
        return out


def _bucket(capacity: int | None, now: float) -> _Bucket | None:
    return None if capacity is None else _Bucket(capacity, now)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
