"""Messages and turns the store tests write: every content block type the API has, in odd key orders."""

from __future__ import annotations

import base64
import json
from typing import Any

from claude_history.stores.base import Entry

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

USAGE = {
    "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 1200},
    "cache_creation_input_tokens": 1200,
    "cache_read_input_tokens": 3400,
    "input_tokens": 12,
    "output_tokens": 345,
    "server_tool_use": {"web_search_requests": 1},
    "service_tier": "standard",
}


def every_block_history() -> list[Entry]:
    """A valid history holding every block type a stored log can carry, with keys in unusual orders (the store
    must keep them as they are: signatures are checked against the exact bytes)."""
    tool_id = "toolu_01A09q90qw90lq917835lq9"
    server_id = "srvtoolu_014hJH82Qum7Td6UV8gDXThB"
    return [
        Entry(
            {
                "content": [
                    {
                        "type": "text",
                        "text": "Look at this and the attached report.",
                        "cache_control": {"type": "ephemeral"},
                    },
                    {
                        "source": {"media_type": "image/png", "data": PNG_1PX, "type": "base64"},
                        "type": "image",
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"},
                        "title": "report.pdf",
                        "citations": {"enabled": True},
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "text",
                            "media_type": "text/plain",
                            "data": "Plain document text.",
                        },
                        "context": "background",
                    },
                    {
                        "type": "search_result",
                        "source": "https://example.com/result",
                        "title": "A result",
                        "content": [{"type": "text", "text": "search result body"}],
                        "citations": {"enabled": True},
                    },
                ],
                "role": "user",
            }
        ),
        Entry(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "The user wants the weather; I should call the tool.",
                        "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds" + "x" * 200,
                    },
                    {
                        "type": "redacted_thinking",
                        "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAF",
                    },
                    {"type": "text", "text": "Let me check.", "citations": None},
                    {
                        "id": tool_id,
                        "input": {"location": "Paris", "unit": "celsius", "z": 1, "a": [1, 2.5]},
                        "name": "get_weather",
                        "type": "tool_use",
                    },
                ],
            },
            model="claude-sonnet-4-6",
            usage=USAGE,
        ),
        Entry(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": [
                            {"type": "text", "text": "18°C, light rain"},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX},
                            },
                        ],
                    }
                ],
            }
        ),
        Entry(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "server_tool_use",
                        "id": server_id,
                        "name": "web_search",
                        "input": {"query": "Paris weather"},
                    },
                    {
                        "type": "web_search_tool_result",
                        "tool_use_id": server_id,
                        "content": [
                            {
                                "type": "web_search_result",
                                "url": "https://example.com/weather",
                                "title": "Weather",
                                "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5LTQ1NGUtODgxNC1kNjNj",
                                "page_age": "April 30, 2025",
                            }
                        ],
                    },
                    {
                        "type": "text",
                        "text": "It is 18°C and raining in Paris.",
                        "citations": [
                            {
                                "type": "web_search_result_location",
                                "url": "https://example.com/weather",
                                "title": "Weather",
                                "encrypted_index": "Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm",
                                "cited_text": "18°C, light rain",
                            },
                            {
                                "type": "char_location",
                                "cited_text": "Plain document text.",
                                "document_index": 1,
                                "document_title": None,
                                "start_char_index": 0,
                                "end_char_index": 20,
                            },
                        ],
                    },
                ],
            },
            model="claude-sonnet-4-6",
            usage={"input_tokens": 50, "output_tokens": 80},
        ),
        Entry(
            {
                "role": "user",
                "content": [{"type": "text", "text": "Summarise our chat so far, then run code."}],
            }
        ),
        Entry(
            {
                "role": "assistant",
                "content": [
                    {"type": "compaction", "content": "Summary: the user asked about the weather in Paris."},
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_02",
                        "name": "code_execution",
                        "input": {"code": "print(1+1)"},
                    },
                    {
                        "type": "code_execution_tool_result",
                        "tool_use_id": "srvtoolu_02",
                        "content": {
                            "type": "code_execution_result",
                            "stdout": "2\n",
                            "stderr": "",
                            "return_code": 0,
                            "content": [],
                        },
                    },
                    {
                        "type": "mcp_tool_use",
                        "id": "mcptoolu_01",
                        "name": "lookup",
                        "server_name": "kb",
                        "input": {},
                    },
                    {
                        "type": "mcp_tool_result",
                        "tool_use_id": "mcptoolu_01",
                        "is_error": False,
                        "content": [{"type": "text", "text": "kb says hi"}],
                    },
                    {"type": "text", "text": "Done: 1+1 = 2. Numbers kept as written: 1.0, 1e5, -0.0"},
                ],
            },
            model="claude-opus-5-5",
            usage={
                "input_tokens": 10,
                "output_tokens": 20,
                "iterations": [{"type": "compaction", "input_tokens": 5}],
            },
        ),
        Entry({"role": "user", "content": 'And a plain string message, with "quotes" and \\ backslashes.'}),
        Entry(
            {"role": "assistant", "content": "A plain string reply."},
            model="claude-haiku-4-5",
            usage={"input_tokens": 1, "output_tokens": 1},
        ),
    ]


def turn(label: str, *, size: int = 0) -> list[Entry]:
    """One user/assistant turn whose text names ``label`` (for finding it again), optionally padded."""
    pad = " " + "x" * size if size else ""
    return [
        Entry({"role": "user", "content": f"question {label}{pad}"}),
        Entry(
            {"role": "assistant", "content": [{"type": "text", "text": f"answer {label}"}]},
            model="claude-sonnet-4-6",
            usage={"input_tokens": 3, "output_tokens": 4},
        ),
    ]


def tool_turn(label: str) -> list[Entry]:
    """A turn with a tool loop: user, tool_use, tool_result, final answer."""
    tool_id = f"toolu_{label}"
    return [
        Entry({"role": "user", "content": f"use the tool for {label}"}),
        Entry(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": tool_id, "name": "calc", "input": {"x": 1}}],
            }
        ),
        Entry({"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "42"}]}),
        Entry({"role": "assistant", "content": [{"type": "text", "text": f"tool answer {label}"}]}),
    ]


def canonical(message: Any) -> str:
    """The exact serialisation, key order included: equal strings mean a byte-exact round trip."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def big_image_message(megabytes: int = 10) -> dict[str, Any]:
    raw = bytes(range(256)) * (megabytes * 1024 * 1024 * 3 // 4 // 256)
    return {
        "role": "user",
        "content": [
            {
                "type": "image",
                "source": {
                    "type": "base64",
                    "media_type": "image/png",
                    "data": base64.b64encode(raw).decode(),
                },
            },
            {"type": "text", "text": "what is in this big picture?"},
        ],
    }
