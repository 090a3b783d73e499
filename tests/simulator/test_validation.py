"""Every validation rule: one request that passes and one that fails with the API's status, type and text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from claude_history.testing import Simulator

from .helpers import MODEL, assistant, body, error_of, image_block, post, user

PREFILL = (
    "This model does not support assistant message prefill. The conversation must end with a user message."
)


@pytest.fixture(scope="module")
def api() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


def ok(api: Simulator, payload: Any, path: str = "/v1/messages", **kwargs: Any) -> dict[str, Any]:
    response = post(api.base_url, payload, path, **kwargs)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def fails(
    api: Simulator, payload: Any, status: int = 400, kind: str = "invalid_request_error", **kwargs: Any
) -> str:
    got_status, got_kind, message = error_of(post(api.base_url, payload, **kwargs))
    assert (got_status, got_kind) == (status, kind), message
    return message


def test_malformed_json(api: Simulator) -> None:
    ok(api, body(user("hi")))
    status, kind, message = error_of(post(api.base_url, None, content=b'{"model": "x", '))
    assert (status, kind) == (400, "invalid_request_error")
    assert "error parsing the body" in message
    assert api.requests[-1]["body"] is None


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("\\ud800", "no low surrogate in string"),  # a high surrogate alone
        ("a\\ud83d b", "no low surrogate in string"),  # its low half lost (a string cut between the two)
        ("\\ude00", "invalid high surrogate in string"),  # a low surrogate alone
    ],
)
def test_a_lone_surrogate_is_not_valid_json(api: Simulator, text: str, what: str) -> None:
    """Python's json decodes it; the API's parser refuses the body (anthropics/claude-code#3277, #60394)."""
    raw = json.dumps(body(user("x"))).replace('"x"', f'"{text}"').encode()
    status, kind, message = error_of(post(api.base_url, None, content=raw))
    assert (status, kind) == (400, "invalid_request_error")
    assert message.startswith(f"The request body is not valid JSON: {what}: line 1 column ")
    # A pair (an emoji as two escapes) and an escaped backslash before "ud800" are fine.
    for good in ("\\ud83d\\ude00", "\\\\ud800"):
        raw = json.dumps(body(user("x"))).replace('"x"', f'"{good}"').encode()
        assert post(api.base_url, None, content=raw).status_code == 200


def test_body_must_be_an_object(api: Simulator) -> None:
    assert fails(api, [1, 2]) == "The request body must be a JSON object."


@pytest.mark.parametrize("field", ["model", "max_tokens", "messages"])
def test_required_fields(api: Simulator, field: str) -> None:
    payload = body(user("hi"))
    ok(api, payload)
    del payload[field]
    assert fails(api, payload) == f"{field}: Field required"


def test_field_types(api: Simulator) -> None:
    assert fails(api, body(user("hi"), max_tokens="10")) == "max_tokens: Input should be a valid integer"
    assert (
        fails(api, body(user("hi"), max_tokens=0)) == "max_tokens: Input should be greater than or equal to 1"
    )
    assert (
        fails(api, {"model": MODEL, "max_tokens": 5, "messages": "hi"})
        == "messages: Input should be a valid list"
    )
    assert (
        fails(api, body({"role": "system", "content": "x"}))
        == "messages.0.role: Input should be 'user' or 'assistant'"
    )
    assert fails(api, body(user(5))).startswith("messages.0.content: Input should be a valid string")
    message = fails(api, body(user("hi"), max_tokens=10**6))
    assert (
        message
        == f"max_tokens: 1000000 > 128000, which is the maximum allowed number of output tokens for {MODEL}"
    )


def test_sampling_parameters_are_rejected_by_this_api_version(api: Simulator) -> None:
    assert fails(api, body(user("hi"), temperature=0.5)) == "temperature: Extra inputs are not permitted"
    old = post(api.base_url, body(user("hi"), temperature=0.5), headers={"anthropic-version": "2023-06-01"})
    assert old.status_code == 200


def test_unknown_model_is_404(api: Simulator) -> None:
    assert fails(api, body(user("hi"), model="claude-nonexistent-1"), 404, "not_found_error") == (
        "model: claude-nonexistent-1"
    )
    ok(api, body(user("hi"), model="claude-haiku-4-5-20251001"))  # dated snapshot names resolve


def test_unknown_model_through_the_sdk(api: Simulator) -> None:
    client = api.client(max_retries=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nope", max_tokens=10, messages=[user("hi")])


def test_empty_text_block(api: Simulator) -> None:
    ok(api, body(user([{"type": "text", "text": "x"}])))
    assert (
        fails(api, body(user([{"type": "text", "text": ""}])))
        == "messages: text content blocks must be non-empty"
    )


def test_whitespace_only_text(api: Simulator) -> None:
    expected = "messages: text content blocks must contain non-whitespace text"
    assert fails(api, body(user("  \n\t"))) == expected
    assert fails(api, body(user([{"type": "text", "text": " "}]))) == expected


def test_empty_content(api: Simulator) -> None:
    expected = (
        "messages.1: all messages must have non-empty content except for the optional final assistant message"
    )
    assert fails(api, body(user("a"), assistant(""), user("b"))) == expected
    assert fails(api, body(user("a"), assistant([]), user("b"))) == expected
    ok(api, body(user("a"), assistant("b"), user("c")))
    # The optional final assistant message may be empty, on a model that accepts prefill.
    ok(api, body(user("a"), assistant(""), model="claude-sonnet-4-5"))


def test_prefill(api: Simulator) -> None:
    assert fails(api, body(user("a"), assistant("The answer is"))) == PREFILL
    reply = ok(api, body(user("a"), assistant("The answer is"), model="claude-sonnet-4-5"))
    assert reply["type"] == "message"
    trailing = fails(api, body(user("a"), assistant("The answer is "), model="claude-sonnet-4-5"))
    assert trailing == "messages: final assistant content cannot end with trailing whitespace"


def test_a_paused_turn_sent_back_is_not_a_prefill(api: Simulator) -> None:
    search = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}}
    result = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}
    reply = ok(api, body(user("search"), assistant([search, result])))
    assert reply["type"] == "message"
    prefill = assistant([search, result, {"type": "text", "text": "So"}])
    assert fails(api, body(user("search"), prefill)) == PREFILL


