"""The strict request schema: every field checked against the SDK's own request types, the API's paths and texts.

Driven through the real ``anthropic`` SDK (``extra_body`` / raw dicts carry what its types would refuse)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from claude_history.testing import Simulator

from .helpers import MODEL, assistant, body, error_of, post, shared_client, shared_sim, user  # noqa: F401 (fixtures)

TOOL = {"name": "lookup", "description": "Look up a word", "input_schema": {"type": "object", "properties": {}}}


def refused(client: anthropic.Anthropic, **kwargs: Any) -> str:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("max_tokens", 64)
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**kwargs)
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error"
    message: str = error["message"]
    return message


def test_an_unknown_top_level_field_is_refused(client: anthropic.Anthropic) -> None:
    message = refused(client, messages=[user("hi")], extra_body={"response_format": {"type": "json"}})
    assert message == "response_format: Extra inputs are not permitted"


def test_an_unknown_field_in_a_block_names_the_block_type_in_its_path(client: anthropic.Anthropic) -> None:
    # The API's own example: messages.65.content.1.tool_use.text (github.com/anthropics/claude-code issue 4378).
    use = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}, "text": "stray"}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42"}
    messages = [user("q"), assistant([{"type": "text", "text": "Looking."}, use]), user([result])]
    message = refused(client, messages=messages, tools=[TOOL])
    assert message == "messages.1.content.1.tool_use.text: Extra inputs are not permitted"


def test_unknown_fields_in_tools_and_cache_control_are_refused(client: anthropic.Anthropic) -> None:
    tool = {**TOOL, "examples": []}
    assert (
        refused(client, messages=[user("q")], tools=[tool]) == "tools.0.custom.examples: Extra inputs are not permitted"
    )
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "scope": "global"}}]
    assert (
        refused(client, messages=[user("q")], system=system)
        == "system.0.cache_control.ephemeral.scope: Extra inputs are not permitted"
    )
    message = [{"role": "user", "content": "q", "name": "bob"}]
    assert refused(client, messages=message) == "messages.0.name: Extra inputs are not permitted"


def test_a_json_schema_may_carry_any_keyword(client: anthropic.Anthropic) -> None:
    # InputSchema is marked extra="allow" in the SDK: JSON Schema keywords are not "extra inputs".
    tool = {**TOOL, "input_schema": {"type": "object", "properties": {}, "additionalProperties": False}}
    reply = client.messages.create(model=MODEL, max_tokens=64, messages=[user("q")], tools=[tool])
    assert reply.type == "message"


def test_mistyped_fields_are_refused_with_pydantic_wording(sim: Simulator) -> None:
    cases = {
        "stop_sequences: Input should be a valid list": body(user("q"), stop_sequences="END"),
        "metadata.user_id: Input should be a valid string": body(user("q"), metadata={"user_id": 7}),
        "thinking.adaptive.display: Input should be 'summarized', 'omitted' or 'updates'": body(
            user("q"), thinking={"type": "adaptive", "display": "full"}
        ),
        "service_tier: Input should be 'auto' or 'standard_only'": body(user("q"), service_tier="priority"),
        "messages.0.content.0.text.text: Field required": body(user([{"type": "text"}])),
    }
    for expected, payload in cases.items():
        got = error_of(post(sim.base_url, payload))
        assert got[:2] == (400, "invalid_request_error")
        assert got[2] == expected


def test_an_unknown_server_tool_type_is_refused(client: anthropic.Anthropic) -> None:
    tool = {"type": "web_search_29990101", "name": "web_search"}
    message = refused(client, messages=[user("q")], tools=[tool])
    assert message.startswith(
        "tools.0: Input tag 'web_search_29990101' found using 'type' does not match any of the expected tags: "
        "'custom', "
    )
    assert "'web_search_20250305'" in message
    ok = client.messages.create(
        model=MODEL, max_tokens=64, messages=[user("q")], tools=[{"type": "web_search_20250305", "name": "web_search"}]
    )
    assert ok.type == "message"


def test_an_unknown_block_type_lists_the_expected_tags(sim: Simulator) -> None:
    status, kind, message = error_of(post(sim.base_url, body(user([{"type": "video", "url": "x"}]))))
    assert (status, kind) == (400, "invalid_request_error")
    assert message.startswith("messages.0.content.0: Input tag 'video' found using 'type' does not match")
    assert "'text', 'image', 'document'" in message


def test_a_block_without_its_type_cannot_be_told_apart(sim: Simulator) -> None:
    message = error_of(post(sim.base_url, body(user([{"text": "hi"}]))))[2]
    assert message == "messages.0.content.0: Unable to extract tag using discriminator 'type'"


def test_response_blocks_sent_back_as_the_sdk_dumps_them_are_accepted(client: anthropic.Anthropic) -> None:
    """What a chat stores is the SDK's ``model_dump`` of the reply (``citations: None`` and all): it must go
    back unchanged."""
    first = client.messages.create(model=MODEL, max_tokens=64, messages=[user("hello")])
    dumped = [block.model_dump() for block in first.content]
    again = client.messages.create(
        model=MODEL, max_tokens=64, messages=[user("hello"), assistant(dumped), user("and?")]
    )
    assert again.type == "message"
