"""The official Node SDK (``@anthropic-ai/sdk``) against the simulator: create, stream, a tool round trip, errors
with their types, retries honouring ``retry-after``, count_tokens, the beta namespace.

The SDK is installed with npm into tests/node/node_modules (pinned in package.json / package-lock.json) the
first time these tests run. Without node or npm, or when the install fails (no network), the tests skip, unless
``CLAUDE_HISTORY_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from claude_history.testing import RateLimits, Simulator

HERE = Path(__file__).resolve().parent
SDK = HERE / "node_modules" / "@anthropic-ai" / "sdk" / "package.json"
# Written once `npm ci` has finished (npm writes package.json long before the last module file).
INSTALLED = HERE / "node_modules" / ".claude-history-installed"
LOCK = HERE / ".npm-install.lock"
REQUIRE = os.environ.get("CLAUDE_HISTORY_REQUIRE_SERVICES") == "1"
MODEL = "claude-sonnet-4-6"
# The Node tests are meant for one pytest-xdist worker (--dist loadgroup), but pytest-xdist 3.8 under pytest 9
# does not group them (seen: the modules ran on both workers, and one worker's `npm ci` removed files a test of
# the other was loading). The install below is therefore under a file lock and complete before any test runs.
pytestmark = pytest.mark.xdist_group("node")


def _unavailable(message: str) -> None:
    if REQUIRE:
        pytest.fail(message + " and CLAUDE_HISTORY_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with the SDK installed next to this file (``npm ci`` once if it is missing)."""
    executable, npm = shutil.which("node"), shutil.which("npm")
    if executable is None or npm is None:
        _unavailable("node and npm are needed for the Node SDK tests")
    assert executable is not None and npm is not None
    with LOCK.open("a") as lock:  # one install at a time, across pytest-xdist workers
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (SDK.exists() and INSTALLED.exists()):
            command = [npm, "ci" if (HERE / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
            try:
                result = subprocess.run(command, cwd=HERE, capture_output=True, text=True, timeout=300)
            except subprocess.TimeoutExpired:
                _unavailable("npm install of @anthropic-ai/sdk timed out")
            if result.returncode != 0 or not SDK.exists():
                _unavailable(f"npm could not install @anthropic-ai/sdk: {result.stderr.strip()[-500:]}")
            INSTALLED.touch()
    return executable


def run(node: str, scenario: str, sim: Simulator, retries: int = 0) -> dict[str, Any]:
    result = subprocess.run(
        [node, str(HERE / "scenarios.mjs"), scenario, sim.base_url, str(retries)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_create(node: str, sim: Simulator) -> None:
    out = run(node, "create", sim)
    message = out["message"]
    assert (message["type"], message["role"], message["stop_reason"]) == ("message", "assistant", "end_turn")
    assert "Hello from Node" in message["content"][0]["text"]
    assert out["requestId"] == sim.billing().request_id  # type: ignore[union-attr]
    assert sim.requests[-1]["headers"]["user-agent"].startswith("Anthropic/JS")


def test_stream_gives_the_same_message_as_create(node: str, sim: Simulator) -> None:
    streamed = run(node, "stream", sim)
    created = run(node, "create", sim)["message"]
    assert streamed["text"] == streamed["message"]["content"][0]["text"]
    assert streamed["message"]["content"] == created["content"]
    assert streamed["message"]["usage"]["output_tokens"] == created["usage"]["output_tokens"]
    assert sim.requests[0]["body"]["stream"] is True


def test_a_tool_round_trip(node: str, sim: Simulator) -> None:
    out = run(node, "tools", sim)
    first, second = out["first"], out["second"]
    assert first["stop_reason"] == "tool_use"
    use = first["content"][-1]
    assert use["type"] == "tool_use" and use["name"] == "get_weather"
    assert isinstance(use["input"]["location"], str)
    assert second["stop_reason"] == "end_turn"
    assert use["id"] in second["content"][0]["text"] and "Sunny, 21 C" in second["content"][0]["text"]


@pytest.mark.parametrize(
    ("status", "error_type", "name"),
    [
        (400, "invalid_request_error", "BadRequestError"),
        (401, "authentication_error", "AuthenticationError"),
        (403, "permission_error", "PermissionDeniedError"),
        (404, "not_found_error", "NotFoundError"),
        (429, "rate_limit_error", "RateLimitError"),
        (500, "api_error", "InternalServerError"),
        (529, "overloaded_error", "OverloadedError"),
    ],
)
def test_errors_arrive_with_their_types(node: str, sim: Simulator, status: int, error_type: str, name: str) -> None:
    sim.fail_next(status)
    error = run(node, "error", sim)["error"]
    assert (error["name"], error["status"]) == (name, status)
    assert error["body"]["error"]["type"] == error_type
    assert error["body"]["request_id"] == error["requestId"]


def test_a_validation_error_keeps_the_api_text(node: str, sim: Simulator) -> None:
    error = run(node, "invalid", sim)["error"]
    assert (error["name"], error["status"]) == ("BadRequestError", 400)
    assert error["body"]["error"]["type"] == "invalid_request_error"
    assert error["body"]["error"]["message"].startswith("messages")


def test_an_error_event_mid_stream_is_raised(node: str, sim: Simulator) -> None:
    sim.fail_mid_stream("overloaded_error", after_events=5)
    out = run(node, "streamError", sim)
    assert out["error"] is not None
    assert out["error"]["body"]["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert out["text"]  # the text before the error was delivered


def test_retries_honour_retry_after_from_the_rate_limits(node: str) -> None:
    """60 requests a minute, all used up first: each Node call gets 429 with ``retry-after: 1``, waits that long,
    retries and succeeds (the limit is on the real clock here, as the SDK really sleeps)."""
    with Simulator(rate_limits=RateLimits(requests_per_minute=60)) as sim:
        python = sim.client(max_retries=0)
        for _ in range(60):
            python.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
        out = run(node, "retries", sim, retries=3)
        assert out["replies"] == ["end_turn"] * 3
        statuses = [r for r in sim.requests[60:] if r["path"] == "/v1/messages"]
        assert len(statuses) > 3  # some were answered 429 and retried
        retry_counts = {r["headers"].get("x-stainless-retry-count") for r in statuses}
        assert retry_counts >= {"0", "1"}


def test_retries_through_faults_and_x_should_retry(node: str, sim: Simulator) -> None:
    sim.fail_next(529, times=2, retry_after=0.01)
    assert run(node, "create", sim, retries=2)["message"]["type"] == "message"
    assert len(sim.requests) == 3
    sim.fail_next(529, should_retry=False)
    error = run(node, "error", sim, retries=2)["error"]
    assert error["name"] == "OverloadedError"
    assert len(sim.requests) == 4  # not retried


def test_count_tokens_matches_the_python_sdk(node: str, sim: Simulator) -> None:
    count = run(node, "countTokens", sim)["count"]["input_tokens"]
    python = sim.client(max_retries=0).messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "Hello from Node"}]
    )
    assert count == python.input_tokens


def test_the_beta_namespace(node: str, sim: Simulator) -> None:
    message = run(node, "beta", sim)["message"]
    assert message["type"] == "message"
    request = sim.requests[-1]
    assert request["headers"]["anthropic-beta"] == "context-management-2025-06-27"
