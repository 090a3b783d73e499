"""Chat basics against the simulator: what is sent, what is kept, what the properties say."""

from __future__ import annotations

import base64
import io
import re

import anthropic
import pytest
from PIL import Image

from claude_history import Chat
from claude_history.errors import ConfigurationError, InvalidHistory
from claude_history.history import validate
from claude_history.stores.base import Store
from claude_history.testing import Simulator

from .conftest import MODEL, bodies


def test_send_returns_the_sdk_message_and_commits_the_turn(client: anthropic.Anthropic, store: Store) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="s1", system="Be brief.")
    reply = chat.send("What is the capital of France?")
    assert isinstance(reply, anthropic.types.Message)
    assert reply.stop_reason == "end_turn"
    assert chat.messages == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": [{"type": "text", "text": reply.content[0].text}]},  # type: ignore[union-attr]
    ]
    assert chat.version == 1
    stored = store.load("s1")
    assert stored.version == 1
    assert stored.message_params() == chat.messages
    assert stored.info.system == "Be brief."
    assert stored.info.model == MODEL


def test_every_request_carries_the_whole_history_and_the_system(
    sim: Simulator, client: anthropic.Anthropic
) -> None:
    chat = Chat(client, model=MODEL, system="You are concise.")
    chat.send("first")
    chat.send("second")
    chat.send("what was my first message?")
    sent = bodies(sim)
    assert [len(b["messages"]) for b in sent] == [1, 3, 5]
    assert sent[-1]["messages"] == chat.messages[:-1]
    assert all(b["system"] == "You are concise." for b in sent)
    assert "first" in chat.messages[-1]["content"][0]["text"]
    validate(chat.messages, for_sending=False)


def test_new_session_id_is_a_uuid4_hex(client: anthropic.Anthropic) -> None:
    a, b = Chat(client, model=MODEL), Chat(client, model=MODEL)
    assert re.fullmatch(r"[0-9a-f]{32}", a.session_id)
    assert a.session_id != b.session_id
    assert a.messages == [] and a.version == 0


def test_system_is_kept_with_the_session(sim: Simulator, client: anthropic.Anthropic, store: Store) -> None:
    Chat(client, model=MODEL, store=store, session_id="s", system="Answer in French.").send("hello")
    again = Chat(client, model=MODEL, store=store, session_id="s")
    assert again.system == "Answer in French."
    again.send("and again")
    assert bodies(sim)[-1]["system"] == "Answer in French."
    # An explicit system replaces the stored one, for this chat and the session.
    changed = Chat(client, model=MODEL, store=store, session_id="s", system="Answer in German.")
    changed.send("once more")
    assert bodies(sim)[-1]["system"] == "Answer in German."
    assert store.get_session("s").system == "Answer in German."


def test_create_arguments_pass_through_per_chat_and_per_call(
    sim: Simulator, client: anthropic.Anthropic
) -> None:
    chat = Chat(
        client,
        model=MODEL,
        max_tokens=300,
        metadata={"user_id": "u-1"},
        stop_sequences=["STOP"],
        tool_choice={"type": "none"},
    )
    chat.send("hi")
    body = bodies(sim)[-1]
    assert body["max_tokens"] == 300
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["stop_sequences"] == ["STOP"]
    assert body["tool_choice"] == {"type": "none"}
    chat.send("again", max_tokens=50, metadata={"user_id": "u-2"}, system="Per call.")
    body = bodies(sim)[-1]
    assert body["max_tokens"] == 50
    assert body["metadata"] == {"user_id": "u-2"}
    assert body["system"] == "Per call."
    assert body["stop_sequences"] == ["STOP"]
    # A per-call system prompt is not stored with the session.
    assert chat.system is None


def test_messages_are_copies(client: anthropic.Anthropic) -> None:
    chat = Chat(client, model=MODEL)
    chat.send("hi")
    view = chat.messages
    view.append({"role": "user", "content": "injected"})
    view[0]["content"] = "changed"
    assert len(chat.messages) == 2
    assert chat.messages[0]["content"] == "hi"


