"""Rolling summaries: the request for an updated summary, and the system block that carries it (pure).

The summary is a derived record (``stores.base.Summary``) covering log messages ``[0, end)``; each new one is
written from the previous summary plus the turns that just left the window (incremental), by a cheaper model.
It is sent as a second system block after the static system prompt, so the cached tools + system prefix stays
valid across cuts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..history import content_blocks
from ..stores.base import Summary

__all__ = ["SummaryRequest", "render_transcript", "summary_block", "summary_for"]

SUMMARY_HEADER = (
    "Summary of the earlier part of this conversation (those turns are no longer shown; treat this as what "
    "was said):\n\n"
)


def summary_block(summary: Summary) -> dict[str, Any]:
    return {"type": "text", "text": SUMMARY_HEADER + summary.text.strip()}


def summary_for(summaries: Sequence[Summary], end: int) -> Summary | None:
    """The summary of ``[0, end)`` to send with a window starting at ``end`` (the newest such record)."""
    matching = [s for s in summaries if s.end == end and s.start == 0 and s.text.strip()]
    return matching[-1] if matching else None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def _render_block(block: Mapping[str, Any]) -> str | None:
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_use":
        args = json.dumps(block.get("input"), ensure_ascii=False, default=str)
        return f"[called tool {block.get('name')} with {_clip(args, 500)}]"
    if kind == "tool_result":
        inner = block.get("content")
        if isinstance(inner, list):
            inner = " ".join(
                str(b.get("text", "")) for b in inner if isinstance(b, Mapping) and b.get("type") == "text"
            )
        flag = " (error)" if block.get("is_error") else ""
        return f"[tool result{flag}: {_clip(str(inner or ''), 1000)}]"
    if kind == "image":
        return "[image]"
    if kind == "document":
        return f"[document{': ' + str(block['title']) if block.get('title') else ''}]"
    if kind == "compaction":
        return f"[earlier context: {block.get('content') or ''}]"
    if kind in ("thinking", "redacted_thinking"):
        return None
    return f"[{kind}]"


def render_transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    """Plain-text transcript of messages for the summariser (thinking left out, tool I/O abbreviated)."""
    lines = []
    for message in messages:
        who = "User" if message.get("role") == "user" else "Assistant"
        parts = [p for p in (_render_block(b) for b in content_blocks(message)) if p]
        if parts:
            lines.append(f"{who}: " + "\n".join(parts))
    return "\n\n".join(lines)


@dataclass(frozen=True)
class SummaryRequest:
    """What Chat must do before sending: ask ``params["model"]`` for a summary of log ``[start, end)``.

    ``client.messages.create(**request.params)``, then ``request.to_summary(reply)`` gives the ``Summary`` to
    ``store.save_summary(...)``; plan again with it in ``summaries``. On any failure use ``plan.fallback``.
    """

    start: int
    end: int
    params: dict[str, Any]
    previous: Summary | None = None
    covered: tuple[int, int] = field(default=(0, 0))  # the log range rendered into the transcript

    def to_summary(self, reply: Any) -> Summary:
        """The record to store, from the summariser's reply (an SDK ``Message`` or its dict)."""
        content = getattr(reply, "content", None)
        if content is None and isinstance(reply, Mapping):
            content = reply.get("content")
        texts = []
        for block in content or ():
            kind = getattr(block, "type", None) or (block.get("type") if isinstance(block, Mapping) else None)
            text = getattr(block, "text", None) or (block.get("text") if isinstance(block, Mapping) else None)
            if kind == "text" and text:
                texts.append(str(text))
        text = "\n".join(texts).strip()
        if not text:
            raise ValueError("the summary reply holds no text")
        usage = getattr(reply, "usage", None)
        if usage is not None and hasattr(usage, "model_dump"):
            usage = usage.model_dump(mode="json", exclude_none=True)
        elif isinstance(reply, Mapping):
            usage = reply.get("usage")
        return Summary(
            start=self.start, end=self.end, text=text, model=str(self.params["model"]), usage=usage
        )


def build_summary_request(
    full: Sequence[Mapping[str, Any]],
    end: int,
    summaries: Sequence[Summary],
    *,
    model: str,
    prompt: str,
    max_tokens: int,
    max_transcript_chars: int,
) -> SummaryRequest:
    """Incremental: the newest stored summary of ``[0, k)`` with ``k <= end`` plus a transcript of
    ``[k, end)``; ``end`` is a turn start at or before the newest user message, which is never summarised."""
    base = None
    for s in summaries:
        if s.start == 0 and s.end <= end and s.text.strip() and (base is None or s.end >= base.end):
            base = s
    begin = base.end if base is not None else 0
    transcript = render_transcript(full[begin:end])
    if len(transcript) > max_transcript_chars:
        transcript = "[... earlier part omitted ...]\n" + transcript[-max_transcript_chars:]
    parts = []
    if base is not None:
        parts.append(f"<previous_summary>\n{base.text.strip()}\n</previous_summary>")
    parts.append(f"<conversation>\n{transcript or '(no new messages)'}\n</conversation>")
    parts.append(
        "Write the updated summary of everything above"
        + (" (the previous summary and the new part of the conversation)" if base is not None else "")
        + ". Reply with the summary only."
    )
    params = {
        "model": model,
        "max_tokens": max_tokens,
        "system": prompt,
        "messages": [{"role": "user", "content": "\n\n".join(parts)}],
    }
    return SummaryRequest(start=0, end=end, params=params, previous=base, covered=(begin, end))
