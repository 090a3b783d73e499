"""Per-model rules from the one model table (``claude_history.models``), through the SDK."""

from __future__ import annotations

import base64
import io
import random
from typing import Any, get_args

import anthropic
import pytest

from claude_history.models import ALIASES, MODELS, model_info
from claude_history.testing import Simulator

from .helpers import MODEL, body, error_of, image_block, post, shared_client, shared_sim, user  # noqa: F401 (fixtures)


def refused(client: anthropic.Anthropic, **kwargs: Any) -> str:
    kwargs.setdefault("messages", [user("q")])
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**kwargs)
    message: str = caught.value.body["error"]["message"]  # type: ignore[index]
    return message


def test_the_table_knows_every_model_the_sdk_names() -> None:
    from anthropic.types import ModelParam

    named = {v for arm in get_args(ModelParam) for v in get_args(arm)}
    assert named <= set(MODELS) | set(ALIASES)  # the table may keep models the SDK no longer lists
    for dated, alias in ALIASES.items():
        assert model_info(dated) is MODELS[alias]


def test_max_tokens_ceiling_is_the_models_documented_maximum(sim: Simulator) -> None:
    # Opus 4.6 documents 128K of output (platform.claude.com/docs/en/models/opus-4-6/overview). Raw HTTP: the SDK
    # itself insists on streaming for so large a max_tokens.
    reply = post(sim.base_url, body(user("q"), model="claude-opus-4-6", max_tokens=128_000))
    assert reply.status_code == 200, reply.text
    too_many = post(sim.base_url, body(user("q"), model="claude-haiku-4-5", max_tokens=64_001))
    assert error_of(too_many)[2] == (
        "max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for claude-haiku-4-5"
    )


def test_a_dated_snapshot_id_is_accepted(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model="claude-haiku-4-5-20251001", max_tokens=64, messages=[user("q")])
    assert reply.model == "claude-haiku-4-5-20251001"


def test_thinking_modes_per_model(client: anthropic.Anthropic) -> None:
    enabled = {"type": "enabled", "budget_tokens": 1024}
    assert refused(client, model="claude-opus-4-7", max_tokens=4096, thinking=enabled) == (
        "thinking.type: 'enabled' is not supported on claude-opus-4-7; use 'adaptive' or 'disabled'."
    )
    assert refused(client, model="claude-sonnet-4-5", max_tokens=4096, thinking={"type": "adaptive"}).startswith(
        "thinking.type: 'adaptive' is not supported on claude-sonnet-4-5"
    )
    assert refused(client, model="claude-fable-5", max_tokens=4096, thinking={"type": "disabled"}).startswith(
        "thinking.type: 'disabled' is not supported on claude-fable-5"
    )
    for thinking in (enabled, {"type": "adaptive"}, {"type": "disabled"}):  # Sonnet 4.6 takes all three
        reply = client.messages.create(model=MODEL, max_tokens=4096, thinking=thinking, messages=[user("q")])
        assert reply.type == "message"


def test_interleaved_thinking_lets_the_budget_pass_max_tokens(client: anthropic.Anthropic) -> None:
    thinking = {"type": "enabled", "budget_tokens": 8000}
    assert (
        refused(client, model=MODEL, max_tokens=4000, thinking=thinking)
        == "`max_tokens` must be greater than `thinking.budget_tokens`."
    )
    reply = client.beta.messages.create(
        model=MODEL,
        max_tokens=4000,
        thinking=thinking,  # type: ignore[arg-type]
        messages=[user("q")],
        betas=["interleaved-thinking-2025-05-14"],
    )
    assert reply.type == "message"


def test_effort_levels_per_model(client: anthropic.Anthropic) -> None:
    assert refused(client, model="claude-opus-4-5", max_tokens=64, output_config={"effort": "max"}).startswith(
        "output_config.effort: 'max' is not supported on claude-opus-4-5"
    )
    assert refused(client, model="claude-haiku-4-5", max_tokens=64, output_config={"effort": "low"}) == (
        "output_config.effort: claude-haiku-4-5 does not support the effort parameter."
    )
    for model, effort in (("claude-opus-4-5", "high"), ("claude-opus-4-7", "xhigh"), (MODEL, "max")):
        reply = client.messages.create(
            model=model,
            max_tokens=64,
            output_config={"effort": effort},
            messages=[user("q")],  # type: ignore[typeddict-item]
        )
        assert reply.type == "message"