def _png(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_content_blocks_images_and_plain_strings(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="img")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": _png(56, 28)}}
    reply = chat.send(["What is in this picture?", image])
    assert "56x28" in reply.content[0].text  # type: ignore[union-attr]
    expected = {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"}, image]}
    assert chat.messages[0] == expected
    assert store.load("img").message_params()[0] == expected
    assert bodies(sim)[-1]["messages"][0] == expected


@pytest.mark.parametrize("content", ["", "   \n", [], [{"type": "text", "text": " "}]])
def test_empty_content_is_refused_before_any_call(
    sim: Simulator, client: anthropic.Anthropic, content: object
) -> None:
    chat = Chat(client, model=MODEL)
    with pytest.raises(InvalidHistory):
        chat.send(content)
    assert sim.requests == []
    assert chat.messages == []


def test_reserved_and_wrong_arguments_are_clear_errors(client: anthropic.Anthropic, sim: Simulator) -> None:
    with pytest.raises(ConfigurationError, match="messages"):
        Chat(client, model=MODEL, messages=[])
    with pytest.raises(ConfigurationError, match="AsyncChat"):
        Chat(sim.async_client(), model=MODEL)
    with pytest.raises(ConfigurationError, match="max_tokens"):
        Chat(client, model=MODEL, max_tokens=0)
    chat = Chat(client, model=MODEL)
    with pytest.raises(TypeError, match="messages="):
        chat.send("hi", messages=[])
    with pytest.raises(TypeError, match="stream"):
        chat.send("hi", stream=True)
    assert sim.requests == []


@pytest.mark.parametrize("system", [5, b"prompt", [1], [None], ["a string in a list"]])
def test_a_system_prompt_of_the_wrong_shape_is_a_clear_error(client: anthropic.Anthropic, sim: Simulator,
                                                              system: object) -> None:  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"system must be a string, a list of text blocks"):
        Chat(client, model=MODEL, system=system)
    chat = Chat(client, model=MODEL)
    with pytest.raises(ConfigurationError, match=r"system must be a string, a list of text blocks"):
        chat.send("hi", system=system)  # was an AttributeError from the token estimate
    assert sim.requests == [] and chat.messages == []


@pytest.mark.parametrize("tools", [5, True, "get_weather", {"name": "get_weather", "input_schema": {}}])
def test_tools_that_are_not_a_list_are_a_clear_error(client: anthropic.Anthropic, tools: object) -> None:
    with pytest.raises(ConfigurationError, match=r"tools= must be a list of tool dicts or functions"):
        Chat(client, model=MODEL, tools=tools)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"tools= must be a list"):
        Chat(client, model=MODEL).send("hi", tools=tools)


@pytest.mark.parametrize("bad", [None, 5, "x", [1], ["tool_result"]])
def test_stage_and_tool_results_of_the_wrong_shape_are_clear_errors(client: anthropic.Anthropic, sim: Simulator,
                                                                    bad: object) -> None:  # fmt: skip
    chat = Chat(client, model=MODEL)
    with pytest.raises(TypeError, match=r"stage\(\) takes a list of message dicts"):
        chat.stage(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"send_tool_results\(\) takes \{tool_use_id: result"):
        chat.send_tool_results(bad)  # type: ignore[arg-type]
    assert chat.pending == [] and sim.requests == []


def test_stream_mirrors_the_sdk_message_stream(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="st")
    with chat.stream("repeat after me: the quick brown fox jumps over the lazy dog") as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == final.content[0].text == "the quick brown fox jumps over the lazy dog"  # type: ignore[union-attr]
    assert chat.messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": "".join(pieces)}]}
    assert store.load("st").version == 1
    assert bodies(sim)[-1]["stream"] is True

    with chat.stream("second") as s:
        kinds = [event.type for event in s]
        assert s.get_final_text().startswith("You said")
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "text" in kinds  # the SDK's convenience events come through
    assert len(chat.messages) == 4

    with chat.stream("third") as s:
        s.until_done()
        assert s.current_message_snapshot.stop_reason == "end_turn"
    assert len(chat.messages) == 6


def test_turns_from_two_chat_objects_interleave_without_conflict(
    sim: Simulator, client: anthropic.Anthropic, store: Store
) -> None:
    # Each turn first checks the stored version, so a chat that is behind reloads instead of conflicting.
    a = Chat(client, model=MODEL, store=store, session_id="shared")
    b = Chat(client, model=MODEL, store=store, session_id="shared")
    a.send("one")
    b.send("two")
    a.send("three")
    assert [m["content"] for m in a.messages if m["role"] == "user"] == ["one", "two", "three"]
    assert bodies(sim)[-1]["messages"] == a.messages[:-1]
    assert store.load("shared").version == 3


def test_undo_removes_the_last_turn(client: anthropic.Anthropic, store: Store) -> None:
    chat = Chat(client, model=MODEL, store=store, session_id="u")
    chat.send("keep me")
    chat.send("drop me")
    removed = chat.undo()
    assert [m["role"] for m in removed] == ["user", "assistant"]
    assert removed[0]["content"] == "drop me"
    assert [m["content"] for m in chat.messages if m["role"] == "user"] == ["keep me"]
    assert store.load("u").message_params() == chat.messages
    assert chat.undo()[0]["content"] == "keep me"
    assert chat.messages == []
    assert chat.undo() == []


def test_store_url_and_reload(client: anthropic.Anthropic, sqlite_url: str) -> None:
    chat = Chat(client, model=MODEL, store=sqlite_url, session_id="url")
    chat.send("hello")
    other = Chat(client, model=MODEL, store=sqlite_url, session_id="url")
    other.send("from elsewhere")
    assert len(chat.messages) == 2
    chat.reload()
    assert len(chat.messages) == 4


def test_a_chat_closes_only_the_store_it_opened(
    client: anthropic.Anthropic, sqlite_url: str, store: Store
) -> None:
    from claude_history.errors import StoreUnavailable

    with Chat(client, model=MODEL, store=store, session_id="c") as chat:
        chat.send("hi")
    assert store.load("c").version == 1  # yours stays open
    with Chat(client, model=MODEL, store=sqlite_url, session_id="c") as owned:
        owned.send("hi")
    with pytest.raises(StoreUnavailable):
        owned.store.load("c")  # the one it opened from the URL is closed
