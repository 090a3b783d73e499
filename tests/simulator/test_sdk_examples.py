"""What the anthropic Python SDK's own examples (the ``examples/`` folder of anthropics/anthropic-sdk-python)
do, written here as tests against the standalone simulator (``python -m claude_history.testing``), the way a
user points an unchanged app at it with ``ANTHROPIC_BASE_URL``.

Covered: messages, messages_stream, images, thinking, thinking_stream, tools, tools_stream, tools_runner,
tools_runner_search_tool, structured_outputs, structured_outputs_streaming, batch_results, web_search,
web_search_stream. Out of scope (other services or APIs the simulator does not model): agents*,
managed-agents-*, memory/basic, mcp_tool_runner, fallbacks, text_completions_*, azure, bedrock, vertex,
google_cloud, workload_identity.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import anthropic
import pydantic
import pytest
from anthropic import beta_tool
from anthropic.lib.tools import BetaFunctionTool

from claude_history.models import model_info

from .helpers import image_bytes, standalone_simulator

MODEL = "claude-sonnet-5"  # the examples' model
WEATHER_QUESTION = [{"role": "user", "content": "What is the weather in SF?"}]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with standalone_simulator("--batch-seconds", "0.5") as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="test", base_url=base_url, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def async_client(base_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test", base_url=base_url, max_retries=0)


def test_messages(client: anthropic.Anthropic) -> None:
    hello = [{"role": "user", "content": "Hello!"}]
    first = client.messages.create(max_tokens=1024, messages=hello, model=MODEL)
    second = client.messages.create(
        max_tokens=1024,
        messages=[*hello, {"role": first.role, "content": first.content}, {"role": "user", "content": "How are you?"}],
        model=MODEL,
    )
    assert first.stop_reason == second.stop_reason == "end_turn"
    assert "3 messages" in second.content[0].text


def test_messages_stream(async_client: anthropic.AsyncAnthropic) -> None:
    async def main() -> tuple[str, list[Any], anthropic.types.Message]:
        texts, stops = [], []
        async with async_client.messages.stream(
            max_tokens=1024, messages=[{"role": "user", "content": "Say hello there!"}], model=MODEL
        ) as stream:
            async for event in stream:
                if event.type == "text":
                    texts.append(event.text)
                elif event.type == "content_block_stop":
                    stops.append(event.content_block)
        return "".join(texts), stops, await stream.get_final_message()

    text, stops, final = asyncio.run(main())
    assert text and final.content[0].text == text
    assert [b.type for b in stops] == ["text"]


def test_images(client: anthropic.Anthropic, tmp_path: Path) -> None:
    logo = tmp_path / "logo.png"
    logo.write_bytes(image_bytes(300, 200))
    reply = client.messages.create(
        max_tokens=1024,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hello!"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": logo}},
                ],
            }
        ],
        model=MODEL,
    )
    assert "I see 1 image: 300x200" in reply.content[0].text


def test_thinking_and_thinking_stream(client: anthropic.Anthropic) -> None:
    # The examples ask for manual thinking ("enabled", budget 1600); a model whose table entry accepts only
    # adaptive thinking gets what it accepts, as the real API would refuse the other.
    modes = getattr(model_info(MODEL), "thinking_modes", {"enabled"})
    thinking = {"type": "enabled", "budget_tokens": 1600} if "enabled" in modes else {"type": "adaptive"}
    fields: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 3200,
        "thinking": thinking,
        "messages": [{"role": "user", "content": "Create a haiku about Anthropic."}],
    }
    reply = client.messages.create(**fields)
    assert [b.type for b in reply.content] == ["thinking", "text"]
    seen = []
    with client.messages.stream(**fields) as stream:
        for event in stream:
            if event.type in ("thinking", "text"):
                seen.append(event.type)
    assert seen[0] == "thinking" and seen[-1] == "text"


WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Get the weather for a specific location",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}


def test_tools(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=1024, messages=WEATHER_QUESTION, tools=[WEATHER_TOOL])
    assert message.stop_reason == "tool_use"
    tool = next(c for c in message.content if c.type == "tool_use")
    result = [
        {"type": "tool_result", "tool_use_id": tool.id, "content": [{"type": "text", "text": "The weather is 73f"}]}
    ]
    final = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        messages=[
            *WEATHER_QUESTION,
            {"role": message.role, "content": message.content},
            {"role": "user", "content": result},
        ],
        tools=[WEATHER_TOOL],
    )
    assert final.stop_reason == "end_turn" and "73f" in final.content[0].text


def test_tools_stream(async_client: anthropic.AsyncAnthropic) -> None:
    tool = {
        **WEATHER_TOOL,
        "input_schema": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit for the output"},
            },
            "required": ["location"],
        },
    }

    async def main() -> list[Any]:
        snapshots = []
        async with async_client.messages.stream(
            max_tokens=1024, model=MODEL, tools=[tool], messages=WEATHER_QUESTION
        ) as stream:
            async for event in stream:
                if event.type == "input_json":
                    snapshots.append(event.snapshot)
        return snapshots

    snapshots = asyncio.run(main())
    assert snapshots and snapshots[-1] == {"location": "example"}


@beta_tool
def get_weather(location: str, units: Literal["c", "f"]) -> str:
    """Lookup the weather for a given city in either celsius or fahrenheit

    Args:
        location: The city and state, e.g. San Francisco, CA
        units: Unit for the output, either 'c' for celsius or 'f' for fahrenheit
    """
    return json.dumps({"location": location, "temperature": "20°C" if units == "c" else "68°F"})


def test_tools_runner(client: anthropic.Anthropic) -> None:
    runner = client.beta.messages.tool_runner(
        max_tokens=1024, model=MODEL, tools=[get_weather], messages=WEATHER_QUESTION
    )
    messages = list(runner)
    assert [m.stop_reason for m in messages] == ["tool_use", "end_turn"]
    assert messages[0].content[0].input == {"location": "example", "units": "c"}
    assert "temperature" in messages[1].content[0].text


def test_tools_runner_search_tool(client: anthropic.Anthropic) -> None:
    deferred = beta_tool(get_weather.func, defer_loading=True)
    tools: list[BetaFunctionTool[Any]] = [deferred]

    @beta_tool
    def search_available_tools(*, keyword: str) -> Any:
        """Search for useful tools using a query string"""
        return [{"type": "tool_reference", "tool_name": t.name} for t in tools if keyword in json.dumps(t.to_dict())]

    runner = client.beta.messages.tool_runner(
        max_tokens=1024,
        model=MODEL,
        tools=[*tools, search_available_tools],
        messages=WEATHER_QUESTION,
        betas=["tool-search-tool-2025-10-19"],
    )
    calls = [b.name for m in runner for b in m.content if b.type == "tool_use"]
    assert calls == ["search_available_tools", "get_weather"]


class Order(pydantic.BaseModel):
    product_name: str
    price: float
    quantity: int


ORDER_PROMPT = [
    {
        "role": "user",
        "content": "Extract the product name, price, and quantity from this customer message:\n\"Hi, I'd like to "
        'order 2 packs of Green Tea for 5.50 dollars each."',
    }
]


def test_structured_outputs_and_streaming(client: anthropic.Anthropic) -> None:
    parsed = client.messages.parse(model=MODEL, messages=ORDER_PROMPT, max_tokens=1024, output_format=Order)
    assert isinstance(parsed.parsed_output, Order)
    snapshots = []
    with client.messages.stream(model=MODEL, messages=ORDER_PROMPT, max_tokens=1024, output_format=Order) as stream:
        for event in stream:
            if event.type == "text":
                snapshots.append(event.parsed_snapshot())
        final = stream.get_final_message()
    assert final.parsed_output == parsed.parsed_output and snapshots


def test_batch_results(client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(
        requests=[
            {
                "custom_id": "hello",
                "params": {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "Hello!"}]},
            }
        ]
    )
    deadline = time.monotonic() + 20
    while client.messages.batches.retrieve(batch.id).processing_status != "ended":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (result,) = list(client.messages.batches.results(batch.id))
    assert result.custom_id == "hello" and result.result.type == "succeeded"


WEB_SEARCH: Any = [{"name": "web_search", "type": "web_search_20250305"}]
NEW_YORK = [{"role": "user", "content": "What's the weather in New York?"}]


def test_web_search(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=1024, messages=NEW_YORK, tools=WEB_SEARCH)
    assert [b.type for b in message.content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 1


def test_web_search_stream(async_client: anthropic.AsyncAnthropic) -> None:
    async def main() -> tuple[list[str], anthropic.types.beta.BetaMessage]:
        seen = []
        async with async_client.beta.messages.stream(
            model=MODEL, max_tokens=1024, messages=NEW_YORK, tools=WEB_SEARCH
        ) as stream:
            async for chunk in stream:
                if chunk.type == "content_block_start" and chunk.content_block.type == "web_search_tool_result":
                    seen.append("started")
                elif chunk.type == "content_block_stop" and chunk.content_block.type == "web_search_tool_result":
                    seen.append("completed")
            return seen, await stream.get_final_message()

    seen, message = asyncio.run(main())
    assert seen == ["started", "completed"]
    assert message.usage.server_tool_use is not None and message.usage.server_tool_use.web_search_requests == 1
