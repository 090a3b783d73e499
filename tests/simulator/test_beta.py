"""Beta gating: beta-only fields and blocks need their ``anthropic-beta`` value; unknown values are refused."""

from __future__ import annotations

import anthropic
import pytest

from claude_history.testing import Simulator
from claude_history.testing._betas import GATES, known_betas
from claude_history.testing._schema import message_schema

from .helpers import MODEL, assistant, body, error_of, post, shared_client, shared_sim, user  # noqa: F401 (fixtures)

COMPACT = {"edits": [{"type": "compact_20260112"}]}
CLEAR = {"edits": [{"type": "clear_tool_uses_20250919"}]}


def test_a_beta_field_without_its_header_is_an_unknown_field(client: anthropic.Anthropic) -> None:
    # Wei-Shaw/claude-relay-service issue 660: "context_management: Extra inputs are not permitted".
    with pytest.raises(anthropic.BadRequestError, match=r"context_management: Extra inputs are not permitted"):
        client.beta.messages.create(model=MODEL, max_tokens=64, messages=[user("q")], context_management=COMPACT)
    reply = client.beta.messages.create(
        model=MODEL, max_tokens=64, messages=[user("q")], context_management=COMPACT, betas=["compact-2026-01-12"]
    )
    assert reply.type == "message"


def test_each_edit_needs_its_own_beta(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"context_management\.edits\.0: Input tag 'clear_tool_uses"):
        client.beta.messages.create(
            model=MODEL, max_tokens=64, messages=[user("q")], context_management=CLEAR, betas=["compact-2026-01-12"]
        )
    reply = client.beta.messages.create(
        model=MODEL,
        max_tokens=64,
        messages=[user("q")],
        context_management=CLEAR,
        betas=["context-management-2025-06-27"],
    )
    assert reply.type == "message"


def test_threads_need_the_threads_beta(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match=r"thread: Extra inputs are not permitted"):
        client.beta.messages.create(
            model=MODEL, max_tokens=64, messages=[user("q")], extra_body={"thread": {"type": "create"}}
        )


def test_a_compaction_block_needs_the_compaction_beta(sim: Simulator) -> None:
    history = body(user("go on"), assistant([{"type": "compaction", "content": "Summary."}]), user("next"))
    message = error_of(post(sim.base_url, history))[2]
    assert message.startswith("messages.1.content.0: Input tag 'compaction' found using 'type' does not match")
    assert "'compaction'" not in message.split("expected tags:")[1]
    ok = post(sim.base_url, history, headers={"anthropic-beta": "compact-2026-01-12"})
    assert ok.status_code == 200, ok.text


def test_a_beta_tool_type_needs_its_beta(client: anthropic.Anthropic) -> None:
    computer = {"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768}
    with pytest.raises(anthropic.BadRequestError, match=r"tools\.0: Input tag 'computer_20250124'"):
        client.beta.messages.create(model=MODEL, max_tokens=64, messages=[user("q")], tools=[computer])
    reply = client.beta.messages.create(
        model=MODEL, max_tokens=64, messages=[user("q")], tools=[computer], betas=["computer-use-2025-01-24"]
    )
    assert reply.type == "message"


def test_an_unknown_beta_value_is_the_documented_400(sim: Simulator) -> None:
    # zed-industries/zed issue 42715, QuantumNous/new-api issue 2975: the API's text, values in backticks.
    headers = {"anthropic-beta": "prompt-caching-2024-07-31, made-up-2099-01-01,other-2099-02-02"}
    status, kind, message = error_of(post(sim.base_url, body(user("q")), headers=headers))
    assert (status, kind) == (400, "invalid_request_error")
    assert message == (
        "Unexpected value(s) `made-up-2099-01-01`, `other-2099-02-02` for the `anthropic-beta` header. Please "
        "consult our documentation at docs.claude.com or try again without the header."
    )
    count = post(sim.base_url, {"model": MODEL, "messages": [user("q")]}, "/v1/messages/count_tokens", headers=headers)
    assert error_of(count)[0] == 400


def test_the_sdk_beta_namespace_works(client: anthropic.Anthropic) -> None:
    reply = client.beta.messages.create(
        model=MODEL, max_tokens=64, messages=[user("q")], betas=["interleaved-thinking-2025-05-14"]
    )
    assert reply.type == "message"
    # count_tokens adds token-counting-2024-11-01 itself.
    assert client.beta.messages.count_tokens(model=MODEL, messages=[user("q")]).input_tokens > 0
    with client.beta.messages.stream(
        model=MODEL, max_tokens=64, messages=[user("q")], betas=["compact-2026-01-12"], context_management=COMPACT
    ) as stream:
        assert stream.get_final_message().type == "message"


def test_every_gate_names_a_beta_the_sdk_knows() -> None:
    paths = message_schema(False).paths()
    for path, gate in GATES.items():
        assert gate.source, path
        if path in paths:  # an older SDK may not have the field (make test-lowest)
            assert gate.betas & known_betas(), path
