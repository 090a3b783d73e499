"""The Messages API's Server-Sent Events for a finished message: the order and deltas the SDK accumulates."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["stream_events", "text_pieces"]


def stream_events(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The API's event sequence for ``message``; the SDK's accumulator rebuilds exactly ``message``.

    text, thinking and tool_use blocks stream as deltas; every other block (redacted thinking, server tool
    blocks, compaction) comes whole in its content_block_start.
    """
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "stop_details": None,
        "usage": {**{k: v for k, v in usage.items() if k not in ("iterations", "server_tool_use")}, "output_tokens": 1},
    }
    yield {"type": "message_start", "message": start}
    pinged = False
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            head = {k: v for k, v in block.items() if k not in ("text", "citations")}
            head["text"] = ""
            if block.get("citations"):
                head["citations"] = []
            deltas = [{"type": "citations_delta", "citation": c} for c in block.get("citations") or []]
            deltas += [{"type": "text_delta", "text": piece} for piece in text_pieces(block["text"])]
        elif kind == "thinking":
            head = {**block, "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in text_pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            head = {**block, "input": {}}
            text = json.dumps(block["input"], ensure_ascii=False)
            deltas = [{"type": "input_json_delta", "partial_json": text[k : k + 24]} for k in range(0, len(text), 24)]
        else:
            head, deltas = block, []
        yield {"type": "content_block_start", "index": index, "content_block": head}
        if not pinged:
            yield {"type": "ping"}
            pinged = True
        for delta in deltas:
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    if not pinged:
        yield {"type": "ping"}
    final = {
        "output_tokens": usage["output_tokens"],
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
    }
    if "server_tool_use" in usage:
        final["server_tool_use"] = usage["server_tool_use"]
    if "iterations" in usage:  # known once the passes ran; the SDK's beta accumulator takes it from here
        final["iterations"] = usage["iterations"]
    yield {
        "type": "message_delta",
        "delta": {
            "stop_reason": message["stop_reason"],
            "stop_sequence": message["stop_sequence"],
            "stop_details": message.get("stop_details"),
        },
        "usage": final,
        # context edits applied to this request (the SDK's beta accumulator reads them from here)
        **({"context_management": message["context_management"]} if "context_management" in message else {}),
    }
    yield {"type": "message_stop"}


def text_pieces(text: str) -> list[str]:
    """Split text into deltas of about three words; joined they are exactly ``text``."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[k : k + 3]) for k in range(0, len(words), 3)]
