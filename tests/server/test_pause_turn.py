"""``pause_turn`` through the proxy: a turn whose server tools (here the simulator's web search, which pauses
after 10 calls in one reply, as the API's server-side loop does) make the API pause is continued by the
service, as the API asks, and reaches the client as one message, JSON or stream; it is stored as one turn."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from claude_history.stores import open_store
from claude_history.testing import Simulator

from .conftest import MODEL, Service

SEARCH_TOOL = {"type": "web_search_20250305", "name": "web_search"}
QUESTION = "What is the weather in Lisbon? search 13 times"  # 13 searches: a pause after 10, then 3 more


def _ask(service: Service, session: str, stream: bool, content: str = QUESTION) -> Any:
    client = service.client(session=session)
    arguments: dict[str, Any] = {"model": MODEL, "max_tokens": 4000, "tools": [SEARCH_TOOL],
                                 "messages": [{"role": "user", "content": content}]}  # fmt: skip
    if not stream:
        return client.messages.create(**arguments)
    with client.messages.stream(**arguments) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    assert events.count("message_start") == 1 and events.count("message_stop") == 1
    return final


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_paused_turn_is_continued_and_reaches_the_client_as_one_message(
    service: Service, sim: Simulator, stream: bool
) -> None:
    reply = _ask(service, "search", stream)
    assert reply.stop_reason == "end_turn"
    uses = [b for b in reply.content if b.type == "server_tool_use"]
    assert len(uses) == 13 and reply.content[-1].type == "text"
    # The service made two calls: the second sent the paused reply back as it was, as the last message.
    first, second = sim.requests[-2]["body"], sim.requests[-1]["body"]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant"]
    paused = second["messages"][-1]["content"]
    assert sum(1 for b in paused if b["type"] == "server_tool_use") == 10
    assert first["messages"] == second["messages"][:1]
    # The client's usage is both calls' together; the store keeps one turn with each call's figures.
    stored = open_store(service.store_url).load("acme/search")
    assert stored.version == 1 and [m.role for m in stored.messages] == ["user", "assistant"]
    usage = stored.messages[1].usage
    assert usage is not None and len(usage["requests"]) == 2
    assert reply.usage.output_tokens == usage["output_tokens"] == sum(r["output_tokens"] for r in usage["requests"])
    assert reply.usage.input_tokens == usage["input_tokens"]
    assert stored.messages[1].message["content"] == [b.model_dump(mode="json", exclude_unset=True)
                                                     for b in reply.content]  # fmt: skip


def test_the_conversation_goes_on_after_a_continued_turn(service: Service, sim: Simulator) -> None:
    reply = _ask(service, "on", stream=False)
    # A client that sends only its new message, and one that resends everything (with the reply it got).
    _ask(service, "on", stream=True, content="Thanks!")
    stored = open_store(service.store_url).load("acme/on")
    history = [*stored.message_params(), {"role": "user", "content": "And tomorrow?"}]
    again = service.client(session="on").messages.create(model=MODEL, max_tokens=4000, tools=[SEARCH_TOOL],  # type: ignore[list-item]
                                                         messages=history)  # type: ignore[arg-type]  # fmt: skip
    assert again.stop_reason == "end_turn"
    assert stored.messages[1].message["content"][-1]["text"] == reply.content[-1].text
    assert [m.role for m in open_store(service.store_url).load("acme/on").messages] == ["user", "assistant"] * 3


def test_a_turn_still_paused_past_max_continuations_is_stored_and_the_conversation_goes_on(
    start_service: Any, sim: Simulator
) -> None:
    service = start_service(max_continuations=0)
    reply = _ask(service, "limit", stream=False)
    assert reply.stop_reason == "pause_turn" and len(sim.requests) == 1
    assert sum(1 for b in reply.content if b.type == "server_tool_use") == 10
    # Nothing is lost: the user's message and the paused reply are one stored turn of the tenant's session.
    store = open_store(service.store_url)
    stored = store.load("acme/limit")
    assert stored.version == 1 and stored.info.owner == "acme"
    assert [m.role for m in stored.messages] == ["user", "assistant"]
    assert stored.messages[0].message["content"] == QUESTION
    assert stored.messages[1].message["content"] == [b.model_dump(mode="json", exclude_unset=True)
                                                     for b in reply.content]  # fmt: skip
    # Sending the paused reply back (the API's way to continue) cannot continue a stored turn: a clear 400,
    # and the session is as it was.
    client = service.client(session="limit")
    paused = {"role": "assistant", "content": [b.model_dump(mode="json", exclude_unset=True) for b in reply.content]}
    for messages in ([paused], [{"role": "user", "content": QUESTION}, paused]):
        with pytest.raises(anthropic.BadRequestError, match="still paused"):
            client.messages.create(model=MODEL, max_tokens=4000, tools=[SEARCH_TOOL],  # type: ignore[list-item]
                                   messages=messages)  # type: ignore[arg-type]  # fmt: skip
    assert store.load("acme/limit").version == 1
    # The next user message goes on after the stored turn.
    again = _ask(service, "limit", stream=True, content="Go on, please.")
    assert again.stop_reason == "end_turn"
    assert [m.role for m in store.load("acme/limit").messages] == ["user", "assistant"] * 2


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_metrics_count_every_call_of_a_continued_turn(service: Service, sim: Simulator, stream: bool) -> None:
    _ask(service, "metered", stream)
    usage = open_store(service.store_url).load("acme/metered").messages[1].usage
    assert usage is not None and len(usage["requests"]) == 2
    text = httpx2.get(service.base_url + "/metrics").text
    for kind in ("input_tokens", "output_tokens"):
        total = sum(r[kind] for r in usage["requests"])
        assert total > usage["requests"][-1][kind]  # the last call alone is not the turn
        line = f'claude_history_tokens_total{{kind="{kind}",model="{MODEL}",tenant="acme"}} {float(total)}'
        assert line in text
