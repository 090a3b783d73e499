"""Hypothesis strategies that build message histories from random operations, valid or broken."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

# A 1x1 PNG: small, real image data for image blocks.
PNG_1X1 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
    )
).decode()

words = st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=30).filter(lambda s: s.strip())


class Builder:
    """Appends messages; ids are unique per history so pairing is unambiguous."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.counter = 0

    def new_id(self) -> str:
        self.counter += 1
        return f"toolu_{self.counter:04d}"

    def add(self, role: str, content: Any) -> None:
        self.messages.append({"role": role, "content": content})


def _text(draw: st.DrawFn, as_blocks: bool | None = None) -> Any:
    text = draw(words)
    if as_blocks is None:
        as_blocks = draw(st.booleans())
    return [{"type": "text", "text": text}] if as_blocks else text


def _thinking(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 4)) == 0:
        return {"type": "redacted_thinking", "data": "ENCRYPTED" + draw(words)}
    return {"type": "thinking", "thinking": draw(words), "signature": "sig-" + draw(words)}


def _user_turn(draw: st.DrawFn, b: Builder) -> None:
    content = _text(draw)
    if draw(st.integers(0, 5)) == 0:
        content = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1X1}},
            {"type": "text", "text": draw(words)},
        ]
    b.add("user", content)


def _reply(draw: st.DrawFn, b: Builder, thinking: bool) -> None:
    blocks: list[dict[str, Any]] = [_thinking(draw)] if thinking else []
    blocks.append({"type": "text", "text": draw(words)})
    b.add("assistant", blocks if (thinking or draw(st.booleans())) else blocks[0]["text"])


def _tool_loop(draw: st.DrawFn, b: Builder, thinking: bool, finish: bool = True) -> None:
    for _ in range(draw(st.integers(1, 3))):
        calls = [b.new_id() for _ in range(draw(st.integers(1, 3)))]
        blocks: list[dict[str, Any]] = [_thinking(draw)] if thinking else []
        if draw(st.booleans()):
            blocks.append({"type": "text", "text": draw(words)})
        blocks += [
            {"type": "tool_use", "id": c, "name": "lookup", "input": {"q": draw(words)}} for c in calls
        ]
        b.add("assistant", blocks)
        results: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": c, "content": draw(words)} for c in calls
        ]
        if draw(st.integers(0, 3)) == 0:
            results.append({"type": "text", "text": draw(words)})
        b.add("user", results)
    if finish:
        _reply(draw, b, thinking)


@st.composite
def valid_histories(
    draw: st.DrawFn, min_turns: int = 1, max_turns: int = 8, end_with_user: bool | None = None
) -> list[dict[str, Any]]:
    """Histories the API accepts: turns of user text, replies, tool loops, thinking and images."""
    b = Builder()
    for _ in range(draw(st.integers(min_turns, max_turns))):
        _user_turn(draw, b)
        thinking = draw(st.booleans())
        if draw(st.booleans()):
            _tool_loop(draw, b, thinking)
        else:
            _reply(draw, b, thinking)
    if end_with_user is None:
        end_with_user = draw(st.booleans())
    if end_with_user:
        _user_turn(draw, b)
    return b.messages


OPS = [
    "user",
    "reply",
    "thinking_reply",
    "tool_loop",
    "failed_call",
    "dangling_tool_use",
    "orphan_result",
    "duplicate",
    "blank",
    "misordered_results",
    "assistant_document",
    "partial_results",
    "mixed_orphan",
]


@st.composite
def messy_histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Histories built from random operations, including the ways real histories break."""
    b = Builder()
    for op in draw(st.lists(st.sampled_from(OPS), min_size=0, max_size=14)):
        if op == "user":
            _user_turn(draw, b)
        elif op == "reply":
            _reply(draw, b, thinking=False)
        elif op == "thinking_reply":
            _reply(draw, b, thinking=True)
        elif op == "tool_loop":
            _tool_loop(draw, b, draw(st.booleans()), finish=draw(st.booleans()))
        elif op == "failed_call":
            b.add("user", _text(draw))  # the guides' pattern: appended, then the call failed
        elif op == "dangling_tool_use":
            b.add("assistant", [{"type": "tool_use", "id": b.new_id(), "name": "lookup", "input": {}}])
        elif op == "orphan_result":
            b.add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_gone" + str(draw(st.integers(0, 9))),
                        "content": draw(words),
                    }
                ],
            )
        elif op == "duplicate" and b.messages:
            b.messages.append(dict(b.messages[-1]))
        elif op == "blank":
            role = draw(st.sampled_from(["user", "assistant"]))
            b.add(role, draw(st.sampled_from(["", "   ", [], [{"type": "text", "text": " \n"}]])))
        elif op == "misordered_results":
            call = b.new_id()
            b.add("assistant", [{"type": "tool_use", "id": call, "name": "lookup", "input": {}}])
            b.add(
                "user",
                [
                    {"type": "text", "text": draw(words)},
                    {"type": "tool_result", "tool_use_id": call, "content": "ok"},
                ],
            )
        elif op == "assistant_document":
            b.add(
                "assistant",
                [
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                    },
                    {"type": "text", "text": draw(words)},
                ],
            )
        elif op == "partial_results":
            calls = [b.new_id(), b.new_id()]
            b.add("assistant", [{"type": "tool_use", "id": c, "name": "lookup", "input": {}} for c in calls])
            b.add("user", [{"type": "tool_result", "tool_use_id": calls[1], "content": "half"}])
        elif op == "mixed_orphan":
            b.add(
                "user",
                [
                    {"type": "tool_result", "tool_use_id": "toolu_elsewhere", "content": "x"},
                    {"type": "text", "text": draw(words)},
                ],
            )
    return b.messages