def test_stop_sequences_must_contain_non_whitespace(client: anthropic.Anthropic) -> None:
    assert refused(client, model=MODEL, max_tokens=64, stop_sequences=["END", " "]) == (
        "stop_sequences.1: each stop sequence must contain non-whitespace"
    )


def test_a_tool_schema_must_be_an_object(client: anthropic.Anthropic) -> None:
    tool: Any = {"name": "listing", "input_schema": {"type": "array", "items": {"type": "string"}}}
    assert refused(client, model=MODEL, max_tokens=64, tools=[tool]) == (
        "tools.0.custom.input_schema.type: Input should be 'object'"
    )


def test_image_limits(sim: Simulator) -> None:
    from PIL import Image

    tall = image_block(10, 8001)
    status, _kind, message = error_of(post(sim.base_url, body(user([tall]))))
    assert (status, message) == (
        400,
        "messages.0.content.0.image.source.base64.data: At least one of the image dimensions exceed max allowed "
        "size: 8000 pixels",
    )
    side = 1400  # incompressible pixels: about 5.9 MB of PNG, 7.8 MB of base64
    noise = Image.frombytes("RGB", (side, side), random.Random(7).randbytes(side * side * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    big = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
    message = error_of(post(sim.base_url, body(user([big]))))[2]
    assert message == (
        f"messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: {len(data)} bytes > 5242880 bytes"
    )


def test_a_pdf_document_must_be_a_pdf(sim: Simulator) -> None:
    def pdf(raw: bytes) -> dict[str, Any]:
        data = base64.b64encode(raw).decode()
        return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}}

    message = error_of(post(sim.base_url, body(user([pdf(b"<html>not a pdf</html>"), {"type": "text", "text": "q"}]))))[
        2
    ]
    assert message == "messages.0.content.0.document.source.base64.data: The PDF specified was not valid."
    minimal = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    ok = post(sim.base_url, body(user([pdf(minimal), {"type": "text", "text": "q"}])))
    assert ok.status_code == 200, ok.text


# ---- GET /v1/models --------------------------------------------------------------------------------------------


def test_the_model_list_pages_through_every_model(client: anthropic.Anthropic) -> None:
    first = client.models.list(limit=5)
    assert len(first.data) == 5 and first.has_more
    assert first.first_id == first.data[0].id and first.last_id == first.data[-1].id
    every = [m.id for m in client.models.list(limit=5)]  # the SDK follows after_id across pages
    expected = [info.dated_id or info.name for info in MODELS.values()]
    assert every == expected
    second = client.models.list(limit=5, after_id=first.last_id)  # type: ignore[arg-type]
    assert [m.id for m in second.data] == expected[5:10]
    back = client.models.list(limit=3, before_id=second.data[0].id)
    assert [m.id for m in back.data] == expected[2:5] and back.has_more


def test_a_model_has_its_real_name_limits_and_dated_id(client: anthropic.Anthropic) -> None:
    haiku = client.models.retrieve("claude-haiku-4-5")  # the alias retrieves the dated snapshot
    assert haiku.id == "claude-haiku-4-5-20251001"
    assert haiku.display_name == "Claude Haiku 4.5"
    assert (haiku.max_input_tokens, haiku.max_tokens) == (200_000, 64_000)
    opus = client.models.retrieve("claude-opus-4-6")
    assert (opus.display_name, opus.max_input_tokens, opus.max_tokens) == ("Claude Opus 4.6", 1_000_000, 128_000)
    assert opus.created_at.year == 2026 and opus.lifecycle in ("active", "deprecated")


def test_bad_paging_parameters_are_400(sim: Simulator) -> None:
    from .helpers import HEADERS, http

    for query, text in (
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("limit=1001", "limit: Input should be less than or equal to 1000"),
        ("after_id=claude-nonexistent", "after_id: no model with id 'claude-nonexistent' in this list"),
    ):
        response = http().get(f"{sim.base_url}/v1/models?{query}", headers=HEADERS)
        assert error_of(response) == (400, "invalid_request_error", text)
