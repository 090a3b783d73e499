"""Structured outputs: ``output_config.format`` gives a reply whose text is JSON matching the schema, so the
SDK's ``messages.parse()`` and ``stream(output_format=...)`` work (sync, async, beta)."""

from __future__ import annotations

import json

import jsonschema
import pydantic
import pytest

from claude_history.testing import Simulator

from .helpers import MODEL, body, error_of, post, user


class Line(pydantic.BaseModel):
    sku: str
    quantity: int


class Order(pydantic.BaseModel):
    product_name: str
    price: float
    quantity: int
    lines: list[Line]
    note: str | None = None


PROMPT = [user("Extract the product name, price and quantity: 2 packs of Green Tea for 5.50 each.")]


def test_parse_returns_an_instance_of_the_requested_type(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    parsed = client.messages.parse(model=MODEL, max_tokens=1024, messages=PROMPT, output_format=Order)
    assert isinstance(parsed.parsed_output, Order)
    sent = sim.requests[-1]["body"]["output_config"]["format"]
    assert sent["type"] == "json_schema"
    jsonschema.validate(json.loads(parsed.content[0].text), sent["schema"])
    # Deterministic: the same request parses to the same object.
    again = client.messages.parse(model=MODEL, max_tokens=1024, messages=PROMPT, output_format=Order)
    assert again.parsed_output == parsed.parsed_output


def test_streaming_parse_builds_the_object_piece_by_piece(sim: Simulator) -> None:
    client = sim.client(max_retries=0)
    snapshots = []
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=PROMPT, output_format=Order) as stream:
        for event in stream:
            if event.type == "text":
                snapshots.append(event.parsed_snapshot())
        final = stream.get_final_message()
    assert isinstance(final.parsed_output, Order)
    assert len(snapshots) > 1 and Order.model_validate(snapshots[-1]) == final.parsed_output


async def test_async_and_beta_parse(sim: Simulator) -> None:
    client = sim.async_client(max_retries=0)
    parsed = await client.messages.parse(model=MODEL, max_tokens=1024, messages=PROMPT, output_format=Order)
    assert isinstance(parsed.parsed_output, Order)
    beta = await client.beta.messages.parse(model=MODEL, max_tokens=1024, messages=PROMPT, output_format=Order)
    assert beta.parsed_output == parsed.parsed_output


def test_a_tool_call_comes_first_and_the_answer_after_the_result_is_json(sim: Simulator) -> None:
    weather = {
        "name": "get_weather",
        "description": "Get the weather for a location",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
    schema = {"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}
    fields = {"tools": [weather], "output_config": {"format": {"type": "json_schema", "schema": schema}}}
    first = post(sim.base_url, body(user("What is the weather in Oslo?"), **fields)).json()
    assert first["stop_reason"] == "tool_use"
    result = user([{"type": "tool_result", "tool_use_id": first["content"][0]["id"], "content": "cold"}])
    history = [user("What is the weather in Oslo?"), {"role": "assistant", "content": first["content"]}, result]
    final = post(sim.base_url, body(*history, **fields)).json()
    assert json.loads(final["content"][0]["text"]) == {"summary": "example"}


@pytest.mark.parametrize(
    ("output_config", "message"),
    [
        ({"format": {"type": "xml"}}, "output_config.format.type: Input should be 'json_schema'"),
        ({"format": {"type": "json_schema"}}, "output_config.format.schema: Field required"),
    ],
)
def test_a_malformed_format_is_a_400(sim: Simulator, output_config: dict[str, object], message: str) -> None:
    status, kind, text = error_of(post(sim.base_url, body(*PROMPT, output_config=output_config)))
    assert (status, kind) == (400, "invalid_request_error")
    assert message in text