def test_a_response_paused_after_compaction_sent_back_is_not_a_prefill(api: Simulator) -> None:
    compaction = {"type": "compaction", "content": "Summary of the earlier conversation."}
    beta = {"anthropic-beta": "compact-2026-01-12"}
    reply = ok(api, body(user("go on"), assistant([compaction])), headers=beta)
    assert reply["type"] == "message"
    prefill = assistant([compaction, {"type": "text", "text": "So"}])
    assert fails(api, body(user("go on"), prefill), headers=beta) == PREFILL


def test_consecutive_same_role_messages_are_merged_not_rejected(api: Simulator) -> None:
    reply = ok(
        api, body(user("one"), user("two"), assistant("x"), assistant("y"), user("How many messages?"))
    )
    assert reply["content"][0]["text"].startswith("This conversation has 5 messages")


def test_first_message_must_be_user(api: Simulator) -> None:
    assert fails(api, body(assistant("hi"), user("x"))) == 'messages: first message must use the "user" role'


TOOLS = [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object", "properties": {}}}]


def tool_use(tid: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tid, "name": "lookup", "input": {}}


def tool_result(tid: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tid, "content": "42"}


def test_tool_use_needs_its_result_in_the_next_message(api: Simulator) -> None:
    ok(api, body(user("q"), assistant([tool_use("toolu_1")]), user([tool_result("toolu_1")]), tools=TOOLS))
    message = fails(api, body(user("q"), assistant([tool_use("toolu_1")]), user("never mind"), tools=TOOLS))
    assert message == (
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1. Each "
        "`tool_use` block must have a corresponding `tool_result` block in the next message."
    )


def test_tool_results_must_come_first(api: Simulator) -> None:
    ok(
        api,
        body(
            user("q"), assistant([tool_use("t1")]), user([tool_result("t1"), {"type": "text", "text": "and"}])
        ),
    )
    late = body(
        user("q"), assistant([tool_use("t1")]), user([{"type": "text", "text": "and"}, tool_result("t1")])
    )
    assert fails(api, late).startswith("messages.1: `tool_use` ids were found without `tool_result` blocks")


def test_tool_result_without_tool_use(api: Simulator) -> None:
    message = fails(api, body(user("q"), assistant("no tools"), user([tool_result("toolu_x")])))
    assert message == (
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_x. Each "
        "`tool_result` block must have a corresponding `tool_use` block in the previous message."
    )
    # A window that starts with a tool_result-only message fails the same way.
    assert fails(api, body(user([tool_result("toolu_x")]))).startswith("messages.0.content.0: unexpected")


def test_tool_use_ids_are_unique(api: Simulator) -> None:
    payload = body(
        user("q"),
        assistant([tool_use("t1")]),
        user([tool_result("t1")]),
        assistant([tool_use("t1")]),
        user([tool_result("t1")]),
    )
    assert fails(api, payload) == "messages.3.content.0: `tool_use` ids must be unique: t1"


def test_tools_definitions(api: Simulator) -> None:
    ok(api, body(user("q"), tools=TOOLS))
    assert fails(api, body(user("q"), tools=TOOLS + TOOLS)) == "tools: Tool names must be unique."
    assert fails(api, body(user("q"), tools=[{"name": "a b", "input_schema": {}}])).startswith(
        "tools.0.custom.name"
    )
    assert fails(api, body(user("q"), tools=[{"name": "a"}])) == "tools.0.custom.input_schema: Field required"
    ok(api, body(user("q"), tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    message = fails(api, body(user("q"), tools=TOOLS, tool_choice={"type": "tool", "name": "other"}))
    assert message == "tool_choice.tool.name: tool 'other' is not in `tools`"


def five_breakpoints() -> dict[str, Any]:
    cc = {"type": "ephemeral"}
    blocks = [{"type": "text", "text": f"part {k}", "cache_control": cc} for k in range(4)]
    return body(user(blocks))


def test_at_most_four_cache_breakpoints(api: Simulator) -> None:
    four = five_breakpoints()
    ok(api, four)
    assert fails(api, {**four, "cache_control": {"type": "ephemeral"}}) == (
        "A maximum of 4 blocks with cache_control may be provided. Found 5."
    )
    with_system = {**four, "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}]}
    assert fails(api, with_system).endswith("Found 5.")


def test_longer_ttls_come_first(api: Simulator) -> None:
    five, hour = {"type": "ephemeral"}, {"type": "ephemeral", "ttl": "1h"}
    sys_block = {"type": "text", "text": "system"}
    ok(
        api,
        body(
            user([{"type": "text", "text": "x", "cache_control": five}]),
            system=[{**sys_block, "cache_control": hour}],
        ),
    )
    bad = body(
        user([{"type": "text", "text": "x", "cache_control": hour}]),
        system=[{**sys_block, "cache_control": five}],
    )
    assert "ttl='1h' must not come after one with ttl='5m'" in fails(api, bad)
    assert fails(api, body(user("x"), cache_control={"type": "ephemeral", "ttl": "2h"})) == (
        "cache_control.ephemeral.ttl: Input should be '5m' or '1h'"
    )


def counted(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as a count_tokens body: that endpoint has no ``max_tokens``."""
    return {k: v for k, v in payload.items() if k != "max_tokens"}


def test_count_tokens_refuses_max_tokens(api: Simulator) -> None:
    # Wei-Shaw/sub2api PR 4913: /v1/messages/count_tokens answers `max_tokens: Extra inputs are not permitted`.
    ok(api, counted(body(user("q"))), "/v1/messages/count_tokens")
    response = post(api.base_url, body(user("q")), "/v1/messages/count_tokens")
    assert error_of(response) == (400, "invalid_request_error", "max_tokens: Extra inputs are not permitted")


def test_prompt_too_long(api: Simulator) -> None:
    model = "claude-haiku-4-5"  # 200k window
    fits = body(user("x" * 790_000), model=model)
    count = ok(api, counted(fits), "/v1/messages/count_tokens")["input_tokens"]
    assert count <= 200_000
    ok(api, fits)
    too_long = body(user("x" * 810_000), model=model)
    count = ok(api, counted(too_long), "/v1/messages/count_tokens")["input_tokens"]
    assert fails(api, too_long) == f"prompt is too long: {count} tokens > 200000 maximum"


def test_at_most_100000_messages(api: Simulator) -> None:
    turns = [user("q") if k % 2 == 0 else assistant("a") for k in range(100_001)]
    ok(api, counted(body(*turns[:99_999])), "/v1/messages/count_tokens")
    message = fails(api, body(*turns))
    assert message == "messages: too many messages (100001); at most 100000 are allowed per request"


def test_request_too_large(api: Simulator) -> None:
    small = Simulator()
    small.max_body_bytes = 10_000
    with small:
        assert post(small.base_url, body(user("x" * 5_000))).status_code == 200
        assert error_of(post(small.base_url, body(user("x" * 20_000)))) == (
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        )


def test_authentication_and_version_headers(api: Simulator) -> None:
    missing_key = post(api.base_url, body(user("hi")), headers={"x-api-key": ""})
    assert error_of(missing_key) == (401, "authentication_error", "x-api-key header is required")
    missing_version = post(api.base_url, body(user("hi")), headers={"anthropic-version": ""})
    assert error_of(missing_version)[2] == "anthropic-version: header is required"


def test_images(api: Simulator) -> None:
    ok(api, body(user([image_block(60, 40), {"type": "text", "text": "what is this?"}])))
    ok(api, body(user([image_block(30, 20, "JPEG"), image_block(10, 10, "GIF"), image_block(8, 8, "WEBP")])))
    mismatch = fails(api, body(user([image_block(60, 40, "PNG", media_type="image/jpeg")])))
    assert mismatch == (
        "messages.0.content.0.image.source.base64.data: The image was specified using the image/jpeg media type, "
        "but the image appears to be a image/png image"
    )
    garbage = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "aGVsbG8="}}
    assert fails(api, body(user([garbage]))) == "messages.0.content.0.image.source.base64: Could not process image"
    bad_media = {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "aGVsbG8="}}
    assert fails(api, body(user([bad_media]))).startswith("messages.0.content.0.image.source.base64.media_type")


def test_documents(api: Simulator) -> None:
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Some notes."}}
    ok(api, body(user([doc, {"type": "text", "text": "summarise"}])))
    message = fails(api, body(user("q"), assistant([doc]), user("x")))
    assert message == "messages.1.content.0: document blocks are not allowed in assistant messages"


def test_block_types_per_role(api: Simulator) -> None:
    assert (
        fails(api, body(user([tool_use("t")])))
        == "messages.0.content.0.type: 'tool_use' blocks are not allowed in user messages"
    )
    assert fails(api, body(user([{"type": "mystery"}]))).startswith(
        "messages.0.content.0: Input tag 'mystery' found using 'type' does not match any of the expected tags: "
        "'text', 'image', "
    )
    # A tagged union puts the member's tag in the path (github.com/anthropics/claude-code issue 4378).
    assert fails(api, body(user([{"type": "text"}]))) == "messages.0.content.0.text.text: Field required"


def test_thinking_configuration(api: Simulator) -> None:
    ok(api, body(user("q"), max_tokens=2048, thinking={"type": "enabled", "budget_tokens": 1024}))
    ok(api, body(user("q"), thinking={"type": "adaptive"}))
    too_small = fails(
        api, body(user("q"), max_tokens=4096, thinking={"type": "enabled", "budget_tokens": 100})
    )
    assert too_small == "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    too_big = fails(
        api, body(user("q"), max_tokens=1024, thinking={"type": "enabled", "budget_tokens": 1024})
    )
    assert too_big == "`max_tokens` must be greater than `thinking.budget_tokens`."
    forced = body(user("q"), tools=TOOLS, tool_choice={"type": "any"}, thinking={"type": "adaptive"})
    assert fails(api, forced) == "Thinking may not be enabled when tool_choice forces tool use."


def test_system_prompt(api: Simulator) -> None:
    ok(api, body(user("q"), system="Be brief."))
    ok(api, body(user("q"), system=[{"type": "text", "text": "Be brief."}]))
    assert (
        fails(api, body(user("q"), system=[{"type": "text", "text": ""}]))
        == "system: text content blocks must be non-empty"
    )
    assert fails(api, body(user("q"), system=7)).startswith("system: Input should be")
