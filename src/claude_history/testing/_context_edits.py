"""Context editing (beta ``context-management-2025-06-27``): ``clear_tool_uses_20250919`` and
``clear_thinking_20251015`` applied to the prompt before the model sees it.

Sources: "Context editing" (platform.claude.com/docs/en/build-with-claude/context-editing): applied server-side
before the prompt reaches Claude, the client keeps its full history; ``clear_tool_uses`` activates once the
prompt passes ``trigger`` (default 100,000 input tokens, or a number of tool uses), clears the oldest tool
results first, replacing each with placeholder text, keeps the newest ``keep`` tool uses (default 3), spares
``exclude_tools``, also clears the tool inputs with ``clear_tool_inputs``, and edits nothing unless at least
``clear_at_least`` tokens would go; ``clear_thinking`` removes the thinking blocks of all but the newest
``keep`` assistant turns (default 1; ``"all"`` keeps every one). The response's ``context_management.
applied_edits`` reports each edit with ``cleared_tool_uses`` / ``cleared_thinking_turns`` and
``cleared_input_tokens``; ``count_tokens`` reports the count after the edits with ``context_management.
original_input_tokens`` (SDK 2.17.0: ``BetaClearToolUses20250919EditParam``,
``BetaClearThinking20251015EditParam``, ``BetaContextManagementResponse``, ``BetaMessageTokensCount``).
"""

from __future__ import annotations

from typing import Any

from ._common import bad_request
from ._tokens import Counter
from ._validation import Request

__all__ = ["CLEARED_RESULT", "apply_context_edits", "clear_edits"]

CLEAR_TOOL_USES = "clear_tool_uses_20250919"
CLEAR_THINKING = "clear_thinking_20251015"
DEFAULT_TRIGGER = 100_000
DEFAULT_KEEP_TOOL_USES = 3
DEFAULT_KEEP_THINKING_TURNS = 1
# The placeholder's wording is not published: the simulator's own text.
CLEARED_RESULT = "[tool result cleared by context management]"


def clear_edits(req: Request) -> list[dict[str, Any]]:
    """The request's clearing edits, in order (compaction is modelled elsewhere)."""
    cm = req.body.get("context_management")
    edits = cm.get("edits") if isinstance(cm, dict) else None
    if not isinstance(edits, list):
        return []
    return [e for e in edits if isinstance(e, dict) and e.get("type") in (CLEAR_TOOL_USES, CLEAR_THINKING)]


def apply_context_edits(req: Request, counter: Counter, total: int) -> list[dict[str, Any]]:
    """Apply the clearing edits to ``req.messages`` (new message and block dicts: the body stays as sent) and
    return ``applied_edits``. ``total``: the prompt's input tokens before the edits."""
    applied = []
    for k, edit in enumerate(clear_edits(req)):
        if edit["type"] == CLEAR_THINKING:
            result = _clear_thinking(req, counter, edit, k)
        else:
            result = _clear_tool_uses(req, counter, edit, k, total)
        if result is not None:
            applied.append(result)
            total -= result["cleared_input_tokens"]
    req._effective = None  # the cached view of the blocks is stale
    return applied


def _value(spec: Any, kinds: tuple[str, ...], default: int, path: str) -> tuple[str, int]:
    if spec is None:
        return kinds[0], default
    if not isinstance(spec, dict) or spec.get("type") not in kinds:
        raise bad_request(f"{path}.type: Input should be " + " or ".join(f"'{k}'" for k in kinds))
    value = spec.get("value")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(f"{path}.value: Input should be a valid non-negative integer")
    return spec["type"], value


def _clear_tool_uses(req: Request, counter: Counter, edit: dict[str, Any], k: int, total: int) -> dict[str, Any] | None:
    path = f"context_management.edits.{k}"
    trigger, threshold = _value(edit.get("trigger"), ("input_tokens", "tool_uses"), DEFAULT_TRIGGER, path + ".trigger")
    _, keep = _value(edit.get("keep"), ("tool_uses",), DEFAULT_KEEP_TOOL_USES, path + ".keep")
    _, at_least = _value(edit.get("clear_at_least"), ("input_tokens",), 0, path + ".clear_at_least")
    excluded = set(edit.get("exclude_tools") or ())
    inputs = edit.get("clear_tool_inputs") or False
    start = req.start[0]
    uses = [
        (i, j, b)
        for i in range(start, len(req.messages))
        if req.messages[i]["role"] == "assistant"
        for j, b in enumerate(req.messages[i]["content"])
        if b.get("type") == "tool_use"
    ]
    if (total if trigger == "input_tokens" else len(uses)) <= threshold:
        return None
    clearable = [u for u in uses if u[2].get("name") not in excluded]
    doomed = clearable[: max(0, len(clearable) - keep)]
    if not doomed:
        return None
    ids = {b["id"]: b.get("name") for _, _, b in doomed}
    edits: dict[tuple[int, int], dict[str, Any]] = {}
    cleared = 0
    for i, j, block in doomed:
        if inputs is True or (isinstance(inputs, list) and block.get("name") in inputs):
            edits[(i, j)] = {**block, "input": {}}
    for i in range(start, len(req.messages)):
        if req.messages[i]["role"] != "user":
            continue
        for j, block in enumerate(req.messages[i]["content"]):
            if block.get("type") == "tool_result" and block.get("tool_use_id") in ids:
                kept = {x: v for x, v in block.items() if x not in ("content", "is_error")}
                edits[(i, j)] = {**kept, "content": CLEARED_RESULT}
    for (i, j), new in edits.items():
        cleared += counter.block(req.messages[i]["content"][j]) - counter.block(new)
    if at_least and cleared < at_least:
        return None
    _replace(req, edits)
    # A result shorter than the placeholder grows: the count cannot be negative.
    return {"type": CLEAR_TOOL_USES, "cleared_tool_uses": len(doomed), "cleared_input_tokens": max(0, cleared)}


def _clear_thinking(req: Request, counter: Counter, edit: dict[str, Any], k: int) -> dict[str, Any] | None:
    keep_spec = edit.get("keep")
    if keep_spec == "all" or (isinstance(keep_spec, dict) and keep_spec.get("type") == "all"):
        return None
    _, keep = _value(keep_spec, ("thinking_turns",), DEFAULT_KEEP_THINKING_TURNS, f"context_management.edits.{k}.keep")
    start = req.start[0]
    turns = [i for i in range(start, len(req.messages)) if req.messages[i]["role"] == "assistant"]
    old = turns[: max(0, len(turns) - keep)]
    cleared = turns_cleared = 0
    for i in old:
        content = req.messages[i]["content"]
        thinking = [b for b in content if b.get("type") in ("thinking", "redacted_thinking")]
        if not thinking:
            continue
        turns_cleared += 1
        cleared += sum(counter.block(b) for b in thinking)
        req.messages[i] = {**req.messages[i], "content": [b for b in content if b not in thinking]}
    if not turns_cleared:
        return None
    return {"type": CLEAR_THINKING, "cleared_thinking_turns": turns_cleared, "cleared_input_tokens": cleared}


def _replace(req: Request, edits: dict[tuple[int, int], dict[str, Any]]) -> None:
    for i in sorted({i for i, _ in edits}):
        content = list(req.messages[i]["content"])
        for (mi, j), new in edits.items():
            if mi == i:
                content[j] = new
        req.messages[i] = {**req.messages[i], "content": content}
