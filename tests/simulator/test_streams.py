"""Streams that break after their 200, and the stop reasons a reply can end with: ``event: error`` mid-stream,
``model_context_window_exceeded`` and ``refusal`` with its ``stop_details``."""

from __future__ import annotations

import itertools
import json

import anthropic
import pytest

from claude_history.connection import TRANSPORT_ERRORS
from claude_history.testing import Simulator

from .helpers import body, post, user

MODEL = "claude-sonnet-4-6"
HELLO = [user("Hello there, tell me 40 words please")]


def sse_events(text: str) -> list[tuple[str, dict[str, object]]]:
    """(event name, data) of each event of a raw SSE body."""
    out = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_fail_mid_stream_sends_the_documented_error_event_after_a_200(sim: Simulator) -> None:
    sim.fail_mid_stream("overloaded_error", after_events=4)
    response = post(sim.base_url, body(*HELLO, stream=True))
    assert response.status_code == 200
    events = sse_events(response.text)
    assert [name for name, _ in events[:4]] == ["message_start", "content_block_start", "ping", "content_block_delta"]
    assert events[4] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert len(events) == 5  # the stream ends after the error: no message_stop


def test_the_sdk_raises_the_error_event_with_its_type_and_the_partial_text_is_seen(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.fail_mid_stream(after_events=5)
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream,
    ):
        seen.extend(stream.text_stream)
    assert info.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert seen  # the text before the error reached the application
    # One fault only: the next stream completes.
    with client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream:
        assert stream.get_final_message().stop_reason == "end_turn"


async def test_the_async_sdk_raises_the_error_event(sim: Simulator) -> None:
    client = sim.async_client(max_retries=0)
    sim.fail_mid_stream("api_error", after_events=0)
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream:
            await stream.get_final_message()
    assert info.value.body["error"]["type"] == "api_error"


def test_fail_mid_stream_waits_for_a_streamed_request(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.fail_mid_stream("overloaded_error", after_events=2)
    assert client.messages.create(model=MODEL, max_tokens=200, messages=HELLO).stop_reason == "end_turn"
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream,
    ):
        stream.get_final_message()


def test_fail_mid_stream_rejects_nonsense(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="after_events"):
        sim.fail_mid_stream(after_events=-1)
    with pytest.raises(ValueError, match="error_type"):
        sim.fail_mid_stream(error_type="")


