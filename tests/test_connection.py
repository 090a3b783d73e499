"""Connection failures are told apart by exception type and cause, whatever the SDK release's wording."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import anthropic
import httpx2
import pytest

from claude_history.connection import IncompleteStream, connection_failure
from claude_history.testing import Simulator

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "Hello there"}]
REQUEST = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_nothing_listening_is_unreachable() -> None:
    client = anthropic.Anthropic(api_key="test", base_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(anthropic.APIConnectionError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    assert connection_failure(info.value) == "unreachable"


def test_a_silent_server_is_a_timeout(silent_port: int) -> None:
    client = anthropic.Anthropic(
        api_key="test", base_url=f"http://127.0.0.1:{silent_port}", max_retries=0, timeout=0.3
    )
    with pytest.raises(anthropic.APIConnectionError) as info:
        client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)  # type: ignore[arg-type]
    assert connection_failure(info.value) == "timeout"


def test_a_cut_stream_is_cut(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.cut_next_stream(after_events=2)
    with pytest.raises(Exception) as info, client.messages.stream(
        model=MODEL, max_tokens=100, messages=HELLO  # type: ignore[arg-type]
    ) as stream:
        stream.get_final_message()
    assert connection_failure(info.value) == "cut"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        # anthropic <= 2.16: the HTTP library's own error escapes the stream.
        (httpx2.RemoteProtocolError("peer closed connection without sending complete message body"), "cut"),
        (httpx2.ReadError("connection reset"), "cut"),
        (httpx2.ConnectError("[Errno 111] Connection refused"), "unreachable"),
        (httpx2.ReadTimeout("timed out"), "timeout"),
        # The SDK's bare "Connection error." carries no cause: no response was ever read.
        (anthropic.APIConnectionError(request=REQUEST), "unreachable"),
        (anthropic.APITimeoutError(REQUEST), "timeout"),
        # Our own: the stream ended cleanly before message_stop.
        (IncompleteStream(message="ended early", request=REQUEST), "cut"),
    ],
)
def test_classification_by_type(exc: BaseException, expected: str) -> None:
    assert connection_failure(exc) == expected


def _wrapped(cause: BaseException, message: str) -> anthropic.APIConnectionError:
    try:
        try:
            raise cause
        except BaseException as err:
            raise anthropic.APIConnectionError(message=message, request=REQUEST) from err
    except anthropic.APIConnectionError as wrapped:
        return wrapped


@pytest.mark.parametrize("message", ["Connection error.", "Connection to 127.0.0.1:9 failed: whatever (url)", ""])
def test_classification_ignores_the_wording(message: str) -> None:
    """2.17 rewords the error as ``Connection to HOST failed: REASON (URL)``: the cause decides, not the text."""
    assert connection_failure(_wrapped(httpx2.RemoteProtocolError("x"), message)) == "cut"
    assert connection_failure(_wrapped(httpx2.ConnectError("x"), message)) == "unreachable"
    assert connection_failure(_wrapped(ConnectionRefusedError(111, "refused"), message)) == "unreachable"
    assert connection_failure(_wrapped(httpx2.ConnectTimeout("x"), message)) == "timeout"


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("not a connection problem"),
        FileNotFoundError("missing.db"),
        anthropic.BadRequestError(
            "bad", response=httpx2.Response(400, request=REQUEST), body={"type": "error"}
        ),
    ],
)
def test_other_errors_are_not_connection_failures(exc: BaseException) -> None:
    assert connection_failure(exc) is None
