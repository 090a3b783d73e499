"""Message threads (beta): the server holds the conversation under each response id; a continuation sends
only the new messages; the thread expires on the simulator clock and is then a 404 the SDK recovers from."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from claude_history.testing import Simulator

from .helpers import MODEL, error_of, post, user

BETA = {"anthropic-beta": "message-threads-2026-08-12"}
SYSTEM = "You are terse."


def send(sim: Simulator, thread: dict[str, Any], *messages: dict[str, Any], **fields: Any) -> Any:
    payload = {"model": MODEL, "max_tokens": 300, "messages": list(messages), "thread": thread, **fields}
    return post(sim.base_url, payload, headers=BETA)


def test_a_continuation_sees_the_whole_conversation(sim: Simulator) -> None:
    first = send(sim, {"type": "create"}, user("My name is Ada."), system=SYSTEM)
    assert first.status_code == 200, first.text
    held = first.json()["id"]
    second = send(sim, {"type": "continue", "previous_message_id": held}, user("What was my first message?"))
    assert second.status_code == 200, second.text
    assert second.json()["content"][0]["text"] == 'Your first message was: "My name is Ada."'
    # The system prompt is the one the thread was created with; the input counts the held history.
    third = send(
        sim, {"type": "continue", "previous_message_id": second.json()["id"]}, user("What is the system prompt?")
    )
    assert third.json()["content"][0]["text"] == f'The system prompt is: "{SYSTEM}"'
    assert third.json()["usage"]["input_tokens"] > second.json()["usage"]["input_tokens"]


def test_a_response_can_be_continued_once_and_create_only_fields_are_refused(sim: Simulator) -> None:
    held = send(sim, {"type": "create"}, user("hi"), system=SYSTEM).json()["id"]
    assert send(sim, {"type": "continue", "previous_message_id": held}, user("again")).status_code == 200
    again = send(sim, {"type": "continue", "previous_message_id": held}, user("once more"))
    assert error_of(again)[:2] == (400, "invalid_request_error")
    assert again.json()["error"]["details"] == {"error_code": "thread_already_continued"}
    fresh = send(sim, {"type": "create"}, user("hi")).json()["id"]
    repeated = send(sim, {"type": "continue", "previous_message_id": fresh}, user("x"), system=SYSTEM)
    assert error_of(repeated)[0] == 400 and "system" in error_of(repeated)[2]
    other_model = send(sim, {"type": "continue", "previous_message_id": fresh}, user("x"), model="claude-opus-4-6")
    assert other_model.json()["error"]["details"] == {"error_code": "thread_fingerprint_mismatch"}


def test_unsupported_fields_name_themselves(sim: Simulator) -> None:
    response = send(sim, {"type": "create"}, user("hi"), cache_control={"type": "ephemeral"})
    assert error_of(response)[0] == 400
    assert response.json()["error"]["details"] == {
        "error_code": "thread_unsupported_request",
        "unsupported": ["cache_control"],
    }


def test_an_expired_or_unknown_thread_is_a_404_thread_not_found(sim: Simulator) -> None:
    held = send(sim, {"type": "create"}, user("hi")).json()["id"]
    sim.advance(sim.thread_ttl - 1)
    alive = send(sim, {"type": "continue", "previous_message_id": held}, user("still there?"))
    assert alive.status_code == 200
    sim.advance(sim.thread_ttl)
    gone = send(sim, {"type": "continue", "previous_message_id": alive.json()["id"]}, user("and now?"))
    assert error_of(gone)[:2] == (404, "not_found_error")
    assert gone.json()["error"]["details"] == {"error_code": "thread_not_found"}
    client = sim.client(max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.beta.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[user("x")],
            extra_body={"thread": {"type": "continue", "previous_message_id": "msg_unknown"}},
            betas=["message-threads-2026-08-12"],
        )
    assert caught.value.body["error"]["details"]["error_code"] == "thread_not_found"


def test_without_the_beta_header_the_thread_field_is_not_acted_on(sim: Simulator) -> None:
    payload = {"model": MODEL, "max_tokens": 100, "messages": [user("hi")], "thread": {"type": "create"}}
    first = post(sim.base_url, payload)
    if first.status_code == 200:  # the strict schema may refuse the field outright; it must never hold state
        cont = {**payload, "thread": {"type": "continue", "previous_message_id": first.json()["id"]}}
        assert send(sim, cont["thread"], user("x")).status_code == 404


def test_the_sdk_thread_helper_sends_only_new_messages_and_replays_after_expiry(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    if not hasattr(client.beta.messages, "thread"):
        pytest.skip(f"anthropic {anthropic.__version__} has no thread helper (a later release added it)")
    thread = client.beta.messages.thread(model=MODEL, max_tokens=300, system=SYSTEM)
    thread.send(user("My name is Ada."))
    reply = thread.send(user("What was my first message?"))
    assert reply.content[0].text == 'Your first message was: "My name is Ada."'
    last = sim.requests[-1]["body"]
    assert last["thread"]["type"] == "continue" and len(last["messages"]) == 1 and "system" not in last
    sim.advance(sim.thread_ttl + 1)
    # The server lost the thread: the SDK replays the whole conversation under a new one, and it still works.
    reply = thread.send(user("How many messages?"))
    assert reply.content[0].text.startswith("This conversation has 5 messages")
    assert sim.requests[-1]["body"]["thread"] == {"type": "create"}


def total(usage: dict[str, int]) -> int:
    return usage["input_tokens"] + usage["cache_creation_input_tokens"] + usage["cache_read_input_tokens"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
            str.strip
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_threaded_turn_sees_and_bills_exactly_the_full_conversation(sim: Simulator, turns: list[str]) -> None:
    history: list[dict[str, Any]] = []
    previous = None
    for text in turns:
        history.append(user(text))
        thread = {"type": "create"} if previous is None else {"type": "continue", "previous_message_id": previous}
        fields = {"system": SYSTEM} if previous is None else {}
        threaded = send(sim, thread, *(history if previous is None else history[-1:]), **fields)
        assert threaded.status_code == 200, threaded.text
        full = post(sim.base_url, {"model": MODEL, "max_tokens": 300, "messages": history, "system": SYSTEM})
        got, want = threaded.json(), full.json()
        assert got["content"] == want["content"]
        assert total(got["usage"]) == total(want["usage"])
        history.append({"role": "assistant", "content": got["content"]})
        previous = got["id"]
