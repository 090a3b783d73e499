"""What the view does to a stored message before sending it: drop thinking blocks bound to an older prefix,
replace old images by a placeholder; and the facts about a message the planner looks for (thinking, images,
the block a cache breakpoint may go on). Blocks are shared with the log and never modified here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..history import content_blocks

__all__ = ["THINKING", "has_blocks", "has_image", "markable", "transform", "without_images"]

THINKING = ("thinking", "redacted_thinking")


def has_blocks(message: Mapping[str, Any], kinds: tuple[str, ...]) -> bool:
    """Whether ``message`` holds a block of one of ``kinds``."""
    return any(b.get("type") in kinds for b in content_blocks(message))


def has_image(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` holds an image, directly or inside a tool result."""
    for block in content_blocks(message):
        if block.get("type") == "image":
            return True
        if (
            block.get("type") == "tool_result"
            and isinstance(block.get("content"), list)
            and any(isinstance(b, Mapping) and b.get("type") == "image" for b in block["content"])
        ):
            return True
    return False


def without_images(blocks: list[Any], placeholder: str) -> list[Any]:
    """``blocks`` with every image (also inside tool results) replaced by a ``placeholder`` text block."""
    result: list[Any] = []
    for block in blocks:
        if isinstance(block, Mapping) and block.get("type") == "image":
            result.append({"type": "text", "text": placeholder})
        elif (
            isinstance(block, Mapping) and block.get("type") == "tool_result" and isinstance(block.get("content"), list)
        ):
            result.append({**block, "content": without_images(block["content"], placeholder)})
        else:
            result.append(block)
    return result


def transform(
    message: Mapping[str, Any], *, drop_thinking: bool, replace_images: bool, placeholder: str
) -> dict[str, Any] | None:
    """``message`` as the view sends it; ``None`` when nothing is left (a thinking-only reply). Blocks are
    shared with the log, never modified (the planner copies a block before it marks it). The content list is
    the log's own when nothing changes: the caller copies it before handing it out."""
    content = message.get("content")
    if isinstance(content, str):
        return {"role": message["role"], "content": content}
    if not content:
        return None
    if not (drop_thinking and message.get("role") == "assistant") and not replace_images:
        return {"role": message["role"], "content": content if isinstance(content, list) else list(content)}
    blocks = list(content)
    if drop_thinking and message.get("role") == "assistant":
        blocks = [b for b in blocks if not (isinstance(b, Mapping) and b.get("type") in THINKING)]
    if replace_images:
        blocks = without_images(blocks, placeholder)
    if not blocks:
        return None
    return {"role": message["role"], "content": blocks}


def markable(blocks: Sequence[Mapping[str, Any]]) -> int | None:
    """The last block a cache breakpoint may go on (not a thinking block), or None."""
    for j in range(len(blocks) - 1, -1, -1):
        if blocks[j].get("type") not in THINKING:
            return j
    return None
