"""Faults on demand and cut streams surface as the SDK's own exceptions; the server survives them."""

from __future__ import annotations

import threading

import anthropic
import pytest

from claude_history.testing import Simulator

from .helpers import MODEL, raises_cut_connection, user

HELLO = [user("Hello there, how are you today?")]


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (403, "permission_error", anthropic.PermissionDeniedError),
        (404, "not_found_error", anthropic.NotFoundError),
        # anthropic 2.0 has no class of its own for 413 yet: its generic status error
        (413, "request_too_large", getattr(anthropic, "ContentTooLargeError", anthropic.APIStatusError)),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (529, "overloaded_error", anthropic.OverloadedError),
    ],
)
def test_fail_next_gives_the_api_error_body(
    sim: Simulator, status: int, error_type: str, exception: type[Exception]
) -> None:
    client = sim.client(max_retries=0)
    sim.fail_next(status)
    with pytest.raises(exception) as info:
        client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    error = info.value
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == status
    assert error.body == {
        "type": "error",
        "error": {"type": error_type, "message": error.body["error"]["message"]},
        "request_id": error.response.headers["request-id"],
    }
    # One failure only: the next request succeeds.
    assert client.messages.create(model=MODEL, max_tokens=50, messages=HELLO).type == "message"


def test_retry_after_header_and_custom_error_type(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.fail_next(429, error_type="rate_limit_error", retry_after=7)
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    assert info.value.response.headers["retry-after"] == "7"
    sim.fail_next(503, error_type="overloaded_error")
    with pytest.raises(anthropic.InternalServerError) as other:
        client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert other.value.body["error"]["type"] == "overloaded_error"


def test_the_sdk_retries_through_faults(sim: Simulator) -> None:
    client = sim.client(max_retries=2)
    sim.fail_next(529, times=2, retry_after=0.01)
    reply = client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    assert reply.type == "message"
    assert len(sim.requests) == 3
    sim.fail_next(500, times=3, retry_after=0.01)
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)


def test_fail_next_rejects_nonsense(sim: Simulator) -> None:
    with pytest.raises(ValueError):
        sim.fail_next(200)
    with pytest.raises(ValueError):
        sim.fail_next(500, times=0)
    with pytest.raises(ValueError):
        sim.cut_next_stream(-1)
    with pytest.raises(ValueError):
        sim.advance(-1)


@pytest.mark.parametrize("after_events", [0, 1, 3, 6])
def test_a_cut_stream_raises_and_the_next_one_works(sim: Simulator, after_events: int) -> None:
    client = sim.client(max_retries=0)
    sim.cut_next_stream(after_events=after_events)
    sim.reply_with("one two three four five six seven eight nine ten eleven twelve")
    received: list[str] = []
    with (
        raises_cut_connection(),
        client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream,
    ):
        for text in stream.text_stream:
            received.append(text)
        stream.get_final_message()
    assert "".join(received) != "one two three four five six seven eight nine ten eleven twelve"
    with client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream:
        assert stream.get_final_message().content[0].type == "text"


async def test_a_cut_stream_raises_in_the_async_client(sim: Simulator) -> None:
    client = sim.async_client(max_retries=0)
    sim.cut_next_stream(after_events=2)
    with raises_cut_connection():
        async with client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream:
            await stream.get_final_message()
    await client.close()


def test_a_cut_waits_for_a_streamed_request(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.cut_next_stream(after_events=1)
    assert client.messages.create(model=MODEL, max_tokens=50, messages=HELLO).type == "message"
    with (
        raises_cut_connection(),
        client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream,
    ):
        stream.get_final_message()


def test_an_abandoned_stream_does_not_disturb_the_server(
    sim: Simulator, capfd: pytest.CaptureFixture[str]
) -> None:
    client = sim.client(max_retries=0)
    with client.messages.stream(
        model=MODEL, max_tokens=60_000, messages=[user("Write 20000 words")]
    ) as stream:
        for _text in stream.text_stream:
            break  # leave early: the SDK closes the response
    reply = client.messages.create(model=MODEL, max_tokens=50, messages=HELLO)
    assert reply.type == "message"
    assert "Traceback" not in capfd.readouterr().err


def test_concurrent_clients(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    errors: list[BaseException] = []
    texts: dict[int, str] = {}

    def worker(n: int) -> None:
        try:
            for k in range(5):
                reply = client.messages.create(
                    model=MODEL, max_tokens=100, messages=[user(f"Repeat after me: {n}-{k}")]
                )
                block = reply.content[0]
                assert block.type == "text"
                texts[n * 10 + k] = block.text
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert texts == {n * 10 + k: f"{n}-{k}" for n in range(8) for k in range(5)}
    assert len(sim.requests) == 40
