"""``anthropic-ratelimit-*`` headers on every reply, and ``Simulator(rate_limits=...)``: per-minute token buckets
on the simulator clock that answer 429 with ``retry-after``, which the SDK honours."""

from __future__ import annotations

from datetime import datetime, timezone

import anthropic
import pytest

from claude_history.testing import RateLimits, Simulator

from .helpers import HEADERS, body, error_of, http, post, user

MODEL = "claude-sonnet-4-6"
HELLO = [user("Hello")]
NAMES = [
    f"anthropic-ratelimit-{kind}-{field}"
    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
    for field in ("limit", "remaining", "reset")
]


def frozen() -> Simulator:
    """A simulator whose clock moves only with advance()."""
    return Simulator(clock=lambda: 0.0, rate_limits=RateLimits(requests_per_minute=2))


def test_every_reply_carries_the_rate_limit_headers(sim: Simulator) -> None:
    replies = [
        post(sim.base_url, body(*HELLO)),
        post(sim.base_url, body(*HELLO, stream=True)),
        post(sim.base_url, {"model": MODEL, "messages": HELLO}, path="/v1/messages/count_tokens"),
        post(sim.base_url, {"model": MODEL}),
        http().get(sim.base_url + "/v1/models", headers=HEADERS),
    ]
    for reply in replies:
        for name in NAMES:
            assert name in reply.headers, (reply.status_code, name)
        reset = datetime.strptime(reply.headers["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%SZ")
        assert reset.replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc)  # unlimited: full now


def test_requests_per_minute_answers_429_with_retry_after_and_refills_on_the_clock() -> None:
    with frozen() as sim:
        first = post(sim.base_url, body(*HELLO))
        assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
        assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
        assert post(sim.base_url, body(*HELLO)).status_code == 200
        refused = post(sim.base_url, body(*HELLO))
        status, kind, message = error_of(refused)
        assert (status, kind) == (429, "rate_limit_error")
        assert message.startswith("This request would exceed your organization's rate limit of 2 requests per minute")
        assert refused.headers["retry-after"] == "30"  # one request refills in 60 / 2 seconds
        assert refused.headers["x-should-retry"] == "true"
        assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"
        sim.advance(29)
        assert post(sim.base_url, body(*HELLO)).status_code == 429
        sim.advance(1)
        assert post(sim.base_url, body(*HELLO)).status_code == 200
        # count_tokens and other paths are not counted against the messages limits
        counted = post(sim.base_url, {"model": MODEL, "messages": HELLO}, path="/v1/messages/count_tokens")
        assert counted.status_code == 200


def test_input_tokens_count_uncached_input_only() -> None:
    system = [{"type": "text", "text": "rules " * 1200, "cache_control": {"type": "ephemeral"}}]
    with Simulator(clock=lambda: 0.0, rate_limits=RateLimits(input_tokens_per_minute=3000)) as sim:
        client = sim.client(max_retries=0)
        size = client.messages.count_tokens(model=MODEL, system=system, messages=HELLO).input_tokens
        assert 1024 < size < 3000
        first = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=HELLO)
        assert first.usage.cache_creation_input_tokens > 0  # written: counted
        # A second identical request reads the cache: only its few uncached tokens count, so it fits.
        second = client.messages.create(model=MODEL, max_tokens=10, system=system, messages=HELLO)
        assert second.usage.cache_read_input_tokens > 0
        # A request with different uncached input of the same size does not fit any more.
        other = [{"type": "text", "text": "other " * 1200}]
        with pytest.raises(anthropic.RateLimitError) as info:
            client.messages.create(model=MODEL, max_tokens=10, system=other, messages=HELLO)
        assert "3,000 input tokens per minute" in info.value.body["error"]["message"]  # type: ignore[index]
        assert int(info.value.response.headers["retry-after"]) > 0


def test_output_tokens_are_estimated_from_max_tokens_then_charged_as_written() -> None:
    with Simulator(clock=lambda: 0.0, rate_limits=RateLimits(output_tokens_per_minute=1000)) as sim:
        client = sim.client(max_retries=0)
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model=MODEL, max_tokens=1001, messages=HELLO)
        reply = client.messages.create(model=MODEL, max_tokens=1000, messages=HELLO)
        remaining = int(sim_headers(sim)["anthropic-ratelimit-output-tokens-remaining"])
        assert remaining == 1000 - reply.usage.output_tokens


def sim_headers(sim: Simulator) -> dict[str, str]:
    """The headers of a reply that consumes nothing (the models list)."""
    return dict(http().get(sim.base_url + "/v1/models", headers=HEADERS).headers)


def test_the_sdk_waits_retry_after_and_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    with frozen() as sim:
        slept: list[float] = []

        def sleep(seconds: float) -> None:  # the SDK's wait moves the simulator's clock instead of the test's
            slept.append(seconds)
            sim.advance(seconds)

        monkeypatch.setattr(anthropic._base_client.time, "sleep", sleep)
        client = sim.client(max_retries=2)
        for _ in range(3):
            assert client.messages.create(model=MODEL, max_tokens=10, messages=HELLO).type == "message"
        assert slept == [30.0]
        assert [r["path"] for r in sim.requests].count("/v1/messages") == 4


def test_rate_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimits(requests_per_minute=0)
    with pytest.raises(ValueError, match="output_tokens_per_minute"):
        RateLimits(output_tokens_per_minute=1.5)  # type: ignore[arg-type]


def test_reset_refills_the_buckets() -> None:
    with frozen() as sim:
        post(sim.base_url, body(*HELLO))
        post(sim.base_url, body(*HELLO))
        assert post(sim.base_url, body(*HELLO)).status_code == 429
        sim.reset()
        assert post(sim.base_url, body(*HELLO)).status_code == 200


async def test_the_async_sdk_waits_retry_after_too(monkeypatch: pytest.MonkeyPatch) -> None:
    with frozen() as sim:
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)
            sim.advance(seconds)

        monkeypatch.setattr(anthropic._base_client.anyio, "sleep", sleep)
        client = sim.async_client(max_retries=2)
        for _ in range(3):
            async with client.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
                assert (await stream.get_final_message()).type == "message"
        assert slept == [30.0]