def test_a_reply_that_would_run_past_the_window_stops_with_model_context_window_exceeded(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    model = "claude-haiku-4-5"  # a 200,000-token window
    ask = "Please write 400 words. "
    probe = client.messages.count_tokens(model=model, messages=[user(ask)]).input_tokens
    filler = "x" * ((200_000 - probe - 60) * 4)  # the text rule: 4 bytes a token
    messages = [user(ask + filler)]
    size = client.messages.count_tokens(model=model, messages=messages).input_tokens
    room = 200_000 - size
    assert 0 < room < 100
    reply = client.messages.create(model=model, max_tokens=2000, messages=messages)
    assert reply.stop_reason == "model_context_window_exceeded"
    assert 1 <= reply.usage.output_tokens <= room
    assert reply.content[0].type == "text" and reply.content[0].text.startswith("word1 word2")
    # The same request with max_tokens inside the room ends on max_tokens, as before.
    short = client.messages.create(model=model, max_tokens=10, messages=messages)
    assert short.stop_reason == "max_tokens"
    # And streamed, the SDK's final message says the same.
    with client.messages.stream(model=model, max_tokens=2000, messages=messages) as stream:
        assert stream.get_final_message().stop_reason == "model_context_window_exceeded"


def test_refusal_carries_its_documented_stop_details(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.refuse_next(category="cyber", explanation="This looks like malware development.")
    reply = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)
    assert reply.stop_reason == "refusal"
    assert reply.content == []
    assert reply.stop_details is not None
    assert reply.stop_details.to_dict() == {
        "type": "refusal",
        "category": "cyber",
        "explanation": "This looks like malware development.",
    }
    assert reply.usage.output_tokens >= 1


def test_a_streamed_refusal_stops_mid_reply_and_the_sdk_keeps_its_details(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.refuse_next(category=None, text="Here is how to")
    with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Here is how to"
    assert final.stop_reason == "refusal"
    assert final.stop_details is not None
    assert (final.stop_details.type, final.stop_details.category) == ("refusal", None)


def test_an_ordinary_reply_has_null_stop_details(sim: Simulator) -> None:
    raw = post(sim.base_url, body(*HELLO)).json()
    assert raw["stop_details"] is None
    delta = [data for name, data in sse_events(post(sim.base_url, body(*HELLO, stream=True)).text)]
    assert delta[-2]["delta"]["stop_details"] is None  # type: ignore[index]


def test_the_beta_stream_raises_the_error_event_and_keeps_a_refusal(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.fail_mid_stream("overloaded_error", after_events=3)
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.beta.messages.stream(
            model=MODEL, max_tokens=200, messages=HELLO, betas=["context-management-2025-06-27"]
        ) as stream,
    ):
        stream.get_final_message()
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    sim.refuse_next(category="bio", explanation="Not this one.")
    with client.beta.messages.stream(
        model=MODEL, max_tokens=200, messages=HELLO, betas=["context-management-2025-06-27"]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "refusal"
    assert final.stop_details is not None
    assert (final.stop_details.category, final.stop_details.explanation) == ("bio", "Not this one.")


def test_refuse_next_takes_only_the_documented_categories(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="category must be one of"):
        sim.refuse_next(category="spicy")


def _event_times(client: anthropic.Anthropic) -> list[float]:
    """When each text delta of one streamed reply reached the SDK (monotonic seconds)."""
    import time

    times = []
    with client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream:
        for _ in stream.text_stream:
            times.append(time.monotonic())
    return times


def test_slow_next_stream_paces_the_events_of_the_next_streamed_reply_only(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.slow_next_stream(0.05, times=2)
    # A request that does not stream neither waits nor uses it up.
    assert client.messages.create(model=MODEL, max_tokens=200, messages=HELLO).stop_reason == "end_turn"
    for _ in range(2):
        times = _event_times(client)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) >= 5 and min(gaps) >= 0.04, gaps
    times = _event_times(client)  # the third stream is not paced: it arrives in one piece
    assert times[-1] - times[0] < 0.05 * (len(times) - 1)


def test_a_slow_stream_abandoned_mid_reply_leaves_the_simulator_serving(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    sim.slow_next_stream(0.05)
    sim.cut_next_stream(after_events=4)  # combines with a cut: the paced stream then drops
    # anthropic 2.17+ wraps the cut in APIConnectionError; older releases let the HTTP library's error through.
    with pytest.raises((anthropic.APIConnectionError, *TRANSPORT_ERRORS)), client.messages.stream(
        model=MODEL, max_tokens=200, messages=HELLO
    ) as stream:
        stream.get_final_message()
    sim.slow_next_stream(0.2)
    with client.messages.stream(model=MODEL, max_tokens=200, messages=HELLO) as stream:
        next(iter(stream.text_stream))  # the client leaves after the first words, as Ctrl-C does
    assert client.messages.create(model=MODEL, max_tokens=200, messages=HELLO).stop_reason == "end_turn"


def test_slow_next_stream_rejects_nonsense_and_reset_forgets_it(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="seconds_between_events"):
        sim.slow_next_stream(-1)
    with pytest.raises(ValueError, match="seconds_between_events"):
        sim.slow_next_stream(float("nan"))
    with pytest.raises(ValueError, match="times"):
        sim.slow_next_stream(0.1, times=0)
    sim.slow_next_stream(5)
    sim.reset()
    times = _event_times(sim.client(max_retries=0))
    assert times[-1] - times[0] < 5
